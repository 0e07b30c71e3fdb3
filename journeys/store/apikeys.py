"""Queries on `api_keys`."""

from __future__ import annotations

import asyncpg

from journeys.security import hash_api_key, new_api_key


async def create(conn: asyncpg.Connection | asyncpg.Pool, name: str) -> str:
    """Stores a new key under `name` and returns it; only its hash is kept."""
    key = new_api_key()
    await conn.execute(
        "INSERT INTO api_keys (name, prefix, key_hash) VALUES ($1, $2, $3)",
        name,
        key[:8],
        hash_api_key(key),
    )
    return key


async def verify(conn: asyncpg.Connection | asyncpg.Pool, key: str) -> str | None:
    """Returns the key's name if it exists and is not revoked, else None."""
    return await conn.fetchval(
        "UPDATE api_keys SET last_used_at = now()"
        " WHERE key_hash = $1 AND revoked_at IS NULL RETURNING name",
        hash_api_key(key),
    )

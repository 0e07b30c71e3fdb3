"""Queries on `api_keys`."""

from __future__ import annotations

import asyncpg

from journeys.security import hash_api_key, new_api_key

# Revocations are announced here (payload: the key's hash) so every API process drops the key
# from its cache at once instead of honouring it until the cache entry expires.
CHANNEL = "journeys_api_keys"


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


async def list_all(conn: asyncpg.Connection | asyncpg.Pool) -> list[dict]:
    """Every key, oldest first: name, prefix and dates (never the hash)."""
    rows = await conn.fetch(
        "SELECT id::text, name, prefix, created_at, last_used_at, revoked_at"
        " FROM api_keys ORDER BY created_at, prefix"
    )
    return [dict(r) for r in rows]


async def active_matching(
    conn: asyncpg.Connection | asyncpg.Pool, prefix_or_name: str
) -> list[dict]:
    """Unrevoked keys whose prefix, else whose name, equals `prefix_or_name`.

    A prefix match wins, so `revoke jrn_AbCd` never also hits a key *named* `jrn_AbCd`.
    """
    select = (
        "SELECT id::text, name, prefix, created_at, last_used_at, revoked_at FROM api_keys"
        " WHERE revoked_at IS NULL AND {} = $1 ORDER BY created_at"
    )
    rows = await conn.fetch(select.format("prefix"), prefix_or_name)
    if not rows:
        rows = await conn.fetch(select.format("name"), prefix_or_name)
    return [dict(r) for r in rows]


async def revoke(conn: asyncpg.Connection | asyncpg.Pool, key_ids: list[str]) -> int:
    """Revokes keys by id and tells every API process; returns how many were still active.

    The notifications are delivered when the caller's transaction commits (at once on a pool).
    """
    rows = await conn.fetch(
        "UPDATE api_keys SET revoked_at = now() WHERE id = ANY($1::uuid[]) AND revoked_at IS NULL"
        " RETURNING key_hash",
        key_ids,
    )
    for row in rows:
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, row["key_hash"])
    return len(rows)

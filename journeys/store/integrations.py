"""Queries on `integrations`: each audience's provider secrets and issued URL tokens."""

from __future__ import annotations

import hashlib
from typing import Any

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool


def token_hash(token: str) -> str:
    """The stored form of an issued URL token (random, so a plain SHA-256 suffices)."""
    return hashlib.sha256(token.encode()).hexdigest()


async def put(
    conn: Conn,
    *,
    audience_id: str,
    provider: str,
    secret: str | None,
    token: str | None,
    config: dict[str, Any],
) -> None:
    """Creates or replaces the audience's settings for one provider."""
    await conn.execute(
        """
        INSERT INTO integrations (audience_id, provider, secret, token_hash, config)
        VALUES ($1::uuid, $2, $3, $4, $5::jsonb)
        ON CONFLICT (audience_id, provider) DO UPDATE SET
            secret = EXCLUDED.secret, token_hash = EXCLUDED.token_hash,
            config = EXCLUDED.config, updated_at = now()
        """,
        audience_id,
        provider,
        secret,
        token_hash(token) if token else None,
        config,
    )


async def get(conn: Conn, audience_id: str, provider: str) -> dict[str, Any] | None:
    """The audience's settings for the provider, or None."""
    row = await conn.fetchrow(
        "SELECT audience_id::text, provider, secret, config FROM integrations"
        " WHERE audience_id = $1::uuid AND provider = $2",
        audience_id,
        provider,
    )
    return dict(row) if row else None


async def by_token(conn: Conn, provider: str, token: str) -> dict[str, Any] | None:
    """The integration an issued URL token belongs to, or None."""
    row = await conn.fetchrow(
        "SELECT audience_id::text, provider, secret, config FROM integrations"
        " WHERE token_hash = $1 AND provider = $2",
        token_hash(token),
        provider,
    )
    return dict(row) if row else None

"""Queries on `audiences`."""

from __future__ import annotations

from typing import Any

import asyncpg

from journeys.store.ids import is_uuid


async def create(
    conn: asyncpg.Connection | asyncpg.Pool, *, name: str, timezone: str
) -> dict[str, Any]:
    row = await conn.fetchrow(
        "INSERT INTO audiences (name, timezone) VALUES ($1, $2)"
        " RETURNING id::text, name, timezone, created_at",
        name,
        timezone,
    )
    return dict(row)


async def get(
    conn: asyncpg.Connection | asyncpg.Pool, audience_id: str, *, for_update: bool = False
) -> dict[str, Any] | None:
    """The audience, or None; `for_update` locks its row until the transaction ends."""
    if not is_uuid(audience_id):
        return None
    row = await conn.fetchrow(
        "SELECT id::text, name, timezone, created_at FROM audiences WHERE id = $1::uuid"
        + (" FOR UPDATE" if for_update else ""),
        audience_id,
    )
    return dict(row) if row else None


async def list_all(conn: asyncpg.Connection | asyncpg.Pool, *, limit: int) -> list[dict[str, Any]]:
    """Audiences, oldest first."""
    rows = await conn.fetch(
        "SELECT id::text, name, timezone, created_at FROM audiences ORDER BY created_at, id"
        " LIMIT $1",
        limit,
    )
    return [dict(r) for r in rows]


async def existing(conn: asyncpg.Connection | asyncpg.Pool, audience_ids: list[str]) -> set[str]:
    """Which of these audiences exist (one query for many)."""
    rows = await conn.fetch(
        "SELECT id::text FROM audiences WHERE id = ANY($1::uuid[])", list(set(audience_ids))
    )
    return {r["id"] for r in rows}


async def update(
    conn: asyncpg.Connection | asyncpg.Pool,
    audience_id: str,
    *,
    name: str | None = None,
    timezone: str | None = None,
) -> dict[str, Any] | None:
    """Sets the given fields (None keeps a field as it is); the audience after, or None."""
    if not is_uuid(audience_id):
        return None
    row = await conn.fetchrow(
        "UPDATE audiences SET name = coalesce($2, name), timezone = coalesce($3, timezone)"
        " WHERE id = $1::uuid RETURNING id::text, name, timezone, created_at",
        audience_id,
        name,
        timezone,
    )
    return dict(row) if row else None

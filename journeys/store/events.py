"""Queries on `events` (append-only; the idempotency key makes redelivery a no-op)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool


async def record(
    conn: Conn,
    *,
    idempotency_key: str,
    audience_id: str | None,
    contact_id: str | None,
    type: str,
    data: dict[str, Any],
    occurred_at: datetime | None = None,
) -> tuple[dict[str, Any], bool]:
    """Appends the event unless its key was seen.

    Returns:
        The stored event (the earlier one on a repeat) and whether this call stored it.
    """
    row = await conn.fetchrow(
        """
        INSERT INTO events (idempotency_key, audience_id, contact_id, type, data, occurred_at)
        VALUES ($1, $2::uuid, $3::uuid, $4, $5, COALESCE($6, now()))
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id::text, type, data, occurred_at, dispatched_at, contact_id::text,
                  audience_id::text
        """,
        idempotency_key,
        audience_id,
        contact_id,
        type,
        data,
        occurred_at,
    )
    if row:
        return dict(row), True
    existing = await by_key(conn, idempotency_key)
    assert existing is not None
    return existing, False


async def mark_dispatched(conn: Conn, event_id: str) -> None:
    """Notes that every workflow the event concerns has accepted it."""
    await conn.execute(
        "UPDATE events SET dispatched_at = now() WHERE id = $1::uuid AND dispatched_at IS NULL",
        event_id,
    )


async def by_key(conn: Conn, idempotency_key: str) -> dict[str, Any] | None:
    """The event stored under this key, or None."""
    row = await conn.fetchrow(
        "SELECT id::text, type, data, occurred_at, dispatched_at, contact_id::text,"
        " audience_id::text FROM events WHERE idempotency_key = $1",
        idempotency_key,
    )
    return dict(row) if row else None


async def undispatched(conn: Conn, *, min_age_seconds: float, limit: int) -> list[dict[str, Any]]:
    """Events stored but never handed to Temporal (the process died, or Temporal was down)."""
    rows = await conn.fetch(
        """
        SELECT id::text, idempotency_key, audience_id::text, contact_id::text, type, data,
               occurred_at, dispatched_at
        FROM events
        WHERE dispatched_at IS NULL AND contact_id IS NOT NULL
          AND received_at < now() - make_interval(secs => $1)
        ORDER BY received_at
        LIMIT $2
        """,
        min_age_seconds,
        limit,
    )
    return [dict(r) for r in rows]

"""Queries on `audience_rezones`: an audience's time-zone changes, kept until every armed run
that follows the audience's zone has heard of them (an outbox of their own)."""

from __future__ import annotations

from typing import Any

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool

_COLUMNS = (
    "id::text, audience_id::text, zone, previous, created_at, told_at, told, attempts, error,"
    " given_up_at"
)


async def record(conn: Conn, *, audience_id: str, zone: str, previous: str) -> dict[str, Any]:
    """Stores a change of the audience's zone (in the transaction that changes it)."""
    row = await conn.fetchrow(
        "INSERT INTO audience_rezones (audience_id, zone, previous)"
        f" VALUES ($1::uuid, $2, $3) RETURNING {_COLUMNS}",
        audience_id,
        zone,
        previous,
    )
    assert row is not None
    return dict(row)


async def told(conn: Conn, rezone_id: str, *, runs: int) -> None:
    """Marks the change as heard by every run that follows the zone (`runs` were open)."""
    await conn.execute(
        "UPDATE audience_rezones SET told_at = now(), told = $2"
        " WHERE id = $1::uuid AND told_at IS NULL",
        rezone_id,
        runs,
    )


async def untold(conn: Conn, *, min_age_seconds: float, limit: int) -> list[dict[str, Any]]:
    """Changes older than `min_age_seconds` that no process finished telling, oldest first."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM audience_rezones"
        " WHERE told_at IS NULL AND given_up_at IS NULL"
        " AND created_at < now() - make_interval(secs => $1)"
        " AND (next_attempt_at IS NULL OR next_attempt_at <= now())"
        " ORDER BY created_at LIMIT $2",
        min_age_seconds,
        limit,
    )
    return [dict(r) for r in rows]


async def failed(
    conn: Conn, rezone_id: str, *, delay_seconds: float, error: str, give_up: bool
) -> None:
    """Counts a failed attempt to tell the runs: tried again after `delay_seconds`, or never
    (`give_up`, with the error kept for the operator)."""
    await conn.execute(
        "UPDATE audience_rezones SET attempts = attempts + 1, error = $2,"
        " next_attempt_at = now() + make_interval(secs => $3),"
        " given_up_at = CASE WHEN $4 THEN now() END"
        " WHERE id = $1::uuid",
        rezone_id,
        error,
        delay_seconds,
        give_up,
    )

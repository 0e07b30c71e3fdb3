"""Queries behind arming a flow's audience on activation: pages of contacts and progress."""

from __future__ import annotations

from typing import Any

import asyncpg

from journeys.store.contacts import COLUMNS

Conn = asyncpg.Connection | asyncpg.Pool


async def count(conn: Conn, audience_id: str) -> int:
    """Contacts in the audience."""
    value = await conn.fetchval(
        "SELECT count(*) FROM contacts WHERE audience_id = $1::uuid", audience_id
    )
    return int(value)


async def page(conn: Conn, audience_id: str, *, after: str, limit: int) -> list[dict[str, Any]]:
    """Contacts of the audience in id order after `after` (a uuid, or '' for the first page)."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM contacts WHERE audience_id = $1::uuid"
        " AND ($2 = '' OR id > $2::uuid) ORDER BY id LIMIT $3",
        audience_id,
        after,
        limit,
    )
    return [dict(r) for r in rows]


async def start(conn: Conn, flow_id: str, workflow_id: str) -> None:
    """Records that arming the flow's audience began (a new activation restarts the count)."""
    await conn.execute(
        """
        INSERT INTO flow_arming (flow_id, workflow_id) VALUES ($1::uuid, $2)
        ON CONFLICT (flow_id) DO UPDATE SET workflow_id = EXCLUDED.workflow_id, total = 0,
            armed = 0, skipped = 0, done = false, started_at = now(), updated_at = now()
        """,
        flow_id,
        workflow_id,
    )


async def progress(
    conn: Conn, flow_id: str, *, total: int, armed: int, skipped: int, done: bool
) -> None:
    """Sets the counts (absolute values, so a retried page writes the same row)."""
    await conn.execute(
        "UPDATE flow_arming SET total = $2, armed = $3, skipped = $4, done = $5,"
        " updated_at = now() WHERE flow_id = $1::uuid",
        flow_id,
        total,
        armed,
        skipped,
        done,
    )


async def get(conn: Conn, flow_id: str) -> dict[str, Any] | None:
    """The flow's arming progress, or None if it never armed an audience."""
    row = await conn.fetchrow(
        "SELECT workflow_id, total, armed, skipped, done, started_at, updated_at"
        " FROM flow_arming WHERE flow_id = $1::uuid",
        flow_id,
    )
    return dict(row) if row else None

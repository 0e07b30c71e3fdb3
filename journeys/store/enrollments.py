"""Queries on `enrollments`: one row per entry of a contact into a flow."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool


async def last(conn: Conn, flow_id: str, contact_id: str) -> dict[str, Any] | None:
    """The contact's latest entry into the flow, or None."""
    row = await conn.fetchrow(
        "SELECT entry, status, run_id, started_at, ended_at FROM enrollments"
        " WHERE flow_id = $1::uuid AND contact_id = $2::uuid ORDER BY entry DESC LIMIT 1",
        flow_id,
        contact_id,
    )
    return dict(row) if row else None


async def by_run(conn: Conn, run_id: str) -> dict[str, Any] | None:
    """The entry a workflow run already made (an activity retry), or None."""
    row = await conn.fetchrow("SELECT entry, status FROM enrollments WHERE run_id = $1", run_id)
    return dict(row) if row else None


async def lock(conn: asyncpg.Connection, flow_id: str, contact_id: str) -> None:
    """Serialises entry decisions for one contact in one flow until the transaction ends."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"{flow_id}:{contact_id}"
    )


async def insert(
    conn: Conn,
    *,
    flow_id: str,
    contact_id: str,
    entry: int,
    version: int,
    workflow_id: str,
    run_id: str,
    trigger_type: str,
    event_id: str | None,
) -> None:
    await conn.execute(
        """
        INSERT INTO enrollments (flow_id, contact_id, entry, version, workflow_id, run_id,
                                 trigger_type, event_id)
        VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $7, $8)
        """,
        flow_id,
        contact_id,
        entry,
        version,
        workflow_id,
        run_id,
        trigger_type,
        event_id,
    )


async def close_stale(conn: Conn, flow_id: str, contact_id: str, now: datetime) -> None:
    """Ends entries whose run vanished without finishing (terminated by an operator)."""
    await conn.execute(
        "UPDATE enrollments SET status = 'abandoned', ended_at = $3"
        " WHERE flow_id = $1::uuid AND contact_id = $2::uuid AND status = 'running'",
        flow_id,
        contact_id,
        now,
    )


async def finish(
    conn: Conn, *, flow_id: str, contact_id: str, entry: int, status: str, reason: str | None = None
) -> None:
    await conn.execute(
        "UPDATE enrollments SET status = $4, ended_at = now(), end_reason = $5"
        " WHERE flow_id = $1::uuid AND contact_id = $2::uuid AND entry = $3",
        flow_id,
        contact_id,
        entry,
        status,
        reason,
    )


async def entry_context(conn: Conn, contact_id: str, flow_ids: list[str]) -> dict[str, Any]:
    """What the gateway needs to decide entries for one event, in one query.

    Args:
        contact_id: The event's contact.
        flow_ids: The flows the event triggers.

    Returns:
        `contact_status` (None if the contact does not exist), `last` (the contact's latest
        entry per flow of `flow_ids`, by flow id) and `running` (its entries in progress in
        any flow).
    """
    rows = await conn.fetch(
        """
        WITH e AS (
            SELECT flow_id, entry, version, workflow_id, status, started_at, event_id
            FROM enrollments WHERE contact_id = $1::uuid AND status = 'running'
            UNION
            SELECT * FROM (
                SELECT DISTINCT ON (flow_id) flow_id, entry, version, workflow_id, status,
                       started_at, event_id
                FROM enrollments WHERE contact_id = $1::uuid AND flow_id = ANY($2::uuid[])
                ORDER BY flow_id, entry DESC
            ) latest
        )
        SELECT c.status AS contact_status, e.flow_id::text, e.entry, e.version, e.workflow_id,
               e.status, e.started_at, e.event_id
        FROM contacts c LEFT JOIN e ON true WHERE c.id = $1::uuid
        """,
        contact_id,
        flow_ids,
    )
    last: dict[str, dict[str, Any]] = {}
    running = []
    for row in rows:
        if row["flow_id"] is None:
            continue
        entry = dict(row)
        if entry["status"] == "running":
            running.append(entry)
        if entry["flow_id"] in flow_ids and entry["entry"] > last.get(entry["flow_id"], {}).get(
            "entry", 0
        ):
            last[entry["flow_id"]] = entry
    return {
        "contact_status": rows[0]["contact_status"] if rows else None,
        "last": last,
        "running": running,
    }


async def admit(
    conn: Conn,
    *,
    flow_id: str,
    contact_id: str,
    entry: int,
    version: int,
    workflow_id: str,
    trigger_type: str,
    event_id: str,
) -> bool:
    """Records an entry the gateway admitted, before its run starts (run id unknown yet).

    Returns:
        False if the entry number was taken meanwhile (another decision won the race).
    """
    row = await conn.fetchval(
        """
        INSERT INTO enrollments (flow_id, contact_id, entry, version, workflow_id, trigger_type,
                                 event_id)
        VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $7)
        ON CONFLICT (flow_id, contact_id, entry) DO NOTHING
        RETURNING entry
        """,
        flow_id,
        contact_id,
        entry,
        version,
        workflow_id,
        trigger_type,
        event_id,
    )
    return row is not None


async def withdraw(conn: Conn, *, flow_id: str, contact_id: str, entry: int) -> None:
    """Drops an admitted entry whose run could not start (another run holds the workflow id)."""
    await conn.execute(
        "DELETE FROM enrollments WHERE flow_id = $1::uuid AND contact_id = $2::uuid"
        " AND entry = $3 AND run_id IS NULL AND status = 'running'",
        flow_id,
        contact_id,
        entry,
    )


async def started(
    conn: Conn, *, event_id: str, contact_id: str, runs: list[tuple[str, int, str]]
) -> None:
    """Notes the run ids of entries the gateway started and marks the event dispatched, in one
    statement (the round trip `events.mark_dispatched` alone would cost).

    Args:
        event_id: The event delivered.
        contact_id: Its contact.
        runs: (flow id, entry, run id) of each run started for it.
    """
    await conn.execute(
        """
        WITH runs AS (
            UPDATE enrollments e SET run_id = r.run_id
            FROM unnest($3::uuid[], $4::int[], $5::text[]) AS r(flow_id, entry, run_id)
            WHERE e.flow_id = r.flow_id AND e.contact_id = $2::uuid AND e.entry = r.entry
              AND e.run_id IS NULL
            RETURNING 1
        )
        UPDATE events SET dispatched_at = now() WHERE id = $1::uuid AND dispatched_at IS NULL
        """,
        event_id,
        contact_id,
        [flow for flow, _, _ in runs],
        [entry for _, entry, _ in runs],
        [run for _, _, run in runs],
    )


async def running_for_contact(conn: Conn, contact_id: str) -> list[dict[str, Any]]:
    """The contact's entries still in progress, in any flow."""
    rows = await conn.fetch(
        "SELECT flow_id::text, version, workflow_id FROM enrollments"
        " WHERE contact_id = $1::uuid AND status = 'running'",
        contact_id,
    )
    return [dict(r) for r in rows]


async def running_page(conn: Conn, flow_id: str, *, after: str, limit: int) -> list[str]:
    """Workflow ids of the flow's open runs, in id order, after `after`: entries in progress
    and armed runs (which have not entered yet; one that ended is told nothing)."""
    rows = await conn.fetch(
        "SELECT workflow_id FROM ("
        "  SELECT workflow_id FROM enrollments WHERE flow_id = $1::uuid AND status = 'running'"
        "  UNION SELECT workflow_id FROM armed_runs WHERE flow_id = $1::uuid"
        ") open WHERE workflow_id > $2 ORDER BY workflow_id LIMIT $3",
        flow_id,
        after,
        limit,
    )
    return [r["workflow_id"] for r in rows]


async def contacts_running(conn: Conn, contact_ids: list[str]) -> set[str]:
    """Which of these contacts have an entry in progress in some flow (one query for many)."""
    rows = await conn.fetch(
        "SELECT DISTINCT contact_id::text FROM enrollments"
        " WHERE contact_id = ANY($1::uuid[]) AND status = 'running'",
        contact_ids,
    )
    return {r["contact_id"] for r in rows}


async def of_contact(conn: Conn, contact_id: str) -> list[dict[str, Any]]:
    """Every entry of the contact in any flow, newest first, with the flow's name."""
    rows = await conn.fetch(
        "SELECT e.flow_id::text, f.name AS flow_name, e.entry, e.version, e.workflow_id,"
        " e.run_id, e.trigger_type, e.status, e.started_at, e.ended_at"
        " FROM enrollments e JOIN flows f ON f.id = e.flow_id"
        " WHERE e.contact_id = $1::uuid ORDER BY e.started_at DESC",
        contact_id,
    )
    return [dict(r) for r in rows]

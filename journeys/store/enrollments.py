"""Queries on `enrollments`: one row per entry of a contact into a flow."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from journeys.domain.reentry import NO_MARKETING

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


async def last_many(conn: Conn, flow_id: str, contact_ids: list[str]) -> dict[str, dict[str, Any]]:
    """`last` for a page of contacts, by contact id (contacts never entered are absent)."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (contact_id) contact_id::text, entry, status, run_id, started_at,"
        " ended_at FROM enrollments WHERE flow_id = $1::uuid AND contact_id = ANY($2::uuid[])"
        " ORDER BY contact_id, entry DESC",
        flow_id,
        contact_ids,
    )
    return {r["contact_id"]: dict(r) for r in rows}


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


async def admit_run(
    conn: Conn,
    *,
    flow_id: str,
    contact_id: str,
    version: int,
    workflow_id: str,
    run_id: str,
    trigger_type: str,
    event_id: str | None,
    reentry_allowed: bool,
    min_interval_seconds: float | None,
) -> int | None:
    """The plain case of a run deciding its own entry (`begin_enrollment`), in one statement.

    The entry this run already made (a retry), or a new one recorded for it when the contact
    plainly may enter: it exists, may receive marketing, and the re-entry rules admit it
    (`journeys.domain.reentry.admits`, in SQL). A `running` entry of another run is ended as
    `abandoned` (this run holds the workflow id), as `close_stale` does.

    Returns:
        The entry number, or None when the decision needs the full check: a refusal to explain,
        a transactional flow's consent, or an entry number another decision took meanwhile.
    """
    row = await conn.fetchrow(
        """
        WITH mine AS (SELECT entry FROM enrollments WHERE run_id = $5),
        latest AS (
            SELECT entry, started_at FROM enrollments
            WHERE flow_id = $1::uuid AND contact_id = $2::uuid ORDER BY entry DESC LIMIT 1
        ),
        plain AS (
            SELECT NOT EXISTS (SELECT 1 FROM mine)
               AND EXISTS (SELECT 1 FROM contacts
                           WHERE id = $2::uuid AND status <> ALL($10::text[]))
               AND NOT EXISTS (
                   SELECT 1 FROM latest l
                   WHERE NOT $8 OR ($9::float8 IS NOT NULL
                                    AND l.started_at > now() - make_interval(secs => $9)))
               AS yes
        ),
        stale AS (
            UPDATE enrollments SET status = 'abandoned', ended_at = now()
            WHERE (SELECT yes FROM plain)
              AND flow_id = $1::uuid AND contact_id = $2::uuid AND status = 'running'
            RETURNING 1
        ),
        admitted AS (
            INSERT INTO enrollments (flow_id, contact_id, entry, version, workflow_id, run_id,
                                     trigger_type, event_id)
            SELECT $1::uuid, $2::uuid, COALESCE((SELECT entry FROM latest), 0) + 1, $3, $4, $5,
                   $6, $7
            WHERE (SELECT yes FROM plain)
            ON CONFLICT (flow_id, contact_id, entry) DO NOTHING
            RETURNING entry
        )
        -- `stale` runs whether or not it is read (a data-modifying WITH always does).
        SELECT COALESCE((SELECT entry FROM mine), (SELECT entry FROM admitted)) AS entry
        """,
        flow_id,
        contact_id,
        version,
        workflow_id,
        run_id,
        trigger_type,
        event_id,
        reentry_allowed,
        min_interval_seconds,
        sorted(NO_MARKETING),
    )
    return None if row is None else row["entry"]


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


@dataclass(frozen=True)
class Candidate:
    """A flow an event triggers, with what deciding the contact's entry in SQL needs."""

    flow_id: str
    version: int
    workflow_id: str
    trigger_type: str
    reentry: bool
    min_interval_seconds: float | None
    transactional: bool
    # False: the entry needs what SQL does not hold (a starting filter): decided in Python.
    decidable: bool


async def entry_context(
    conn: Conn,
    contact_id: str,
    event_id: str,
    candidates: list[Candidate],
    *,
    settle_if_idle: bool = False,
) -> dict[str, Any]:
    """Decides and records the contact's plain entries for one event, and reads what the
    other decisions need, in one statement.

    An entry is recorded (run id unknown until the run starts) where the flow is `decidable`
    and the contact may enter: it may receive the flow's emails, has no entry in progress there,
    and the re-entry rules admit it (`journeys.domain.reentry.admits`, written in SQL). Its
    number is the next one, unique per flow and contact, so of two racing decisions one wins.

    Args:
        contact_id: The event's contact.
        event_id: The event (an entry it already recorded is not recorded again).
        candidates: The flows the event triggers.
        settle_if_idle: The event enrols nobody: mark it dispatched here if the contact has no
            entry in progress either (nobody to tell), saving the statement that would.

    Returns:
        `contact_status` (None if the contact does not exist), `settled` (the event was
        marked dispatched), `admitted` (entry number by
        flow id, for the entries this call recorded), `last` (the contact's latest entry before
        this call per candidate flow, by flow id) and `running` (its entries in progress in
        any flow, before this call).
    """
    rows = await conn.fetch(
        """
        WITH c AS (SELECT status FROM contacts WHERE id = $1::uuid),
        latest AS (
            SELECT DISTINCT ON (flow_id) flow_id, entry, version, workflow_id, status,
                   started_at, event_id
            FROM enrollments WHERE contact_id = $1::uuid AND flow_id = ANY($3::uuid[])
            ORDER BY flow_id, entry DESC
        ),
        wanted AS (
            SELECT * FROM unnest($3::uuid[], $4::int[], $5::text[], $6::text[], $7::bool[],
                                 $8::float8[], $9::bool[], $10::bool[])
                AS w(flow_id, version, workflow_id, trigger_type, reentry, min_interval,
                     transactional, decidable)
        ),
        admitted AS (
            INSERT INTO enrollments (flow_id, contact_id, entry, version, workflow_id,
                                     trigger_type, event_id)
            SELECT w.flow_id, $1::uuid, COALESCE(l.entry, 0) + 1, w.version, w.workflow_id,
                   w.trigger_type, $2
            FROM wanted w CROSS JOIN c LEFT JOIN latest l ON l.flow_id = w.flow_id
            WHERE w.decidable
              AND (c.status <> ALL($12::text[]) OR w.transactional)
              AND (l.flow_id IS NULL OR (
                    l.status <> 'running' AND l.event_id IS DISTINCT FROM $2 AND w.reentry
                    AND (w.min_interval IS NULL
                         OR l.started_at <= now() - make_interval(secs => w.min_interval))))
            ON CONFLICT (flow_id, contact_id, entry) DO NOTHING
            RETURNING flow_id, entry
        ),
        settled AS (
            UPDATE events SET dispatched_at = now()
            WHERE $11 AND id = $2::uuid AND dispatched_at IS NULL AND NOT EXISTS (
                SELECT 1 FROM enrollments WHERE contact_id = $1::uuid AND status = 'running'
            )
            RETURNING 1
        )
        SELECT c.status AS contact_status, EXISTS (SELECT 1 FROM settled) AS settled, x.kind, x.flow_id::text, x.entry, x.version,
               x.workflow_id, x.status, x.started_at, x.event_id
        FROM c LEFT JOIN (
            SELECT 'running' AS kind, flow_id, entry, version, workflow_id, status, started_at,
                   event_id
            FROM enrollments WHERE contact_id = $1::uuid AND status = 'running'
            UNION ALL
            SELECT 'latest', * FROM latest
            UNION ALL
            SELECT 'admitted', flow_id, entry, NULL, NULL, NULL, NULL, NULL FROM admitted
        ) x ON true
        """,
        contact_id,
        event_id,
        [c.flow_id for c in candidates],
        [c.version for c in candidates],
        [c.workflow_id for c in candidates],
        [c.trigger_type for c in candidates],
        [c.reentry for c in candidates],
        [c.min_interval_seconds for c in candidates],
        [c.transactional for c in candidates],
        [c.decidable for c in candidates],
        settle_if_idle,
        sorted(NO_MARKETING),  # the statuses marketing may not reach, as begin_enrollment's
    )
    found: dict[str, dict[str, Any]] = {"running": {}, "latest": {}, "admitted": {}}
    running = []
    for row in rows:
        if row["kind"] is None:
            continue
        entry = dict(row)
        if row["kind"] == "running":
            running.append(entry)
        else:
            found[row["kind"]][row["flow_id"]] = entry
    return {
        "contact_status": rows[0]["contact_status"] if rows else None,
        "settled": bool(rows and rows[0]["settled"]),
        "admitted": {flow: row["entry"] for flow, row in found["admitted"].items()},
        "last": found["latest"],
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


async def withdraw_refused(conn: Conn, event_id: str) -> int:
    """Drops the entries an event recorded whose run Temporal refused to start for good.

    Such an event is dead-lettered; an entry left behind would read as a contact in the flow
    with no run, and would turn the contact's next events into signals to nobody.

    Returns:
        How many entries were dropped.
    """
    status = await conn.execute(
        "DELETE FROM enrollments WHERE event_id = $1 AND run_id IS NULL AND status = 'running'",
        event_id,
    )
    return int(status.split()[-1])


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

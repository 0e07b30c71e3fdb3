"""Queries on `events` (append-only; the idempotency key makes redelivery a no-op)."""

from __future__ import annotations

import json
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
    settle_if_idle: bool = False,
) -> tuple[dict[str, Any], bool]:
    """Appends the event unless its key was seen.

    Args:
        settle_if_idle: The caller knows no flow enrols, arms or disarms on the event: store it
            delivered already if its contact has no entry in progress either (nobody to tell),
            saving the statement that would mark it so.

    Returns:
        The stored event (the earlier one on a repeat) and whether this call stored it.
    """
    row = await conn.fetchrow(
        """
        INSERT INTO events (idempotency_key, audience_id, contact_id, type, data, occurred_at,
                            dispatched_at)
        VALUES ($1, $2::uuid, $3::uuid, $4, $5, COALESCE($6, now()),
                CASE WHEN $7 AND NOT EXISTS (
                    SELECT 1 FROM enrollments WHERE contact_id = $3::uuid AND status = 'running'
                ) THEN now() END)
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
        settle_if_idle,
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
    """Events stored but never handed to Temporal (the process died, or Temporal was down).

    Dead-lettered events and events backing off after a failed attempt are left out, so one
    event that keeps failing never holds back the others.
    """
    rows = await conn.fetch(
        """
        SELECT id::text, idempotency_key, audience_id::text, contact_id::text, type, data,
               occurred_at, dispatched_at, dispatch_attempts
        FROM events
        WHERE dispatched_at IS NULL AND dead_lettered_at IS NULL AND contact_id IS NOT NULL
          AND received_at < now() - make_interval(secs => $1)
          AND (next_attempt_at IS NULL OR next_attempt_at <= now())
        ORDER BY received_at
        LIMIT $2
        """,
        min_age_seconds,
        limit,
    )
    return [dict(r) for r in rows]


async def retry_later(conn: Conn, event_id: str, *, delay_seconds: float, error: str) -> int:
    """Counts a failed delivery attempt and sets when the relay may try again.

    Returns:
        How many attempts have failed so far.
    """
    return await conn.fetchval(
        """
        UPDATE events
        SET dispatch_attempts = dispatch_attempts + 1,
            next_attempt_at = now() + make_interval(secs => $2),
            last_error = $3
        WHERE id = $1::uuid
        RETURNING dispatch_attempts
        """,
        event_id,
        delay_seconds,
        error,
    )


async def dead_letter(conn: Conn, event_id: str, reason: str) -> None:
    """Sets an undeliverable event aside with its reason; the relay never picks it again."""
    await conn.execute(
        """
        UPDATE events
        SET dead_lettered_at = now(), dead_letter_reason = $2,
            dispatch_attempts = dispatch_attempts + 1, last_error = $2
        WHERE id = $1::uuid AND dispatched_at IS NULL AND dead_lettered_at IS NULL
        """,
        event_id,
        reason,
    )


async def dead_letters(conn: Conn, *, limit: int, offset: int) -> list[dict[str, Any]]:
    """Dead-lettered events, newest first, without their data (it may be huge)."""
    rows = await conn.fetch(
        """
        SELECT id::text, idempotency_key, audience_id::text, contact_id::text, type,
               occurred_at, received_at, dead_lettered_at, dead_letter_reason AS reason,
               dispatch_attempts AS attempts, octet_length(data::text) AS data_bytes
        FROM events
        WHERE dead_lettered_at IS NOT NULL
        ORDER BY dead_lettered_at DESC, id
        LIMIT $1 OFFSET $2
        """,
        limit,
        offset,
    )
    return [dict(r) for r in rows]


async def count_dead_letters(conn: Conn) -> int:
    """How many events are dead-lettered."""
    return await conn.fetchval("SELECT count(*) FROM events WHERE dead_lettered_at IS NOT NULL")


def _columns(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """The columns every bulk insert of events takes, as the arrays its `unnest` reads.

    Args:
        rows: Each with `idempotency_key`, `audience_id`, `contact_id`, `type`, `data`.

    Returns:
        One array per column, in that order; `data` as JSON text.
    """
    return [
        [r["idempotency_key"] for r in rows],
        [r["audience_id"] for r in rows],
        [r["contact_id"] for r in rows],
        [r["type"] for r in rows],
        [json.dumps(r["data"]) for r in rows],
    ]


async def record_many(
    conn: Conn, rows: list[dict[str, Any]], *, settle_if_idle: list[bool] | None = None
) -> list[dict[str, Any]]:
    """Appends many events in one statement (a bulk import); keys already seen are skipped.

    Args:
        rows: Each with `idempotency_key`, `audience_id`, `contact_id`, `type`, `data`.
        settle_if_idle: Per row, what `record`'s flag says: the caller knows no flow enrols,
            arms or disarms on it, so it is stored delivered already if its contact has no
            entry in progress either (no second statement marks it so). None: no row.

    Returns:
        The events this call stored (`dispatched_at` set on those stored delivered).
    """
    if not rows:
        return []
    settle = settle_if_idle if settle_if_idle is not None else [False] * len(rows)
    if len(settle) != len(rows):
        raise ValueError("settle_if_idle needs one flag per row")
    stored = await conn.fetch(
        """
        INSERT INTO events (idempotency_key, audience_id, contact_id, type, data, dispatched_at)
        SELECT r.key, r.audience_id, r.contact_id, r.type, r.data::jsonb,
               CASE WHEN r.settle AND NOT EXISTS (
                   SELECT 1 FROM enrollments e
                   WHERE e.contact_id = r.contact_id AND e.status = 'running'
               ) THEN now() END
        FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::bool[])
             AS r(key, audience_id, contact_id, type, data, settle)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id::text, idempotency_key, type, data, occurred_at, dispatched_at,
                  contact_id::text, audience_id::text
        """,
        *_columns(rows),
        settle,
    )
    return [dict(r) for r in stored]


async def mark_many_dispatched(conn: Conn, event_ids: list[str]) -> None:
    """Notes that these events concern no workflow (nothing to start or signal)."""
    await conn.execute(
        "UPDATE events SET dispatched_at = now() WHERE id = ANY($1::uuid[])"
        " AND dispatched_at IS NULL",
        event_ids,
    )


async def of_contact(conn: Conn, contact_id: str, type: str, *, limit: int) -> list[dict[str, Any]]:
    """The contact's latest events of one type, newest first."""
    rows = await conn.fetch(
        "SELECT id::text, type, data, occurred_at FROM events"
        " WHERE contact_id = $1::uuid AND type = $2 ORDER BY occurred_at DESC LIMIT $3",
        contact_id,
        type,
        limit,
    )
    return [dict(r) for r in rows]


async def record_batch(
    conn: asyncpg.Connection, rows: list[dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Appends a batch of events in one statement, and finds those whose key was seen before.

    Args:
        rows: Each with `idempotency_key`, `audience_id`, `contact_id`, `type`, `data` and
            `occurred_at` (None: now). A key given twice is stored once.

    Returns:
        The events this call stored and the ones stored earlier, each by idempotency key.
    """
    # Inserted in key order: two batches sharing keys then wait on each other's keys in the
    # same order, never in a cycle (a deadlock).
    rows = sorted(rows, key=lambda r: r["idempotency_key"])
    stored = await conn.fetch(
        """
        INSERT INTO events (idempotency_key, audience_id, contact_id, type, data, occurred_at)
        SELECT r.key, r.audience_id, r.contact_id, r.type, r.data::jsonb,
               COALESCE(r.occurred_at, now())
        FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],
                    $6::timestamptz[])
             AS r(key, audience_id, contact_id, type, data, occurred_at)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id::text, idempotency_key, type, data, occurred_at, dispatched_at,
                  contact_id::text, audience_id::text
        """,
        *_columns(rows),
        [r["occurred_at"] for r in rows],
    )
    new = {r["idempotency_key"]: dict(r) for r in stored}
    seen = [r["idempotency_key"] for r in rows if r["idempotency_key"] not in new]
    earlier = await conn.fetch(
        "SELECT id::text, idempotency_key, type, data, occurred_at, dispatched_at,"
        " contact_id::text, audience_id::text FROM events WHERE idempotency_key = ANY($1::text[])",
        seen,
    )
    return new, {r["idempotency_key"]: dict(r) for r in earlier}

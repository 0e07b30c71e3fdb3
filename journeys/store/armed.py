"""Queries on `armed_runs`: contacts whose run waits on a timer trigger, so a flow's pause,
resume and archive reach runs that have not entered the flow yet."""

from __future__ import annotations

from typing import Any

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool


async def remember(conn: Conn, *, flow_id: str, contact_id: str, workflow_id: str) -> bool:
    """Notes that the contact has (or is about to have) an armed run in the flow.

    Returns:
        True if the contact was never armed in the flow before (no run of it can be open).
    """
    fresh = await remember_many(conn, flow_id=flow_id, pairs=[(contact_id, workflow_id)])
    return contact_id in fresh


async def remember_many(conn: Conn, *, flow_id: str, pairs: list[tuple[str, str]]) -> set[str]:
    """`remember` for a page of (contact id, workflow id) pairs, in one statement.

    Returns:
        The contacts never armed in the flow before.
    """
    rows = await conn.fetch(
        "INSERT INTO armed_runs (flow_id, contact_id, workflow_id)"
        " SELECT $1::uuid, c, w FROM unnest($2::uuid[], $3::text[]) AS p(c, w)"
        " ON CONFLICT (flow_id, contact_id) DO NOTHING RETURNING contact_id::text",
        flow_id,
        [contact_id for contact_id, _ in pairs],
        [wf_id for _, wf_id in pairs],
    )
    return {row["contact_id"] for row in rows}


async def of_contact(conn: Conn, contact_id: str) -> list[dict[str, Any]]:
    """The contact's armed runs (flows whose timer trigger waits for it), with flow names."""
    rows = await conn.fetch(
        "SELECT a.flow_id::text, f.name AS flow_name, f.current_version AS version,"
        " a.workflow_id, a.armed_at FROM armed_runs a JOIN flows f ON f.id = a.flow_id"
        " WHERE a.contact_id = $1::uuid ORDER BY a.armed_at DESC",
        contact_id,
    )
    return [dict(r) for r in rows]


async def following_audience_zone(
    conn: Conn, audience_id: str, trigger_types: frozenset[str]
) -> list[str]:
    """Workflow ids of the armed runs whose local time is the audience's time zone.

    That is: runs of the audience's active or paused flows with one of `trigger_types`, of
    contacts without a zone of their own (or of flows whose `timezone_basis` is `audience`).
    Runs that ended since they were armed are listed too (signalling them finds nobody).
    """
    rows = await conn.fetch(
        """
        SELECT a.workflow_id FROM armed_runs a
        JOIN flows f ON f.id = a.flow_id
        JOIN flow_versions v ON v.flow_id = f.id AND v.version = f.current_version
        JOIN contacts c ON c.id = a.contact_id
        WHERE f.audience_id = $1::uuid AND f.status IN ('active', 'paused')
          AND EXISTS (
            SELECT 1 FROM jsonb_array_elements(v.definition -> 'triggers') AS t
            WHERE t ->> 'type' = ANY($2::text[]))
          AND (coalesce(c.timezone, '') = ''
               OR v.definition -> 'settings' ->> 'timezone_basis' = 'audience')
        ORDER BY a.workflow_id
        """,
        audience_id,
        sorted(trigger_types),
    )
    return [r["workflow_id"] for r in rows]

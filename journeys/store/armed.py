"""Queries on `armed_runs`: contacts whose run waits on a timer trigger, so a flow's pause,
resume and archive reach runs that have not entered the flow yet."""

from __future__ import annotations

from typing import Any

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool


async def remember(conn: Conn, *, flow_id: str, contact_id: str, workflow_id: str) -> None:
    """Notes that the contact has (or is about to have) an armed run in the flow."""
    await conn.execute(
        "INSERT INTO armed_runs (flow_id, contact_id, workflow_id) VALUES ($1::uuid, $2::uuid, $3)"
        " ON CONFLICT (flow_id, contact_id) DO NOTHING",
        flow_id,
        contact_id,
        workflow_id,
    )


async def remember_many(conn: Conn, *, flow_id: str, pairs: list[tuple[str, str]]) -> None:
    """`remember` for a page of (contact id, workflow id) pairs."""
    await conn.executemany(
        "INSERT INTO armed_runs (flow_id, contact_id, workflow_id) VALUES ($1::uuid, $2::uuid, $3)"
        " ON CONFLICT (flow_id, contact_id) DO NOTHING",
        [(flow_id, contact_id, wf_id) for contact_id, wf_id in pairs],
    )


async def of_contact(conn: Conn, contact_id: str) -> list[dict[str, Any]]:
    """The contact's armed runs (flows whose timer trigger waits for it), with flow names."""
    rows = await conn.fetch(
        "SELECT a.flow_id::text, f.name AS flow_name, f.current_version AS version,"
        " a.workflow_id, a.armed_at FROM armed_runs a JOIN flows f ON f.id = a.flow_id"
        " WHERE a.contact_id = $1::uuid ORDER BY a.armed_at DESC",
        contact_id,
    )
    return [dict(r) for r in rows]

"""Queries on `armed_runs`: contacts whose run waits on a timer trigger, so a flow's pause,
resume and archive reach runs that have not entered the flow yet."""

from __future__ import annotations

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

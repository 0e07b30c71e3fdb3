"""Queries on `flows` and `flow_versions`. Every change notifies `journeys_flows`."""

from __future__ import annotations

from typing import Any

import asyncpg

from journeys.store.ids import is_uuid

Conn = asyncpg.Connection | asyncpg.Pool

CHANNEL = "journeys_flows"

_SELECT = """
    SELECT f.id::text, f.audience_id::text, f.name, f.status, f.current_version AS version,
           f.created_at, f.updated_at, f.activated_at, v.definition
    FROM flows f JOIN flow_versions v ON v.flow_id = f.id AND v.version = f.current_version
"""


async def create(conn: asyncpg.Connection, *, audience_id: str, definition: dict[str, Any]) -> dict[str, Any]:
    """Stores a new draft flow at version 1. Call inside a transaction."""
    flow_id = await conn.fetchval(
        "INSERT INTO flows (audience_id, name) VALUES ($1::uuid, $2) RETURNING id::text",
        audience_id,
        definition["name"],
    )
    await conn.execute(
        "INSERT INTO flow_versions (flow_id, version, definition) VALUES ($1::uuid, 1, $2)",
        flow_id,
        definition,
    )
    await _notify(conn, flow_id)
    flow = await get(conn, flow_id)
    assert flow is not None
    return flow


async def get(conn: Conn, flow_id: str) -> dict[str, Any] | None:
    """The flow with its current definition, or None."""
    if not is_uuid(flow_id):
        return None
    row = await conn.fetchrow(_SELECT + " WHERE f.id = $1::uuid", flow_id)
    return dict(row) if row else None


async def set_status(conn: asyncpg.Connection, flow_id: str, status: str) -> dict[str, Any]:
    """Moves the flow to `status` and tells every gateway. Call inside a transaction."""
    await conn.execute(
        """
        UPDATE flows SET status = $2, updated_at = now(),
               activated_at = CASE WHEN $2 = 'active' THEN now() ELSE activated_at END
        WHERE id = $1::uuid
        """,
        flow_id,
        status,
    )
    await _notify(conn, flow_id)
    flow = await get(conn, flow_id)
    assert flow is not None
    return flow


async def list_active(conn: Conn) -> list[dict[str, Any]]:
    """Every active flow with its current definition (the gateway's registry)."""
    return [dict(r) for r in await conn.fetch(_SELECT + " WHERE f.status = 'active'")]


async def _notify(conn: asyncpg.Connection, flow_id: str) -> None:
    # Delivered on commit, so listeners never see a change that was rolled back.
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, flow_id)

"""Queries on `flows` and `flow_versions`. Every change notifies `journeys_flows`."""

from __future__ import annotations

from typing import Any

import asyncpg

from journeys.store.ids import is_uuid

Conn = asyncpg.Connection | asyncpg.Pool

CHANNEL = "journeys_flows"

_SELECT = """
    SELECT f.id::text, f.audience_id::text, f.name, f.status, f.current_version AS version,
           f.created_at, f.updated_at, f.activated_at, f.archived_at, f.journey_id,
           v.definition
    FROM flows f JOIN flow_versions v ON v.flow_id = f.id AND v.version = f.current_version
"""


async def create(
    conn: asyncpg.Connection, *, audience_id: str, definition: dict[str, Any]
) -> dict[str, Any]:
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
    return await _changed(conn, flow_id)


async def get(conn: Conn, flow_id: str) -> dict[str, Any] | None:
    """The flow with its current definition, or None."""
    if not is_uuid(flow_id):
        return None
    row = await conn.fetchrow(_SELECT + " WHERE f.id = $1::uuid", flow_id)
    return dict(row) if row else None


async def by_journey_id(conn: Conn, journey_id: int) -> dict[str, Any] | None:
    """The flow Mailchimp-style journey triggers address by this number, or None."""
    row = await conn.fetchrow(_SELECT + " WHERE f.journey_id = $1", journey_id)
    return dict(row) if row else None


async def set_status(conn: asyncpg.Connection, flow_id: str, status: str) -> dict[str, Any]:
    """Moves the flow to `status` and tells every gateway. Call inside a transaction."""
    await conn.execute(
        """
        UPDATE flows SET status = $2, updated_at = now(),
               activated_at = CASE WHEN $2 = 'active' THEN now() ELSE activated_at END,
               archived_at = CASE WHEN $2 = 'archived' THEN now() ELSE archived_at END
        WHERE id = $1::uuid
        """,
        flow_id,
        status,
    )
    return await _changed(conn, flow_id)


async def list_active(conn: Conn) -> list[dict[str, Any]]:
    """Every active flow with its current definition (the gateway's registry)."""
    return [dict(r) for r in await conn.fetch(_SELECT + " WHERE f.status = 'active'")]


async def _notify(conn: asyncpg.Connection, flow_id: str) -> None:
    # Delivered on commit, so listeners never see a change that was rolled back.
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, flow_id)


async def _changed(conn: asyncpg.Connection, flow_id: str) -> dict[str, Any]:
    """Tells every gateway the flow changed, and returns it as it now is."""
    await _notify(conn, flow_id)
    flow = await get(conn, flow_id)
    assert flow is not None
    return flow


async def replace_definition(
    conn: asyncpg.Connection, flow_id: str, definition: dict[str, Any]
) -> dict[str, Any]:
    """Rewrites the current version in place (a flow no contact ever entered)."""
    await conn.execute(
        "UPDATE flow_versions v SET definition = $2 FROM flows f"
        " WHERE f.id = $1::uuid AND v.flow_id = f.id AND v.version = f.current_version",
        flow_id,
        definition,
    )
    await conn.execute(
        "UPDATE flows SET name = $2, updated_at = now() WHERE id = $1::uuid",
        flow_id,
        definition["name"],
    )
    return await _changed(conn, flow_id)


async def add_version(
    conn: asyncpg.Connection, flow_id: str, definition: dict[str, Any]
) -> dict[str, Any]:
    """Stores the definition as the next version and makes it current; runs already under way
    keep the version they entered with."""
    version = await conn.fetchval(
        "UPDATE flows SET current_version = current_version + 1, name = $2, updated_at = now()"
        " WHERE id = $1::uuid RETURNING current_version",
        flow_id,
        definition["name"],
    )
    await conn.execute(
        "INSERT INTO flow_versions (flow_id, version, definition) VALUES ($1::uuid, $2, $3)",
        flow_id,
        version,
        definition,
    )
    return await _changed(conn, flow_id)


async def versions(conn: Conn, flow_id: str) -> list[dict[str, Any]]:
    """Every version of the flow, oldest first."""
    rows = await conn.fetch(
        "SELECT version, definition, created_at FROM flow_versions WHERE flow_id = $1::uuid"
        " ORDER BY version",
        flow_id,
    )
    return [dict(r) for r in rows]


async def list_flows(
    conn: Conn, *, audience_id: str | None, status: str | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    """Flows, newest first, optionally of one audience and/or status."""
    rows = await conn.fetch(
        _SELECT
        + " WHERE ($1::uuid IS NULL OR f.audience_id = $1::uuid) AND ($2::text IS NULL OR f.status = $2)"
        " ORDER BY f.created_at DESC, f.id LIMIT $3 OFFSET $4",
        audience_id,
        status,
        limit,
        offset,
    )
    return [dict(r) for r in rows]


async def delete(conn: asyncpg.Connection, flow_id: str) -> None:
    """Deletes a flow and its versions (drafts only: the caller checks)."""
    await conn.execute("DELETE FROM flows WHERE id = $1::uuid", flow_id)
    await _notify(conn, flow_id)


async def email_steps(conn: Conn, flow_ids: list[str]) -> dict[str, frozenset[str]]:
    """For each existing flow, the ids of the send_email steps in any of its versions."""
    ids = [f for f in flow_ids if is_uuid(f)]
    if not ids:
        return {}
    rows = await conn.fetch(
        "SELECT flow_id::text, definition FROM flow_versions WHERE flow_id = ANY($1::uuid[])", ids
    )
    found: dict[str, set[str]] = {}
    for row in rows:
        steps = found.setdefault(row["flow_id"], set())
        _collect_email_steps(row["definition"].get("steps", []), steps)
    return {flow_id: frozenset(steps) for flow_id, steps in found.items()}


def _collect_email_steps(steps: list[dict[str, Any]], into: set[str]) -> None:
    for step in steps:
        if step.get("type") == "send_email":
            into.add(step["id"])
        for key in ("yes", "no", "matched", "timed_out"):
            _collect_email_steps(step.get(key, []), into)
        for path in step.get("paths", []):
            _collect_email_steps(path.get("steps", []), into)


async def version_definition(conn: Conn, flow_id: str, version: int) -> dict[str, Any] | None:
    """One stored version of a flow's definition, or None."""
    value = await conn.fetchval(
        "SELECT definition FROM flow_versions WHERE flow_id = $1::uuid AND version = $2",
        flow_id,
        version,
    )
    return dict(value) if value is not None else None

"""Queries on `merge_fields` (an audience's own merge-field definitions)."""

from __future__ import annotations

from typing import Any

import asyncpg

from journeys.domain.merge_fields import BUILTIN, MergeField

Conn = asyncpg.Connection | asyncpg.Pool
_COLUMNS = "id, audience_id::text, tag, name, type, required, choices, created_at"


async def create(
    conn: Conn,
    *,
    audience_id: str,
    tag: str,
    name: str,
    type: str,
    required: bool,
    choices: list[str],
) -> dict[str, Any] | None:
    """Defines a merge field; None if the audience already has one with this tag."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO merge_fields (audience_id, tag, name, type, required, choices)
        VALUES ($1::uuid, $2, $3, $4, $5, $6) ON CONFLICT (audience_id, tag) DO NOTHING
        RETURNING {_COLUMNS}
        """,
        audience_id,
        tag,
        name,
        type,
        required,
        choices,
    )
    return dict(row) if row else None


async def list_for(conn: Conn, audience_id: str) -> list[dict[str, Any]]:
    """The audience's own definitions, oldest first."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM merge_fields WHERE audience_id = $1::uuid ORDER BY id",
        audience_id,
    )
    return [dict(r) for r in rows]


async def get(conn: Conn, audience_id: str, tag: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM merge_fields WHERE audience_id = $1::uuid AND tag = $2",
        audience_id,
        tag,
    )
    return dict(row) if row else None


async def update(
    conn: Conn, audience_id: str, tag: str, *, name: str, required: bool, choices: list[str]
) -> dict[str, Any] | None:
    """Renames or changes a definition (its tag and type stay: stored values depend on them)."""
    row = await conn.fetchrow(
        f"""
        UPDATE merge_fields SET name = $3, required = $4, choices = $5
        WHERE audience_id = $1::uuid AND tag = $2 RETURNING {_COLUMNS}
        """,
        audience_id,
        tag,
        name,
        required,
        choices,
    )
    return dict(row) if row else None


async def delete(conn: Conn, audience_id: str, tag: str) -> bool:
    """Removes a definition; contacts keep the values they had."""
    done = await conn.execute(
        "DELETE FROM merge_fields WHERE audience_id = $1::uuid AND tag = $2", audience_id, tag
    )
    return done != "DELETE 0"


async def defined(conn: Conn, audience_id: str) -> dict[str, MergeField]:
    """Every merge field of the audience, built-ins first, by tag."""
    own = {
        row["tag"]: MergeField(
            row["tag"], row["name"], row["type"], row["required"], tuple(row["choices"])
        )
        for row in await list_for(conn, audience_id)
    }
    return {**BUILTIN, **own}

"""Queries on `groups` and `contact_groups` (audience groups, Mailchimp's interests)."""

from __future__ import annotations

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool


async def join(
    conn: asyncpg.Connection, *, audience_id: str, contact_id: str, names: list[str]
) -> list[str]:
    """Puts the contact in the groups (creating them); returns those it was not in before."""
    rows = await conn.fetch(
        """
        INSERT INTO groups (audience_id, name) SELECT $1::uuid, unnest($2::text[])
        ON CONFLICT (audience_id, name) DO UPDATE SET name = EXCLUDED.name
        RETURNING id, name
        """,
        audience_id,
        names,
    )
    ids = {r["id"]: r["name"] for r in rows}
    joined = await conn.fetch(
        "INSERT INTO contact_groups (contact_id, group_id) SELECT $1::uuid, unnest($2::bigint[])"
        " ON CONFLICT DO NOTHING RETURNING group_id",
        contact_id,
        list(ids),
    )
    new = {ids[r["group_id"]] for r in joined}
    return [n for n in dict.fromkeys(names) if n in new]


async def leave(conn: Conn, *, contact_id: str, names: list[str]) -> list[str]:
    """Takes the contact out of the groups; returns those it was in."""
    rows = await conn.fetch(
        """
        DELETE FROM contact_groups cg USING groups g
        WHERE cg.group_id = g.id AND cg.contact_id = $1::uuid AND g.name = ANY($2::text[])
        RETURNING g.name
        """,
        contact_id,
        names,
    )
    return [r["name"] for r in rows]


async def of_contact(conn: Conn, contact_id: str) -> list[str]:
    """The contact's groups, alphabetically."""
    rows = await conn.fetch(
        "SELECT g.name FROM contact_groups cg JOIN groups g ON g.id = cg.group_id"
        " WHERE cg.contact_id = $1::uuid ORDER BY g.name",
        contact_id,
    )
    return [r["name"] for r in rows]

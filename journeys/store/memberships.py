"""Labels a contact has: tags and audience groups, one store parameterised by kind.

Both are names per audience (`tags`, `groups`) linked to contacts (`contact_tags`,
`contact_groups`); only the tables differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool


@dataclass(frozen=True)
class Kind:
    """The tables of one kind of label (fixed names, never user input)."""

    labels: str
    links: str
    link_column: str


TAGS = Kind(labels="tags", links="contact_tags", link_column="tag_id")
GROUPS = Kind(labels="groups", links="contact_groups", link_column="group_id")


async def add(
    conn: asyncpg.Connection, kind: Kind, *, audience_id: str, contact_id: str, names: list[str]
) -> list[str]:
    """Gives the contact the labels (creating them). Call inside a transaction.

    Returns:
        The labels the contact did not have before, in the order given.
    """
    # One statement (labels created, then linked): the link insert reads the labels' ids from
    # the first insert's RETURNING, so nothing travels back and forth in between.
    rows = await conn.fetch(
        f"""
        WITH named AS (
            INSERT INTO {kind.labels} (audience_id, name) SELECT $1::uuid, unnest($2::text[])
            ON CONFLICT (audience_id, name) DO UPDATE SET name = EXCLUDED.name
            RETURNING id, name
        )
        INSERT INTO {kind.links} (contact_id, {kind.link_column})
        SELECT $3::uuid, id FROM named
        ON CONFLICT DO NOTHING
        RETURNING (SELECT name FROM named WHERE named.id = {kind.link_column}) AS name
        """,
        audience_id,
        names,
        contact_id,
    )
    new = {r["name"] for r in rows}
    return [n for n in dict.fromkeys(names) if n in new]


async def remove(conn: Conn, kind: Kind, *, contact_id: str, names: list[str]) -> list[str]:
    """Takes the labels from the contact; returns those it had."""
    rows = await conn.fetch(
        f"""
        DELETE FROM {kind.links} l USING {kind.labels} n
        WHERE l.{kind.link_column} = n.id AND l.contact_id = $1::uuid AND n.name = ANY($2::text[])
        RETURNING n.name
        """,
        contact_id,
        names,
    )
    return [r["name"] for r in rows]


async def of_contact(conn: Conn, kind: Kind, contact_id: str) -> list[str]:
    """The contact's labels of this kind, alphabetically."""
    rows = await conn.fetch(
        f"SELECT n.name FROM {kind.links} l JOIN {kind.labels} n ON n.id = l.{kind.link_column}"
        " WHERE l.contact_id = $1::uuid ORDER BY n.name",
        contact_id,
    )
    return [r["name"] for r in rows]

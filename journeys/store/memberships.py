"""Labels a contact has: tags and audience groups, one store parameterised by kind.

Both are names per audience (`tags`, `groups`) linked to contacts (`contact_tags`,
`contact_groups`); only the tables differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


def _linking(kind: Kind) -> str:
    """The `named` and `changed` steps that give the contact ($3) the labels of `given` in the
    audience ($1), creating the labels it lacks: `changed` returns the names newly linked."""
    return f"""
        named AS (
            INSERT INTO {kind.labels} (audience_id, name) SELECT $1::uuid, name FROM given
            ON CONFLICT (audience_id, name) DO UPDATE SET name = EXCLUDED.name
            RETURNING id, name
        ),
        changed AS (
            INSERT INTO {kind.links} (contact_id, {kind.link_column})
            SELECT $3::uuid, id FROM named
            ON CONFLICT DO NOTHING
            RETURNING (SELECT name FROM named WHERE named.id = {kind.link_column}) AS name
        )"""


async def add(
    conn: Conn, kind: Kind, *, audience_id: str, contact_id: str, names: list[str]
) -> list[str]:
    """Gives the contact the labels (creating them), in one statement; records no event.

    Returns:
        The labels the contact did not have before, in the order given.
    """
    # Labels created, then linked: the link insert reads the labels' ids from the first
    # insert's RETURNING, so nothing travels back and forth in between.
    rows = await conn.fetch(
        f"""
        WITH given AS (SELECT unnest($2::text[]) AS name),
        {_linking(kind)}
        SELECT name FROM changed
        """,
        audience_id,
        names,
        contact_id,
    )
    new = {r["name"] for r in rows}
    return [n for n in dict.fromkeys(names) if n in new]


# What `change_recording` returns of each stored event (as `journeys.store.events.record` does).
_EVENT_COLUMNS = (
    "id::text, type, data, occurred_at, dispatched_at, contact_id::text, audience_id::text,"
    " idempotency_key"
)


async def change_recording(
    conn: Conn,
    kind: Kind,
    *,
    adding: bool,
    audience_id: str,
    contact_id: str,
    names: list[str],
    event_type: str,
    field: str,
    key: str,
) -> list[tuple[str, dict[str, Any] | None]]:
    """Adds (creating them) or removes labels and stores an event per label changed, in one
    statement: atomic alone, so it needs no transaction (and no BEGIN and COMMIT round trips).

    Each event is `event_type` with data `{field: name}` under the idempotency key
    `{event_type}:{contact_id}:{name}:{key}`, as `journeys.changes` names them.

    Args:
        names: The labels, each once.

    Returns:
        (name, stored event) per label the contact gained or lost, in the order given; the event
        is None where its key was stored before (an earlier attempt of the same request).
    """
    if adding:
        change = _linking(kind)
    else:
        change = f"""
        changed AS (
            DELETE FROM {kind.links} l USING {kind.labels} n
            WHERE l.{kind.link_column} = n.id AND l.contact_id = $3::uuid
              AND n.name = ANY($2::text[])
            RETURNING n.name
        )"""
    rows = await conn.fetch(
        f"""
        WITH given AS (SELECT * FROM unnest($2::text[]) WITH ORDINALITY AS g(name, ord)),
        {change},
        done AS (SELECT g.name, g.ord FROM changed c JOIN given g ON g.name = c.name),
        stored AS (
            INSERT INTO events (idempotency_key, audience_id, contact_id, type, data, occurred_at)
            SELECT $4 || d.name || $5, $1::uuid, $3::uuid, $6, jsonb_build_object($7::text, d.name),
                   now()
            FROM done d ORDER BY d.ord
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING {_EVENT_COLUMNS}
        )
        SELECT d.name AS label, s.* FROM done d
        LEFT JOIN stored s ON s.idempotency_key = $4 || d.name || $5
        ORDER BY d.ord
        """,
        audience_id,
        names,
        contact_id,
        f"{event_type}:{contact_id}:",
        f":{key}",
        event_type,
        field,
    )
    return [
        (
            row["label"],
            None
            if row["id"] is None
            else {k: v for k, v in row.items() if k not in ("label", "idempotency_key")},
        )
        for row in rows
    ]


async def of_contact(conn: Conn, kind: Kind, contact_id: str) -> list[str]:
    """The contact's labels of this kind, alphabetically."""
    rows = await conn.fetch(
        f"SELECT n.name FROM {kind.links} l JOIN {kind.labels} n ON n.id = l.{kind.link_column}"
        " WHERE l.contact_id = $1::uuid ORDER BY n.name",
        contact_id,
    )
    return [r["name"] for r in rows]

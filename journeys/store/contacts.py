"""Queries on `contacts`, `tags` and `contact_tags`."""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from journeys.security import subscriber_hash
from journeys.store.ids import is_uuid

Conn = asyncpg.Connection | asyncpg.Pool

_HASH = re.compile(r"^[0-9a-f]{32}$")
_COLUMNS = (
    "id::text, audience_id::text, email, subscriber_hash, status, first_name, last_name,"
    " phone, sms_status, timezone, birthday, fields, signup_at, created_at, updated_at"
)


async def upsert(
    conn: Conn,
    *,
    audience_id: str,
    email: str,
    status: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    phone: str | None = None,
    sms_status: str | None = None,
    timezone: str | None = None,
    birthday: str | None = None,
    fields: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Creates the contact or updates the values given (None leaves a value as it is).

    Returns:
        The contact row and whether it was created by this call.
    """
    row = await conn.fetchrow(
        f"""
        INSERT INTO contacts (audience_id, email, subscriber_hash, status, first_name, last_name,
                              phone, timezone, birthday, fields, sms_status)
        VALUES ($1::uuid, $2, $3, COALESCE($4, 'subscribed'), $5, $6, $7, $8, $9,
                COALESCE($10::jsonb, '{{}}'::jsonb), COALESCE($11, 'none'))
        ON CONFLICT (audience_id, subscriber_hash) DO UPDATE SET
            email = EXCLUDED.email,
            status = COALESCE($4, contacts.status),
            first_name = COALESCE($5, contacts.first_name),
            last_name = COALESCE($6, contacts.last_name),
            phone = COALESCE($7, contacts.phone),
            timezone = COALESCE($8, contacts.timezone),
            birthday = COALESCE($9, contacts.birthday),
            fields = contacts.fields || COALESCE($10::jsonb, '{{}}'::jsonb),
            sms_status = COALESCE($11, contacts.sms_status),
            updated_at = now()
        RETURNING {_COLUMNS}, (xmax = 0) AS created
        """,
        audience_id,
        email.strip(),
        subscriber_hash(email),
        status,
        first_name,
        last_name,
        phone,
        timezone,
        birthday,
        fields,
        sms_status,
    )
    data = dict(row)
    created = data.pop("created")
    return data, created


async def resolve(conn: Conn, audience_id: str, ref: str) -> dict[str, Any] | None:
    """Finds a contact of the audience by id, subscriber hash or email address."""
    # A hash is 32 hex digits, which uuid.UUID would also accept: test it first.
    if _HASH.match(ref.lower()):
        where, value = "subscriber_hash = $2", ref.lower()
    elif is_uuid(ref):
        where, value = "id = $2::uuid", ref
    else:
        where, value = "subscriber_hash = $2", subscriber_hash(ref)
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM contacts WHERE audience_id = $1::uuid AND {where}",
        audience_id,
        value,
    )
    return dict(row) if row else None


async def get(conn: Conn, contact_id: str) -> dict[str, Any] | None:
    """The contact with this id, or None."""
    if not is_uuid(contact_id):
        return None
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM contacts WHERE id = $1::uuid", contact_id)
    return dict(row) if row else None


async def add_tags(
    conn: asyncpg.Connection, *, audience_id: str, contact_id: str, names: list[str]
) -> list[str]:
    """Tags the contact. Call inside a transaction.

    Returns:
        The tags the contact did not have before, in the order given.
    """
    rows = await conn.fetch(
        """
        INSERT INTO tags (audience_id, name) SELECT $1::uuid, unnest($2::text[])
        ON CONFLICT (audience_id, name) DO UPDATE SET name = EXCLUDED.name
        RETURNING id, name
        """,
        audience_id,
        names,
    )
    ids = {r["id"]: r["name"] for r in rows}
    added = await conn.fetch(
        """
        INSERT INTO contact_tags (contact_id, tag_id) SELECT $1::uuid, unnest($2::bigint[])
        ON CONFLICT DO NOTHING RETURNING tag_id
        """,
        contact_id,
        list(ids),
    )
    new = {ids[r["tag_id"]] for r in added}
    return [n for n in dict.fromkeys(names) if n in new]


async def remove_tags(conn: Conn, *, contact_id: str, names: list[str]) -> list[str]:
    """Untags the contact; returns the tags it actually had."""
    rows = await conn.fetch(
        """
        DELETE FROM contact_tags ct USING tags t
        WHERE ct.tag_id = t.id AND ct.contact_id = $1::uuid AND t.name = ANY($2::text[])
        RETURNING t.name
        """,
        contact_id,
        names,
    )
    return [r["name"] for r in rows]


async def tags(conn: Conn, contact_id: str) -> list[str]:
    """The contact's tags, alphabetically."""
    rows = await conn.fetch(
        "SELECT t.name FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id"
        " WHERE ct.contact_id = $1::uuid ORDER BY t.name",
        contact_id,
    )
    return [r["name"] for r in rows]


async def set_fields(
    conn: Conn, contact_id: str, *, standard: dict[str, Any], custom: dict[str, Any]
) -> dict[str, Any]:
    """Sets standard columns (names checked by the caller) and merges custom fields."""
    assignments = [f"{name} = ${index}" for index, name in enumerate(standard, start=3)]
    sets = ", ".join(["fields = fields || $2::jsonb", "updated_at = now()", *assignments])
    row = await conn.fetchrow(
        f"UPDATE contacts SET {sets} WHERE id = $1::uuid RETURNING {_COLUMNS}",
        contact_id,
        custom,
        *standard.values(),
    )
    return dict(row)


async def unsubscribe(conn: Conn, contact_id: str, channels: list[str]) -> list[str]:
    """Ends marketing consent on these channels; returns the ones that were on."""
    row = await conn.fetchrow(
        """
        WITH before AS (SELECT status, sms_status FROM contacts WHERE id = $1::uuid FOR UPDATE)
        UPDATE contacts c SET
            status = CASE WHEN 'email' = ANY($2::text[]) AND c.status = 'subscribed'
                          THEN 'unsubscribed' ELSE c.status END,
            sms_status = CASE WHEN 'sms' = ANY($2::text[]) AND c.sms_status = 'subscribed'
                              THEN 'unsubscribed' ELSE c.sms_status END,
            updated_at = now()
        FROM before WHERE c.id = $1::uuid
        RETURNING before.status AS email_before, before.sms_status AS sms_before
        """,
        contact_id,
        channels,
    )
    if row is None:
        return []
    done = []
    if "email" in channels and row["email_before"] == "subscribed":
        done.append("email")
    if "sms" in channels and row["sms_before"] == "subscribed":
        done.append("sms")
    return done


async def clean(conn: Conn, contact_id: str) -> str | None:
    """Marks the address undeliverable (`cleaned`); returns the status it had, None if gone."""
    row = await conn.fetchrow(
        """
        WITH before AS (SELECT status FROM contacts WHERE id = $1::uuid FOR UPDATE)
        UPDATE contacts c SET status = 'cleaned', updated_at = now()
        FROM before WHERE c.id = $1::uuid
        RETURNING before.status
        """,
        contact_id,
    )
    return row["status"] if row else None


async def count_soft_bounce(conn: Conn, contact_id: str) -> int:
    """Adds one soft bounce in a row; returns how many there are now."""
    count = await conn.fetchval(
        "UPDATE contacts SET soft_bounces = soft_bounces + 1 WHERE id = $1::uuid"
        " RETURNING soft_bounces",
        contact_id,
    )
    return int(count or 0)


async def reset_soft_bounces(conn: Conn, contact_id: str) -> None:
    """A delivered message ends a run of soft bounces."""
    await conn.execute(
        "UPDATE contacts SET soft_bounces = 0 WHERE id = $1::uuid AND soft_bounces > 0",
        contact_id,
    )

"""Queries on `contacts`, `tags` and `contact_tags`."""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from journeys.security import subscriber_hash
from journeys.store import memberships
from journeys.store.ids import is_uuid

Conn = asyncpg.Connection | asyncpg.Pool

_HASH = re.compile(r"^[0-9a-f]{32}$")
COLUMNS = (
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
        RETURNING {COLUMNS}, (xmax = 0) AS created
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
        f"SELECT {COLUMNS} FROM contacts WHERE audience_id = $1::uuid AND {where}",
        audience_id,
        value,
    )
    return dict(row) if row else None


async def get(conn: Conn, contact_id: str) -> dict[str, Any] | None:
    """The contact with this id, or None."""
    if not is_uuid(contact_id):
        return None
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM contacts WHERE id = $1::uuid", contact_id)
    return dict(row) if row else None


async def add_tags(
    conn: asyncpg.Connection, *, audience_id: str, contact_id: str, names: list[str]
) -> list[str]:
    """Tags the contact (see `memberships.add`); returns the tags it did not have before."""
    return await memberships.add(
        conn, memberships.TAGS, audience_id=audience_id, contact_id=contact_id, names=names
    )


async def tags(conn: Conn, contact_id: str) -> list[str]:
    """The contact's tags, alphabetically."""
    return await memberships.of_contact(conn, memberships.TAGS, contact_id)


async def set_fields(
    conn: Conn, contact_id: str, *, standard: dict[str, Any], custom: dict[str, Any]
) -> dict[str, Any]:
    """Sets standard columns (names checked by the caller) and merges custom fields."""
    assignments = [f"{name} = ${index}" for index, name in enumerate(standard, start=3)]
    sets = ", ".join(["fields = fields || $2::jsonb", "updated_at = now()", *assignments])
    row = await conn.fetchrow(
        f"UPDATE contacts SET {sets} WHERE id = $1::uuid RETURNING {COLUMNS}",
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


async def by_phone(conn: Conn, audience_id: str, phone: str) -> dict[str, Any] | None:
    """The audience's contact with this phone number (E.164), or None."""
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM contacts WHERE audience_id = $1::uuid AND phone = $2"
        " ORDER BY updated_at DESC LIMIT 1",
        audience_id,
        phone.strip(),
    )
    return dict(row) if row else None


async def set_sms_status(conn: Conn, contact_id: str, status: str) -> str | None:
    """Sets the contact's SMS consent; returns the status it had before."""
    return await conn.fetchval(
        """
        WITH before AS (SELECT sms_status FROM contacts WHERE id = $1::uuid FOR UPDATE)
        UPDATE contacts c SET sms_status = $2, updated_at = now()
        FROM before WHERE c.id = $1::uuid RETURNING before.sms_status
        """,
        contact_id,
        status,
    )

"""Queries on `contacts`, `tags` and `contact_tags`."""

from __future__ import annotations

import json
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
    " phone, sms_status, timezone, birthday, fields, location, signup_at, created_at, updated_at"
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
    location: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Creates the contact or updates the values given (None leaves a value as it is).

    Returns:
        The contact row and whether it was created by this call.
    """
    row = await conn.fetchrow(
        f"""
        INSERT INTO contacts (audience_id, email, subscriber_hash, status, first_name, last_name,
                              phone, timezone, birthday, fields, sms_status, location)
        VALUES ($1::uuid, $2, $3, COALESCE($4, 'subscribed'), $5, $6, $7, $8, $9,
                COALESCE($10::jsonb, '{{}}'::jsonb), COALESCE($11, 'none'), $12::jsonb)
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
            location = COALESCE($12::jsonb, contacts.location),
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
        location,
    )
    data = dict(row)
    created = data.pop("created")
    return data, created


def _by_ref(ref: str) -> tuple[str, str]:
    """The condition (on `$2`) and value that find a contact by id, hash or email address."""
    # A hash is 32 hex digits, which uuid.UUID would also accept: test it first.
    if _HASH.match(ref.lower()):
        return "subscriber_hash = $2", ref.lower()
    if is_uuid(ref):
        return "id = $2::uuid", ref
    return "subscriber_hash = $2", subscriber_hash(ref)


async def resolve(conn: Conn, audience_id: str, ref: str) -> dict[str, Any] | None:
    """Finds a contact of the audience by id, subscriber hash or email address."""
    where, value = _by_ref(ref)
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM contacts WHERE audience_id = $1::uuid AND {where}",
        audience_id,
        value,
    )
    return dict(row) if row else None


async def resolve_id(conn: Conn, audience_id: str, ref: str) -> str | None:
    """The id of the audience's contact named by id, subscriber hash or email address, or None.

    For requests that only address the contact (tags, events): no other column is read or
    decoded.
    """
    where, value = _by_ref(ref)
    found: str | None = await conn.fetchval(
        f"SELECT id::text FROM contacts WHERE audience_id = $1::uuid AND {where}",
        audience_id,
        value,
    )
    return found


async def get(conn: Conn, contact_id: str) -> dict[str, Any] | None:
    """The contact with this id, or None."""
    if not is_uuid(contact_id):
        return None
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM contacts WHERE id = $1::uuid", contact_id)
    return dict(row) if row else None


async def get_for_update(conn: asyncpg.Connection, contact_id: str) -> dict[str, Any] | None:
    """The contact, locked until the transaction ends (a change that depends on its state)."""
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM contacts WHERE id = $1::uuid FOR UPDATE", contact_id
    )
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


async def tags_with_ids(conn: Conn, contact_id: str) -> list[dict[str, Any]]:
    """The contact's tags with their ids (Mailchimp shows both), alphabetically."""
    rows = await conn.fetch(
        "SELECT t.id, t.name FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id"
        " WHERE ct.contact_id = $1::uuid ORDER BY t.name",
        contact_id,
    )
    return [dict(r) for r in rows]


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


# --- bulk import -------------------------------------------------------------------------------

# Values an import row may set; the rest of a contact keeps what it had.
IMPORT_COLUMNS = (
    "status", "first_name", "last_name", "phone", "sms_status", "timezone", "birthday",
)  # fmt: skip


async def existing(
    conn: asyncpg.Connection, audience_id: str, hashes: list[str]
) -> dict[str, dict[str, Any]]:
    """The contacts with these subscriber hashes, locked until the transaction ends."""
    # One lookup per hash on the (audience_id, subscriber_hash) key: with `= ANY(...)` the
    # planner, misled by stale statistics while an import grows the table, scanned the whole
    # audience per chunk (50,000 rows took 80 s instead of 8).
    rows = await conn.fetch(
        f"""
        SELECT c.* FROM unnest($2::text[]) AS h(hash) CROSS JOIN LATERAL (
            SELECT {COLUMNS} FROM contacts
            WHERE audience_id = $1::uuid AND subscriber_hash = h.hash FOR UPDATE
        ) c
        """,
        audience_id,
        hashes,
    )
    return {r["subscriber_hash"]: dict(r) for r in rows}


async def bulk_upsert(
    conn: asyncpg.Connection, audience_id: str, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Creates or updates many contacts in one statement (emails must be distinct).

    Args:
        rows: Complete contacts: `email` and every `IMPORT_COLUMNS` value (None = default for
            a new contact), and `fields` (merged into stored ones).

    Returns:
        The stored contacts, each with `created`.
    """
    columns = {name: [r.get(name) for r in rows] for name in IMPORT_COLUMNS}
    result = await conn.fetch(
        f"""
        INSERT INTO contacts (audience_id, email, subscriber_hash, status, first_name, last_name,
                              phone, sms_status, timezone, birthday, fields)
        SELECT $1::uuid, r.email, r.hash, COALESCE(r.status, 'subscribed'), r.first_name,
               r.last_name, r.phone, COALESCE(r.sms_status, 'none'), r.timezone, r.birthday,
               r.fields::jsonb
        FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                    $8::text[], $9::text[], $10::text[], $11::text[])
             AS r(email, hash, status, first_name, last_name, phone, sms_status, timezone,
                  birthday, fields)
        ON CONFLICT (audience_id, subscriber_hash) DO UPDATE SET
            email = EXCLUDED.email, status = EXCLUDED.status,
            first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
            phone = EXCLUDED.phone, sms_status = EXCLUDED.sms_status,
            timezone = EXCLUDED.timezone, birthday = EXCLUDED.birthday,
            fields = contacts.fields || EXCLUDED.fields, updated_at = now()
        RETURNING {COLUMNS}, (xmax = 0) AS created
        """,
        audience_id,
        [r["email"] for r in rows],
        [subscriber_hash(r["email"]) for r in rows],
        *columns.values(),
        [json.dumps(r.get("fields") or {}) for r in rows],
    )
    return [dict(r) for r in result]


# --- listing and search -----------------------------------------------------------------------


async def search(
    conn: Conn,
    audience_id: str,
    *,
    email_prefix: str | None,
    tag: str | None,
    status: str | None,
    after: tuple[str, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """A page of the audience's contacts in email order, filtered.

    Args:
        after: (lower-cased email, id) of the last contact of the previous page.
    """
    where = ["c.audience_id = $1::uuid"]
    args: list[Any] = [audience_id]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if email_prefix:
        escaped = re.sub(r"([\\%_])", r"\\\1", email_prefix.lower())
        where.append(f'lower(c.email) COLLATE "C" LIKE {arg(escaped + "%")}')
    if status:
        where.append(f"c.status = {arg(status)}")
    if tag:
        where.append(
            "EXISTS (SELECT 1 FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id"
            f" WHERE ct.contact_id = c.id AND t.name = {arg(tag)})"
        )
    if after:
        email, last_id = after
        where.append(f'(lower(c.email) COLLATE "C", c.id) > ({arg(email)}, {arg(last_id)}::uuid)')
    columns = ", ".join(f"c.{part.strip()}" for part in COLUMNS.split(","))
    rows = await conn.fetch(
        f"SELECT {columns}, coalesce((SELECT array_agg(t.name ORDER BY t.name)"
        " FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id WHERE ct.contact_id = c.id),"
        " '{}') AS tags"
        f" FROM contacts c WHERE {' AND '.join(where)}"
        f' ORDER BY lower(c.email) COLLATE "C", c.id LIMIT {arg(limit)}',
        *args,
    )
    return [dict(r) for r in rows]


# --- archive and erasure ------------------------------------------------------------------------


async def set_status(conn: Conn, contact_id: str, status: str) -> dict[str, Any]:
    """Sets the contact's email status (archive, double opt-in confirmation)."""
    row = await conn.fetchrow(
        f"UPDATE contacts SET status = $2, updated_at = now() WHERE id = $1::uuid"
        f" RETURNING {COLUMNS}",
        contact_id,
        status,
    )
    return dict(row)


async def erase(conn: asyncpg.Connection, contact_id: str) -> None:
    """Deletes the contact and every trace of its personal data. Call inside a transaction.

    Tags, groups, events and enrolments go with the row (ON DELETE CASCADE); sent messages are
    kept for the send counts but lose their recipient, subject and link to the contact.
    """
    await conn.execute(
        "UPDATE messages SET recipient = 'erased', subject = NULL, contact_id = NULL WHERE contact_id = $1::uuid",
        contact_id,
    )
    await conn.execute("DELETE FROM contacts WHERE id = $1::uuid", contact_id)


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


async def resolve_many(conn: Conn, refs: list[tuple[str, str]]) -> list[str | None]:
    """The ids of many contacts, each named by (audience id, id / subscriber hash / email).

    One query for a whole batch (see `resolve` for one).

    Returns:
        Each reference's contact id, or None where the audience has no such contact, in order.
    """
    hashes: list[str | None] = []
    ids: list[str | None] = []
    for _, ref in refs:
        if _HASH.match(ref.lower()):
            hashes.append(ref.lower())
            ids.append(None)
        elif is_uuid(ref):
            hashes.append(None)
            ids.append(ref)
        else:
            hashes.append(subscriber_hash(ref))
            ids.append(None)
    rows = await conn.fetch(
        """
        SELECT r.i, c.id::text
        FROM unnest($1::int[], $2::uuid[], $3::text[], $4::uuid[]) AS r(i, audience_id, hash, id)
        JOIN contacts c ON c.audience_id = r.audience_id
             AND (c.subscriber_hash = r.hash OR c.id = r.id)
        """,
        list(range(len(refs))),
        [audience for audience, _ in refs],
        hashes,
        ids,
    )
    found: list[str | None] = [None] * len(refs)
    for row in rows:
        found[row["i"]] = row["id"]
    return found

"""Queries on `campaigns`: one-off sends to a segment of an audience, and their ledger counts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from journeys.store.ids import is_uuid

Conn = asyncpg.Connection | asyncpg.Pool

_COLUMNS = (
    "id::text, audience_id::text, name, subject, status, content, send_at, created_at, sent_at"
)


async def create(
    conn: Conn,
    *,
    audience_id: str,
    name: str,
    subject: str,
    content: dict[str, Any] | None = None,
) -> dict[str, Any]:
    row = await conn.fetchrow(
        "INSERT INTO campaigns (audience_id, name, subject, content)"
        f" VALUES ($1::uuid, $2, $3, $4::jsonb) RETURNING {_COLUMNS}",
        audience_id,
        name,
        subject,
        content or {},
    )
    return dict(row)


async def get(conn: Conn, campaign_id: str) -> dict[str, Any] | None:
    if not is_uuid(campaign_id):
        return None
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM campaigns WHERE id = $1::uuid", campaign_id)
    return dict(row) if row else None


async def update(
    conn: Conn, campaign_id: str, *, name: str, subject: str, content: dict[str, Any]
) -> dict[str, Any] | None:
    """Replaces a draft's content; None if the campaign is not a draft (or does not exist)."""
    row = await conn.fetchrow(
        f"UPDATE campaigns SET name = $2, subject = $3, content = $4::jsonb"
        f" WHERE id = $1::uuid AND status = 'draft' RETURNING {_COLUMNS}",
        campaign_id,
        name,
        subject,
        content,
    )
    return dict(row) if row else None


async def set_status(
    conn: Conn,
    campaign_id: str,
    status: str,
    *,
    only_from: tuple[str, ...] | None = None,
    send_at: datetime | None = None,
) -> dict[str, Any] | None:
    """Moves the campaign to `status` (from one of `only_from`); None if it was not there."""
    row = await conn.fetchrow(
        f"""
        UPDATE campaigns SET status = $2,
            send_at = COALESCE($4, send_at),
            sent_at = CASE WHEN $2 = 'sent' THEN now() ELSE sent_at END
        WHERE id = $1::uuid AND ($3::text[] IS NULL OR status = ANY($3::text[]))
        RETURNING {_COLUMNS}
        """,
        campaign_id,
        status,
        list(only_from) if only_from is not None else None,
        send_at,
    )
    return dict(row) if row else None


async def audience_page(
    conn: Conn, audience_id: str, *, after: str, limit: int
) -> list[dict[str, Any]]:
    """Contacts of the audience with ids after `after`, in id order (a stable paging cursor)."""
    rows = await conn.fetch(
        "SELECT id::text, audience_id::text, email, subscriber_hash, status, first_name,"
        " last_name, phone, sms_status, timezone, birthday, fields, signup_at, created_at,"
        " updated_at, soft_bounces FROM contacts"
        " WHERE audience_id = $1::uuid AND ($2 = '' OR id > $2::uuid) ORDER BY id LIMIT $3",
        audience_id,
        after,
        limit,
    )
    return [dict(r) for r in rows]


async def report(conn: Conn, campaign_id: str) -> dict[str, int]:
    """What the campaign did: from the messages ledger and the events its emails caused.

    Recipients are the contacts the send took (consent and segment), each claimed once.
    """
    row = await conn.fetchrow(
        """
        SELECT
          count(*) AS recipients,
          count(*) FILTER (WHERE m.status = 'sent') AS sent,
          count(*) FILTER (WHERE m.status = 'failed') AS failed,
          count(*) FILTER (WHERE m.status = 'uncertain') AS uncertain,
          count(*) FILTER (WHERE m.bounce IS NOT NULL) AS bounced,
          count(*) FILTER (WHERE m.bounce = 'hard') AS hard_bounces,
          count(*) FILTER (WHERE m.bounce = 'soft') AS soft_bounces
        FROM messages m WHERE m.campaign_id = $1::uuid
        """,
        campaign_id,
    )
    engaged = await conn.fetchrow(
        """
        SELECT
          count(DISTINCT contact_id) FILTER (WHERE type = 'email_opened') AS unique_opens,
          count(*) FILTER (WHERE type = 'email_opened') AS opens,
          count(DISTINCT contact_id) FILTER (WHERE type = 'email_clicked') AS unique_clicks,
          count(*) FILTER (WHERE type = 'email_clicked') AS clicks,
          count(DISTINCT contact_id) FILTER (WHERE type = 'unsubscribed') AS unsubscribes,
          count(DISTINCT contact_id) FILTER (WHERE type = 'email_complained') AS complaints
        FROM events
        WHERE data->>'campaign_id' = $1
          AND type IN ('email_opened', 'email_clicked', 'unsubscribed', 'email_complained')
        """,
        campaign_id,
    )
    return {**{k: int(v or 0) for k, v in row.items()}, **{k: int(v) for k, v in engaged.items()}}


async def existing(conn: Conn, campaign_ids: list[str]) -> frozenset[str]:
    """Which of these campaign ids exist."""
    ids = [c for c in campaign_ids if is_uuid(c)]
    if not ids:
        return frozenset()
    rows = await conn.fetch("SELECT id::text FROM campaigns WHERE id = ANY($1::uuid[])", ids)
    return frozenset(r["id"] for r in rows)

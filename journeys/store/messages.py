"""Queries on `messages`: the ledger that makes sends idempotent.

A row's `status` moves `pending` (claimed) → `sending` (about to be handed to the server, at
`attempted_at`) → `sent` or `failed`; back to `pending` when the server refused for now; and to
`uncertain` when a later attempt finds `sending` left by one that was interrupted before it
learnt whether the server accepted the message.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool


async def claim(
    conn: Conn,
    *,
    idempotency_key: str,
    channel: str,
    flow_id: str | None,
    step_id: str | None,
    contact_id: str | None,
    workflow_id: str | None,
    recipient: str,
    subject: str | None,
    message_id: str,
    ref: str | None = None,
    audience_id: str | None = None,
    campaign_id: str | None = None,
    links: list[str] | None = None,
) -> dict[str, Any]:
    """Records the intent to send, or returns the earlier record for this key.

    A retry of a send that has not gone out yet stores the links of the message it is about
    to send (rendered again, they may differ), so clicks always resolve against what left.
    """
    row = await conn.fetchrow(
        """
        INSERT INTO messages (idempotency_key, channel, flow_id, step_id, contact_id, workflow_id,
                              recipient, subject, message_id, ref, audience_id, campaign_id, links)
        VALUES ($1, $2, $3::uuid, $4, $5::uuid, $6, $7, $8, $9, $10, $11::uuid, $12::uuid,
                $13::jsonb)
        ON CONFLICT (idempotency_key) DO UPDATE SET
            links = CASE WHEN messages.status = 'pending' THEN EXCLUDED.links
                         ELSE messages.links END
        RETURNING status, message_id, attempts, attempted_at
        """,
        idempotency_key,
        channel,
        flow_id,
        step_id,
        contact_id,
        workflow_id,
        recipient,
        subject,
        message_id,
        ref,
        audience_id,
        campaign_id,
        links or [],
    )
    return dict(row)


async def mark_sending(conn: Conn, idempotency_key: str, *, again: bool = False) -> bool:
    """Records that this attempt now hands the message to the server.

    Args:
        again: Also take over a `sending` mark left by an interrupted attempt (a resend).

    Returns:
        False if the row is in no state this attempt may send from (another attempt got
        further in the meantime).
    """
    allowed = ["pending", "sending"] if again else ["pending"]
    row = await conn.fetchval(
        "UPDATE messages SET status = 'sending', attempted_at = now(), attempts = attempts + 1,"
        " error = NULL WHERE idempotency_key = $1 AND status = ANY($2::text[]) RETURNING 1",
        idempotency_key,
        allowed,
    )
    return row is not None


async def claim_many(
    conn: Conn,
    *,
    campaign_id: str,
    audience_id: str,
    workflow_id: str,
    rows: list[dict[str, Any]],
) -> dict[str, str]:
    """Claims a page of campaign emails in one statement (see `claim`); returns key → status.

    Each row has `idempotency_key`, `contact_id`, `recipient`, `subject`, `message_id`, `ref`
    and `links`.
    """
    if not rows:
        return {}
    found = await conn.fetch(
        """
        INSERT INTO messages (idempotency_key, channel, contact_id, workflow_id, recipient,
                              subject, message_id, ref, audience_id, campaign_id, links)
        SELECT k, 'email', c::uuid, $1, r, s, m, f, $2::uuid, $3::uuid, l::jsonb
        FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                    $10::text[]) AS t(k, c, r, s, m, f, l)
        ON CONFLICT (idempotency_key) DO UPDATE SET
            links = CASE WHEN messages.status = 'pending' THEN EXCLUDED.links
                         ELSE messages.links END
        RETURNING idempotency_key, status
        """,
        workflow_id,
        audience_id,
        campaign_id,
        *(
            [row[name] for row in rows]
            for name in (
                "idempotency_key",
                "contact_id",
                "recipient",
                "subject",
                "message_id",
                "ref",
            )
        ),
        # As JSON text: asyncpg would take a list of lists for a two-dimensional array.
        [json.dumps(row["links"]) for row in rows],
    )
    return {r["idempotency_key"]: r["status"] for r in found}


async def by_ref(conn: Conn, ref: str) -> dict[str, Any] | None:
    """The message a tracking token names, with what its events need."""
    row = await conn.fetchrow(
        "SELECT idempotency_key, ref, channel, flow_id::text, step_id, campaign_id::text,"
        " contact_id::text, audience_id::text, links, status, message_id"
        " FROM messages WHERE ref = $1",
        ref,
    )
    return dict(row) if row else None


async def by_message_id(conn: Conn, message_id: str) -> dict[str, Any] | None:
    """The message with this `Message-ID` header (how bounce reports name a message)."""
    row = await conn.fetchrow(
        "SELECT idempotency_key, ref, flow_id::text, step_id, campaign_id::text,"
        " contact_id::text, audience_id::text FROM messages WHERE message_id = $1"
        " ORDER BY id DESC LIMIT 1",
        message_id,
    )
    return dict(row) if row else None


async def mark_sent(conn: Conn, idempotency_key: str) -> None:
    """The server accepted the message (also over an `uncertain` mark: now it is certain)."""
    await conn.execute(
        "UPDATE messages SET status = 'sent', sent_at = now(), error = NULL"
        " WHERE idempotency_key = $1 AND status IN ('pending', 'sending', 'uncertain')",
        idempotency_key,
    )


async def mark_unsent(conn: Conn, idempotency_key: str, error: str) -> None:
    """The server answered that it did not take the message: a retry may send it."""
    await conn.execute(
        "UPDATE messages SET status = 'pending', error = $2"
        " WHERE idempotency_key = $1 AND status = 'sending'",
        idempotency_key,
        error,
    )


async def mark_uncertain(conn: Conn, idempotency_key: str, reason: str) -> bool:
    """Turns a `sending` mark left by an interrupted attempt into `uncertain`.

    Returns:
        False if the row was no longer `sending` (the interrupted attempt finished after all).
    """
    row = await conn.fetchval(
        "UPDATE messages SET status = 'uncertain', error = $2"
        " WHERE idempotency_key = $1 AND status = 'sending' RETURNING 1",
        idempotency_key,
        reason,
    )
    return row is not None


async def mark_failed(conn: Conn, idempotency_key: str, error: str) -> None:
    await conn.execute(
        "UPDATE messages SET status = 'failed', error = $2"
        " WHERE idempotency_key = $1 AND status <> 'sent'",
        idempotency_key,
        error,
    )


async def for_contact(conn: Conn, contact_id: str) -> list[dict[str, Any]]:
    """The contact's messages, oldest first."""
    rows = await conn.fetch(
        "SELECT idempotency_key, channel, flow_id::text, step_id, recipient, subject, message_id,"
        " status, error, created_at, attempted_at, attempts, sent_at"
        " FROM messages WHERE contact_id = $1::uuid ORDER BY id",
        contact_id,
    )
    return [dict(r) for r in rows]


async def record_delivery(
    conn: Conn, *, idempotency_key: str, status: str, provider_id: str | None, error: str | None
) -> bool:
    """Notes the provider's delivery status of a sent message; False if no message has the key."""
    row = await conn.fetchval(
        "UPDATE messages SET delivery_status = $2, provider_message_id = COALESCE($3,"
        " provider_message_id), delivery_error = $4 WHERE idempotency_key = $1 RETURNING id",
        idempotency_key,
        status,
        provider_id,
        error,
    )
    return row is not None


async def delivery(conn: Conn, idempotency_key: str) -> dict[str, Any] | None:
    """The message's send and delivery status, or None."""
    row = await conn.fetchrow(
        "SELECT status, delivery_status, delivery_error, provider_message_id FROM messages"
        " WHERE idempotency_key = $1",
        idempotency_key,
    )
    return dict(row) if row else None


async def mark_bounced(conn: Conn, idempotency_key: str, bounce: str, error: str) -> None:
    """Records how the recipient's server refused the message (a hard bounce stays hard)."""
    await conn.execute(
        "UPDATE messages SET bounce = CASE WHEN bounce = 'hard' THEN bounce ELSE $2 END,"
        " error = $3 WHERE idempotency_key = $1",
        idempotency_key,
        bounce,
        error,
    )


async def mark_many(conn: Conn, *, sent: list[str], sending: list[str]) -> set[str]:
    """Records several emails `sent` and takes several others to `sending`, in one statement.

    The group commit of a campaign page's lanes (see `activities.campaigns`): each email is
    still marked `sending` before its DATA phase and `sent` after the server took it, but the
    marks of all lanes share round trips. A key is never in both lists (its `sent` mark is
    only asked for once its `sending` mark was written).

    Args:
        sent: Keys whose server accepted the message (see `mark_sent`).
        sending: Keys about to be handed over (see `mark_sending`, from `pending` only).

    Returns:
        The keys of `sending` this attempt took; the others were in no state to send from.
    """
    rows = await conn.fetch(
        """
        WITH done AS (
            UPDATE messages SET status = 'sent', sent_at = now(), error = NULL
            WHERE idempotency_key = ANY($1::text[])
              AND status IN ('pending', 'sending', 'uncertain')
        )
        UPDATE messages SET status = 'sending', attempted_at = now(), attempts = attempts + 1,
                            error = NULL
        WHERE idempotency_key = ANY($2::text[]) AND status = 'pending'
        RETURNING idempotency_key
        """,
        sent,
        sending,
    )
    return {r["idempotency_key"] for r in rows}

"""Queries on `messages`: the ledger that makes sends idempotent.

A row's `status` moves `pending` (claimed) → `sending` (about to be handed to the server, at
`attempted_at`) → `sent` or `failed`; back to `pending` when the server refused for now; and to
`uncertain` when a later attempt finds `sending` left by one that was interrupted before it
learnt whether the server accepted the message.
"""

from __future__ import annotations

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
) -> dict[str, Any]:
    """Records the intent to send, or returns the earlier record for this key."""
    row = await conn.fetchrow(
        """
        INSERT INTO messages (idempotency_key, channel, flow_id, step_id, contact_id, workflow_id,
                              recipient, subject, message_id)
        VALUES ($1, $2, $3::uuid, $4, $5::uuid, $6, $7, $8, $9)
        ON CONFLICT (idempotency_key) DO UPDATE SET idempotency_key = EXCLUDED.idempotency_key
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

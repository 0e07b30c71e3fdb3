"""The bounce bookkeeping flow emails and campaign emails share."""

from __future__ import annotations

from typing import Any

import asyncpg

from journeys import changes
from journeys.ingest import Ingest
from journeys.store import messages


async def record_bounce(
    pool: asyncpg.Pool,
    ingest: Ingest,
    contact: dict[str, Any],
    *,
    message_key: str,
    event_key: str,
    kind: str,
    error: str,
    email: dict[str, str],
    soft_limit: int,
) -> bool:
    """Marks an email's ledger row bounced and records the bounce on its contact.

    Args:
        pool: The database pool.
        ingest: Records the contact's `email_bounced` change and delivers its events.
        contact: The recipient.
        message_key: The email's ledger key (its idempotency key).
        event_key: The bounce event's idempotency key (one per soft attempt, one per hard).
        kind: `hard` or `soft`.
        error: What the server answered.
        email: What the bounce event names the email by (flow step or campaign).
        soft_limit: Soft bounces in a row that clean the address.

    Returns:
        Whether the address is cleaned now.
    """
    await messages.mark_bounced(pool, message_key, kind, error)
    cleaned, _ = await ingest.change(
        lambda conn: changes.bounce(
            conn,
            contact=contact,
            kind=kind,
            email=email,
            key=event_key,
            soft_limit=soft_limit,
        )
    )
    return cleaned

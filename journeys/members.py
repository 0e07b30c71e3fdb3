"""Saving a contact the way every entry point does: upsert, events, double opt-in email.

The native contacts API, the Mailchimp-compatible routes and their batch subscribe all save
members through `save`, so a `pending` contact gets its confirmation email whichever way it
arrived, and the same changes cause the same events.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import asyncpg
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from journeys import changes, optin
from journeys.changes import Pending
from journeys.channels.email import PermanentSendError, TransientSendError
from journeys.config import Settings
from journeys.dispatch import DispatchResult
from journeys.ingest import Ingest
from journeys.store import audiences, contacts, enrollments


class ConfirmationNotSent(Exception):
    """The contact is stored as pending, but its confirmation email could not be sent."""


async def _upsert(
    conn: asyncpg.Connection, *, audience_id: str, given: dict[str, Any], key: str
) -> tuple[tuple[dict[str, Any], bool, dict[str, Any] | None], Pending]:
    before = await contacts.resolve(conn, audience_id, given["email"])
    (row, created), pending = await changes.upsert(
        conn, audience_id=audience_id, given=given, key=key
    )
    return (row, created, before), pending


async def save(
    ingest: Ingest, settings: Settings, *, audience_id: str, given: dict[str, Any], key: str
) -> tuple[dict[str, Any], bool, dict[str, Any] | None, list[DispatchResult]]:
    """Creates or updates the contact `given["email"]` and delivers the events it causes.

    Asking for `status: pending` (double opt-in) emails the contact a signed confirmation
    link; asking again re-sends it. The contact becomes `subscribed` — and signed-up flows
    start — only when the link is followed.

    Returns:
        The contact, whether it was created, the contact before the change, the deliveries.

    Raises:
        ConfirmationNotSent: the change is stored, the confirmation email failed.
    """
    (row, created, before), results = await ingest.change(
        partial(_upsert, audience_id=audience_id, given=given, key=key)
    )
    if given.get("status") == "pending" and row["status"] == "pending":
        audience = await audiences.get(ingest.pool, audience_id)
        name = str(audience["name"]) if audience else "our list"
        try:
            await optin.send_confirmation(settings, row, name)
        except (PermanentSendError, TransientSendError, OSError) as err:
            raise ConfirmationNotSent(str(err)) from err
    return row, created, before, results


async def erase(pool: asyncpg.Pool, client: Client, *, contact_id: str) -> None:
    """Ends the contact's runs in every flow, then deletes its personal data.

    Runs are terminated first, so none is left waiting on a contact that is gone; their
    histories hold ids, not the address. A run started meanwhile finds no contact and
    refuses to begin.
    """
    for run in await enrollments.running_for_contact(pool, contact_id):
        try:
            await client.get_workflow_handle(run["workflow_id"]).terminate(
                reason="contact permanently deleted"
            )
        except RPCError as err:
            # Finished between the query and the call: nothing left to end.
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
    async with pool.acquire() as conn, conn.transaction():
        await contacts.erase(conn, contact_id)

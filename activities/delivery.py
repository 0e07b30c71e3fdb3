"""Sending messages. Each send is claimed in `messages` first, so retries never send twice."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from email.utils import parseaddr

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from journeys.channels.email import (
    EmailSender,
    PermanentSendError,
    TransientSendError,
    build_message,
    format_sender,
    message_id_for,
)
from journeys.domain.runs import ActivityName, SendEmailInput, SendResult
from journeys.domain.templating import contact_context, render
from journeys.store import contacts, messages

# Called after a send is recorded; tests use it to fail an attempt at the worst moment.
AfterSendHook = Callable[[SendEmailInput], Awaitable[None]]

_SENDABLE = {"subscribed", "transactional"}


class DeliveryActivities:
    """Renders and sends flow messages to contacts."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        email: EmailSender,
        *,
        default_from: str,
        after_send: AfterSendHook | None = None,
    ) -> None:
        self._pool = pool
        self._email = email
        self._default_from = default_from
        self._after_send = after_send

    @activity.defn(name=ActivityName.SEND_EMAIL)
    async def send_email(self, input: SendEmailInput) -> SendResult:
        """Renders the step's templates for the contact and sends the email once.

        Raises:
            ApplicationError: non-retryable when the server refuses the address for good.
        """
        contact = await contacts.get(self._pool, input.contact_id)
        if contact is None:
            return SendResult(status="skipped", reason="contact no longer exists")
        if contact["status"] not in _SENDABLE:
            return SendResult(status="skipped", reason=f"contact is {contact['status']}")

        context = contact_context(contact)
        subject = render(input.subject, context)
        default_name, default_address = parseaddr(self._default_from)
        sender = format_sender(
            input.from_name or default_name or None, input.from_email or default_address
        )
        message_id = message_id_for(input.idempotency_key, sender)
        record = await messages.claim(
            self._pool,
            idempotency_key=input.idempotency_key,
            channel="email",
            flow_id=input.flow_id,
            step_id=input.step_id,
            contact_id=input.contact_id,
            workflow_id=input.workflow_id,
            recipient=contact["email"],
            subject=subject,
            message_id=message_id,
        )
        if record["status"] == "sent":
            return SendResult(status="duplicate", message_id=record["message_id"])
        if record["status"] == "failed":
            return SendResult(status="skipped", reason="an earlier attempt was refused for good")

        message = build_message(
            sender=sender,
            to=contact["email"],
            subject=subject,
            html=render(input.html, context, html=True) if input.html else None,
            text=render(input.text, context) if input.text else None,
            preheader=render(input.preheader, context) if input.preheader else None,
            reply_to=input.reply_to,
            message_id=message_id,
            headers={"X-Journeys-Flow": input.flow_id, "X-Journeys-Step": input.step_id},
        )
        try:
            await self._email.send(message)
        except PermanentSendError as exc:
            await messages.mark_failed(self._pool, input.idempotency_key, str(exc))
            raise ApplicationError(
                f"address refused: {exc}", type="PermanentSendError", non_retryable=True
            ) from exc
        except TransientSendError as exc:
            raise ApplicationError(f"send failed, will retry: {exc}", type="TransientSendError") from exc
        await messages.mark_sent(self._pool, input.idempotency_key)
        if self._after_send:
            await self._after_send(input)
        return SendResult(status="sent", message_id=message_id)

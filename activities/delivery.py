"""Sending messages. Each send is claimed in `messages` first, so retries never send twice."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.local_time import zone_for
from journeys.channels.email import (
    EmailSender,
    PermanentSendError,
    TransientSendError,
    build_message,
    check_size,
    format_sender,
    header_value,
    message_id_for,
)
from journeys.channels.sms import SmsProvider
from journeys.domain.runs import (
    ActivityName,
    Delivery,
    SendEmailInput,
    SendResult,
    SendSmsInput,
)
from journeys.domain.schedule import quiet_until
from journeys.domain.templating import contact_context
from journeys.rendering import FieldRefused, render_fields
from journeys.store import contacts, messages

# Called after a send is recorded; tests use it to fail an attempt at the worst moment.
AfterSendHook = Callable[[SendEmailInput], Awaitable[None]]


def _refused(exc: Exception) -> ApplicationError:
    return ApplicationError(
        f"refused for good: {exc}", type="PermanentSendError", non_retryable=True
    )


def _retry(exc: Exception) -> ApplicationError:
    return ApplicationError(f"send failed, will retry: {exc}", type="TransientSendError")


class DeliveryActivities:
    """Renders and sends flow messages to contacts."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        email: EmailSender,
        *,
        default_from: str,
        sms: SmsProvider | None = None,
        after_send: AfterSendHook | None = None,
    ) -> None:
        self._pool = pool
        self._email = email
        self._sms = sms
        self._default_from = default_from
        self._after_send = after_send

    async def _prepare(
        self, input: Delivery, *, consent: str, address: str
    ) -> tuple[dict[str, Any] | None, SendResult | None]:
        """Loads the contact and answers early if the message must not (or not yet) go out."""
        contact = await contacts.get(self._pool, input.contact_id)
        if contact is None:
            return None, SendResult(status="skipped", reason="the contact no longer exists")
        if not contact.get(address):
            return None, SendResult(status="skipped", reason=f"the contact has no {address}")
        status = contact[consent]
        # Transactional messages go to any reachable contact; marketing needs consent.
        allowed = status != "cleaned" if input.transactional else status == "subscribed"
        if not allowed:
            return None, SendResult(status="skipped", reason=f"{consent} is {status}")
        if input.quiet_hours and not input.transactional:
            zone = await zone_for(self._pool, contact, basis=input.timezone_basis)
            until = quiet_until(datetime.now(UTC), input.quiet_hours, zone)
            if until is not None:
                return None, SendResult(status="deferred", not_before=until.astimezone(UTC))
        return contact, None

    def _context(self, input: Delivery, contact: dict[str, Any]) -> dict[str, Any]:
        return contact_context(
            contact, event=input.event, flow={"id": input.flow_id, "name": input.flow_name}
        )

    async def _email_message(
        self, input: SendEmailInput, context: dict[str, Any], sender: str, message_id: str
    ) -> tuple[EmailMessage, str]:
        """Renders the templates (off the event loop) and builds the message.

        Raises:
            FieldRefused: a template cannot be rendered for this contact.
            PermanentSendError: invalid recipient, or the message is too large.
        """
        templates = {"subject": (input.subject, False)}
        for name, source, html in (
            ("html", input.html, True),
            ("text", input.text, False),
            ("preheader", input.preheader, False),
        ):
            if source:
                templates[name] = (source, html)
        parts = await render_fields(templates, context)
        subject = header_value(parts["subject"])
        message = build_message(
            sender=sender,
            to=context["contact"]["email"],
            subject=subject,
            html=parts.get("html"),
            text=parts.get("text"),
            preheader=parts.get("preheader"),
            reply_to=input.reply_to,
            message_id=message_id,
            headers={"X-Journeys-Flow": input.flow_id, "X-Journeys-Step": input.step_id},
        )
        check_size(message)
        return message, subject

    @activity.defn(name=ActivityName.SEND_EMAIL)
    async def send_email(self, input: SendEmailInput) -> SendResult:
        """Renders the step's templates for the contact and sends the email once.

        Raises:
            ApplicationError: non-retryable when the server refuses the address for good.
        """
        contact, early = await self._prepare(input, consent="status", address="email")
        if early is not None:
            return early
        assert contact is not None
        context = self._context(input, contact)
        default_name, default_address = parseaddr(self._default_from)
        sender = format_sender(
            input.from_name or default_name or None, input.from_email or default_address
        )
        message_id = message_id_for(input.idempotency_key, sender)
        try:
            message, subject = await self._email_message(input, context, sender, message_id)
        except (FieldRefused, PermanentSendError) as exc:
            # Render errors, a bad address, an oversized message: no retry can fix them.
            message, subject, refusal = None, None, PermanentSendError(str(exc))

        async def send() -> str:
            if message is None:
                raise refusal
            await self._email.send(message)
            return message_id

        result = await self._send_once(
            input,
            channel="email",
            recipient=contact["email"],
            subject=subject,
            message_id=message_id,
            send=send,
        )
        if result.status == "sent" and self._after_send:
            await self._after_send(input)
        return result

    @activity.defn(name=ActivityName.SEND_SMS)
    async def send_sms(self, input: SendSmsInput) -> SendResult:
        """Renders the body for the contact and sends the text message once."""
        if self._sms is None:
            raise ApplicationError(
                "no SMS provider is configured", type="PermanentSendError", non_retryable=True
            )
        contact, early = await self._prepare(input, consent="sms_status", address="phone")
        if early is not None:
            return early
        assert contact is not None
        sms = self._sms
        try:
            body: str | None = (
                await render_fields({"body": (input.body, False)}, self._context(input, contact))
            )["body"]
        except FieldRefused as exc:
            body, refusal = None, PermanentSendError(str(exc))

        async def send() -> str:
            if body is None:
                raise refusal
            return await sms.send(
                to=contact["phone"], body=body, idempotency_key=input.idempotency_key
            )

        return await self._send_once(
            input,
            channel="sms",
            recipient=contact["phone"],
            subject=None,
            message_id=input.idempotency_key,
            send=send,
        )

    async def _send_once(
        self,
        input: Delivery,
        *,
        channel: str,
        recipient: str,
        subject: str | None,
        message_id: str,
        send: Callable[[], Awaitable[str]],
    ) -> SendResult:
        """Claims the send in `messages`, sends unless an earlier attempt did, records the outcome."""
        record = await messages.claim(
            self._pool,
            idempotency_key=input.idempotency_key,
            channel=channel,
            flow_id=input.flow_id,
            step_id=input.step_id,
            contact_id=input.contact_id,
            workflow_id=input.workflow_id,
            recipient=recipient,
            subject=subject,
            message_id=message_id,
        )
        if record["status"] == "sent":
            return SendResult(status="duplicate", message_id=record["message_id"])
        if record["status"] == "failed":
            return SendResult(status="skipped", reason="an earlier attempt was refused for good")
        try:
            sent_id = await send()
        except PermanentSendError as exc:
            await messages.mark_failed(self._pool, input.idempotency_key, str(exc))
            raise _refused(exc) from exc
        except TransientSendError as exc:
            raise _retry(exc) from exc
        await messages.mark_sent(self._pool, input.idempotency_key)
        return SendResult(status="sent", message_id=sent_id)

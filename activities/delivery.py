"""Sending messages. Each send is claimed in `messages` first, so retries never send twice.

Marketing email is made trackable and unsubscribable here (see `journeys.channels.tracking`);
every accepted email is recorded as `email_sent`, and the recipient's server's refusals as
bounces, through `Ingest`, so flows hear of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.local_time import zone_for
from journeys import changes
from journeys.channels.email import (
    EmailSender,
    PermanentSendError,
    TransientSendError,
    build_message,
    format_sender,
    message_id_for,
)
from journeys.channels.sms import SmsProvider
from journeys.channels.tracking import TrackingConfig, engage, message_ref
from journeys.domain.events import IncomingEvent
from journeys.domain.flow import Tracking
from journeys.domain.runs import (
    ActivityName,
    Delivery,
    SendEmailInput,
    SendResult,
    SendSmsInput,
)
from journeys.domain.schedule import quiet_until
from journeys.domain.templating import contact_context, render
from journeys.ingest import Ingest
from journeys.store import contacts, flows, messages

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
        ingest: Ingest,
        tracking: TrackingConfig,
        soft_bounce_limit: int = 5,
        sms: SmsProvider | None = None,
        after_send: AfterSendHook | None = None,
    ) -> None:
        self._pool = pool
        self._email = email
        self._sms = sms
        self._default_from = default_from
        self._ingest = ingest
        self._tracking = tracking
        self._soft_bounce_limit = soft_bounce_limit
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

    def _context(
        self, input: Delivery, contact: dict[str, Any], *, unsubscribe_url: str = ""
    ) -> dict[str, Any]:
        return contact_context(
            contact,
            unsubscribe_url=unsubscribe_url,
            event=input.event,
            flow={"id": input.flow_id, "name": input.flow_name},
        )

    async def _tracking_of(self, input: SendEmailInput) -> Tracking:
        """The tracking settings of the flow version the contact runs on."""
        if input.tracking is not None:
            return input.tracking
        stored = await flows.entered_settings(self._pool, input.flow_id, input.contact_id)
        return Tracking.model_validate((stored or {}).get("tracking") or {})

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
        marketing = not input.transactional
        ref = message_ref(input.idempotency_key)
        tracker = self._tracking.tracker(ref)
        unsubscribe_url = tracker.unsubscribe_url() if marketing else ""
        context = self._context(input, contact, unsubscribe_url=unsubscribe_url)
        subject = render(input.subject, context)
        html = render(input.html, context, html=True) if input.html else None
        text = render(input.text, context) if input.text else None
        headers = {"X-Journeys-Flow": input.flow_id, "X-Journeys-Step": input.step_id}
        links: list[str] = []
        if marketing:
            tracking = await self._tracking_of(input)
            placed = any("unsubscribe_url" in (t or "") for t in (input.html, input.text))
            html, text, links = engage(
                html=html,
                text=text,
                tracker=tracker,
                opens=tracking.opens,
                clicks=tracking.clicks,
                has_unsubscribe=placed,
            )
            # RFC 8058: mailbox providers POST `List-Unsubscribe=One-Click` to this URL.
            headers["List-Unsubscribe"] = f"<{unsubscribe_url}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        default_name, default_address = parseaddr(self._default_from)
        sender = format_sender(
            input.from_name or default_name or None, input.from_email or default_address
        )
        message_id = message_id_for(input.idempotency_key, sender)
        message = build_message(
            sender=sender,
            to=contact["email"],
            subject=subject,
            html=html,
            text=text,
            preheader=render(input.preheader, context) if input.preheader else None,
            reply_to=input.reply_to,
            message_id=message_id,
            headers=headers,
        )

        async def send() -> str:
            await self._email.send(message)
            return message_id

        result = await self._send_once(
            input,
            channel="email",
            recipient=contact["email"],
            subject=subject,
            message_id=message_id,
            send=send,
            contact=contact,
            ref=ref,
            links=links,
        )
        if result.status in ("sent", "duplicate"):
            # A retry after a crash between the send and this record records it then (same key).
            await self._ingest.event(
                IncomingEvent(
                    type="email_sent",
                    audience_id=contact["audience_id"],
                    contact_id=contact["id"],
                    idempotency_key=f"email_sent:{input.idempotency_key}",
                    data={**self._email_ref(input), "message_id": message_id},
                )
            )
        if result.status == "sent" and self._after_send:
            await self._after_send(input)
        return result

    @staticmethod
    def _email_ref(input: Delivery) -> dict[str, str]:
        return {"flow_id": input.flow_id, "step_id": input.step_id}

    async def _bounced(
        self, input: Delivery, contact: dict[str, Any], *, kind: str, error: str
    ) -> bool:
        """Records a bounce of this email; returns whether the address is cleaned now."""
        await messages.mark_bounced(self._pool, input.idempotency_key, kind, error)
        # Each refused attempt is one soft bounce; a hard bounce is one per message.
        key = f"{input.idempotency_key}:{kind}" + (f":{uuid.uuid4().hex}" if kind == "soft" else "")
        cleaned, _ = await self._ingest.change(
            lambda conn: changes.bounce(
                conn,
                contact=contact,
                kind=kind,
                email=self._email_ref(input),
                key=key,
                soft_limit=self._soft_bounce_limit,
            )
        )
        return cleaned

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
        body = render(input.body, self._context(input, contact))
        sms = self._sms

        async def send() -> str:
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
            contact=contact,
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
        contact: dict[str, Any],
        ref: str | None = None,
        links: list[str] | None = None,
    ) -> SendResult:
        """Claims the send in `messages`, sends unless an earlier attempt did, records the outcome.

        An email the recipient's server refuses is a bounce: a hard one cleans the address, soft
        ones are retried and clean it when `soft_bounce_limit` come in a row.
        """
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
            ref=ref,
            audience_id=contact["audience_id"],
            links=links,
        )
        if record["status"] == "sent":
            return SendResult(status="duplicate", message_id=record["message_id"])
        if record["status"] == "failed":
            return SendResult(status="skipped", reason="an earlier attempt was refused for good")
        try:
            sent_id = await send()
        except PermanentSendError as exc:
            await messages.mark_failed(self._pool, input.idempotency_key, str(exc))
            if channel == "email" and exc.bounce:
                await self._bounced(input, contact, kind="hard", error=str(exc))
            raise _refused(exc) from exc
        except TransientSendError as exc:
            if channel == "email" and exc.bounce:
                if await self._bounced(input, contact, kind="soft", error=str(exc)):
                    await messages.mark_failed(self._pool, input.idempotency_key, str(exc))
                    raise _refused(exc) from exc
            raise _retry(exc) from exc
        await messages.mark_sent(self._pool, input.idempotency_key)
        if channel == "email":
            await contacts.reset_soft_bounces(self._pool, input.contact_id)
        return SendResult(status="sent", message_id=sent_id)

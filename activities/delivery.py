"""Sending messages. Each send is claimed in `messages` first, so retries never send twice.

A send carries a reference (flow, version, step): the templates and the flow's rules are
loaded from the flow version here. Marketing email is made trackable and unsubscribable (see
`journeys.channels.tracking`); every accepted email is recorded as `email_sent`, and the
recipient's server's refusals as bounces, through `Ingest`, so flows hear of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.bounces import record_bounce
from activities.faults import AFTER_SMTP_ACCEPTANCE, crash_point
from activities.heartbeat import heartbeating
from journeys.channels.assembly import Engagement, assemble
from journeys.channels.email import (
    EmailSender,
    Handover,
    OutgoingEmail,
    PermanentSendError,
    TransientSendError,
    UncertainSendError,
    message_id_for,
    resolve_sender,
)
from journeys.channels.sms import SmsProvider
from journeys.channels.tracking import Tracker, TrackingConfig, message_ref
from journeys.domain.events import IncomingEvent
from journeys.domain.flow import QuietHours, Tracking
from journeys.domain.runs import (
    ActivityName,
    Delivery,
    Phase,
    SendEmailInput,
    SendResult,
    SendSmsInput,
)
from journeys.domain.schedule import quiet_until
from journeys.domain.steps import SendEmail, SendSms, Step
from journeys.domain.templating import CartView, contact_context
from journeys.domain.tree import StepTree
from journeys.ingest import Ingest
from journeys.local_time import zone_for
from journeys.rendering import FieldRefused, render_fields
from journeys.store import contacts, enrollments, messages
from journeys.versions import FlowVersions

# Called after a send is recorded; tests use it to fail an attempt at the worst moment.
AfterSendHook = Callable[["EmailJob"], Awaitable[None]]


class Job(Delivery):
    """A send with what the flow version says about it, loaded by the activity."""

    flow_name: str
    transactional: bool
    quiet_hours: QuietHours | None
    timezone_basis: Literal["contact", "audience"]
    tracking: Tracking


class EmailJob(Job):
    """An email step's send, with its templates and sender."""

    subject: str
    preheader: str | None
    html: str | None
    text: str | None
    from_name: str | None
    from_email: str | None
    reply_to: str | None


class SmsJob(Job):
    """An SMS step's send, with its template."""

    body: str


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
        self._versions = FlowVersions(pool)
        self._email = email
        self._sms = sms
        self._default_from = default_from
        self._ingest = ingest
        self._tracking = tracking
        self._soft_bounce_limit = soft_bounce_limit
        self._after_send = after_send

    async def _prepare(
        self, input: Job, *, consent: str, address: str
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

    async def _job(self, ref: Delivery) -> tuple[Step, dict[str, Any]]:
        """The step a send refers to, and what its flow version says about every send."""
        try:
            definition = await self._versions.definition(ref.flow_id, ref.version)
            step = StepTree(definition.steps).step(ref.step_id)
        except (LookupError, KeyError) as exc:
            raise ApplicationError(
                f"the flow version or step is gone: {exc}",
                type="PermanentSendError",
                non_retryable=True,
            ) from exc
        settings = definition.settings
        return step, {
            **ref.model_dump(),
            "flow_name": definition.name,
            "transactional": definition.transactional,
            "quiet_hours": settings.quiet_hours,
            "timezone_basis": settings.timezone_basis,
            "tracking": settings.tracking,
            "sender": settings.sender,
        }

    async def _email_job(self, ref: SendEmailInput) -> EmailJob:
        step, common = await self._job(ref)
        assert isinstance(step, SendEmail)
        sender = common.pop("sender")
        return EmailJob(
            **common,
            subject=step.subject,
            preheader=step.preheader,
            html=step.html,
            text=step.text,
            from_name=step.from_name or sender.from_name,
            from_email=step.from_email or sender.from_email,
            reply_to=step.reply_to or sender.reply_to,
        )

    async def _sms_job(self, ref: SendSmsInput) -> SmsJob:
        step, common = await self._job(ref)
        assert isinstance(step, SendSms)
        common.pop("sender")
        return SmsJob(**common, body=step.body)

    def _context(
        self, input: Job, contact: dict[str, Any], *, unsubscribe_url: str = ""
    ) -> dict[str, Any]:
        return contact_context(
            contact,
            unsubscribe_url=unsubscribe_url,
            event=input.event,
            flow={"id": input.flow_id, "name": input.flow_name},
            # An abandoned-cart journey's cart, as it was when the timer fired.
            cart=CartView.of(input.event.get("cart")),
        )

    async def _email_message(
        self,
        input: EmailJob,
        context: dict[str, Any],
        *,
        sender: str,
        message_id: str,
        tracker: Tracker | None,
    ) -> tuple[OutgoingEmail, str, list[str]]:
        """Renders the templates (off the event loop) and assembles the message; a marketing
        email (`tracker` given) gets tracked links, an open pixel and one-click unsubscribe.

        Returns:
            The message, its subject, and the links it carries (what a click may lead to).

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
        message = assemble(
            sender=sender,
            to=context["contact"]["email"],
            subject=parts["subject"],
            html=parts.get("html"),
            text=parts.get("text"),
            preheader=parts.get("preheader"),
            reply_to=input.reply_to,
            message_id=message_id,
            headers={"X-Journeys-Flow": input.flow_id, "X-Journeys-Step": input.step_id},
            engagement=None
            if tracker is None
            else Engagement.of(
                tracker,
                opens=input.tracking.opens,
                clicks=input.tracking.clicks,
                templates=(input.html, input.text),
            ),
        )
        return message, message.subject, message.links

    async def _closing(self, ref: Delivery, result: SendResult) -> SendResult:
        """Records the entry as completed when this send, the flow's last step, has an outcome.

        The run then ends without a bookkeeping activity of its own; a deferred send (quiet
        hours) comes back later, a failed one raises and the run records the entry itself.
        """
        if ref.closes_entry is not None and result.status != "deferred":
            await enrollments.finish(
                self._pool,
                flow_id=ref.flow_id,
                contact_id=ref.contact_id,
                entry=ref.closes_entry,
                status=Phase.COMPLETED.value,
            )
        return result

    @activity.defn(name=ActivityName.SEND_EMAIL)
    async def send_email(self, ref: SendEmailInput) -> SendResult:
        """Renders the step's templates for the contact and sends the email once.

        Raises:
            ApplicationError: non-retryable when the server refuses the address for good.
        """
        return await self._closing(ref, await self._send_email(ref))

    async def _send_email(self, ref: SendEmailInput) -> SendResult:
        input = await self._email_job(ref)
        contact, early = await self._prepare(input, consent="status", address="email")
        if early is not None:
            return early
        assert contact is not None
        marketing = not input.transactional
        ref = message_ref(input.idempotency_key)
        tracker = self._tracking.tracker(ref) if marketing else None
        context = self._context(
            input, contact, unsubscribe_url=tracker.unsubscribe_url() if tracker else ""
        )
        sender = resolve_sender(input.from_name, input.from_email, self._default_from)
        message_id = message_id_for(input.idempotency_key, sender)
        links: list[str] = []
        try:
            message, subject, links = await self._email_message(
                input, context, sender=sender, message_id=message_id, tracker=tracker
            )
        except (FieldRefused, PermanentSendError) as exc:
            # Render errors, a bad address, an oversized message: no retry can fix them.
            message, subject, refusal = None, None, PermanentSendError(str(exc))

        async def send(handover: Handover) -> str:
            if message is None:
                raise refusal
            await self._email.send(message, on_handover=handover)
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
        # Each refused attempt is one soft bounce; a hard bounce is one per message.
        key = f"{input.idempotency_key}:{kind}" + (f":{uuid.uuid4().hex}" if kind == "soft" else "")
        return await record_bounce(
            self._pool,
            self._ingest,
            contact,
            message_key=input.idempotency_key,
            event_key=key,
            kind=kind,
            error=error,
            email=self._email_ref(input),
            soft_limit=self._soft_bounce_limit,
        )

    @activity.defn(name=ActivityName.SEND_SMS)
    async def send_sms(self, ref: SendSmsInput) -> SendResult:
        """Renders the body for the contact and sends the text message once."""
        return await self._closing(ref, await self._send_sms(ref))

    async def _send_sms(self, ref: SendSmsInput) -> SendResult:
        if self._sms is None:
            raise ApplicationError(
                "no SMS provider is configured", type="PermanentSendError", non_retryable=True
            )
        input = await self._sms_job(ref)
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

        async def send(handover: Handover) -> str:
            if body is None:
                raise refusal
            await handover()  # an HTTP request's outcome is unknown once it has left
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
        input: Job,
        *,
        channel: str,
        recipient: str,
        subject: str | None,
        message_id: str,
        send: Callable[[Handover], Awaitable[str]],
        contact: dict[str, Any],
        ref: str | None = None,
        links: list[str] | None = None,
    ) -> SendResult:
        """Claims the send in `messages`, sends unless an earlier attempt did, records the outcome.

        `send` awaits the handover callback it is given just before the message leaves for the
        provider; that marks the row `sending`. An attempt that finds such a mark follows one
        that died while the provider's acceptance was unknown: marketing messages are then
        recorded `uncertain` and not sent again (at most once), transactional ones are sent
        again with the same Message-ID (at least once). An email the recipient's server refuses
        is a bounce: a hard one cleans the address, soft ones are retried and clean it when
        `soft_bounce_limit` come in a row.
        """
        key = input.idempotency_key
        async with heartbeating():
            record = await messages.claim(
                self._pool,
                idempotency_key=key,
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
            status = record["status"]
            if status == "sent":
                return SendResult(status="duplicate", message_id=record["message_id"])
            if status == "failed":
                return SendResult(
                    status="skipped", reason="an earlier attempt was refused for good"
                )
            interrupted = (
                f"attempt {record['attempts']} was interrupted after handing the message over"
                f" at {record['attempted_at']:%Y-%m-%d %H:%M:%S} UTC, before the answer"
                if status == "sending"
                else None
            )
            if status == "uncertain" or (interrupted and not input.transactional):
                if interrupted and not await messages.mark_uncertain(self._pool, key, interrupted):
                    # The interrupted attempt was alive after all and finished: read it again.
                    raise _retry(RuntimeError("the earlier attempt finished meanwhile"))
                return SendResult(
                    status="uncertain",
                    message_id=record["message_id"],
                    reason=interrupted or "an earlier attempt was interrupted",
                )

            async def handover() -> None:
                # Only a transactional send may take over a mark an interrupted attempt left.
                if not await messages.mark_sending(self._pool, key, again=input.transactional):
                    raise _retry(RuntimeError("another attempt changed this send; re-reading"))

            try:
                sent_id = await send(handover)
            except PermanentSendError as exc:
                await messages.mark_failed(self._pool, key, str(exc))
                if channel == "email" and exc.bounce:
                    await self._bounced(input, contact, kind="hard", error=str(exc))
                raise _refused(exc) from exc
            except UncertainSendError as exc:
                # Stays `sending`: the next attempt applies the rule above.
                raise _retry(exc) from exc
            except TransientSendError as exc:
                await messages.mark_unsent(self._pool, key, str(exc))
                if channel == "email" and exc.bounce:
                    if await self._bounced(input, contact, kind="soft", error=str(exc)):
                        await messages.mark_failed(self._pool, key, str(exc))
                        raise _refused(exc) from exc
                raise _retry(exc) from exc
            crash_point(AFTER_SMTP_ACCEPTANCE)
            await messages.mark_sent(self._pool, key)
            if channel == "email":
                await contacts.reset_soft_bounces(self._pool, input.contact_id)
            return SendResult(status="sent", message_id=sent_id)

"""Sending a campaign, one page of the audience per activity.

Each recipient's email is claimed in `messages` under a campaign-scoped key before it is sent,
so a page retried after a crash (or a killed worker) sends only what had not gone out: exactly
one email per recipient, as the ledger records it.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from journeys import changes
from journeys.channels.email import (
    EmailSender,
    PermanentSendError,
    TransientSendError,
    build_message,
    format_sender,
    message_id_for,
)
from journeys.channels.tracking import TrackingConfig, engage, message_ref
from journeys.domain.campaigns import (
    FINISH_CAMPAIGN,
    SEND_CAMPAIGN_PAGE,
    CampaignContent,
    CampaignPageInput,
    CampaignPageResult,
    CampaignProgress,
    FinishCampaignInput,
    campaign_message_key,
    campaign_workflow_id,
)
from journeys.domain.events import IncomingEvent
from journeys.domain.templating import contact_context, render
from journeys.ingest import Ingest
from journeys.store import campaigns, conditions, contacts, messages

# Emails of one page in flight at once (each worker's SMTP connections are shared).
CONCURRENCY = 10
# Recipients rendered and claimed together.
CHUNK = 50


@dataclass(frozen=True)
class _Prepared:
    """One recipient's rendered email and its ledger row."""

    contact: dict[str, Any]
    key: str
    message: EmailMessage
    claim: dict[str, Any]


class CampaignActivities:
    """Sends campaign pages and closes campaigns."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        email: EmailSender,
        *,
        default_from: str,
        ingest: Ingest,
        tracking: TrackingConfig,
        soft_bounce_limit: int = 5,
    ) -> None:
        self._pool = pool
        self._email = email
        self._default_from = default_from
        self._ingest = ingest
        self._tracking = tracking
        self._soft_bounce_limit = soft_bounce_limit

    @activity.defn(name=SEND_CAMPAIGN_PAGE)
    async def send_campaign_page(self, input: CampaignPageInput) -> CampaignPageResult:
        """Sends the campaign to the eligible contacts of one page, at most `rate_per_second`.

        Raises:
            ApplicationError: retryable if some email could not be handed over for now; the
                retry sends only those.
        """
        campaign = await campaigns.get(self._pool, input.campaign_id)
        if campaign is None or campaign["status"] == "cancelled":
            return CampaignPageResult(last_id=None, scanned=0, progress=CampaignProgress())
        content = CampaignContent.model_validate(campaign["content"])
        page = await campaigns.audience_page(
            self._pool, campaign["audience_id"], after=input.after, limit=input.limit
        )
        eligible = [c for c in page if await self._takes(c, content)]
        progress = CampaignProgress(recipients=len(eligible))
        retry: list[str] = []
        loop = asyncio.get_running_loop()
        start, slots = loop.time(), itertools.count()
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(email: _Prepared, status: str) -> None:
            async with gate:
                # Paces the page: email N leaves no earlier than N / rate seconds after start.
                wait = start + next(slots) / input.rate_per_second - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                outcome, sent = await self._send(campaign, email, status)
            # Outside the gate: recording the event does not hold up the next email.
            if sent is not None:
                await self._ingest.event(sent)
            if outcome == "retry":
                retry.append(email.contact["email"])
            else:
                setattr(progress, outcome, getattr(progress, outcome) + 1)
            if activity.in_activity():
                activity.heartbeat(progress.sent)

        # Rendered and claimed a chunk at a time (one statement per chunk), so the first email
        # leaves before the whole page is rendered; each email is marked sent on its own.
        for at in range(0, len(eligible), CHUNK):
            prepared = [self._prepare(campaign, content, c) for c in eligible[at : at + CHUNK]]
            claimed = await messages.claim_many(
                self._pool,
                campaign_id=campaign["id"],
                audience_id=campaign["audience_id"],
                workflow_id=campaign_workflow_id(campaign["id"]),
                rows=[p.claim for p in prepared],
            )
            await asyncio.gather(*(one(email, claimed[email.key]) for email in prepared))
        if retry:
            raise ApplicationError(
                f"{len(retry)} email(s) of the page could not be handed over; retrying them",
                type="TransientSendError",
            )
        return CampaignPageResult(
            last_id=page[-1]["id"] if page else None, scanned=len(page), progress=progress
        )

    async def _takes(self, contact: dict[str, Any], content: CampaignContent) -> bool:
        """Consent first (marketing needs `subscribed`), then the segment."""
        if contact["status"] != "subscribed" or not contact["email"]:
            return False
        if content.segment is None:
            return True
        return await conditions.evaluate(self._pool, contact, content.segment)

    def _prepare(
        self, campaign: dict[str, Any], content: CampaignContent, contact: dict[str, Any]
    ) -> _Prepared:
        """Renders one recipient's email (tracked, unsubscribable) and its ledger row."""
        key = campaign_message_key(campaign["id"], contact["id"])
        ref = message_ref(key)
        tracker = self._tracking.tracker(ref)
        context = contact_context(contact, unsubscribe_url=tracker.unsubscribe_url())
        subject = render(campaign["subject"], context)
        html, text, links = engage(
            html=render(content.html, context, html=True) if content.html else None,
            text=render(content.text, context) if content.text else None,
            tracker=tracker,
            opens=content.tracking.opens,
            clicks=content.tracking.clicks,
            has_unsubscribe=any(
                "unsubscribe_url" in (t or "") for t in (content.html, content.text)
            ),
        )
        default_name, default_address = parseaddr(self._default_from)
        sender = format_sender(
            content.from_name or default_name or None, content.from_email or default_address
        )
        message_id = message_id_for(key, sender)
        message = build_message(
            sender=sender,
            to=contact["email"],
            subject=subject,
            html=html,
            text=text,
            preheader=render(content.preheader, context) if content.preheader else None,
            reply_to=content.reply_to,
            message_id=message_id,
            headers={
                "X-Journeys-Campaign": campaign["id"],
                "List-Unsubscribe": f"<{tracker.unsubscribe_url()}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        )
        claim = {
            "idempotency_key": key,
            "contact_id": contact["id"],
            "recipient": contact["email"],
            "subject": subject,
            "message_id": message_id,
            "ref": ref,
            "links": links,
        }
        return _Prepared(contact=contact, key=key, message=message, claim=claim)

    async def _send(
        self, campaign: dict[str, Any], email: _Prepared, status: str
    ) -> tuple[str, IncomingEvent | None]:
        """Sends one claimed email unless an earlier attempt did.

        Returns:
            The progress field to count, and the `email_sent` event to record if it went out.
        """
        contact, key = email.contact, email.key
        if status == "failed":
            return "failed", None
        if status != "sent":
            try:
                # Once the server has the message, record it even if the activity is being
                # cancelled (worker shutdown): a retry must find it `sent`, not send it again.
                await asyncio.shield(self._deliver(key, email.message))
            except PermanentSendError as exc:
                await messages.mark_failed(self._pool, key, str(exc))
                if exc.bounce:
                    await self._bounced(campaign, contact, key=key, kind="hard", error=str(exc))
                return "failed", None
            except TransientSendError as exc:
                if exc.bounce and await self._bounced(
                    campaign, contact, key=key, kind="soft", error=str(exc)
                ):
                    await messages.mark_failed(self._pool, key, str(exc))
                    return "failed", None
                return "retry", None
            if contact["soft_bounces"]:  # a delivery ends a run of soft bounces
                await contacts.reset_soft_bounces(self._pool, contact["id"])
        return "sent", IncomingEvent(
            type="email_sent",
            audience_id=contact["audience_id"],
            contact_id=contact["id"],
            idempotency_key=f"email_sent:{key}",
            data={"campaign_id": campaign["id"], "message_id": email.claim["message_id"]},
        )

    async def _deliver(self, key: str, message: EmailMessage) -> None:
        await self._email.send(message)
        await messages.mark_sent(self._pool, key)

    async def _bounced(
        self, campaign: dict[str, Any], contact: dict[str, Any], *, key: str, kind: str, error: str
    ) -> bool:
        await messages.mark_bounced(self._pool, key, kind, error)
        attempt = activity.info().attempt if activity.in_activity() else 0
        cleaned, _ = await self._ingest.change(
            lambda conn: changes.bounce(
                conn,
                contact=contact,
                kind=kind,
                email={"campaign_id": campaign["id"]},
                key=f"{key}:{kind}" + (f":{attempt}" if kind == "soft" else ""),
                soft_limit=self._soft_bounce_limit,
            )
        )
        return cleaned

    @activity.defn(name=FINISH_CAMPAIGN)
    async def finish_campaign(self, input: FinishCampaignInput) -> None:
        """Records how the send ended (`sent` or `cancelled`), or that it started (`sending`)."""
        await campaigns.set_status(
            self._pool,
            input.campaign_id,
            input.status,
            only_from=("scheduled", "sending", "paused"),
        )

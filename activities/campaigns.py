"""Sending a campaign, one page of the audience per activity.

Each recipient's email is claimed in `messages` under a campaign-scoped key before it is sent,
so a page retried after a crash (or a killed worker) sends only what had not gone out: exactly
one email per recipient, as the ledger records it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.bounces import record_bounce
from activities.faults import AFTER_SMTP_ACCEPTANCE, crash_point
from activities.heartbeat import heartbeating
from activities.send_marks import LedgerMarks
from journeys.channels.assembly import Engagement, assemble
from journeys.channels.email import (
    EmailSender,
    OutgoingEmail,
    PermanentSendError,
    TransientSendError,
    UncertainSendError,
    message_id_for,
    resolve_sender,
)
from journeys.channels.tracking import TrackingConfig, message_ref
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

# Emails of one page in flight at once when the SMTP client keeps no connections open; with a
# connection pool, one sender ("lane") per pooled connection, so no send opens a connection of
# its own.
CONCURRENCY = 10
# Recipients rendered and claimed together (one statement), and whose `email_sent` events are
# recorded together.
CHUNK = 50
# Recipients rendered between two chances for the lanes to run (a render is CPU only).
_YIELD_EVERY = 10


@dataclass(frozen=True)
class _Prepared:
    """One recipient's assembled email and its ledger row."""

    contact: dict[str, Any]
    key: str
    email: OutgoingEmail
    claim: dict[str, Any]


class _Pace:
    """Email N of a page leaves no earlier than N / rate seconds after the page started."""

    def __init__(self, rate_per_second: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._start = self._loop.time()
        self._slots = itertools.count()
        self._rate = rate_per_second

    async def wait(self) -> None:
        delay = self._start + next(self._slots) / self._rate - self._loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # the rate limit


async def _finish_even_if_cancelled(step: Awaitable[None]) -> None:
    """Runs `step` to its end even if the activity is cancelled meanwhile (worker shutdown).

    Once the server has a message, its `sent` mark must be recorded: a retry must find it
    `sent`, not send it again. The caller's connection stays in use until then.
    """
    task = asyncio.ensure_future(step)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise


async def _together(steps: list[Coroutine[Any, Any, None]]) -> None:
    """Runs the steps at once; if one fails (or the caller is cancelled), cancels the others,
    waits for them to end, and raises that failure as it is (no exception group: the retry
    policy and the logs see the real error)."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()  # a no-op for the finished ones
        await asyncio.wait(tasks)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


class _Taken(Exception):
    """Another attempt changed this email's ledger row since it was claimed."""


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

        Each email is claimed in the ledger (a chunk per statement), marked `sending` just
        before the server gets it and `sent` once it took it. An email a killed attempt left
        `sending` is not sent again (it may have arrived: at most once, as for every marketing
        email) but recorded `uncertain`.

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
        pace = _Pace(input.rate_per_second)
        # One lane per pooled SMTP connection, so no send opens a connection of its own. Lanes
        # hold no database connection: their ledger marks go through one (`LedgerMarks`).
        lanes = max(1, self._email.pool_size or CONCURRENCY)
        # Claimed recipients waiting for a lane; the producer stays a chunk or two ahead.
        queue: asyncio.Queue[tuple[_Prepared, str] | None] = asyncio.Queue(maxsize=2 * CHUNK)
        events: list[IncomingEvent] = []

        async def produce() -> None:
            # Assembled and claimed a chunk at a time, so the first email leaves before the
            # whole page is rendered, and the lanes send one chunk while the next is prepared.
            at = 0
            while at < len(eligible):
                # Small chunks first, so the lanes start after a few renders, not fifty.
                size = min(CHUNK, max(lanes, at))
                prepared = []
                for contact in eligible[at : at + size]:
                    prepared.append(self._prepare(campaign, content, contact))
                    if len(prepared) % _YIELD_EVERY == 0:
                        await asyncio.sleep(0)  # let the lanes run between renders
                statuses = await messages.claim_many(
                    self._pool,
                    campaign_id=campaign["id"],
                    audience_id=campaign["audience_id"],
                    workflow_id=campaign_workflow_id(campaign["id"]),
                    rows=[p.claim for p in prepared],
                )
                for email in prepared:
                    await queue.put((email, statuses[email.key]))
                at += size
            for _ in range(lanes):
                await queue.put(None)

        async def record(marks: LedgerMarks, *, least: int) -> None:
            # `email_sent` events in one statement once `least` gathered; flows they trigger
            # or arm (`campaign_unopened`) hear of them as of one event each. The ledger says
            # `sent` first, as it did when each email was marked on its own.
            if len(events) < max(least, 1):
                return
            batch = events[:]
            events.clear()
            await marks.flush()
            await self._ingest.events(batch)
            if activity.in_activity():
                activity.heartbeat(progress.sent)

        async def lane(marks: LedgerMarks) -> None:
            while (item := await queue.get()) is not None:
                email, status = item
                await pace.wait()
                outcome, event = await self._send(marks, campaign, email, status)
                if event is not None:
                    events.append(event)
                if outcome == "retry":
                    retry.append(email.contact["email"])
                else:
                    setattr(progress, outcome, getattr(progress, outcome) + 1)
                await record(marks, least=CHUNK)

        async with heartbeating(), LedgerMarks.held(self._pool) as marks:
            try:
                await _together([produce(), *(lane(marks) for _ in range(lanes))])
            finally:
                # Marks of emails the server took are stored even if the activity is being
                # cancelled (worker shutdown): a retry must find them `sent`.
                await _finish_even_if_cancelled(marks.flush())
            await record(marks, least=1)
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
        """Renders and assembles one recipient's email (tracked, unsubscribable) and its
        ledger row."""
        key = campaign_message_key(campaign["id"], contact["id"])
        ref = message_ref(key)
        tracker = self._tracking.tracker(ref)
        context = contact_context(contact, unsubscribe_url=tracker.unsubscribe_url())
        sender = resolve_sender(content.from_name, content.from_email, self._default_from)
        email = assemble(
            sender=sender,
            to=contact["email"],
            subject=render(campaign["subject"], context),
            html=render(content.html, context, html=True) if content.html else None,
            text=render(content.text, context) if content.text else None,
            preheader=render(content.preheader, context) if content.preheader else None,
            reply_to=content.reply_to,
            message_id=message_id_for(key, sender),
            headers={"X-Journeys-Campaign": campaign["id"]},
            engagement=Engagement.of(
                tracker,
                opens=content.tracking.opens,
                clicks=content.tracking.clicks,
                templates=(content.html, content.text),
            ),
        )
        claim = {
            "idempotency_key": key,
            "contact_id": contact["id"],
            "recipient": contact["email"],
            "subject": email.subject,
            "message_id": email.message_id,
            "ref": ref,
            "links": email.links,
        }
        return _Prepared(contact=contact, key=key, email=email, claim=claim)

    async def _send(
        self, marks: LedgerMarks, campaign: dict[str, Any], email: _Prepared, status: str
    ) -> tuple[str, IncomingEvent | None]:
        """Sends one claimed email unless an earlier attempt did (or may have).

        Returns:
            The progress field to count, and the `email_sent` event to record if it went out
            (or, `uncertain`, was handed over by an attempt that died before the answer).
        """
        contact, key = email.contact, email.key
        if status == "failed":
            return "failed", None
        if status == "sending":
            # An attempt died between handing this email over and recording the answer.
            if not await messages.mark_uncertain(
                self._pool, key, "an attempt was interrupted after handing the message over"
            ):
                return "retry", None  # that attempt was alive after all: read the row again
            status = "uncertain"
        if status == "pending":
            try:
                await _finish_even_if_cancelled(self._deliver(marks, key, email.email))
            except PermanentSendError as exc:
                await messages.mark_failed(self._pool, key, str(exc))
                if exc.bounce:
                    await self._bounced(campaign, contact, key=key, kind="hard", error=str(exc))
                return "failed", None
            except UncertainSendError:
                return "retry", None  # stays `sending`: the retry records it `uncertain`
            except TransientSendError as exc:
                await messages.mark_unsent(self._pool, key, str(exc))
                if exc.bounce and await self._bounced(
                    campaign, contact, key=key, kind="soft", error=str(exc)
                ):
                    await messages.mark_failed(self._pool, key, str(exc))
                    return "failed", None
                return "retry", None
            except _Taken:
                return "retry", None
            if contact["soft_bounces"]:  # a delivery ends a run of soft bounces
                await contacts.reset_soft_bounces(self._pool, contact["id"])
            status = "sent"
        data: dict[str, Any] = {"campaign_id": campaign["id"], "message_id": email.email.message_id}
        if status == "uncertain":
            # Most likely delivered: flows that follow the campaign (`campaign_unopened`)
            # still hear of it, marked so they can tell.
            data["uncertain"] = True
        return status, IncomingEvent(
            type="email_sent",
            audience_id=contact["audience_id"],
            contact_id=contact["id"],
            idempotency_key=f"email_sent:{key}",
            data=data,
        )

    async def _deliver(self, marks: LedgerMarks, key: str, email: OutgoingEmail) -> None:
        async def handover() -> None:
            if not await marks.sending(key):
                raise _Taken(key)

        await self._email.send(email, on_handover=handover)
        crash_point(AFTER_SMTP_ACCEPTANCE)
        marks.sent(key)

    async def _bounced(
        self, campaign: dict[str, Any], contact: dict[str, Any], *, key: str, kind: str, error: str
    ) -> bool:
        attempt = activity.info().attempt if activity.in_activity() else 0
        return await record_bounce(
            self._pool,
            self._ingest,
            contact,
            message_key=key,
            event_key=f"{key}:{kind}" + (f":{attempt}" if kind == "soft" else ""),
            kind=kind,
            error=error,
            email={"campaign_id": campaign["id"]},
            soft_limit=self._soft_bounce_limit,
        )

    @activity.defn(name=FINISH_CAMPAIGN)
    async def finish_campaign(self, input: FinishCampaignInput) -> None:
        """Records how the send ended (`sent` or `cancelled`), or that it started (`sending`)."""
        await campaigns.set_status(
            self._pool,
            input.campaign_id,
            input.status,
            only_from=("scheduled", "sending", "paused"),
        )

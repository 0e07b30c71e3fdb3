"""CampaignSendWorkflow: sends one campaign to its recipients, a page per run.

A durable fan-out: an optional timer until `send_at`, then one activity per page of the audience
(which claims each recipient's email in the ledger before sending it), continuing as new after
every `PAGES_PER_RUN` pages so the history stays small however large the audience. Pause,
resume and cancel arrive as signals and take effect between pages.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from journeys.domain.campaigns import (
        CAMPAIGN_CONTROL_SIGNAL,
        CAMPAIGN_WORKFLOW_NAME,
        FINISH_CAMPAIGN,
        SEND_CAMPAIGN_PAGE,
        CampaignControl,
        CampaignPageInput,
        CampaignPageResult,
        CampaignProgress,
        CampaignSendInput,
        FinishCampaignInput,
    )

_BOOKKEEPING = RetryPolicy(maximum_interval=timedelta(minutes=1))
# A mail server may be down for hours: keep trying the page (sent emails are never resent).
_PAGE = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=10))
# Pages sent by one run before it continues as new: about six history events each.
PAGES_PER_RUN = 100
_PAGES_PER_RUN_PATCH = "campaign-pages-per-run"


@workflow.defn(name=CAMPAIGN_WORKFLOW_NAME)
class CampaignSendWorkflow:
    """Pages through the campaign's audience, sending each page at the campaign's rate."""

    @workflow.init
    def __init__(self, input: CampaignSendInput) -> None:
        self._paused = input.paused
        self._cancelled = False
        self._progress = input.progress.model_copy()

    @workflow.signal(name=CAMPAIGN_CONTROL_SIGNAL)
    def control(self, control: CampaignControl) -> None:
        """Pause, resume or cancel (between pages)."""
        if control.action == "cancel":
            self._cancelled = True
        else:
            self._paused = control.action == "pause"
        self._describe()

    @workflow.query
    def progress(self) -> CampaignProgress:
        """Counts so far."""
        return self._progress

    def _describe(self, extra: str = "") -> None:
        p = self._progress
        state = "cancelled" if self._cancelled else "paused" if self._paused else "sending"
        workflow.set_current_details(
            f"Campaign {state}: {p.sent} sent, {p.failed} failed of {p.recipients} recipients"
            f" so far.{extra}"
        )

    async def _finish(self, input: CampaignSendInput, status: str) -> None:
        await workflow.execute_activity(
            FINISH_CAMPAIGN,
            FinishCampaignInput(campaign_id=input.campaign_id, status=status),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_BOOKKEEPING,
        )

    @workflow.run
    async def run(self, input: CampaignSendInput) -> CampaignProgress:
        """Returns the final counts."""
        if input.send_at is not None:
            delay = input.send_at - workflow.now()
            if delay > timedelta(0):
                workflow.set_current_details(f"Scheduled: sends at {input.send_at.isoformat()}.")
                try:
                    await workflow.wait_condition(lambda: self._cancelled, timeout=delay)
                except TimeoutError:
                    pass
            if not self._cancelled:
                await self._finish(input, "sending")
        after = input.after
        for pages in itertools.count(1):
            self._describe()
            await workflow.wait_condition(lambda: not self._paused or self._cancelled)
            if self._cancelled:
                await self._finish(input, "cancelled")
                self._describe()
                return self._progress
            page = await self._page(input, after)
            for name in ("recipients", "sent", "skipped", "failed", "uncertain"):
                setattr(
                    self._progress,
                    name,
                    getattr(self._progress, name) + getattr(page.progress, name),
                )
            self._describe()
            if self._cancelled:
                await self._finish(input, "cancelled")
                return self._progress
            if page.last_id is None or page.scanned < input.batch_size:
                await self._finish(input, "sent")
                return self._progress
            after = page.last_id
            # Several pages per run: the server holds back a run that continued as new less
            # than a second after it started (`ContinueAsNewMinInterval`), which cost a second
            # per fast page. Runs that began before this change continue after every page.
            if (
                not workflow.patched(_PAGES_PER_RUN_PATCH)
                or pages >= PAGES_PER_RUN
                or workflow.info().is_continue_as_new_suggested()
            ):
                break
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            input.model_copy(
                update={
                    "after": after,
                    "send_at": None,
                    "paused": self._paused,
                    "progress": self._progress,
                }
            )
        )

    async def _page(self, input: CampaignSendInput, after: str) -> CampaignPageResult:
        """Sends the page of the audience after `after`."""
        page: CampaignPageResult = await workflow.execute_activity(
            SEND_CAMPAIGN_PAGE,
            CampaignPageInput(
                campaign_id=input.campaign_id,
                after=after,
                limit=input.batch_size,
                rate_per_second=input.rate_per_second,
            ),
            result_type=CampaignPageResult,
            start_to_close_timeout=timedelta(
                seconds=120 + input.batch_size / input.rate_per_second
            ),
            # A killed worker's page is retried this soon (the page heartbeats all along).
            heartbeat_timeout=timedelta(seconds=10),
            retry_policy=_PAGE,
            summary=f"page after {after or 'the start'}",
        )
        return page

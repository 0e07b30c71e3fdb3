"""Arming a flow's audience on activation, one page of contacts per activity."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from temporalio import activity

from activities.timers import contact_moment
from journeys.dispatch import Arming
from journeys.domain.firing import FireAt
from journeys.domain.runs import ActivityName, ArmPageInput, ArmPageResult, FireMoment, FlowEvent
from journeys.domain.timers import date_field
from journeys.local_time import pick_zone
from journeys.registry import ActiveFlow
from journeys.store import arming, audiences, flows, orders
from journeys.wiring import Core

# Starts in flight at once per page: enough to keep Temporal busy, few enough to leave room
# for the gateway's own traffic on the same cluster.
_CONCURRENCY = 16
# Between heartbeats of a page (well inside `workflows.arm_flow.PAGE_HEARTBEAT`).
_BEAT_SECONDS = 3.0


class ArmingActivities:
    """Starts the armed runs of a flow's existing contacts (see `ArmFlowWorkflow`)."""

    def __init__(self, core: Core) -> None:
        self._core = core

    @activity.defn(name=ActivityName.ARM_PAGE)
    async def arm_page(self, input: ArmPageInput) -> ArmPageResult:
        """Arms the eligible contacts of one page; idempotent (a repeat re-signals the same
        runs with the same event ids, which they ignore).

        Heartbeats while it works, so a worker killed mid-page is noticed within the workflow's
        heartbeat timeout. The beat comes from its own task, not from each start: on a loaded
        machine a few slow starts must not look like a dead worker (and cancel the page).
        """
        beat = asyncio.create_task(_heartbeat())
        try:
            return await self._arm_page(input)
        finally:
            beat.cancel()

    async def _arm_page(self, input: ArmPageInput) -> ArmPageResult:
        pool = self._core.pool
        row = await flows.get(pool, input.flow_id)
        if row is None or row["status"] != "active":
            status = row["status"] if row else "deleted"
            return ArmPageResult(armed=0, skipped=0, last=None, total=input.total, stopped=status)
        flow = ActiveFlow.from_row(row)
        trigger = next(t for t in flow.definition.triggers if t.type == input.trigger_type)
        total = input.total or await arming.count(pool, flow.audience_id)
        page = await arming.page(pool, flow.audience_id, after=input.after, limit=input.limit)
        lapse = input.trigger_type == "time_since_last_purchase"
        last_orders = await orders.last_placed(pool, [c["id"] for c in page]) if lapse else {}
        audience = await audiences.get(pool, flow.audience_id)
        audience_zone = audience["timezone"] if audience else None
        basis = flow.definition.settings.timezone_basis
        now = datetime.now(UTC)
        arms: list[Arming] = []
        for contact in page:
            if contact["status"] != "subscribed":
                continue
            fires = None
            if lapse:
                if contact["id"] not in last_orders:
                    continue
                at, kind = last_orders[contact["id"]], "order_placed"
            else:
                name = date_field(trigger)
                value = contact.get(name) if name in contact else contact["fields"].get(name)
                if value in (None, ""):
                    continue
                at, kind = now, "armed"
                # The run starts on its timer: computed here, the run needs no read of its own.
                zone = pick_zone(contact, audience_zone, basis=basis)
                moment = contact_moment(trigger, contact, zone=zone, now=now, after=None)
                if isinstance(moment, FireAt):
                    fires = FireMoment(at=moment.utc, described=moment.describe())
            event = FlowEvent(
                id=f"arm:{input.activation}:{contact['id']}",
                type=kind,
                occurred_at=at,
                data={"activation": input.activation},
            )
            arms.append(Arming(contact["id"], event, fires))
        enrolments = await self._core.ingest.arm_many(
            flow, trigger.type, arms, concurrency=_CONCURRENCY
        )
        results = [e.outcome != "refused" for e in enrolments]
        results += [False] * (len(page) - len(arms))
        armed = sum(results)
        skipped = len(results) - armed
        done = len(page) < input.limit
        await arming.progress(
            pool,
            input.flow_id,
            total=total,
            armed=input.armed + armed,
            skipped=input.skipped + skipped,
            done=done,
        )
        return ArmPageResult(
            armed=armed, skipped=skipped, last=page[-1]["id"] if page else None, total=total
        )


async def _heartbeat() -> None:
    """Tells Temporal the activity is alive until cancelled (the SDK throttles the sends)."""
    while True:
        activity.heartbeat()
        await asyncio.sleep(_BEAT_SECONDS)

"""From a stored event to Temporal: start or signal every contact run the event concerns."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from journeys.domain import search
from journeys.domain.durations import parse_duration
from journeys.domain.events import IncomingEvent
from journeys.domain.reentry import admits
from journeys.domain.runs import (
    EVENT_SIGNAL,
    WORKFLOW_NAME,
    ContactFlowInput,
    FlowEvent,
    Phase,
    RunLimits,
    workflow_id,
)
from journeys.registry import ActiveFlow, FlowRegistry
from journeys.store import armed, enrollments, events

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Enrolment:
    """One flow the event enrolled (or tried to enrol) the contact into."""

    flow_id: str
    workflow_id: str
    outcome: str  # "started" | "already_in_flow" | "refused"
    reason: str | None = None


@dataclass
class DispatchResult:
    event_id: str
    duplicate: bool
    enrolments: list[Enrolment] = field(default_factory=list)
    signalled: int = 0


class Dispatcher:
    """Records events and starts or signals the contact-flow workflows they concern."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        client: Client,
        registry: FlowRegistry,
        *,
        task_queue: str,
        limits: RunLimits | None = None,
    ) -> None:
        self._pool = pool
        self._limits = limits or RunLimits()
        self._client = client
        self._registry = registry
        self._task_queue = task_queue

    async def deliver(self, event: IncomingEvent, stored: dict[str, Any]) -> DispatchResult:
        """Enrols the contact in every flow the stored event triggers and tells its open runs.

        Returns only once Temporal accepted every start and signal, so a 2xx built on it is
        durable. A repeated delivery of a dispatched event does nothing; of an undispatched one
        (the first attempt failed half-way) finishes the job, and workflows drop the repeated
        signal by event id.
        """
        if stored["dispatched_at"] is not None:
            return DispatchResult(event_id=stored["id"], duplicate=True)
        signal = FlowEvent(
            id=stored["id"], type=event.type, occurred_at=stored["occurred_at"], data=event.data
        )
        matches = self._registry.matching(event, stored["occurred_at"])
        timers = self._registry.timers(event, stored["occurred_at"])
        enrolments = await asyncio.gather(
            *(
                self._enrol(flow, trigger.type, event.contact_id, signal)
                for flow, trigger in matches
            ),
            *(
                self.arm(flow, trigger.type, event.contact_id, signal)
                for flow, trigger, effect in timers
                if effect == "arm"
            ),
        )
        # An armed contact whose timer an event takes down (the cart was bought) is told, if
        # it is armed; nobody is armed by it.
        disarmed = [
            workflow_id(flow.id, event.contact_id)
            for flow, _, effect in timers
            if effect == "disarm"
        ]
        # Runs already under way hear the events they react to (exit goals, waits).
        started = {e.workflow_id for e in enrolments if e.outcome != "refused"} | set(disarmed)
        others = [
            run["workflow_id"]
            for run in await enrollments.running_for_contact(self._pool, event.contact_id)
            if run["workflow_id"] not in started
            and await self._registry.cares(run["flow_id"], run["version"], event.type)
        ]
        await asyncio.gather(*(self._signal(wf_id, signal) for wf_id in [*others, *disarmed]))
        await events.mark_dispatched(self._pool, stored["id"])
        return DispatchResult(
            event_id=stored["id"],
            duplicate=False,
            enrolments=list(enrolments),
            signalled=len(others),
        )

    def triggers_any(self, event: IncomingEvent, at: datetime) -> bool:
        """Whether an active flow would enrol the event's contact (an in-memory check)."""
        return bool(self._registry.matching(event, at))

    async def deliver_to(
        self, flow: ActiveFlow, event: IncomingEvent, stored: dict[str, Any]
    ) -> Enrolment:
        """Enrols the contact of a stored event addressed to one flow (manual add, flow API)."""
        wf_id = workflow_id(flow.id, event.contact_id)
        if stored["dispatched_at"] is not None:
            return Enrolment(flow.id, wf_id, "already_in_flow", "this request was already handled")
        signal = FlowEvent(
            id=stored["id"], type=event.type, occurred_at=stored["occurred_at"], data=event.data
        )
        enrolment = await self._enrol(flow, event.type, event.contact_id, signal)
        await events.mark_dispatched(self._pool, stored["id"])
        return enrolment

    async def _signal(self, wf_id: str, signal: FlowEvent) -> None:
        try:
            await self._client.get_workflow_handle(wf_id).signal(EVENT_SIGNAL, signal)
        except RPCError as err:
            # The run ended between the query and the signal: nothing to tell it any more.
            if err.status != RPCStatusCode.NOT_FOUND:
                raise

    async def arm(
        self, flow: ActiveFlow, trigger_type: str, contact_id: str, signal: FlowEvent
    ) -> Enrolment:
        """Starts (or moves) the contact's armed run of a timer trigger."""
        await armed.remember(
            self._pool,
            flow_id=flow.id,
            contact_id=contact_id,
            workflow_id=workflow_id(flow.id, contact_id),
        )
        return await self._enrol(flow, trigger_type, contact_id, signal)

    async def _enrol(
        self, flow: ActiveFlow, trigger_type: str, contact_id: str, signal: FlowEvent
    ) -> Enrolment:
        wf_id = workflow_id(flow.id, contact_id)
        last = await enrollments.last(self._pool, flow.id, contact_id)
        running = bool(last and last["status"] == "running")
        # A yearly run re-arms itself after each journey: its open run takes the event.
        yearly = any(t.yearly for t in flow.definition.triggers if t.type == trigger_type)
        if last and not running and not yearly:
            # Cheap pre-check so a refused contact starts no run; the workflow re-checks.
            reentry = flow.definition.settings.reentry
            refusal = admits(
                last_started_at=last["started_at"],
                allowed=reentry.allowed,
                min_interval=parse_duration(reentry.min_interval) if reentry.min_interval else None,
                now=datetime.now(UTC),
            )
            if refusal:
                return Enrolment(flow.id, wf_id, "refused", refusal)
        await self._client.start_workflow(
            WORKFLOW_NAME,
            ContactFlowInput(
                flow_id=flow.id,
                version=flow.version,
                definition=flow.definition,
                contact_id=contact_id,
                audience_id=flow.audience_id,
                trigger_type=trigger_type,
                limits=self._limits,
            ),
            id=wf_id,
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal=EVENT_SIGNAL,
            start_signal_args=[signal],
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(search.FLOW_ID, flow.id),
                    SearchAttributePair(search.FLOW_NAME, flow.definition.name),
                    SearchAttributePair(search.CONTACT_ID, contact_id),
                    SearchAttributePair(search.AUDIENCE_ID, flow.audience_id),
                    SearchAttributePair(search.TRIGGER_TYPE, trigger_type),
                    SearchAttributePair(search.JOURNEY_PHASE, Phase.ENTERING.value),
                ]
            ),
            static_summary=f"{flow.definition.name} (v{flow.version})",
        )
        return Enrolment(flow.id, wf_id, "already_in_flow" if running else "started")

    def concerns(self, event: IncomingEvent, at: datetime) -> bool:
        """Whether an active flow would enrol, arm or disarm on the event (an in-memory check).

        Unlike `triggers_any`, timer triggers count: an `email_sent` arms `campaign_unopened`.
        """
        return bool(self._registry.matching(event, at) or self._registry.timers(event, at))

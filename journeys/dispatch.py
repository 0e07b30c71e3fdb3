"""From a stored event to Temporal: start or signal every contact run the event concerns."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from pydantic_core import to_json
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.common import (
    RawValue,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from journeys.domain import search
from journeys.domain.durations import parse_duration
from journeys.domain.events import IncomingEvent
from journeys.domain.reentry import NO_MARKETING, admits
from journeys.domain.runs import (
    EVENT_SIGNAL,
    WORKFLOW_NAME,
    ContactFlowInput,
    FireMoment,
    FlowEvent,
    Phase,
    RunLimits,
    RunState,
    workflow_id,
)
from journeys.registry import ActiveFlow, FlowRegistry
from journeys.store import armed, conditions, contacts, enrollments

log = logging.getLogger(__name__)

_JSON_PLAIN = b"json/plain"  # the encoding of the client's (pydantic) JSON payloads

# Signals in flight at once when many runs hear the same thing (an audience's zone moved).
_TELL_CONCURRENCY = 16


@dataclass(frozen=True)
class Enrolment:
    """One flow the event enrolled (or tried to enrol) the contact into."""

    flow_id: str
    workflow_id: str
    outcome: str  # "started" | "already_in_flow" | "refused"
    reason: str | None = None


@dataclass(frozen=True)
class Arming:
    """One contact of an arming page: the event that arms it and, if known, its moment."""

    contact_id: str
    signal: FlowEvent
    fires: FireMoment | None = None


@dataclass
class DispatchResult:
    event_id: str
    duplicate: bool
    enrolments: list[Enrolment] = field(default_factory=list)
    signalled: int = 0


def start_input(flow: ActiveFlow, input: ContactFlowInput) -> RawValue:
    """The run's start input as the payload the client's converter would make of it, with the
    definition's JSON serialised once per flow version instead of once per start.

    The JSON is what `temporalio.contrib.pydantic` writes (`pydantic_core.to_json`) with the
    definition's bytes spliced in; the worker decodes it into a `ContactFlowInput` as ever.
    """
    head = to_json(input, exclude={"definition"})
    return RawValue(
        Payload(
            metadata={"encoding": _JSON_PLAIN},
            data=head[:-1] + b',"definition":' + flow.definition_json + b"}",
        )
    )


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
        (the first attempt failed half-way) finishes the job: an entry it recorded is started
        (a duplicate start is absorbed by the workflow id), and workflows drop a repeated
        signal by event id.
        """
        if stored["dispatched_at"] is not None:
            return DispatchResult(event_id=stored["id"], duplicate=True)
        signal = FlowEvent(
            id=stored["id"], type=event.type, occurred_at=stored["occurred_at"], data=event.data
        )
        # One entry per flow, even if two of its triggers match (both would take one entry).
        matches, seen = [], set()
        for flow, trigger in self._registry.matching(event, stored["occurred_at"]):
            if flow.id not in seen:
                seen.add(flow.id)
                matches.append((flow, trigger))
        timers = self._registry.timers(event, stored["occurred_at"])
        # One statement: the plain entries decided and recorded, and what the others need (the
        # contact's consent, its last entry into each matched flow, its open runs).
        context = await enrollments.entry_context(
            self._pool,
            event.contact_id,
            stored["id"],
            [self._candidate(flow, trigger.type, event.contact_id) for flow, trigger in matches],
            # An event that enrols and disarms nobody, of a contact in no flow, is done here.
            settle_if_idle=not matches and not timers,
        )
        if context["settled"]:
            return DispatchResult(event_id=stored["id"], duplicate=False)
        decided = await asyncio.gather(
            *(
                self._enter(flow, trigger.type, event.contact_id, signal, context)
                for flow, trigger in matches
            ),
            *(
                self._arm(flow, trigger.type, event.contact_id, signal)
                for flow, trigger, effect in timers
                if effect == "arm"
            ),
        )
        enrolments = [enrolment for enrolment, _ in decided]
        # An armed contact whose timer an event takes down (the cart was bought) is told, if
        # it is armed; nobody is armed by it.
        disarmed = [
            workflow_id(flow.id, event.contact_id)
            for flow, _, effect in timers
            if effect == "disarm"
        ]
        # Runs already under way hear the events they react to (exit goals, waits), judged by
        # the version each entered with.
        started = {e.workflow_id for e in enrolments if e.outcome != "refused"} | set(disarmed)
        others = [
            run["workflow_id"]
            for run in context["running"]
            if run["workflow_id"] not in started
            and await self._registry.cares(run["flow_id"], run["version"], event.type)
        ]
        await asyncio.gather(*(self._signal(wf_id, signal) for wf_id in [*others, *disarmed]))
        await enrollments.started(
            self._pool,
            event_id=stored["id"],
            contact_id=event.contact_id,
            runs=[run for _, run in decided if run is not None],
        )
        return DispatchResult(
            event_id=stored["id"],
            duplicate=False,
            enrolments=enrolments,
            signalled=len(others),
        )

    def concerns_any(self, event: IncomingEvent, at: datetime) -> bool:
        """Whether an active flow enrols, arms or disarms the event's contact (in memory)."""
        return bool(self._registry.matching(event, at) or self._registry.timers(event, at))

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
        context = await enrollments.entry_context(
            self._pool,
            event.contact_id,
            stored["id"],
            [self._candidate(flow, event.type, event.contact_id)],
        )
        enrolment, run = await self._enter(flow, event.type, event.contact_id, signal, context)
        await enrollments.started(
            self._pool,
            event_id=stored["id"],
            contact_id=event.contact_id,
            runs=[run] if run is not None else [],
        )
        return enrolment

    async def _signal(self, wf_id: str, signal: FlowEvent) -> bool:
        """Signals the run; False if it has ended (nobody to tell)."""
        try:
            await self._client.get_workflow_handle(wf_id).signal(EVENT_SIGNAL, signal)
        except RPCError as err:
            # The run ended between the query and the signal: nothing to tell it any more.
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            return False
        return True

    async def tell(self, workflow_ids: list[str], signal: FlowEvent) -> int:
        """Signals open runs (never starts one), a bounded number at a time.

        Returns:
            How many of them were still open.
        """
        gate = asyncio.Semaphore(_TELL_CONCURRENCY)

        async def one(wf_id: str) -> bool:
            async with gate:
                return await self._signal(wf_id, signal)

        return sum(await asyncio.gather(*(one(wf_id) for wf_id in workflow_ids)))

    async def arm_many(
        self, flow: ActiveFlow, trigger_type: str, arms: list[Arming], *, concurrency: int
    ) -> list[Enrolment]:
        """Starts (or moves) the armed runs of a page of contacts (an activation's arming pass).

        Two statements for the page (note the armed runs, read the last entries), then one
        signal-with-start per contact, `concurrency` at a time. A run started with its moment
        (`Arming.fires`) rests on its timer from its first task, published as armed.
        """
        if not arms:
            return []
        ids = [a.contact_id for a in arms]
        fresh = await armed.remember_many(
            self._pool,
            flow_id=flow.id,
            pairs=[(contact_id, workflow_id(flow.id, contact_id)) for contact_id in ids],
        )
        lasts = await enrollments.last_many(self._pool, flow.id, ids)
        gate = asyncio.Semaphore(concurrency)

        async def one(a: Arming) -> Enrolment:
            async with gate:
                return await self._arm_decided(
                    flow,
                    trigger_type,
                    a.contact_id,
                    a.signal,
                    lasts.get(a.contact_id),
                    a.fires,
                    fresh=a.contact_id in fresh,
                )

        return list(await asyncio.gather(*(one(a) for a in arms)))

    async def _arm(
        self, flow: ActiveFlow, trigger_type: str, contact_id: str, signal: FlowEvent
    ) -> tuple[Enrolment, None]:
        # An armed run enters when its moment comes, so the run itself decides (`begin`).
        fresh = await armed.remember(
            self._pool,
            flow_id=flow.id,
            contact_id=contact_id,
            workflow_id=workflow_id(flow.id, contact_id),
        )
        last = await enrollments.last(self._pool, flow.id, contact_id)
        enrolment = await self._arm_decided(
            flow, trigger_type, contact_id, signal, last, None, fresh=fresh
        )
        return enrolment, None

    async def _arm_decided(
        self,
        flow: ActiveFlow,
        trigger_type: str,
        contact_id: str,
        signal: FlowEvent,
        last: dict[str, Any] | None,
        fires: FireMoment | None,
        *,
        fresh: bool,
    ) -> Enrolment:
        """Starts (or signals) the armed run, unless the re-entry rules refuse the contact.

        A contact never armed in the flow (`fresh`) has no open run: its run is started with
        the arming event in its input, no signal (measured: a quarter more starts per second
        than signal-with-start on the dev server). Should a run hold the id after all (an
        event armed it meanwhile), the event goes to that run by signal-with-start.
        """
        wf_id = workflow_id(flow.id, contact_id)
        running = bool(last and last["status"] == "running")
        # A yearly run re-arms itself after each journey: its open run takes the event.
        yearly = any(t.yearly for t in flow.definition.triggers if t.type == trigger_type)
        if last and not running and not yearly:
            refusal = self._reentry_refusal(flow, last)
            if refusal:
                return Enrolment(flow.id, wf_id, "refused", refusal)
        if not (fresh and await self._start_armed(flow, trigger_type, contact_id, signal, fires)):
            await self._signal_with_start(flow, trigger_type, contact_id, signal, fires=fires)
        return Enrolment(flow.id, wf_id, "already_in_flow" if running else "started")

    async def _start_armed(
        self,
        flow: ActiveFlow,
        trigger_type: str,
        contact_id: str,
        signal: FlowEvent,
        fires: FireMoment | None,
    ) -> bool:
        """Starts an armed run with its arming event in the input, as the run would have
        heard it first by signal (`ContactFlowWorkflow._hear_while_armed`).

        Returns:
            False if an open run already holds the workflow id.
        """
        state = RunState(armed_by=signal, seen=[signal.id], arm_changes=1)
        return await self._start_new(flow, trigger_type, contact_id, state, fires=fires) is not None

    async def _enter(
        self,
        flow: ActiveFlow,
        trigger_type: str,
        contact_id: str,
        signal: FlowEvent,
        context: dict[str, Any],
    ) -> tuple[Enrolment, tuple[str, int, str] | None]:
        """Decides the contact's entry into the flow here and starts its run at the first step.

        The entry is recorded (unique per flow, contact and entry number) before the run
        starts, and the run is started with it, so it begins with its first step: no
        `begin_enrollment` activity. A refusal the runs list shows as a skipped run (consent,
        starting filter) and every case this cannot settle alone (an open run, a lost race) go
        the way they always went: signal-with-start, and the run decides.

        Returns:
            The enrolment, and (flow id, entry, run id) of the run it started, if any.
        """
        wf_id = workflow_id(flow.id, contact_id)
        entry = context["admitted"].get(flow.id)
        if entry is not None:  # recorded by `entry_context`
            return await self._start_admitted(flow, trigger_type, contact_id, signal, entry)
        last = context["last"].get(flow.id)
        if last is not None and last["event_id"] == signal.id:
            # A redelivery (the first attempt died after recording the entry): start it, once.
            if last["status"] != "running":
                return Enrolment(flow.id, wf_id, "already_in_flow"), None
            run = await self._start_entered(flow, trigger_type, contact_id, signal, last["entry"])
            return Enrolment(flow.id, wf_id, "started"), (
                (flow.id, last["entry"], run) if run else None
            )
        if last is not None and last["status"] == "running":
            await self._signal_with_start(flow, trigger_type, contact_id, signal)
            return Enrolment(flow.id, wf_id, "already_in_flow"), None
        if last is not None:
            # A refused contact starts no run (as it always did).
            refusal = self._reentry_refusal(flow, last)
            if refusal:
                return Enrolment(flow.id, wf_id, "refused", refusal), None
        if not await self._consents(flow, contact_id, context["contact_status"]):
            await self._signal_with_start(flow, trigger_type, contact_id, signal)
            return Enrolment(flow.id, wf_id, "started"), None
        entry = (last["entry"] + 1) if last else 1
        admitted = await enrollments.admit(
            self._pool,
            flow_id=flow.id,
            contact_id=contact_id,
            entry=entry,
            version=flow.version,
            workflow_id=wf_id,
            trigger_type=trigger_type,
            event_id=signal.id,
        )
        if not admitted:
            # Another decision took this entry meanwhile: its run takes the event.
            await self._signal_with_start(flow, trigger_type, contact_id, signal)
            return Enrolment(flow.id, wf_id, "already_in_flow"), None
        return await self._start_admitted(flow, trigger_type, contact_id, signal, entry)

    async def _start_admitted(
        self, flow: ActiveFlow, trigger_type: str, contact_id: str, signal: FlowEvent, entry: int
    ) -> tuple[Enrolment, tuple[str, int, str] | None]:
        """Starts the run of an entry recorded for this event, or withdraws the entry."""
        wf_id = workflow_id(flow.id, contact_id)
        run = await self._start_entered(flow, trigger_type, contact_id, signal, entry)
        if run is None:
            # A run still holds the workflow id (it is finishing, or entering on its own): the
            # entry is not this event's to make; the open run takes the event.
            await enrollments.withdraw(
                self._pool, flow_id=flow.id, contact_id=contact_id, entry=entry
            )
            await self._signal_with_start(flow, trigger_type, contact_id, signal)
            return Enrolment(flow.id, wf_id, "already_in_flow"), None
        return Enrolment(flow.id, wf_id, "started"), (flow.id, entry, run)

    async def _consents(self, flow: ActiveFlow, contact_id: str, status: str | None) -> bool:
        """Whether the contact may enter as far as its consent and the starting filter go.

        False sends the decision to the run (`begin_enrollment`), which refuses it visibly.
        """
        if status is None or (status in NO_MARKETING and not flow.definition.transactional):
            return False
        starting_filter = flow.definition.settings.starting_filter
        if starting_filter is None:
            return True
        contact = await contacts.get(self._pool, contact_id)
        return contact is not None and await conditions.evaluate(
            self._pool, contact, starting_filter
        )

    @staticmethod
    def _candidate(flow: ActiveFlow, trigger_type: str, contact_id: str) -> enrollments.Candidate:
        settings = flow.definition.settings
        return enrollments.Candidate(
            flow_id=flow.id,
            version=flow.version,
            workflow_id=workflow_id(flow.id, contact_id),
            trigger_type=trigger_type,
            reentry=settings.reentry.allowed,
            min_interval_seconds=(
                parse_duration(settings.reentry.min_interval).total_seconds()
                if settings.reentry.min_interval
                else None
            ),
            transactional=flow.definition.transactional,
            decidable=settings.starting_filter is None,
        )

    @staticmethod
    def _reentry_refusal(flow: ActiveFlow, last: dict[str, Any]) -> str | None:
        """Why the flow's re-entry rules refuse a new entry after `last`, or None."""
        reentry = flow.definition.settings.reentry
        return admits(
            last_started_at=last["started_at"],
            allowed=reentry.allowed,
            min_interval=parse_duration(reentry.min_interval) if reentry.min_interval else None,
            now=datetime.now(UTC),
        )

    def _input(
        self,
        flow: ActiveFlow,
        trigger_type: str,
        contact_id: str,
        *,
        state: RunState | None = None,
        fires: FireMoment | None = None,
    ) -> ContactFlowInput:
        return ContactFlowInput(
            flow_id=flow.id,
            version=flow.version,
            definition=flow.definition,
            contact_id=contact_id,
            audience_id=flow.audience_id,
            trigger_type=trigger_type,
            limits=self._limits,
            state=state,
            fires=fires,
            enter_locally=True,
            last_send_closes_entry=True,
            last_action_closes_entry=True,
            rearm_off_peak=True,
        )

    def _search_attributes(
        self, flow: ActiveFlow, trigger_type: str, contact_id: str, phase: Phase = Phase.ENTERING
    ) -> TypedSearchAttributes:
        return TypedSearchAttributes(
            [
                SearchAttributePair(search.FLOW_ID, flow.id),
                SearchAttributePair(search.FLOW_NAME, flow.definition.name),
                SearchAttributePair(search.CONTACT_ID, contact_id),
                SearchAttributePair(search.AUDIENCE_ID, flow.audience_id),
                SearchAttributePair(search.TRIGGER_TYPE, trigger_type),
                SearchAttributePair(search.JOURNEY_PHASE, phase.value),
            ]
        )

    async def _start_entered(
        self, flow: ActiveFlow, trigger_type: str, contact_id: str, signal: FlowEvent, entry: int
    ) -> str | None:
        """Starts a run that entered at the gateway, with the event in its input (no signal).

        Returns:
            The new run's id, or None if an open run already holds the workflow id.
        """
        state = RunState(entry=entry, enrolled_by=signal, seen=[signal.id])
        return await self._start_new(flow, trigger_type, contact_id, state)

    async def _start_new(
        self,
        flow: ActiveFlow,
        trigger_type: str,
        contact_id: str,
        state: RunState,
        *,
        fires: FireMoment | None = None,
    ) -> str | None:
        """Starts the contact's run with `state` (what it would have heard by signal), unless an
        open run holds the workflow id; a run started with its moment (`fires`) is published
        as armed.

        Returns:
            The new run's id, or None if an open run already holds the workflow id.
        """
        try:
            handle = await self._client.start_workflow(
                WORKFLOW_NAME,
                start_input(
                    flow, self._input(flow, trigger_type, contact_id, state=state, fires=fires)
                ),
                id=workflow_id(flow.id, contact_id),
                task_queue=self._task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=self._search_attributes(
                    flow, trigger_type, contact_id, Phase.ARMED if fires else Phase.ENTERING
                ),
                static_summary=f"{flow.definition.name} (v{flow.version})",
            )
        except WorkflowAlreadyStartedError:
            return None
        return handle.result_run_id

    async def _signal_with_start(
        self,
        flow: ActiveFlow,
        trigger_type: str,
        contact_id: str,
        signal: FlowEvent,
        *,
        fires: FireMoment | None = None,
    ) -> None:
        """Hands the event to the open run, or starts one that decides its entry itself.

        With `fires`, a new run starts armed at that moment (an open run ignores it and
        recomputes its moment from the event, as it does for any re-arming event).
        """
        await self._client.start_workflow(
            WORKFLOW_NAME,
            start_input(
                flow,
                self._input(flow, trigger_type, contact_id, fires=fires),
            ),
            id=workflow_id(flow.id, contact_id),
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal=EVENT_SIGNAL,
            start_signal_args=[signal],
            search_attributes=self._search_attributes(
                flow, trigger_type, contact_id, Phase.ARMED if fires else Phase.ENTERING
            ),
            static_summary=f"{flow.definition.name} (v{flow.version})",
        )

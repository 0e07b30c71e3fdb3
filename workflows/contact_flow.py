"""ContactFlowWorkflow: one durable run per contact in a flow. Decides; activities do the I/O."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar, assert_never

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from journeys.domain import search, timers, words
    from journeys.domain.conditions import ConditionSet, EmailActivityCondition
    from journeys.domain.durations import parse_duration
    from journeys.domain.events import condition_events, meets_goal
    from journeys.domain.runs import (
        CONTROL_SIGNAL,
        EVENT_SIGNAL,
        WORKFLOW_NAME,
        ActivityName,
        BeginEnrollmentInput,
        BeginEnrollmentResult,
        CheckCartInput,
        CheckCartResult,
        ContactActionInput,
        ContactActionResult,
        ContactFlowInput,
        CurrentFlowInput,
        CurrentFlowResult,
        Delivery,
        EvaluateInput,
        EvaluateResult,
        FinishEnrollmentInput,
        FlowControl,
        FlowEvent,
        NextYear,
        Phase,
        ResolveFireInput,
        ResolveFireResult,
        ResolveWaitInput,
        ResolveWaitResult,
        RunResult,
        RunState,
        RunStatus,
        SendEmailInput,
        SendResult,
        SendSmsInput,
        TimelineEntry,
        WebhookInput,
        WebhookResult,
    )
    from journeys.domain.steps import (
        AddTag,
        AddToGroup,
        Delay,
        Exit,
        IfElse,
        PercentSplit,
        RemoveFromGroup,
        RemoveTag,
        SendEmail,
        SendSms,
        Step,
        Unsubscribe,
        UpdateField,
        WaitForTrigger,
        WaitUntil,
        Webhook,
    )
    from journeys.domain.tree import StepTree
    from journeys.domain.triggers import CampaignUnopened, EmailNotClicked, Trigger

# Entry is decided at the gateway for events that enrol (issue 13): it records the entry and
# starts the run with it in `state`, so such a run begins with its first step. `begin_enrollment`
# is for runs that start without one (armed timer triggers, a refusal the run must show as
# skipped, an id another run held) and for histories recorded before: input-driven, so replay
# takes the same branch as the original run.
# Short database reads run as local activities: inside the workflow task, one marker event
# instead of three activity events and a second task round trip (`finish_enrollment`,
# conditions, local-time waits). `begin_enrollment` stays a regular activity on purpose:
# measured with 1,000 timers firing during a 10,000-contact enrolment flood, running it in the
# first workflow task queued the timers' tasks behind the flood's database work (fire lateness
# p50 89 s, p99 177 s) where a regular activity keeps them on time (p50 14 s, as raw Temporal).

# Phases worth a search-attribute update: where a contact spends time, and how it ended.
_AT_REST = frozenset(
    {Phase.ARMED, Phase.WAITING, Phase.PAUSED, Phase.COMPLETED, Phase.EXITED, Phase.SKIPPED}
)

# Remembered event ids, so a redelivered event is ignored; old ones age out.
_SEEN_EVENTS = 200
_SHORT = timedelta(seconds=30)

_BOOKKEEPING = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
# A mail or SMS provider may be down for hours: keep trying within the run's send bound
# (schedule-to-close), never on a permanent refusal.
_SENDING = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    non_retryable_error_types=["PermanentSendError"],
)
_WEBHOOK = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    maximum_attempts=8,
    non_retryable_error_types=["WebhookRejected"],
)

_Send = TypeVar("_Send", SendEmailInput, SendSmsInput)
ContactAction = AddTag | RemoveTag | UpdateField | AddToGroup | RemoveFromGroup | Unsubscribe


class _Leave(Exception):
    """The contact leaves the flow before its end (exit step, goal reached, archived)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Skip(Exception):
    """The contact does not enter: its armed timer was taken down or will never fire."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _ContinueAsNew(Exception):
    """The history is long: the run goes on in a new run from `step` (None: it re-arms), its
    wait ending at `until`."""

    def __init__(self, step: Step | None, until: datetime | None = None) -> None:
        super().__init__(step.id if step else "armed")
        self.step = step
        self.until = until


@workflow.defn(name=WORKFLOW_NAME)
class ContactFlowWorkflow:
    """Walks one contact through one version of a flow."""

    @workflow.init
    def __init__(self, input: ContactFlowInput) -> None:
        self._input = input
        self._tree = StepTree(input.definition.steps)
        self._state: RunState = input.state or RunState()
        self._phase = Phase.ENTERING
        self._step_id: str | None = self._state.resume_at
        self._details = "Entering the flow."
        # What the starter set: a run started with its moment was published as armed.
        self._published_phase = Phase.ARMED if input.fires else Phase.ENTERING
        self._given_fire = input.fires  # the first wait's moment, if the starter computed it
        self._published_step: str | None = None
        self._fires_at: datetime | None = None
        self._until: datetime | None = None  # the end of the wait under way
        self._entry_closed = False  # the last step's send recorded the entry as completed
        # A timer trigger: the run is armed until its moment comes (`_armed`).
        self._timer: Trigger | None = next(
            (
                t
                for t in input.definition.triggers
                if t.type == input.trigger_type and t.type in timers.TIMER_TRIGGERS
            ),
            None,
        )

    # --- messages ---------------------------------------------------------------------------

    @workflow.signal(name=EVENT_SIGNAL)
    def event(self, event: FlowEvent) -> None:
        """An event about this contact: the first one enrolled it; later ones may end waits."""
        state = self._state
        if event.id in state.seen:
            return
        state.seen = [*state.seen[-(_SEEN_EVENTS - 1) :], event.id]
        if self._timer is not None and state.entry is None:
            self._hear_while_armed(self._timer, event)
            return
        if state.enrolled_by is None:
            state.enrolled_by = event
            return
        state.heard[event.type] = state.heard.get(event.type, 0) + 1
        for goal in self._input.definition.settings.exit_when:
            if state.stop is None and meets_goal(goal, event.type, event.data):
                state.stop = f"reached the exit goal `{goal.type}`"

    @workflow.signal(name=CONTROL_SIGNAL)
    def control(self, control: FlowControl) -> None:
        """The flow was paused, resumed or archived."""
        if control.action == "archived":
            self._state.stop = self._state.stop or "the flow was archived"
            self._state.archived = True
        else:
            self._state.paused = control.action == "paused"

    @workflow.query
    def status(self) -> RunStatus:
        """Where the contact is in the flow, in words and ids."""
        return RunStatus(
            phase=self._phase,
            step_id=self._step_id,
            details=self._details,
            entry=self._state.entry,
            sent=self._state.sent,
            version=self._input.version,
            paused=self._state.paused,
            fires_at=self._fires_at,
            waiting_until=self._until,
            last_fired=self._state.last_fired,
        )

    @workflow.query
    def timeline(self) -> list[TimelineEntry]:
        """The steps entered, in order, with when and how each ended."""
        return self._state.timeline

    # --- the run ----------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: ContactFlowInput) -> RunResult:
        """Enters the contact (if the flow's rules admit it) and walks the steps."""
        state = self._state
        if state.entry is None and self._timer is not None:
            try:
                fired_at = await self._armed(self._timer)
            except _Skip as skip:
                self._enter_phase(Phase.SKIPPED, None, f"Not entered: {skip.reason}.")
                return RunResult(phase=Phase.SKIPPED, entry=None, reason=skip.reason)
            except _Leave as leave:
                self._enter_phase(Phase.EXITED, None, f"Left before entering: {leave.reason}.")
                return RunResult(phase=Phase.EXITED, entry=None, reason=leave.reason)
            except _ContinueAsNew:
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(input.model_copy(update={"state": state, "fires": None}))
            state.last_fired = fired_at
        if state.entry is None:
            begin = await self._begin(input)
            if not begin.admitted:
                self._enter_phase(Phase.SKIPPED, None, f"Not entered: {begin.reason}.")
                return RunResult(phase=Phase.SKIPPED, entry=None, reason=begin.reason)
            state.entry = begin.entry
        step = self._tree.step(state.resume_at) if state.resume_at else self._tree.first
        phase, reason = Phase.COMPLETED, None
        try:
            while step is not None:
                await self._checkpoint(step)
                step = await self._run_step(step)
        except _Leave as leave:
            phase, reason = Phase.EXITED, leave.reason
        except _ContinueAsNew as more:
            await workflow.wait_condition(workflow.all_handlers_finished)
            state.resume_at = more.step.id if more.step else None
            state.wait_until = more.until
            workflow.continue_as_new(input.model_copy(update={"state": state, "fires": None}))
        yearly = self._timer is not None and self._timer.yearly and not state.archived
        # Input-driven (not `workflow.patched`, which upserts a search attribute per run).
        off_peak = yearly and input.rearm_off_peak
        # A yearly run whose journey never came to rest is still published as armed: it stays
        # so while it waits to re-arm (one search-attribute update fewer per contact while a
        # cohort fires); it publishes its end only if it ends after all.
        ended = "Finished the flow." if reason is None else f"Left: {reason}."
        self._enter_phase(
            phase, None, ended, publish=not (off_peak and self._published_phase == Phase.ARMED)
        )
        if not (phase == Phase.COMPLETED and self._entry_closed):
            await workflow.execute_local_activity(
                ActivityName.FINISH_ENROLLMENT,
                FinishEnrollmentInput(
                    flow_id=input.flow_id,
                    contact_id=input.contact_id,
                    entry=state.entry or 0,
                    status=phase,
                    reason=reason,
                ),
                start_to_close_timeout=_SHORT,
                retry_policy=_BOOKKEEPING,
            )
        await workflow.wait_condition(workflow.all_handlers_finished)
        if yearly:
            if off_peak:
                await self._off_peak()
            if not state.archived:
                await self._rearm_next_year(input)  # continues as new, unless the flow ended
            self._enter_phase(phase, None, ended)  # the run ends here after all: publish how
        return RunResult(
            phase=phase,
            entry=state.entry,
            reason=reason,
            steps_done=[entry.step_id for entry in state.timeline],
        )

    # --- armed: a timer trigger waits for its moment ------------------------------------------

    def _hear_while_armed(self, timer: Trigger, event: FlowEvent) -> None:
        """An event before entry moves the armed timer or takes it down (`timers.effect`)."""
        state = self._state
        what = timers.effect(timer, event.type, event.data)
        if state.armed_by is None and state.arm_changes == 0:
            what = what or "arm"  # the event that started the run armed it
        if what == "arm":
            state.armed_by = event
            state.disarmed = None
        elif what == "disarm":
            state.disarmed = timers.disarm_reason(timer, event.type)
        if what is not None:
            state.arm_changes += 1

    async def _armed(self, timer: Trigger) -> datetime:
        """Waits for the timer trigger's moment, moving it as events arrive.

        Returns:
            The moment the trigger fired.

        Raises:
            _Skip: the timer was taken down, or will never fire for this contact.
            _Leave: the flow was archived.
        """
        state = self._state
        after = state.last_fired
        grace = timedelta(seconds=self._input.limits.missed_fire_grace_seconds)
        while True:
            if state.disarmed:
                raise _Skip(state.disarmed)
            changes = state.arm_changes
            at, described = await self._fire_time(timer, after)
            self._fires_at = at
            details = f"Armed: `{timer.type}` fires {described}, {words.then(self._tree.first)}."
            self._enter_phase(Phase.ARMED, None, details)
            moved = await self._hold(
                at,
                summary=f"{timer.type}: fires",
                wake=lambda changes=changes: (  # type: ignore[misc]
                    state.arm_changes != changes or state.paused
                ),
            )
            if state.paused:
                self._enter_phase(
                    Phase.PAUSED, None, f"Paused with the flow: the `{timer.type}` timer holds."
                )
                await workflow.wait_condition(lambda: not state.paused or state.stop is not None)
                if state.stop:
                    raise _Leave(state.stop)
                late = workflow.now() - at
                if late < timedelta(0) or state.arm_changes != changes:
                    continue
                if late <= grace:
                    return await self._fired(timer, at)
                if not timer.yearly:
                    raise _Skip(f"its moment ({words.moment(at)}) passed while the flow was paused")
                after = at  # wait for the next occurrence
                continue
            if not moved:
                return await self._fired(timer, at)

    async def _fire_time(self, timer: Trigger, after: datetime | None) -> tuple[datetime, str]:
        given, self._given_fire = self._given_fire, None
        # The starter's moment holds while nothing but the arming event was heard.
        if given is not None and self._state.arm_changes <= 1:
            return given.at, given.described
        if timer.type in timers.DATE_TRIGGERS:
            resolved: ResolveFireResult = await workflow.execute_local_activity(
                ActivityName.RESOLVE_FIRE,
                ResolveFireInput(
                    trigger=timer,
                    contact_id=self._input.contact_id,
                    audience_id=self._input.audience_id,
                    timezone_basis=self._input.definition.settings.timezone_basis,
                    now=workflow.now(),
                    after=after,
                ),
                result_type=ResolveFireResult,
                start_to_close_timeout=_SHORT,
                retry_policy=_BOOKKEEPING,
            )
            if resolved.at is None:
                raise _Skip(resolved.reason or "the trigger will not fire")
            return resolved.at, resolved.described or words.moment(resolved.at)
        armed_by = self._state.armed_by
        assert armed_by is not None
        at = timers.fires_at(timer, armed_by.occurred_at)
        return at, words.moment(at)

    async def _fired(self, timer: Trigger, at: datetime) -> datetime:
        """The moment came: checks the journey should still run, then enters with the event."""
        state = self._state
        armed_by = state.armed_by
        if timer.type in timers.CART_TRIGGERS and armed_by is not None:
            checked: CheckCartResult = await workflow.execute_local_activity(
                ActivityName.CHECK_CART,
                CheckCartInput(
                    trigger=timer,
                    audience_id=self._input.audience_id,
                    cart_id=str(armed_by.data.get("cart_id", "")),
                ),
                result_type=CheckCartResult,
                start_to_close_timeout=_SHORT,
                retry_policy=_BOOKKEEPING,
            )
            if checked.cart is None:
                raise _Skip(checked.reason or "the cart no longer qualifies")
            armed_by = armed_by.model_copy(update={"data": {**armed_by.data, "cart": checked.cart}})
        if isinstance(timer, (CampaignUnopened, EmailNotClicked)):
            condition = EmailActivityCondition(
                activity="not_opened" if isinstance(timer, CampaignUnopened) else "not_clicked",
                email=timer.email,
            )
            still = await self._evaluate(ConditionSet(conditions=[condition]))
            if not still:
                raise _Skip(timers.disarm_reason(timer, "email_opened"))
        state.enrolled_by = armed_by or state.enrolled_by
        self._fires_at = None
        return at

    async def _off_peak(self) -> None:
        """Waits a random moment (one minute to `yearly_rearm_spread_seconds`) before the
        re-arm, ended early by an archive.

        Contacts sharing a birthday fire together: re-arming each as soon as its journey ends
        (a read, a continue-as-new, the new run's first task) puts that work among the cohort's
        journeys still waiting to run. Spread over the following minutes, it does not delay them.
        """
        state = self._state
        spread = max(self._input.limits.yearly_rearm_spread_seconds, 60.0)
        delay = timedelta(seconds=workflow.random().uniform(60.0, spread))
        self._details = (
            f"{self._details} Re-arms for next year at {words.moment(workflow.now() + delay)}."
        )
        workflow.set_current_details(self._details)
        try:
            await workflow.wait_condition(
                lambda: state.archived, timeout=delay, timeout_summary="re-arms for next year"
            )
        except TimeoutError:
            pass
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def _rearm_next_year(self, input: ContactFlowInput) -> None:
        """A yearly trigger's run re-arms for the next year on the flow's current version.

        The same read computes next year's moment, so the next run starts on its timer,
        published as armed, without a read or a search-attribute update of its own.
        """
        state = self._state
        assert self._timer is not None
        current: CurrentFlowResult = await workflow.execute_local_activity(
            ActivityName.CURRENT_FLOW,
            CurrentFlowInput(
                flow_id=input.flow_id,
                next_year=NextYear(
                    trigger_type=self._timer.type,
                    contact_id=input.contact_id,
                    audience_id=input.audience_id,
                    after=state.last_fired or workflow.now(),
                ),
            ),
            result_type=CurrentFlowResult,
            start_to_close_timeout=_SHORT,
            retry_policy=_BOOKKEEPING,
        )
        if current.status not in ("active", "paused") or current.definition is None:
            return
        attributes = None
        if current.fires is not None:
            attributes = workflow.info().typed_search_attributes.updated(
                SearchAttributePair(search.JOURNEY_PHASE, Phase.ARMED.value)
            )
        workflow.continue_as_new(
            input.model_copy(
                update={
                    "version": current.version,
                    "definition": current.definition,
                    "fires": current.fires,
                    "enter_locally": True,
                    "last_send_closes_entry": True,
                    "last_action_closes_entry": True,
                    "rearm_off_peak": True,
                    "state": RunState(
                        seen=state.seen,
                        last_fired=state.last_fired,
                        paused=current.status == "paused",
                        armed_by=state.armed_by,
                        arm_changes=1,
                    ),
                }
            ),
            search_attributes=attributes,
        )

    async def _begin(self, input: ContactFlowInput) -> BeginEnrollmentResult:
        info = workflow.info()
        settings = input.definition.settings
        enrolled_by = self._state.enrolled_by
        yearly = self._timer is not None and self._timer.yearly
        # A local activity for every run started since `enter_locally` existed: the entry is
        # a few statements, not worth an activity task and two workflow tasks.
        execute = (
            workflow.execute_local_activity if input.enter_locally else workflow.execute_activity
        )
        result: BeginEnrollmentResult = await execute(
            ActivityName.BEGIN_ENROLLMENT,
            BeginEnrollmentInput(
                flow_id=input.flow_id,
                version=input.version,
                contact_id=input.contact_id,
                workflow_id=info.workflow_id,
                run_id=info.run_id,
                trigger_type=input.trigger_type,
                event_id=enrolled_by.id if enrolled_by else None,
                # A yearly trigger's contact takes the journey every year.
                reentry_allowed=settings.reentry.allowed or yearly,
                reentry_min_interval_seconds=(
                    parse_duration(settings.reentry.min_interval).total_seconds()
                    if settings.reentry.min_interval and not yearly
                    else None
                ),
                starting_filter=settings.starting_filter,
            ),
            result_type=BeginEnrollmentResult,
            start_to_close_timeout=_SHORT,
            retry_policy=_BOOKKEEPING,
        )
        return result

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._input.limits.max_history_events
        )

    async def _checkpoint(self, step: Step) -> None:
        """Before a step: leave if asked to, hold while paused, continue as new if long."""
        state = self._state
        if state.stop:
            raise _Leave(state.stop)
        if state.paused:
            self._enter_phase(
                Phase.PAUSED, self._step_id, "Paused with the flow; continues when it is resumed."
            )
            await workflow.wait_condition(lambda: not state.paused or state.stop is not None)
            if state.stop:
                raise _Leave(state.stop)
        if self._history_is_long() and step.id != state.resume_at:
            raise _ContinueAsNew(step)

    def _record(self, step: Step) -> TimelineEntry:
        entry = TimelineEntry(step_id=step.id, type=step.type, entered_at=workflow.now())
        # A run continued inside a wait re-enters that step: it is already on the timeline.
        resumed = self._state.resume_at == step.id
        self._state.resume_at = None
        if resumed and self._state.timeline and self._state.timeline[-1].step_id == step.id:
            return self._state.timeline[-1]
        self._state.timeline.append(entry)
        return entry

    async def _run_step(self, step: Step) -> Step | None:
        """Runs one step; returns the step that comes next (None: the flow ends)."""
        entry = self._record(step)
        after = self._tree.after(step)
        match step:
            case SendEmail():
                self._enter_phase(
                    Phase.RUNNING, step.id, f"Sending email `{step.id}`: {step.subject!r}."
                )
                entry.outcome = await self._deliver(
                    ActivityName.SEND_EMAIL,
                    self._delivery(step, SendEmailInput, last=after is None),
                )
            case SendSms():
                self._enter_phase(Phase.RUNNING, step.id, f"Sending SMS `{step.id}`.")
                entry.outcome = await self._deliver(
                    ActivityName.SEND_SMS, self._delivery(step, SendSmsInput, last=after is None)
                )
            case Webhook():
                self._enter_phase(
                    Phase.RUNNING,
                    step.id,
                    f"Calling webhook `{step.id}`: {step.method} {step.url}.",
                )
                entry.outcome = await self._webhook(step)
            case AddTag() | RemoveTag() | UpdateField() | AddToGroup() | RemoveFromGroup():
                self._enter_phase(
                    Phase.RUNNING, step.id, f"Updating the contact (`{step.id}`: {step.type})."
                )
                entry.outcome = await self._contact_action(step, last=after is None)
            case Unsubscribe():
                self._enter_phase(Phase.RUNNING, step.id, f"Unsubscribing (`{step.id}`).")
                entry.outcome = await self._contact_action(step, last=after is None)
            case Exit():
                entry.outcome = "left the flow"
                raise _Leave(f"reached the exit step `{step.id}`")
            case Delay():
                until = self._state.wait_until or workflow.now() + parse_duration(step.duration)
                await self._sleep(
                    step,
                    until,
                    f"Waiting {step.duration} (until {words.moment(until)}), {words.then(after)}.",
                    summary=f"{step.id}: wait {step.duration}",
                )
                entry.outcome = "waited"
            case WaitUntil():
                await self._wait_until(step, after)
                entry.outcome = "waited"
            case WaitForTrigger():
                matched = await self._wait_for_trigger(step)
                entry.outcome = "matched" if matched else "timed out"
                return self._tree.enter(step.matched if matched else step.timed_out, step)
            case IfElse():
                self._enter_phase(Phase.RUNNING, step.id, f"Checking conditions of `{step.id}`.")
                matched = await self._evaluate(step.conditions)
                entry.outcome = "yes" if matched else "no"
                return self._tree.enter(step.yes if matched else step.no, step)
            case PercentSplit():
                roll = workflow.random().random() * 100
                total = 0
                for index, path in enumerate(step.paths):
                    total += path.weight
                    if roll < total or index == len(step.paths) - 1:
                        entry.outcome = f"path {index + 1}"
                        return self._tree.enter(path.steps, step)
            case _:
                assert_never(step)
        return after

    # --- waiting ----------------------------------------------------------------------------

    async def _sleep(
        self,
        step: Step,
        until: datetime,
        details: str,
        *,
        summary: str,
        wake: Callable[[], bool] | None = None,
    ) -> bool:
        """A durable timer that ends early if the contact must leave, or when `wake()` holds.

        Returns:
            True if `wake()` ended the wait, False if the time came.

        Raises:
            _Leave: the contact must leave.
            _ContinueAsNew: the history grew long; the new run finishes this wait.
        """
        self._state.wait_until = None
        self._enter_phase(Phase.WAITING, step.id, details)
        return await self._hold(until, summary=summary, wake=wake, step=step)

    async def _hold(
        self,
        until: datetime,
        *,
        summary: str,
        wake: Callable[[], bool] | None = None,
        step: Step | None = None,
    ) -> bool:
        """The timer under every wait: until `until`, the contact leaving, or `wake()`.

        Returns:
            True if `wake()` ended the wait, False if the time came.
        """
        state = self._state
        woken = False
        self._until = until
        while not woken:
            remaining = until - workflow.now()
            if remaining <= timedelta(0):
                break
            try:
                await workflow.wait_condition(
                    lambda: (
                        state.stop is not None
                        or (wake is not None and wake())
                        or self._history_is_long()
                    ),
                    timeout=remaining,
                    timeout_summary=summary,
                )
            except TimeoutError:
                break
            if state.stop:
                raise _Leave(state.stop)
            woken = wake is not None and wake()
            if not woken and self._history_is_long():
                raise _ContinueAsNew(step, until)
        self._until = None
        if state.stop:
            raise _Leave(state.stop)
        return woken

    async def _wait_until(self, step: WaitUntil, after: Step | None) -> None:
        until, zone = self._state.wait_until, None
        if until is None:
            resolved: ResolveWaitResult = await workflow.execute_local_activity(
                ActivityName.RESOLVE_WAIT,
                ResolveWaitInput(
                    contact_id=self._input.contact_id,
                    audience_id=self._input.audience_id,
                    timezone_basis=self._input.definition.settings.timezone_basis,
                    rule=step,
                ),
                result_type=ResolveWaitResult,
                start_to_close_timeout=_SHORT,
                retry_policy=_BOOKKEEPING,
            )
            until, zone = resolved.until, resolved.zone
        await self._sleep(
            step,
            until,
            f"Waiting until {words.moment(until, zone)}, {words.then(after)}.",
            summary=f"{step.id}: wait until {words.moment(until)}",
        )

    async def _wait_for_trigger(self, step: WaitForTrigger) -> bool:
        """Waits until the conditions hold or the timeout; True if they held."""
        deadline = self._state.wait_until or workflow.now() + parse_duration(step.timeout)
        on_match = self._tree.enter(step.matched, step)
        on_timeout = self._tree.enter(step.timed_out, step)
        details = (
            f"Waiting until {words.conditions(step.conditions)}, then {words.take(on_match)};"
            f" or on {words.moment(deadline)} {words.take(on_timeout)}."
        )
        # Re-check only when an event that can change the answer arrives. The count is taken
        # before each check, so an event heard during the check wakes the wait at once.
        relevant = condition_events(step.conditions)
        while True:
            heard = self._count(relevant)
            if await self._evaluate(step.conditions):
                return True
            woken = await self._sleep(
                step,
                deadline,
                details,
                summary=f"{step.id}: until {words.conditions(step.conditions)}"[:200],
                wake=lambda heard=heard: self._count(relevant) != heard,  # type: ignore[misc]
            )
            if not woken:
                return False

    def _count(self, types: frozenset[str]) -> int:
        return sum(self._state.heard.get(t, 0) for t in types)

    async def _evaluate(self, conditions: ConditionSet) -> bool:
        result: EvaluateResult = await workflow.execute_local_activity(
            ActivityName.EVALUATE_CONDITIONS,
            EvaluateInput(contact_id=self._input.contact_id, conditions=conditions),
            result_type=EvaluateResult,
            start_to_close_timeout=_SHORT,
            retry_policy=_BOOKKEEPING,
        )
        return result.matched

    # --- actions ----------------------------------------------------------------------------

    def _key(self, step: Step) -> str:
        return f"{workflow.info().workflow_id}:{self._state.entry}:{step.id}"

    def _event_data(self) -> dict[str, Any]:
        enrolled_by = self._state.enrolled_by
        return enrolled_by.data if enrolled_by else {}

    def _delivery(self, step: Step, kind: type[_Send], *, last: bool) -> _Send:
        # The last step's send closes the entry itself: one marker (an action) less per contact.
        closes = last and self._input.last_send_closes_entry
        return kind(
            idempotency_key=self._key(step),
            workflow_id=workflow.info().workflow_id,
            flow_id=self._input.flow_id,
            version=self._input.version,
            step_id=step.id,
            contact_id=self._input.contact_id,
            audience_id=self._input.audience_id,
            event=self._event_data(),
            closes_entry=self._state.entry if closes else None,
        )

    async def _deliver(self, activity: ActivityName, payload: Delivery) -> str:
        """Sends, waiting out quiet hours; a permanent refusal ends the step, not the journey.

        The send is bounded by the run's give-up time, and a contact that must leave (exit
        goal, archived flow) stops waiting for it: a dead provider never holds a run.

        Returns:
            The step's outcome in words.
        """
        state = self._state
        give_up = timedelta(seconds=self._input.limits.send_give_up_after_seconds)
        while True:
            handle = workflow.start_activity(
                activity,
                payload,
                result_type=SendResult,
                start_to_close_timeout=timedelta(minutes=2),
                # The send heartbeats: a dead worker's send is retried after 10 s, not 2 min.
                heartbeat_timeout=timedelta(seconds=10),
                schedule_to_close_timeout=give_up,
                retry_policy=_SENDING,
                summary=payload.step_id,
            )
            await workflow.wait_condition(
                lambda handle=handle: handle.done() or state.stop is not None  # type: ignore[misc]
            )
            if not handle.done():
                handle.cancel()
                try:
                    await handle
                except ActivityError:
                    pass  # cancelled, as asked
                raise _Leave(state.stop or "asked to leave")
            try:
                result = await handle
            except ActivityError as err:
                workflow.logger.warning("step %s failed for good: %s", payload.step_id, err.cause)
                return f"failed: {err.cause or err}"
            if result.status != "deferred" or result.not_before is None:
                self._entry_closed = (
                    payload.closes_entry is not None and result.status != "deferred"
                )
                break
            step = self._tree.step(payload.step_id)
            await self._sleep(
                step,
                result.not_before,
                f"Quiet hours: `{payload.step_id}` goes out at {words.moment(result.not_before)}.",
                summary=f"{payload.step_id}: quiet hours",
            )
        if result.status in ("sent", "duplicate"):
            state.sent += 1
            return "sent"
        if result.status == "uncertain":
            # The server may have accepted it before a crash: never sent twice, so not counted.
            return "uncertain: the server may have accepted it before a crash"
        return f"skipped: {result.reason}"

    async def _webhook(self, step: Webhook) -> str:
        try:
            result = await workflow.execute_activity(
                ActivityName.CALL_WEBHOOK,
                WebhookInput(
                    idempotency_key=self._key(step),
                    workflow_id=workflow.info().workflow_id,
                    flow_id=self._input.flow_id,
                    flow_name=self._input.definition.name,
                    contact_id=self._input.contact_id,
                    step=step,
                    event=self._event_data(),
                ),
                result_type=WebhookResult,
                start_to_close_timeout=_SHORT,
                retry_policy=_WEBHOOK,
            )
        except ActivityError as err:
            workflow.logger.warning("webhook %s failed for good: %s", step.id, err.cause)
            return f"failed: {err.cause or err}"
        return f"called: HTTP {result.status_code}"

    async def _contact_action(self, step: ContactAction, *, last: bool) -> str:
        # Like a last send, a last change records the entry as completed in its transaction.
        closes = self._state.entry if last and self._input.last_action_closes_entry else None
        result: ContactActionResult = await workflow.execute_activity(
            ActivityName.APPLY_CONTACT_ACTION,
            ContactActionInput(
                idempotency_key=self._key(step),
                workflow_id=workflow.info().workflow_id,
                flow_id=self._input.flow_id,
                contact_id=self._input.contact_id,
                audience_id=self._input.audience_id,
                action=step,
                event=self._event_data(),
                closes_entry=closes,
            ),
            result_type=ContactActionResult,
            start_to_close_timeout=_SHORT,
            retry_policy=_BOOKKEEPING,
        )
        self._entry_closed = closes is not None
        return result.detail

    # --- visibility -------------------------------------------------------------------------

    def _enter_phase(
        self, phase: Phase, step_id: str | None, details: str, *, publish: bool = True
    ) -> None:
        """Records where the contact is; search attributes change only where it comes to rest
        (and `publish`).

        Each upsert is a billable action and a history event, and a step that runs for
        milliseconds is not worth finding: `JourneyPhase`/`JourneyStep` say where a contact
        waits, holds or ended. The details and the `status` query follow every step.
        """
        if step_id is not None:
            self._step_id = step_id
        self._phase, self._details = phase, details
        workflow.set_current_details(details)
        if phase not in _AT_REST or not publish:
            return
        updates = []
        if phase != self._published_phase:
            updates.append(search.JOURNEY_PHASE.value_set(phase.value))
        if self._step_id is not None and self._step_id != self._published_step:
            updates.append(search.JOURNEY_STEP.value_set(self._step_id))
        if updates:
            workflow.upsert_search_attributes(updates)
        self._published_phase, self._published_step = phase, self._step_id

"""ContactFlowWorkflow: one durable run per contact in a flow. Decides; activities do the I/O."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from journeys.domain import search
    from journeys.domain.conditions import ConditionSet
    from journeys.domain.durations import parse_duration
    from journeys.domain.events import condition_events, meets_goal
    from journeys.domain.runs import (
        CONTROL_SIGNAL,
        EVENT_SIGNAL,
        WORKFLOW_NAME,
        ActivityName,
        BeginEnrollmentInput,
        BeginEnrollmentResult,
        ContactActionInput,
        ContactActionResult,
        ContactFlowInput,
        EvaluateInput,
        EvaluateResult,
        FinishEnrollmentInput,
        FlowControl,
        FlowEvent,
        Phase,
        ResolveWaitInput,
        ResolveWaitResult,
        RunResult,
        RunStatus,
        SendEmailInput,
        SendResult,
        SendSmsInput,
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

# Short database reads run as local activities: inside the workflow task, one marker event
# instead of three activity events and a second task round trip (`finish_enrollment`,
# conditions, local-time waits). `begin_enrollment` stays a regular activity on purpose:
# measured with 1,000 timers firing during a 10,000-contact enrolment flood, running it in the
# first workflow task queued the timers' tasks behind the flood's database work (fire lateness
# p50 89 s, p99 177 s) where a regular activity keeps them on time (p50 14 s, as raw Temporal).

# Phases worth a search-attribute update: where a contact spends time, and how it ended.
_AT_REST = frozenset({Phase.WAITING, Phase.PAUSED, Phase.COMPLETED, Phase.EXITED, Phase.SKIPPED})

# Remembered event ids, so a redelivered event is ignored; old ones age out.
_SEEN_EVENTS = 200
_SHORT = timedelta(seconds=30)

_BOOKKEEPING = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)
# A mail or SMS provider may be down for hours; keep trying, but never on a permanent refusal.
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


class _Leave(Exception):
    """The contact leaves the flow before its end (exit step, goal reached, archived)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _then(next_step: Step | None) -> str:
    return f"then `{next_step.id}` ({next_step.type})" if next_step else "then the flow ends"


@workflow.defn(name=WORKFLOW_NAME)
class ContactFlowWorkflow:
    """Walks one contact through one version of a flow."""

    @workflow.init
    def __init__(self, input: ContactFlowInput) -> None:
        self._input = input
        self._phase = Phase.ENTERING
        self._step_id: str | None = None
        self._details = "Entering the flow."
        self._entry: int | None = None
        self._sent = 0
        self._seen: deque[str] = deque(maxlen=_SEEN_EVENTS)
        self._enrolled_by: FlowEvent | None = None
        self._heard: dict[str, int] = {}
        self._paused = False
        self._stop: str | None = None
        self._done: list[str] = []
        self._published_phase: Phase = Phase.ENTERING  # what the starter set
        self._published_step: str | None = None

    # --- messages ---------------------------------------------------------------------------

    @workflow.signal(name=EVENT_SIGNAL)
    def event(self, event: FlowEvent) -> None:
        """An event about this contact: the first one enrolled it; later ones may end waits."""
        if event.id in self._seen:
            return
        self._seen.append(event.id)
        if self._enrolled_by is None:
            self._enrolled_by = event
            return
        self._heard[event.type] = self._heard.get(event.type, 0) + 1
        for goal in self._input.definition.settings.exit_when:
            if self._stop is None and meets_goal(goal, event.type, event.data):
                self._stop = f"reached the exit goal `{goal.type}`"

    @workflow.signal(name=CONTROL_SIGNAL)
    def control(self, control: FlowControl) -> None:
        """The flow was paused, resumed or archived."""
        if control.action == "archived":
            self._stop = self._stop or "the flow was archived"
        else:
            self._paused = control.action == "paused"

    @workflow.query
    def status(self) -> RunStatus:
        """Where the contact is in the flow, in words and ids."""
        return RunStatus(
            phase=self._phase,
            step_id=self._step_id,
            details=self._details,
            entry=self._entry,
            sent=self._sent,
            version=self._input.version,
            paused=self._paused,
        )

    # --- the run ----------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: ContactFlowInput) -> RunResult:
        """Enters the contact (if the flow's rules admit it) and walks the steps."""
        begin = await self._begin(input)
        if not begin.admitted:
            self._enter_phase(Phase.SKIPPED, None, f"Not entered: {begin.reason}.")
            return RunResult(phase=Phase.SKIPPED, entry=None, reason=begin.reason)
        self._entry = begin.entry
        phase, reason = Phase.COMPLETED, None
        try:
            await self._run_steps(input.definition.steps)
        except _Leave as leave:
            phase, reason = Phase.EXITED, leave.reason
        self._enter_phase(
            phase, None, "Finished the flow." if reason is None else f"Left: {reason}."
        )
        await workflow.execute_local_activity(
            ActivityName.FINISH_ENROLLMENT,
            FinishEnrollmentInput(
                flow_id=input.flow_id,
                contact_id=input.contact_id,
                entry=begin.entry or 0,
                status=phase,
                reason=reason,
            ),
            start_to_close_timeout=_SHORT,
            retry_policy=_BOOKKEEPING,
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return RunResult(phase=phase, entry=begin.entry, reason=reason, steps_done=self._done)

    async def _begin(self, input: ContactFlowInput) -> BeginEnrollmentResult:
        info = workflow.info()
        settings = input.definition.settings
        return await workflow.execute_activity(
            ActivityName.BEGIN_ENROLLMENT,
            BeginEnrollmentInput(
                flow_id=input.flow_id,
                version=input.version,
                contact_id=input.contact_id,
                workflow_id=info.workflow_id,
                run_id=info.run_id,
                trigger_type=input.trigger_type,
                event_id=self._enrolled_by.id if self._enrolled_by else None,
                reentry_allowed=settings.reentry.allowed,
                reentry_min_interval_seconds=(
                    parse_duration(settings.reentry.min_interval).total_seconds()
                    if settings.reentry.min_interval
                    else None
                ),
                starting_filter=settings.starting_filter,
            ),
            result_type=BeginEnrollmentResult,
            start_to_close_timeout=_SHORT,
            retry_policy=_BOOKKEEPING,
        )

    async def _run_steps(self, steps: list[Step]) -> None:
        for index, step in enumerate(steps):
            await self._checkpoint()
            await self._run_step(step, steps[index + 1] if index + 1 < len(steps) else None)
            self._done.append(step.id)

    async def _checkpoint(self) -> None:
        """Between steps: leave if asked to, and hold while the flow is paused."""
        if self._stop:
            raise _Leave(self._stop)
        if self._paused:
            self._enter_phase(
                Phase.PAUSED, self._step_id, "Paused with the flow; continues when it is resumed."
            )
            await workflow.wait_condition(lambda: not self._paused or self._stop is not None)
            if self._stop:
                raise _Leave(self._stop)

    async def _run_step(self, step: Step, next_step: Step | None) -> None:
        if isinstance(step, SendEmail):
            self._enter_phase(
                Phase.RUNNING, step.id, f"Sending email `{step.id}`: {step.subject!r}."
            )
            await self._deliver(ActivityName.SEND_EMAIL, self._email_input(step))
        elif isinstance(step, SendSms):
            self._enter_phase(Phase.RUNNING, step.id, f"Sending SMS `{step.id}`.")
            await self._deliver(
                ActivityName.SEND_SMS, SendSmsInput(**self._delivery(step), body=step.body)
            )
        elif isinstance(step, Webhook):
            self._enter_phase(
                Phase.RUNNING, step.id, f"Calling webhook `{step.id}`: {step.method} {step.url}."
            )
            await self._webhook(step)
        elif isinstance(
            step, (AddTag, RemoveTag, UpdateField, AddToGroup, RemoveFromGroup, Unsubscribe)
        ):
            self._enter_phase(
                Phase.RUNNING, step.id, f"Updating the contact (`{step.id}`: {step.type})."
            )
            await self._contact_action(step)
        elif isinstance(step, Exit):
            raise _Leave(f"reached the exit step `{step.id}`")
        elif isinstance(step, Delay):
            duration = parse_duration(step.duration)
            until = workflow.now() + duration
            await self._wait(
                duration,
                step.id,
                f"Waiting {step.duration} (until {_when(until)}), {_then(next_step)}.",
                summary=f"{step.id}: wait {step.duration}",
            )
        elif isinstance(step, WaitUntil):
            await self._wait_until(step, next_step)
        elif isinstance(step, WaitForTrigger):
            await self._wait_for_trigger(step)
        elif isinstance(step, IfElse):
            self._enter_phase(Phase.RUNNING, step.id, f"Checking conditions of `{step.id}`.")
            matched = await self._evaluate(step.conditions)
            await self._run_steps(step.yes if matched else step.no)
        elif isinstance(step, PercentSplit):
            roll = workflow.random().random() * 100
            total = 0
            for path in step.paths:
                total += path.weight
                if roll < total:
                    await self._run_steps(path.steps)
                    break

    # --- waiting ----------------------------------------------------------------------------

    async def _wait(self, duration: timedelta, step_id: str, details: str, *, summary: str) -> None:
        """A durable timer that ends early if the contact must leave."""
        self._enter_phase(Phase.WAITING, step_id, details)
        if duration > timedelta(0):
            try:
                await workflow.wait_condition(
                    lambda: self._stop is not None, timeout=duration, timeout_summary=summary
                )
            except TimeoutError:
                pass
        if self._stop:
            raise _Leave(self._stop)

    async def _wait_until(self, step: WaitUntil, next_step: Step | None) -> None:
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
        await self._wait(
            resolved.until - workflow.now(),
            step.id,
            f"Waiting until {_when(resolved.until)} ({resolved.zone}), {_then(next_step)}.",
            summary=f"{step.id}: wait until {_when(resolved.until)}",
        )

    async def _wait_for_trigger(self, step: WaitForTrigger) -> None:
        deadline = workflow.now() + parse_duration(step.timeout)
        self._enter_phase(
            Phase.WAITING, step.id, f"Waiting for `{step.id}` conditions until {_when(deadline)}."
        )
        # Re-check only when an event that can change the answer arrives.
        relevant = condition_events(step.conditions)
        matched = await self._evaluate(step.conditions)
        while not matched and self._stop is None:
            heard = self._count(relevant)
            remaining = deadline - workflow.now()
            if remaining <= timedelta(0):
                break
            try:
                await workflow.wait_condition(
                    lambda heard=heard: self._count(relevant) != heard or self._stop is not None,
                    timeout=remaining,
                    timeout_summary=f"{step.id}: timeout",
                )
            except TimeoutError:
                break
            if self._stop is None:
                matched = await self._evaluate(step.conditions)
        if self._stop:
            raise _Leave(self._stop)
        await self._run_steps(step.matched if matched else step.timed_out)

    def _count(self, types: frozenset[str]) -> int:
        return sum(self._heard.get(t, 0) for t in types)

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
        return f"{workflow.info().workflow_id}:{self._entry}:{step.id}"

    def _event_data(self) -> dict[str, Any]:
        return self._enrolled_by.data if self._enrolled_by else {}

    def _delivery(self, step: Step) -> dict[str, Any]:
        definition = self._input.definition
        return {
            "idempotency_key": self._key(step),
            "workflow_id": workflow.info().workflow_id,
            "flow_id": self._input.flow_id,
            "flow_name": definition.name,
            "step_id": step.id,
            "contact_id": self._input.contact_id,
            "audience_id": self._input.audience_id,
            "transactional": definition.transactional,
            "quiet_hours": definition.settings.quiet_hours,
            "timezone_basis": definition.settings.timezone_basis,
            "event": self._event_data(),
        }

    def _email_input(self, step: SendEmail) -> SendEmailInput:
        sender = self._input.definition.settings.sender
        return SendEmailInput(
            **self._delivery(step),
            subject=step.subject,
            preheader=step.preheader,
            html=step.html,
            text=step.text,
            from_name=step.from_name or sender.from_name,
            from_email=step.from_email or sender.from_email,
            reply_to=step.reply_to or sender.reply_to,
        )

    async def _deliver(
        self, activity: ActivityName, payload: SendEmailInput | SendSmsInput
    ) -> None:
        """Sends, waiting out quiet hours; a permanent refusal ends the step, not the journey."""
        while True:
            try:
                result: SendResult = await workflow.execute_activity(
                    activity,
                    payload,
                    result_type=SendResult,
                    start_to_close_timeout=timedelta(minutes=2),
                    # The send heartbeats: a dead worker's send is retried after 10 s, not 2 min.
                    heartbeat_timeout=timedelta(seconds=10),
                    retry_policy=_SENDING,
                    summary=f"{payload.step_id}",
                )
            except ActivityError as err:
                workflow.logger.warning("step %s failed for good: %s", payload.step_id, err.cause)
                return
            if result.status != "deferred" or result.not_before is None:
                break
            await self._wait(
                result.not_before - workflow.now(),
                payload.step_id,
                f"Quiet hours: `{payload.step_id}` goes out at {_when(result.not_before)}.",
                summary=f"{payload.step_id}: quiet hours",
            )
        if result.status in ("sent", "duplicate"):
            self._sent += 1

    async def _webhook(self, step: Webhook) -> None:
        try:
            await workflow.execute_activity(
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

    async def _contact_action(
        self, step: AddTag | RemoveTag | UpdateField | AddToGroup | RemoveFromGroup | Unsubscribe
    ) -> None:
        await workflow.execute_activity(
            ActivityName.APPLY_CONTACT_ACTION,
            ContactActionInput(
                idempotency_key=self._key(step),
                workflow_id=workflow.info().workflow_id,
                flow_id=self._input.flow_id,
                contact_id=self._input.contact_id,
                audience_id=self._input.audience_id,
                action=step,
                event=self._event_data(),
            ),
            result_type=ContactActionResult,
            start_to_close_timeout=_SHORT,
            retry_policy=_BOOKKEEPING,
        )

    # --- visibility -------------------------------------------------------------------------

    def _enter_phase(self, phase: Phase, step_id: str | None, details: str) -> None:
        """Records where the contact is; search attributes change only where it comes to rest.

        Each upsert is a billable action and a history event, and a step that runs for
        milliseconds is not worth finding: `JourneyPhase`/`JourneyStep` say where a contact
        waits, holds or ended. The details and the `status` query follow every step.
        """
        if step_id is not None:
            self._step_id = step_id
        self._phase, self._details = phase, details
        workflow.set_current_details(details)
        if phase not in _AT_REST:
            return
        updates = []
        if phase != self._published_phase:
            updates.append(search.JOURNEY_PHASE.value_set(phase.value))
        if self._step_id is not None and self._step_id != self._published_step:
            updates.append(search.JOURNEY_STEP.value_set(self._step_id))
        if updates:
            workflow.upsert_search_attributes(updates)
        self._published_phase, self._published_step = phase, self._step_id

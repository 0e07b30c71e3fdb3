"""ContactFlowWorkflow: one durable run per contact in a flow. Decides; activities do the I/O."""

from __future__ import annotations

from collections import deque
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from journeys.domain import search
    from journeys.domain.durations import parse_duration
    from journeys.domain.runs import (
        EVENT_SIGNAL,
        WORKFLOW_NAME,
        ActivityName,
        BeginEnrollmentInput,
        BeginEnrollmentResult,
        ContactFlowInput,
        FinishEnrollmentInput,
        FlowEvent,
        Phase,
        RunResult,
        RunStatus,
        SendEmailInput,
        SendResult,
    )
    from journeys.domain.steps import Delay, SendEmail, Step

# Remembered event ids, so a redelivered event is ignored; old ones age out.
_SEEN_EVENTS = 200

_BOOKKEEPING = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))
# A mail server may be down for hours; keep trying, but never on a permanent refusal.
_SENDING = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    non_retryable_error_types=["PermanentSendError"],
)


def _describe_wait(step: Delay, until: str, next_step: Step | None) -> str:
    then = f"then `{next_step.id}` ({next_step.type})" if next_step else "then the flow ends"
    return f"Waiting {step.duration} (until {until} UTC), {then}."


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
        self._events: list[FlowEvent] = []

    @workflow.signal(name=EVENT_SIGNAL)
    def event(self, event: FlowEvent) -> None:
        """Receives an event about this contact (the first one is the enrolment event)."""
        if event.id in self._seen:
            return
        self._seen.append(event.id)
        self._events.append(event)

    @workflow.query
    def status(self) -> RunStatus:
        """Where the contact is in the flow, in words and ids."""
        return RunStatus(
            phase=self._phase,
            step_id=self._step_id,
            details=self._details,
            entry=self._entry,
            sent=self._sent,
        )

    @workflow.run
    async def run(self, input: ContactFlowInput) -> RunResult:
        """Enters the contact (if the flow's rules admit it) and runs the steps."""
        info = workflow.info()
        first_event = self._events[0].id if self._events else None
        reentry = input.definition.settings.reentry
        begin: BeginEnrollmentResult = await workflow.execute_activity(
            ActivityName.BEGIN_ENROLLMENT,
            BeginEnrollmentInput(
                flow_id=input.flow_id,
                version=input.version,
                contact_id=input.contact_id,
                workflow_id=info.workflow_id,
                run_id=info.run_id,
                trigger_type=input.trigger_type,
                event_id=first_event,
                reentry_allowed=reentry.allowed,
                reentry_min_interval_seconds=(
                    parse_duration(reentry.min_interval).total_seconds()
                    if reentry.min_interval
                    else None
                ),
            ),
            result_type=BeginEnrollmentResult,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_BOOKKEEPING,
        )
        if not begin.admitted:
            self._enter_phase(Phase.SKIPPED, None, f"Not entered: {begin.reason}.")
            return RunResult(phase=Phase.SKIPPED, entry=None, reason=begin.reason)

        self._entry = begin.entry
        done = await self._run_steps(input.definition.steps)
        self._enter_phase(Phase.COMPLETED, None, "Finished the flow.")
        await workflow.execute_activity(
            ActivityName.FINISH_ENROLLMENT,
            FinishEnrollmentInput(
                flow_id=input.flow_id,
                contact_id=input.contact_id,
                entry=begin.entry or 0,
                status=Phase.COMPLETED,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_BOOKKEEPING,
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return RunResult(phase=Phase.COMPLETED, entry=begin.entry, steps_done=done)

    async def _run_steps(self, steps: list[Step]) -> list[str]:
        done: list[str] = []
        for index, step in enumerate(steps):
            next_step = steps[index + 1] if index + 1 < len(steps) else None
            await self._run_step(step, next_step)
            done.append(step.id)
        return done

    async def _run_step(self, step: Step, next_step: Step | None) -> None:
        if isinstance(step, SendEmail):
            self._enter_phase(Phase.RUNNING, step.id, f"Sending email `{step.id}`: {step.subject!r}.")
            await self._send_email(step)
        elif isinstance(step, Delay):
            duration = parse_duration(step.duration)
            until = (workflow.now() + duration).strftime("%Y-%m-%d %H:%M")
            self._enter_phase(Phase.RUNNING, step.id, _describe_wait(step, until, next_step))
            await workflow.sleep(duration, summary=f"{step.id}: wait {step.duration}")
        else:  # pragma: no cover - the definition model admits no other step
            raise ApplicationError(f"unknown step type {step.type}", non_retryable=True)

    async def _send_email(self, step: SendEmail) -> None:
        info = workflow.info()
        try:
            result: SendResult = await workflow.execute_activity(
                ActivityName.SEND_EMAIL,
                SendEmailInput(
                    idempotency_key=f"{info.workflow_id}:{self._entry}:{step.id}",
                    workflow_id=info.workflow_id,
                    flow_id=self._input.flow_id,
                    step_id=step.id,
                    contact_id=self._input.contact_id,
                    subject=step.subject,
                    preheader=step.preheader,
                    html=step.html,
                    text=step.text,
                    from_name=step.from_name,
                    from_email=step.from_email,
                    reply_to=step.reply_to,
                ),
                result_type=SendResult,
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=_SENDING,
                summary=f"{step.id}: {step.subject}",
            )
        except ActivityError as err:
            # A permanent refusal ends this step, not the contact's journey.
            workflow.logger.warning("email step %s failed for good: %s", step.id, err.cause)
            return
        if result.status in ("sent", "duplicate"):
            self._sent += 1

    def _enter_phase(self, phase: Phase, step_id: str | None, details: str) -> None:
        updates = []
        if phase != self._phase:
            updates.append(search.JOURNEY_PHASE.value_set(phase.value))
        if step_id is not None and step_id != self._step_id:
            updates.append(search.JOURNEY_STEP.value_set(step_id))
        if updates:
            workflow.upsert_search_attributes(updates)
        self._phase, self._details = phase, details
        if step_id is not None:
            self._step_id = step_id
        workflow.set_current_details(details)

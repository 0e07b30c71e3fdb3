"""The raw-Temporal baseline: the least a Temporal workflow can do for each measured shape.

`RawFlowWorkflow` walks a list of steps, one no-op activity per `noop`, one timer per
`sleep:<seconds>` and one per `until:<epoch seconds>` (a timer to that instant); it accepts the same start signal as the contact-flow workflow. It uses the
SDK's default data converter and no search attributes: plain Temporal, nothing of ours.
Two more steps serve the `shapes` experiment: `local` (a no-op local activity) and
`upsert:<value>` (one search-attribute upsert, as the contact flow does per step).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from temporalio import activity, workflow
from temporalio.common import SearchAttributeKey, WorkflowIDConflictPolicy

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from temporalio.client import Client

WORKFLOW_NAME = "RawFlowWorkflow"
NOOP_ACTIVITY = "raw_noop"
EVENT_SIGNAL = "event"
# Registered by the embedded dev server (journeys.domain.search); named here, not imported,
# so the baseline stays free of our code.
_STEP_ATTRIBUTE = SearchAttributeKey.for_keyword("JourneyStep")


@dataclass
class RawFlowInput:
    """Steps: `noop` runs the no-op activity, `sleep:<seconds>` and `until:<epoch>` a timer."""

    steps: list[str] = field(default_factory=list)


def noop_steps() -> list[str]:
    """Start + one no-op activity: the end-to-end baseline."""
    return ["noop"]


def delay_then_noop(seconds: float) -> list[str]:
    """A timer, then one no-op activity: the waiting-scale baseline."""
    return [f"sleep:{seconds:g}", "noop"]


def until_then_noop(instant: datetime) -> list[str]:
    """A timer to `instant` (aware), then one no-op activity: the armed-contacts baseline."""
    return [f"until:{instant.timestamp():.3f}", "noop"]


def noop_starts(
    client: Client, *, task_queue: str, event_type: str
) -> Callable[[str], Awaitable[None]]:
    """`start` of `noop_steps()` runs by workflow id: the unit of the ingest baselines."""
    return partial(start, client, steps=noop_steps(), task_queue=task_queue, event_type=event_type)


async def start(
    client: Client, workflow_id: str, steps: list[str], *, task_queue: str, event_type: str
) -> None:
    """Starts a raw run the way the gateway starts a contact's run: with its first event.

    Args:
        client: The Temporal client.
        workflow_id: The run's id; a run of that id still open takes the event instead.
        steps: What the run does (`noop_steps()` and the like).
        task_queue: The raw workers' queue.
        event_type: The type of the start signal's event.
    """
    await client.start_workflow(
        WORKFLOW_NAME,
        RawFlowInput(steps),
        id=workflow_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        start_signal=EVENT_SIGNAL,
        start_signal_args=[{"id": workflow_id, "type": event_type}],
    )


@activity.defn(name=NOOP_ACTIVITY)
async def raw_noop() -> None:
    """Does nothing: what remains is Temporal's own cost of an activity."""


@workflow.defn(name=WORKFLOW_NAME)
class RawFlowWorkflow:
    """Walks `RawFlowInput.steps`."""

    def __init__(self) -> None:
        self._events: list[Any] = []

    @workflow.signal(name=EVENT_SIGNAL)
    def event(self, payload: Any) -> None:
        """The enrolment event of a signal-with-start (kept, as the contact flow keeps it)."""
        self._events.append(payload)

    @workflow.run
    async def run(self, input: RawFlowInput) -> int:
        for step in input.steps:
            kind, _, arg = step.partition(":")
            if kind == "noop":
                await workflow.execute_activity(
                    NOOP_ACTIVITY, start_to_close_timeout=timedelta(seconds=30)
                )
            elif kind == "local":
                await workflow.execute_local_activity(
                    NOOP_ACTIVITY, start_to_close_timeout=timedelta(seconds=30)
                )
            elif kind == "upsert":
                workflow.upsert_search_attributes([_STEP_ATTRIBUTE.value_set(arg)])
            elif kind == "until":
                # Like a date trigger: the timer's length comes from the workflow's own clock.
                due = datetime.fromtimestamp(float(arg), UTC)
                await workflow.sleep(max((due - workflow.now()).total_seconds(), 0.0))
            else:
                await workflow.sleep(float(arg))
        return len(input.steps)

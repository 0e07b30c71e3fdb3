"""ArmFlowWorkflow: arms every eligible contact of a flow's audience when the flow is activated.

Date triggers (birthday, anniversaries, sign-up dates, a date field) and purchase lapses wait
for contacts who are already in the audience: each gets its armed run. An audience may hold
millions of contacts, so this pages through them with activities, a bounded number of starts at
a time, continuing as new; a crashed worker resumes at the page it was on, and a page done twice
arms nobody twice (each run ignores an arm event id it has seen).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from journeys.domain.runs import (
        ARM_WORKFLOW_NAME,
        ActivityName,
        ArmFlowInput,
        ArmPageInput,
        ArmPageResult,
    )

PAGE = 500
PAGES_PER_RUN = 20
# A page's activity heartbeats as it arms; a worker killed mid-page is noticed after this long
# (not after the 5-minute start-to-close timeout) and the page is retried on another worker.
PAGE_HEARTBEAT = timedelta(seconds=30)


@workflow.defn(name=ARM_WORKFLOW_NAME)
class ArmFlowWorkflow:
    """Arms a flow's audience, a page at a time."""

    @workflow.run
    async def run(self, input: ArmFlowInput) -> ArmFlowInput:
        """Returns the final counts."""
        state = input
        for _ in range(PAGES_PER_RUN):
            result: ArmPageResult = await workflow.execute_activity(
                ActivityName.ARM_PAGE,
                ArmPageInput(
                    flow_id=state.flow_id,
                    trigger_type=state.trigger_type,
                    activation=state.activation,
                    after=state.after,
                    limit=PAGE,
                    total=state.total or 0,
                    armed=state.armed,
                    skipped=state.skipped,
                ),
                result_type=ArmPageResult,
                start_to_close_timeout=timedelta(minutes=5),
                heartbeat_timeout=PAGE_HEARTBEAT,
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
            )
            state = state.model_copy(
                update={
                    "after": result.last or state.after,
                    "total": result.total,
                    "armed": state.armed + result.armed,
                    "skipped": state.skipped + result.skipped,
                }
            )
            if result.stopped:
                workflow.set_current_details(
                    f"Stopped: the flow is {result.stopped}. {_counts(state)}"
                )
                return state
            workflow.set_current_details(f"Arming `{state.trigger_type}`: {_counts(state)}")
            if result.last is None or result.armed + result.skipped < PAGE:
                workflow.set_current_details(f"Done: {_counts(state)}")
                return state
        workflow.continue_as_new(state)


def _counts(state: ArmFlowInput) -> str:
    return f"{state.armed} armed, {state.skipped} skipped of {state.total}."

"""FlowControlWorkflow: tells every open run of a flow that it was paused, resumed or archived.

A flow may hold a million waiting contacts, so this pages through them, signalling one page per
run and continuing as new, instead of looping in an HTTP handler.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from journeys.domain.runs import (
        CONTROL_SIGNAL,
        CONTROL_WORKFLOW_NAME,
        ActivityName,
        FlowControl,
        FlowControlInput,
        ListRunningInput,
        ListRunningResult,
    )

PAGE = 200


@workflow.defn(name=CONTROL_WORKFLOW_NAME)
class FlowControlWorkflow:
    """Signals a flow's open runs, a page at a time."""

    @workflow.run
    async def run(self, input: FlowControlInput) -> int:
        """Returns how many runs were told."""
        workflow.set_current_details(
            f"Telling the open runs of flow {input.flow_id} it was {input.action}."
        )
        page: ListRunningResult = await workflow.execute_activity(
            ActivityName.LIST_RUNNING,
            ListRunningInput(flow_id=input.flow_id, after=input.after, limit=PAGE),
            result_type=ListRunningResult,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
        )
        message = FlowControl(action=input.action)
        results = await asyncio.gather(
            *(
                workflow.get_external_workflow_handle(wf_id).signal(CONTROL_SIGNAL, message)
                for wf_id in page.workflow_ids
            ),
            return_exceptions=True,
        )
        # A run that ended since the page was read cannot be signalled; that is fine.
        told = sum(1 for r in results if not isinstance(r, BaseException))
        total = input.signalled + told
        if len(page.workflow_ids) < PAGE:
            return total
        workflow.continue_as_new(
            FlowControlInput(
                flow_id=input.flow_id,
                action=input.action,
                after=page.workflow_ids[-1],
                signalled=total,
            )
        )

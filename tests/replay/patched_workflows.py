"""A change to the contact-flow workflow, with and without `workflow.patched` (its own module:
the workflow sandbox re-imports the module a workflow class lives in).

How a change keeps running contacts safe (docs/operations.md, "Upgrading workflow code safely"):
new behaviour behind `workflow.patched`, which old histories replay around.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from journeys.domain.runs import WORKFLOW_NAME, ContactFlowInput, RunResult
    from workflows.contact_flow import ContactFlowWorkflow


@workflow.defn(name=WORKFLOW_NAME)
class PatchedContactFlow(ContactFlowWorkflow):
    """Today's workflow plus a new one-second breath before the first step, patched in."""

    @workflow.run
    async def run(self, input: ContactFlowInput) -> RunResult:
        if workflow.patched("breathe-before-entering"):
            await workflow.sleep(timedelta(seconds=1))
        return await super().run(input)


@workflow.defn(name=WORKFLOW_NAME)
class UnpatchedContactFlow(ContactFlowWorkflow):
    """The same change without the patch: old histories must refuse to replay on it."""

    @workflow.run
    async def run(self, input: ContactFlowInput) -> RunResult:
        await workflow.sleep(timedelta(seconds=1))
        return await super().run(input)

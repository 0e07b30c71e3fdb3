"""Recorded histories of real runs replay on today's workflow code: a change that would break
contacts already waiting (for months, perhaps) fails here instead of in production."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from journeys.domain.runs import WORKFLOW_NAME, ContactFlowInput, RunResult
from workers.worker import WORKFLOWS
from workflows.contact_flow import ContactFlowWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def test_histories_cover_every_step_type_and_example() -> None:
    names = {path.stem for path in HISTORIES}
    from tests.flow_samples import STEPS
    from tests.integration.test_examples_enrol import CASES

    assert {f"step-{s}" for s in STEPS} | {f"example-{e}" for e in CASES} <= names


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays_on_todays_workflow(path: Path) -> None:
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    await replayer.replay_workflow(_history(path))


# How a change to the workflow keeps running contacts safe (docs/operations.md, "Changing the
# workflow"): new behaviour behind `workflow.patched`, which old histories replay around.


@workflow.defn(name=WORKFLOW_NAME)
class _PatchedContactFlow(ContactFlowWorkflow):
    """Today's workflow plus a new one-second breath before the first step, patched in."""

    @workflow.run
    async def run(self, input: ContactFlowInput) -> RunResult:
        if workflow.patched("breathe-before-entering"):
            await workflow.sleep(timedelta(seconds=1))
        return await super().run(input)


@workflow.defn(name=WORKFLOW_NAME)
class _UnpatchedContactFlow(ContactFlowWorkflow):
    """The same change without the patch: old histories must refuse to replay on it."""

    @workflow.run
    async def run(self, input: ContactFlowInput) -> RunResult:
        await workflow.sleep(timedelta(seconds=1))
        return await super().run(input)


async def test_a_patched_change_replays_old_histories_and_an_unpatched_one_does_not() -> None:
    history = _history(next(p for p in HISTORIES if p.stem == "step-delay"))
    patched = Replayer(workflows=[_PatchedContactFlow], data_converter=pydantic_data_converter)
    await patched.replay_workflow(history)
    unpatched = Replayer(workflows=[_UnpatchedContactFlow], data_converter=pydantic_data_converter)
    with pytest.raises(NondeterminismError):
        await unpatched.replay_workflow(history)

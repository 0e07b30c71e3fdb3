"""Recorded histories of real runs replay on today's workflow code: a change that would break
contacts already waiting (for months, perhaps) fails here instead of in production."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.workflow import NondeterminismError

from journeys.config import Settings
from tests.replay.patched_workflows import PatchedContactFlow, UnpatchedContactFlow
from workers.worker import WORKFLOWS, workflow_runner

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


async def test_a_patched_change_replays_old_histories_and_an_unpatched_one_does_not() -> None:
    history = _history(next(p for p in HISTORIES if p.stem == "step-delay"))
    patched = Replayer(workflows=[PatchedContactFlow], data_converter=pydantic_data_converter)
    await patched.replay_workflow(history)
    unpatched = Replayer(workflows=[UnpatchedContactFlow], data_converter=pydantic_data_converter)
    with pytest.raises(NondeterminismError):
        await unpatched.replay_workflow(history)


async def test_histories_replay_on_the_runner_production_uses() -> None:
    """The worker runs workflows unsandboxed by default (`JOURNEYS_WORKER_WORKFLOW_SANDBOX`):
    every history replays the same way there, while the tests above keep the sandbox's checks."""
    runner = workflow_runner(Settings(_env_file=None))  # type: ignore[call-arg]
    assert isinstance(runner, UnsandboxedWorkflowRunner)
    sandboxed = workflow_runner(Settings(_env_file=None, worker_workflow_sandbox=True))  # type: ignore[call-arg]
    assert isinstance(sandboxed, SandboxedWorkflowRunner)
    replayer = Replayer(
        workflows=WORKFLOWS, data_converter=pydantic_data_converter, workflow_runner=runner
    )
    for path in HISTORIES:
        await replayer.replay_workflow(_history(path))

"""Recorded histories of real runs replay on today's workflow code: a change that would break
contacts already waiting (for months, perhaps) fails here instead of in production."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from tests.replay.patched_workflows import PatchedContactFlow, UnpatchedContactFlow
from workers.worker import WORKFLOWS

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

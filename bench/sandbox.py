"""Worker CPU per new workflow run under each workflow runner the SDK offers.

`python -m bench.sandbox [--runs N] [--history NAME]` replays one recorded history
(tests/replay/histories) N times per variant in this process — every replay is a new run, as
every enrolment is to a worker — and prints the process CPU (Python and the SDK's Rust core)
per run. No server is involved, so the figure is the workflow side of a run alone, without
the noise of the other processes the end-to-end benchmark shares the cores with.

Variants:
    sandboxed: the SDK's default sandbox, as the worker ran it before; with
        PYTHONDONTWRITEBYTECODE=1 (common in images) the workflow module is compiled again
        for every new run.
    sandboxed+bytecode: the same, with the workflow modules' bytecode compiled once
        beforehand (`sys.pycache_prefix`), as `python -m compileall` in an image would.
    sandboxed+passthrough: the workflow module itself passed through: imported once, but
        then the sandbox no longer proxies what it calls (no restriction checks in it).
    unsandboxed: `UnsandboxedWorkflowRunner`.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import sys
import tempfile
import time
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

ROOT = Path(__file__).resolve().parent.parent
HISTORIES = ROOT / "tests" / "replay" / "histories"


def _history(name: str) -> WorkflowHistory:
    path = HISTORIES / f"{name}.json"
    return WorkflowHistory.from_json(path.stem, path.read_text())


async def cpu_per_run(runner: WorkflowRunner, history: WorkflowHistory, runs: int) -> float:
    """Milliseconds of process CPU per replayed run (after one unmeasured warm-up run)."""
    from workers.worker import WORKFLOWS

    replayer = Replayer(
        workflows=WORKFLOWS, data_converter=pydantic_data_converter, workflow_runner=runner
    )
    await replayer.replay_workflow(history)
    began = time.process_time()
    async with replayer.workflow_replay_iterator(_repeat(history, runs)) as results:
        async for result in results:
            if result.replay_failure is not None:
                raise result.replay_failure
    return 1000.0 * (time.process_time() - began) / runs


async def _repeat(history: WorkflowHistory, runs: int):  # type: ignore[no-untyped-def]
    for i in range(runs):
        # Each replay is a new run to the worker (its own id, a new sandbox).
        yield WorkflowHistory(f"{history.workflow_id}-{i}", history.events)


async def main(runs: int, history_name: str) -> dict[str, float]:
    """Measures every variant; returns ms CPU per run by variant."""
    history = _history(history_name)
    figures: dict[str, float] = {}
    figures["sandboxed"] = await cpu_per_run(SandboxedWorkflowRunner(), history, runs)
    with tempfile.TemporaryDirectory() as prefix:
        previous = sys.pycache_prefix
        sys.pycache_prefix = prefix
        try:
            compileall.compile_dir(ROOT / "workflows", quiet=1)
            figures["sandboxed+bytecode"] = await cpu_per_run(
                SandboxedWorkflowRunner(), history, runs
            )
        finally:
            sys.pycache_prefix = previous
    passthrough = SandboxRestrictions.default.with_passthrough_modules("workflows")
    figures["sandboxed+passthrough"] = await cpu_per_run(
        SandboxedWorkflowRunner(restrictions=passthrough), history, runs
    )
    figures["unsandboxed"] = await cpu_per_run(UnsandboxedWorkflowRunner(), history, runs)
    return figures


def _cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--history", default="step-send_email")
    args = parser.parse_args()
    figures = asyncio.run(main(args.runs, args.history))
    base = figures["sandboxed"]
    for name, ms in figures.items():
        print(f"{name:24} {ms:7.2f} ms CPU per run  ({ms / base:.2f}× sandboxed)")


if __name__ == "__main__":
    _cli()

"""`python -m bench`: runs the benchmarks, appends to `bench/results.jsonl`, writes BENCHMARKS.md.

Sizes come from the environment (see `bench.config`). The run starts and stops its own stack
in a scratch directory and checks that no child process outlives it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path

from bench import armed, batch, cost, e2e, engagement, ingest, report, shapes, tuning, waiting
from bench.config import ALL_BENCHMARKS, BenchConfig
from bench.machine import describe
from bench.procs import leftover_children
from bench.results import Recorder
from bench.stack import Suite

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = {
    "cost": cost.run,
    "ingest": ingest.run,
    "batch": batch.run,
    "e2e": e2e.run,
    "tuning": tuning.run,
    "waiting": waiting.run,
    "shapes": shapes.run,
    "engagement": engagement.run,
    "armed": armed.run,
}
FIGURE_KEYS = {
    "cost": cost.figure_keys,
    "ingest": ingest.figure_keys,
    "batch": batch.figure_keys,
    "e2e": e2e.figure_keys,
    "tuning": tuning.figure_keys,
    "waiting": waiting.figure_keys,
    "shapes": shapes.figure_keys,
    "engagement": engagement.figure_keys,
    "armed": armed.figure_keys,
}


def expected_keys(config: BenchConfig) -> list[str]:
    """Every figure key a run with `config` records (`*` stands for a measured rate)."""
    return [key for name in config.only for key in FIGURE_KEYS[name](config)]


async def run_suite(
    config: BenchConfig, *, results: Path, markdown: Path | None, scratch: Path
) -> Recorder:
    """Runs the configured benchmarks on a fresh stack and renders the report.

    Returns:
        The recorder holding every figure, note and profile of the run.
    """
    run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
    rec = Recorder(results, run_id=run_id, machine=describe(), sizes=config.sizes)
    started = time.monotonic()
    # BENCH_WORKER_SANDBOX=1 runs the journeys workers sandboxed, as before issue 13 (the
    # raw baseline's worker always runs with the SDK's default, the sandbox).
    sandbox = os.environ.get("BENCH_WORKER_SANDBOX") == "1"
    tuning = {"JOURNEYS_WORKER_WORKFLOW_SANDBOX": "true"} if sandbox else {}
    async with Suite(scratch, tuning=tuning) as suite:
        rec.extras["settings"] = suite.tuning_settings()
        durations: dict[str, float] = rec.extras.setdefault("durations", {})

        async def one(name: str) -> None:
            print(f"== {name}", flush=True)
            if not config.parallel:
                await suite.settle()
            began = time.monotonic()
            await BENCHMARKS[name](suite, config, rec)
            durations[name] = time.monotonic() - began

        if config.parallel:  # smoke only: structure, not timings
            await asyncio.gather(*(one(name) for name in config.only))
        else:
            for name in config.only:
                await one(name)
    rec.extras["total_seconds"] = time.monotonic() - started
    rec.extras["config"] = asdict(config)
    rec.save(results.with_name(_saved_name(config)))
    if markdown is not None:
        markdown.write_text(report.render(rec, config))
        print(f"wrote {markdown}", flush=True)
    return rec


def _saved_name(config: BenchConfig) -> str:
    if set(ALL_BENCHMARKS) <= set(config.only):
        return "last_run.json"
    return f"last_run-{'-'.join(config.only)}.json"


def _newer_alone(rec: Recorder, config: BenchConfig, results: Path) -> dict[str, Recorder]:
    """For a full run's report: benchmarks run again alone since (`last_run-<name>.json`, a
    later run id), by name, so the report shows each benchmark's latest measurement."""
    if not set(ALL_BENCHMARKS) <= set(config.only):
        return {}
    newer: dict[str, Recorder] = {}
    for name in config.only:
        saved = results.with_name(f"last_run-{name}.json")
        if saved.exists():
            alone = Recorder.load(saved, results)
            if alone.run_id > rec.run_id:  # run ids start with their UTC start time
                newer[name] = alone
    return newer


def _default_markdown(config: BenchConfig) -> Path:
    if set(ALL_BENCHMARKS) <= set(config.only):
        return ROOT / "BENCHMARKS.md"
    return ROOT / "bench" / f"BENCHMARKS-{'-'.join(config.only)}.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results.jsonl")
    parser.add_argument(
        "--markdown",
        type=Path,
        help="report to write (default: BENCHMARKS.md for a full run, "
        "bench/BENCHMARKS-<names>.md for a BENCH_ONLY subset, so it never replaces the full one)",
    )
    parser.add_argument("--scratch", type=Path, help="scratch directory (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs)")
    parser.add_argument(
        "--render",
        action="store_true",
        help="only render the report again from the last run saved (of BENCH_ONLY if set)",
    )
    args = parser.parse_args()
    if args.render:
        saved_name = _saved_name(BenchConfig.from_env())
        rec = Recorder.load(args.results.with_name(saved_name), args.results)
        saved = rec.extras["config"]
        config = BenchConfig(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()}
        )
        markdown = args.markdown or _default_markdown(config)
        markdown.write_text(report.render(rec, config, _newer_alone(rec, config, args.results)))
        print(f"wrote {markdown}")
        return 0
    config = BenchConfig.from_env()
    args.markdown = args.markdown or _default_markdown(config)
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="journeys-bench-"))
    print(f"scratch directory {scratch}", flush=True)
    try:
        asyncio.run(
            run_suite(config, results=args.results, markdown=args.markdown, scratch=scratch)
        )
    finally:
        left = leftover_children()
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    if left:
        print(f"left-over processes: {left}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

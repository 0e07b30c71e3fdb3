"""Experiment (opt-in, `BENCH_ONLY=shapes`): what fewer activities and upserts would save.

The contact flow spends most of its cost in Temporal (see `cost` and `e2e`). This runs raw
workflows shaped like a one-email contact today and like the shapes the findings recommend,
all started with a signal like the gateway's, at the end-to-end max rate, and compares Temporal
server CPU, worker CPU and completions/s with plain "start + one no-op activity". It changes
nothing in the product; it tells what a change to `workflows/` would be worth.
"""

from __future__ import annotations

from bench.config import BenchConfig
from bench.e2e import Raw
from bench.results import Figure, Recorder
from bench.stack import Suite, unique

BENCH = "shapes"
BASELINE = "raw Temporal: start + one no-op activity (the e2e baseline)"

SHAPES = {
    # begin_enrollment, upsert (phase, step), send_email, upsert (phase), finish_enrollment
    "as today: 3 activities + 2 upserts": ["noop", "upsert:hello", "noop", "upsert:done", "noop"],
    "bookkeeping as local activities + 2 upserts": [
        "local",
        "upsert:hello",
        "noop",
        "upsert:done",
        "local",
    ],
    "bookkeeping as local activities, no upserts": ["local", "noop", "local"],
}


def figure_keys(config: BenchConfig) -> list[str]:
    """Keys of every figure this experiment records (for the smoke test)."""
    return [
        f"{BENCH}.{name}[shape={shape}]"
        for shape in SHAPES
        for name in (
            "completions_per_s",
            "temporal_cpu_ms_per_contact",
            "worker_cpu_ms_per_contact",
        )
    ]


async def run(suite: Suite, config: BenchConfig, rec: Recorder) -> None:
    async with suite.env(BENCH) as env:
        queue = unique("shapes")
        await env.start_workers("raw", task_queue=queue, processes=1)
        side = Raw(env, queue)
        if config.warmup:
            await side.measure("warm", config.warmup, concurrency=4, timeout=config.drain_timeout)
        count, concurrency = config.e2e_contacts, config.e2e_concurrency
        base = await side.measure(
            "base", count, concurrency=concurrency, timeout=config.drain_timeout
        )
        for shape, steps in SHAPES.items():
            mine = await side.measure(
                f"shape{len(steps)}",
                count,
                concurrency=concurrency,
                timeout=config.drain_timeout,
                steps=steps,
            )
            params = {"shape": shape}
            rec.add(
                Figure(
                    BENCH,
                    "completions_per_s",
                    mine.rate,
                    "workflows/s",
                    base.rate,
                    BASELINE,
                    "higher",
                    params,
                )
            )
            for role in ("temporal", "worker"):
                rec.add(
                    Figure(
                        BENCH,
                        f"{role}_cpu_ms_per_contact",
                        mine.cpu.get(role, 0.0),
                        "ms",
                        base.cpu.get(role, 0.0),
                        BASELINE,
                        "lower",
                        params,
                    )
                )

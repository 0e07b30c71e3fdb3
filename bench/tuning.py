"""Benchmark 5, worker tuning: one worker process against two, on this machine.

Worker settings (sticky cache, concurrency, pollers, processes) come from `JOURNEYS_WORKER_*`
(see `journeys.config`); every worker process of both sides runs with them. The end-to-end
max-rate run is repeated with two processes per side; the one-process figures are those of
the `e2e` benchmark when it ran in the same suite, else measured here first.
"""

from __future__ import annotations

from bench.config import BenchConfig
from bench.e2e import RAW_LABEL, max_rates, start_sides
from bench.results import Figure, Recorder
from bench.stack import Suite

BENCH = "tuning"


def figure_keys(config: BenchConfig) -> list[str]:
    """Keys of every figure this benchmark records with `config` (for the smoke test)."""
    return [f"{BENCH}.completions_per_s[processes={p}]" for p in config.tuning_processes] + [
        f"{BENCH}.speedup_over_1_process[processes={p}]" for p in config.tuning_processes if p != 1
    ]


async def run(suite: Suite, config: BenchConfig, rec: Recorder) -> None:
    rates: dict[int, tuple[float, float]] = {}
    if "e2e.rates" in suite.shared:  # measured by e2e: recorded under this benchmark too
        rates[1] = suite.shared["e2e.rates"]
        rec.note(BENCH, "1 process: the e2e benchmark's max-rate run of this suite")
        rec.add(
            Figure(
                BENCH,
                "completions_per_s",
                rates[1][0],
                "enrolments/s",
                rates[1][1],
                RAW_LABEL,
                "higher",
                {"processes": 1},
            )
        )
    for processes in config.tuning_processes:
        if processes in rates:
            continue
        async with suite.env(f"{BENCH}-{processes}") as env:
            journeys, baseline = await start_sides(env, processes=processes)
            ours, theirs = await max_rates(
                journeys, baseline, config, rec, bench=BENCH, params={"processes": processes}
            )
            rates[processes] = (ours.rate, theirs.rate)
    if 1 in rates:
        for processes, (ours, theirs) in sorted(rates.items()):
            if processes == 1:
                continue
            rec.add(
                Figure(
                    BENCH,
                    "speedup_over_1_process",
                    ours / rates[1][0],
                    "×",
                    theirs / rates[1][1],
                    "raw Temporal's speed-up from the same change",
                    "higher",
                    {"processes": processes},
                )
            )

"""Benchmark sizes, chosen by environment: `BENCH_SIZES=default|smoke`, `BENCH_LARGE=1`.

`default` is what `make bench` runs (under 15 minutes on 2 cores); `smoke` is the tiny run the
test suite uses so the benchmarks never rot. `BENCH_LARGE=1` adds 100k waiting contacts and
arms 100k contacts instead of 10k.
`BENCH_ONLY=ingest,e2e,...` runs a subset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

ALL_BENCHMARKS = ("cost", "ingest", "batch", "e2e", "tuning", "waiting", "engagement", "armed")
# Not in the default run (time budget); `BENCH_ONLY=shapes`, and always in the smoke run.
EXPERIMENTS = ("shapes",)


@dataclass(frozen=True)
class BenchConfig:
    """Sizes and durations of every benchmark."""

    sizes: str = "default"
    only: tuple[str, ...] = ALL_BENCHMARKS

    # Ingest: a closed-loop sweep, each level runs this long against each side.
    ingest_concurrency: tuple[int, ...] = (1, 8, 32, 128)
    ingest_seconds: float = 5.0
    ingest_contacts_per_level: int = 3000
    # Contacts whose page views enrol nobody (cycled through; never enrolled).
    ingest_idle_contacts: int = 500

    # Batch ingest: single posts, then closed loops of batch requests of each size.
    batch_sizes: tuple[int, ...] = (100, 500)
    batch_concurrency: int = 4
    batch_single_concurrency: int = 8
    batch_concurrency_raw: int = 32
    batch_seconds: float = 5.0
    batch_contacts: int = 15_000
    batch_idle_contacts: int = 2_000

    # End to end: enrolments for the max-rate run, then open-loop latency runs.
    e2e_contacts: int = 800
    e2e_concurrency: int = 32
    latency_fractions: tuple[float, ...] = (0.25, 0.5, 0.9)
    latency_seconds: float = 8.0

    # Cost per contact (counts, not timings: a few contacts suffice).
    cost_contacts: int = 3
    cost_delay_seconds: int = 1

    # Waiting scale: checkpoints of a growing population of waiting contacts.
    waiting_sizes: tuple[int, ...] = (1000, 10000)
    waiting_delay_seconds: int = 180
    waiting_concurrency: int = 32

    # Worker tuning: processes compared on the end-to-end max-rate run.
    tuning_processes: tuple[int, ...] = (1, 2)

    # Engagement: a campaign to this many contacts, then the open pixel against plain ingest.
    engagement_recipients: int = 10_000
    engagement_open_seconds: float = 5.0
    engagement_open_concurrency: int = 32

    # Armed contacts: a birthday flow's audience armed on activation, RSS sampled this many
    # times on the way; then a cohort due in one minute, at least `lead` seconds ahead (more if
    # arming it takes longer), the raw cohort `gap` seconds before ours.
    armed_contacts: int = 10_000
    armed_rss_samples: int = 8
    # Both sides' workers keep this many workflows in their sticky cache while the population
    # arms (None: the workers' default, 10,000): a quarter of the population, so the run shows
    # the RSS growing while the cache fills, settling while it turns over once (evicted runs'
    # memory is reused, not returned) and flat after. `BENCH_LARGE=1` arms 100k with the
    # default cache.
    armed_cache: int | None = 2_500
    armed_cohort: int = 1000
    armed_cohort_lead_s: float = 30.0
    armed_cohort_gap_s: int = 120

    # Profiles taken with py-spy in a separate, unmeasured pass.
    profile_seconds: float = 6.0
    profile_contacts: int = 300

    # Unmeasured calls before each measured run (connections, caches, imports).
    warmup: int = 10

    # Run the benchmarks at the same time: only for `smoke`, where nothing is a timing.
    parallel: bool = False

    # Generous ceilings for waits that should end much sooner.
    drain_timeout: float = 600.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> BenchConfig:
        env = os.environ if environ is None else environ
        sizes = env.get("BENCH_SIZES", "default")
        config = SMOKE if sizes == "smoke" else cls()
        if sizes not in ("default", "smoke"):
            raise ValueError(f"BENCH_SIZES must be 'default' or 'smoke', not {sizes!r}")
        if env.get("BENCH_LARGE") == "1":
            config = replace(
                config,
                waiting_sizes=(*config.waiting_sizes, 100_000),
                armed_contacts=100_000,
                armed_cache=None,
            )
        only = env.get("BENCH_ONLY")
        if only:
            names = tuple(name.strip() for name in only.split(",") if name.strip())
            unknown = set(names) - set(ALL_BENCHMARKS) - set(EXPERIMENTS)
            if unknown:
                raise ValueError(f"unknown benchmark(s) in BENCH_ONLY: {sorted(unknown)}")
            config = replace(config, only=names)
        return config


SMOKE = BenchConfig(
    sizes="smoke",
    only=ALL_BENCHMARKS + EXPERIMENTS,
    ingest_concurrency=(1, 4),
    ingest_seconds=1.0,
    ingest_contacts_per_level=60,
    ingest_idle_contacts=20,
    batch_sizes=(5, 20),
    batch_concurrency=2,
    batch_single_concurrency=4,
    batch_concurrency_raw=4,
    batch_seconds=0.5,
    batch_contacts=400,
    batch_idle_contacts=50,
    e2e_contacts=12,
    e2e_concurrency=4,
    latency_fractions=(0.25, 0.5, 0.9),
    latency_seconds=0.5,
    cost_contacts=1,
    cost_delay_seconds=1,
    waiting_sizes=(10, 20),
    waiting_delay_seconds=3,
    waiting_concurrency=4,
    tuning_processes=(1, 2),
    engagement_recipients=30,
    engagement_open_seconds=0.5,
    engagement_open_concurrency=4,
    armed_contacts=40,
    armed_rss_samples=2,
    armed_cache=20,
    armed_cohort=5,
    armed_cohort_lead_s=3.0,
    armed_cohort_gap_s=0,
    profile_seconds=1.0,
    profile_contacts=10,
    warmup=0,
    parallel=True,
    drain_timeout=90.0,
)

"""Benchmark 1, ingest: events/s the gateway accepts, each enrolling one contact.

Driven over HTTP with httpx at a sweep of concurrencies, against raw
`start_workflow(start_signal=...)` calls from a Python client at the same concurrency on the
same Temporal server. No worker polls during either side: this is the cost of accepting an
event durably (stored in Postgres, run started in Temporal), not of running it (see `e2e`).
At each level, events that enrol nobody too (`idle_events_per_s`): a page view no flow
triggers on, of a contact in no flow, posted one per request; stored, then nothing to start,
against the same raw starts/s.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterator

from bench import raw
from bench.config import BenchConfig
from bench.fixtures import (
    Contact,
    create_audience,
    create_contacts,
    create_flow,
    send_step,
    tag,
    visit,
)
from bench.load import check_run, closed_loop, percentile_ms
from bench.profiling import cpu_per_item, format_cpu, record, summarize
from bench.results import Figure, Recorder
from bench.stack import BenchEnv, Suite, unique

BENCH = "ingest"
RAW_LABEL = "raw start_workflow(start_signal) from a Python client"
IDLE_URL = "https://bench.test/about"  # no flow of the benchmark triggers on page views


async def run(suite: Suite, config: BenchConfig, rec: Recorder) -> None:
    """Runs the sweep, then a profiled pass of the gateway."""
    async with suite.env(BENCH) as env:
        queue = unique("ingest")
        http = await env.start_gateway(task_queue=queue)
        audience = await create_audience(http.next(), "Ingest")
        await create_flow(http.next(), audience, [send_step("hello")], name="Ingest welcome")
        assert suite.pool is not None
        levels = len(config.ingest_concurrency) + 2  # + warm-up + profile
        contacts = iter(
            await create_contacts(suite.pool, audience, config.ingest_contacts_per_level * levels)
        )
        # Never enrolled: their page views find nobody to tell, again and again.
        idle = itertools.cycle(
            await create_contacts(suite.pool, audience, config.ingest_idle_contacts)
        )
        raw_ids = (f"raw-{queue}-{i}" for i in itertools.count())

        async def via_gateway(contact: Contact) -> None:
            await tag(http.next(), audience, contact)

        async def idle_event(contact: Contact) -> None:
            await visit(http.next(), audience, contact, IDLE_URL, enrols=False)

        assert env.client is not None
        via_raw = raw.noop_starts(env.client, task_queue=queue + "-raw", event_type="tag_added")

        # Warm-up, not measured: connections, caches, first-request imports.
        per_level = config.ingest_contacts_per_level
        await closed_loop(itertools.islice(contacts, config.warmup), via_gateway, concurrency=4)
        await closed_loop(itertools.islice(raw_ids, config.warmup), via_raw, concurrency=4)
        await closed_loop(itertools.islice(idle, config.warmup), idle_event, concurrency=4)

        for concurrency in config.ingest_concurrency:
            before = env.cpu_snapshot()
            gateway = await closed_loop(
                itertools.islice(contacts, per_level),
                via_gateway,
                concurrency=concurrency,
                duration=config.ingest_seconds,
            )
            middle = env.cpu_snapshot()
            baseline = await closed_loop(
                raw_ids, via_raw, concurrency=concurrency, duration=config.ingest_seconds
            )
            after = env.cpu_snapshot()
            nobody = await closed_loop(
                idle, idle_event, concurrency=concurrency, duration=config.ingest_seconds
            )
            idle_done = env.cpu_snapshot()
            check_run(gateway, "gateway")
            check_run(baseline, "raw")
            check_run(nobody, "gateway, events enrolling nobody")
            params = {"concurrency": concurrency}
            rec.add(
                Figure(
                    BENCH,
                    "events_per_s",
                    gateway.rate,
                    "events/s",
                    baseline.rate,
                    RAW_LABEL,
                    "higher",
                    params,
                )
            )
            rec.add(
                Figure(
                    BENCH,
                    "idle_events_per_s",
                    nobody.rate,
                    "events/s",
                    baseline.rate,
                    RAW_LABEL,
                    "higher",
                    params,
                )
            )
            for pct in (50, 99):
                rec.add(
                    Figure(
                        BENCH,
                        f"response_p{pct}_ms",
                        percentile_ms(gateway.response_histogram(), pct),
                        "ms",
                        percentile_ms(baseline.response_histogram(), pct),
                        RAW_LABEL,
                        "lower",
                        params,
                    )
                )
            rec.note(
                BENCH,
                f"concurrency {concurrency}: gateway "
                + format_cpu(cpu_per_item(before, middle, gateway.ok), "event")
                + "; raw "
                + format_cpu(cpu_per_item(middle, after, baseline.ok), "start")
                + "; events enrolling nobody "
                + format_cpu(cpu_per_item(after, idle_done, nobody.ok), "event"),
            )
            if gateway.ok >= per_level:
                rec.note(
                    BENCH,
                    f"concurrency {concurrency}: the gateway side used all "
                    f"{per_level} prepared contacts before {config.ingest_seconds:.0f}s",
                )

        await _profile(env, config, rec, contacts, via_gateway)


async def _profile(
    env: BenchEnv,
    config: BenchConfig,
    rec: Recorder,
    contacts: Iterator[Contact],
    via_gateway: Callable[[Contact], Awaitable[None]],
) -> None:
    """A separate pass under py-spy (profiling slows what it watches; nothing here is a figure)."""
    assert env.gateway is not None
    out = env.dir / "gateway.pyspy"
    concurrency = 32 if 32 in config.ingest_concurrency else max(config.ingest_concurrency)
    task = asyncio.create_task(record(env.gateway.pid, seconds=config.profile_seconds, out=out))
    await closed_loop(
        itertools.islice(contacts, config.ingest_contacts_per_level),
        via_gateway,
        concurrency=concurrency,
        duration=config.profile_seconds,
    )
    path = await task
    rec.extras["profile.gateway"] = f"gateway under ingest at concurrency {concurrency}\n" + (
        summarize(path) if path else "(py-spy failed; see stderr)"
    )


def figure_keys(config: BenchConfig) -> list[str]:
    """Keys of every figure this benchmark records with `config` (for the smoke test)."""
    return [
        f"{BENCH}.{name}[concurrency={c}]"
        for c in config.ingest_concurrency
        for name in ("events_per_s", "idle_events_per_s", "response_p50_ms", "response_p99_ms")
    ]

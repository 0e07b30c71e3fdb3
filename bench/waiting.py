"""Benchmark 4, waiting scale: many contacts waiting on durable timers, and timers firing.

Contacts enter through the gateway until N of them wait (checkpoints N = 1k, 10k, and 100k
with `BENCH_LARGE=1`). At each checkpoint: the enrol rate so far, the Temporal SQLite growth
per waiting contact and the worker's RSS. The first checkpoint's contacts are the *cohort*:
they enter `tag_added → delay 3m → send_email`, and their fire lateness is
SMTP acceptance − (enrolment accepted + delay). The contacts beyond the first checkpoint enter
the same flow with a one-hour delay: they cost the same to keep waiting, but do not fire during
the run (sending 10k emails would take longer on 2 cores than the whole suite may).

The baseline, on the same server: raw workflows "timer, then one no-op activity" started
from a Python client; each side's cohort is enrolled before the larger populations, raw first.
Lateness of raw = workflow close − (start returned + delay). The report says when a cohort
fired while enrolment was still running (they then share the CPU).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench import raw
from bench.config import BenchConfig
from bench.fixtures import (
    Contact,
    create_audience,
    create_contacts,
    create_flow,
    delay_step,
    send_step,
    tag,
)
from bench.load import add_fire_lateness, closed_loop, histogram
from bench.procs import Child, wall
from bench.results import Figure, Recorder
from bench.stack import BenchEnv, Suite, unique
from bench.visibility import close_times, wait_closed, wait_for

BENCH = "waiting"
RAW_LABEL = "raw Temporal: timer then one no-op activity, same server"
HOLD_SECONDS = 3600  # the delay of contacts beyond the cohort: they wait, never fire here
_SAMPLE = 12  # workflows whose history is checked to know a chunk's contacts all wait


@dataclass
class Checkpoint:
    """One side at N waiting. The sides enrol in turns on one database, so growth sums the
    growth during this side's own chunks only."""

    n: int
    seconds: float  # enrolling time so far (each chunk: first call until all of it waits)
    db_growth: int
    db_used_growth: int | None
    rss: int


@dataclass
class Side:
    """One side's population: how to enrol a key, and what was measured."""

    worker: Child
    call: Callable[[Any], Awaitable[None]]
    workflow_id: Callable[[Any], str]
    accepted: dict[Any, float] = field(default_factory=dict)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    enrolling: float = 0.0  # seconds spent enrolling so far
    windows: list[tuple[float, float]] = field(default_factory=list)  # when it enrolled

    def baseline(self) -> None:
        self.checkpoints.append(Checkpoint(0, 0.0, 0, 0, self.worker.rss_bytes()))

    @property
    def n(self) -> int:
        return self.checkpoints[-1].n


async def _has_timer(client: Client, workflow_id: str) -> bool:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return any(e.event_type == EventType.EVENT_TYPE_TIMER_STARTED for e in history.events)


async def enrol_chunk(
    env: BenchEnv, side: Side, keys: Sequence[Any], *, concurrency: int, timeout: float
) -> None:
    """Enrols `keys`, waits until they all wait on their timer, and takes a checkpoint."""
    assert env.client is not None
    client = env.client
    began, db_before, used_before = wall(), env.db_bytes(), env.db_used_bytes()
    run = await closed_loop(keys, side.call, concurrency=concurrency)
    if run.errors:
        raise RuntimeError(f"{len(run.errors)} enrolments failed, first: {run.errors[0]}")
    side.accepted.update(run.done)
    # The latest starts are processed last; a few random ones guard the rest.
    sample = list(keys[-(_SAMPLE // 2) :]) + random.sample(list(keys), min(_SAMPLE // 2, len(keys)))

    async def all_wait() -> bool:
        return all(await asyncio.gather(*(_has_timer(client, side.workflow_id(k)) for k in sample)))

    await wait_for(all_wait, timeout=timeout, what=f"{len(keys)} contacts waiting", interval=0.5)
    ended, db_after, used_after = wall(), env.db_bytes(), env.db_used_bytes()
    side.enrolling += ended - began
    side.windows.append((began, ended))
    last = side.checkpoints[-1]
    used = (
        None
        if used_before is None or used_after is None or last.db_used_growth is None
        else last.db_used_growth + used_after - used_before
    )
    side.checkpoints.append(
        Checkpoint(
            last.n + len(keys),
            side.enrolling,
            last.db_growth + db_after - db_before,
            used,
            side.worker.rss_bytes(),
        )
    )


async def run(suite: Suite, config: BenchConfig, rec: Recorder) -> None:
    sizes = sorted(config.waiting_sizes)
    cohort, total, delay = sizes[0], sizes[-1], config.waiting_delay_seconds
    async with suite.env(BENCH) as env:
        queue = unique("wait")
        sink = await env.start_sink()
        http = await env.start_gateway(task_queue=queue)
        journeys_workers, raw_workers = await asyncio.gather(
            env.start_workers("journeys", task_queue=queue, processes=1),
            env.start_workers("raw", task_queue=queue + "-raw", processes=1),
        )
        assert env.client is not None and suite.pool is not None
        client = env.client

        # Two flows, so the cohort and the rest differ only by their delay.
        flows: dict[int, tuple[str, str]] = {}
        for seconds in (delay, HOLD_SECONDS):
            audience = await create_audience(http.next(), f"Waiting {seconds}s")
            flow = await create_flow(
                http.next(),
                audience,
                [delay_step("wait", f"{seconds}s"), send_step("hello")],
                name=f"Waiting {seconds}s",
            )
            flows[seconds] = (audience, flow)
        contacts = await create_contacts(suite.pool, flows[delay][0], cohort)
        if total > cohort:
            contacts += await create_contacts(suite.pool, flows[HOLD_SECONDS][0], total - cohort)
        in_cohort = set(contacts[:cohort])
        prefix = unique("raw-wait")
        raw_ids = [f"{prefix}-{i}" for i in range(total)]

        async def start_raw(workflow_id: str) -> None:
            seconds = delay if int(workflow_id.rpartition("-")[2]) < cohort else HOLD_SECONDS
            await client.start_workflow(
                raw.WORKFLOW_NAME,
                raw.RawFlowInput(raw.delay_then_noop(seconds)),
                id=workflow_id,
                task_queue=queue + "-raw",
                start_signal=raw.EVENT_SIGNAL,
                start_signal_args=[{"id": workflow_id, "type": "tag_added"}],
            )

        async def enrol_contact(contact: Contact) -> None:
            await tag(
                http.next(), flows[delay if contact in in_cohort else HOLD_SECONDS][0], contact
            )

        def journeys_id(contact: Contact) -> str:
            flow = flows[delay if contact in in_cohort else HOLD_SECONDS][1]
            return f"flow-{flow}-contact-{contact.id}"

        theirs = Side(raw_workers[0], start_raw, lambda w: w)
        ours = Side(journeys_workers[0], enrol_contact, journeys_id)
        theirs.baseline()
        ours.baseline()
        timeout, concurrency = config.drain_timeout, config.waiting_concurrency
        done = 0
        for size in sizes:
            print(f"  enrolling up to {size} waiting per side", flush=True)
            await enrol_chunk(
                env, theirs, raw_ids[done:size], concurrency=concurrency, timeout=timeout
            )
            await enrol_chunk(
                env, ours, contacts[done:size], concurrency=concurrency, timeout=timeout
            )
            done = size

        cohort_contacts, cohort_raw = contacts[:cohort], raw_ids[:cohort]
        emails = {c.email for c in cohort_contacts}
        await wait_for(
            lambda: sink.refresh() and emails <= sink.accepted.keys(),
            timeout=delay + timeout,
            what=f"{cohort} delayed emails",
            interval=1.0,
        )
        query = f"WorkflowId STARTS_WITH '{prefix}-' AND ExecutionStatus = 'Completed'"
        await wait_closed(client, query, cohort, timeout=delay + timeout)
        raw_closed = await close_times(client, f"WorkflowId STARTS_WITH '{prefix}-'")

        _record(rec, ours, theirs)
        mine = histogram(
            max(sink.accepted[c.email] - (ours.accepted[c] + delay), 0.0) for c in cohort_contacts
        )
        base = histogram(max(raw_closed[w] - (theirs.accepted[w] + delay), 0.0) for w in cohort_raw)
        add_fire_lateness(rec, BENCH, mine, base, RAW_LABEL, {"n": cohort, "delay_s": delay})
        _note_overlap(rec, ours, theirs, cohort, delay)


def figure_keys(config: BenchConfig) -> list[str]:
    """Keys of every figure this benchmark records with `config` (for the smoke test)."""
    sizes = sorted(config.waiting_sizes)
    keys = []
    for n in sizes:
        keys += [
            f"{BENCH}.{name}[n={n}]"
            for name in (
                "enrol_per_s",
                "db_bytes_per_waiting_contact",
                "worker_rss_mib",
                "worker_rss_kib_per_waiting_contact",
            )
        ]
    keys += [
        f"{BENCH}.fire_lateness_{p}_ms[delay_s={config.waiting_delay_seconds},n={sizes[0]}]"
        for p in ("p50", "p99", "max")
    ]
    return keys


def _record(rec: Recorder, ours: Side, theirs: Side) -> None:
    zero_ours, zero_theirs = ours.checkpoints[0], theirs.checkpoints[0]
    for mine, base in zip(ours.checkpoints[1:], theirs.checkpoints[1:], strict=True):
        add = partial(_figure, rec, {"n": mine.n})
        add(
            "enrol_per_s",
            mine.n / mine.seconds,
            "contacts/s",
            base.n / base.seconds,
            label=RAW_LABEL + "; started from a Python client",
            better="higher",
        )
        add(
            "db_bytes_per_waiting_contact",
            mine.db_growth / mine.n,
            "bytes",
            base.db_growth / base.n,
        )
        if mine.db_used_growth is not None and base.db_used_growth:
            add(
                "db_pages_bytes_per_waiting_contact",
                mine.db_used_growth / mine.n,
                "bytes",
                base.db_used_growth / base.n,
            )
        add("worker_rss_mib", mine.rss / 2**20, "MiB", base.rss / 2**20)
        add(
            "worker_rss_kib_per_waiting_contact",
            (mine.rss - zero_ours.rss) / 1024 / mine.n,
            "KiB",
            max(base.rss - zero_theirs.rss, 1) / 1024 / base.n,
        )


def _figure(
    rec: Recorder,
    params: dict[str, Any],
    name: str,
    value: float,
    unit: str,
    baseline: float,
    *,
    label: str = RAW_LABEL,
    better: Literal["higher", "lower"] = "lower",
) -> None:
    """Records one figure of a checkpoint against the raw-Temporal baseline."""
    rec.add(Figure(BENCH, name, value, unit, baseline, label, better, params))


def _note_overlap(rec: Recorder, ours: Side, theirs: Side, cohort: int, delay: int) -> None:
    """Says whether a cohort's timers fired while either side was still enrolling."""
    enrolling = sorted(theirs.windows + ours.windows)
    for name, side in (("raw", theirs), ("journeys", ours)):
        first_fire = side.windows[0][0] + delay
        last_fire = side.windows[0][1] + delay
        busy = sum(
            max(0.0, min(end, last_fire) - max(start, first_fire)) for start, end in enrolling
        )
        if busy > 0:
            rec.note(
                BENCH,
                f"{name} cohort ({cohort} timers of {delay}s) fired while enrolment "
                f"of the larger populations ran for {busy:.0f}s of its "
                f"{last_fire - first_fire:.0f}s window: its lateness is under that load",
            )

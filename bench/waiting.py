"""Benchmark 4, waiting scale: many contacts waiting on a durable timer, then all firing.

Contacts enter `tag_added → delay → send_email` through the gateway until N of them wait
(checkpoints N = 1k, 10k, and 100k with `BENCH_LARGE=1`). At each checkpoint: the enrol rate
so far, the Temporal SQLite growth per waiting contact and the worker's RSS. When the delays
end: fire lateness = SMTP acceptance − (enrolment accepted + delay).

The baseline, on the same server: raw workflows "timer, then one no-op activity" started from
a Python client, enrolled first (they are faster), lateness = workflow close − (start returned
+ delay). Both sides' populations wait at the same time; the report says when one side's
timers fired while the other was still enrolling.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench import raw
from bench.config import BenchConfig
from bench.fixtures import Contact, create_audience, create_contacts, create_flow, delay_step, send_step, tag
from bench.load import closed_loop, histogram, percentile_ms
from bench.procs import Child, wall
from bench.results import Figure, Recorder
from bench.stack import BenchEnv, Suite, unique
from bench.visibility import close_times, wait_closed, wait_for

BENCH = "waiting"
RAW_LABEL = "raw Temporal: timer then one no-op activity, same server"
_SAMPLE = 12  # workflows whose history is checked to know a checkpoint's contacts all wait


@dataclass
class Checkpoint:
    n: int
    seconds: float  # from the first enrolment until all n wait
    db_bytes: int
    db_used_bytes: int | None
    rss: int


@dataclass
class Population:
    """One side's waiting contacts: when each enrolment was accepted, and the checkpoints."""

    accepted: dict[Any, float] = field(default_factory=dict)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0


async def _has_timer(client: Client, workflow_id: str) -> bool:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return any(e.event_type == EventType.EVENT_TYPE_TIMER_STARTED for e in history.events)


async def enrol(
    env: BenchEnv,
    keys: Sequence[Any],
    call: Callable[[Any], Awaitable[None]],
    workflow_id: Callable[[Any], str],
    worker: Child,
    sizes: Sequence[int],
    concurrency: int,
    timeout: float,
) -> Population:
    """Enrols `keys` in chunks up to each checkpoint, measuring once all of a chunk wait."""
    assert env.client is not None
    client = env.client
    pop = Population(started=wall())
    base_db, base_used, base_rss = env.db_bytes(), env.db_used_bytes(), worker.rss_bytes()
    pop.checkpoints.append(Checkpoint(0, 0.0, base_db, base_used, base_rss))
    done = 0
    for size in sizes:
        chunk = keys[done:size]
        run = await closed_loop(chunk, call, concurrency=concurrency)
        if run.errors:
            raise RuntimeError(f"{len(run.errors)} enrolments failed, first: {run.errors[0]}")
        pop.accepted.update(run.done)
        # The latest starts are the last to be processed; a few random ones guard the rest.
        sample = list(chunk[-_SAMPLE // 2:]) + random.sample(list(chunk), min(_SAMPLE // 2, len(chunk)))

        async def all_wait() -> bool:
            checks = await asyncio.gather(*(_has_timer(client, workflow_id(k)) for k in sample))
            return all(checks)

        await wait_for(all_wait, timeout=timeout, what=f"{size} contacts waiting", interval=0.5)
        pop.checkpoints.append(
            Checkpoint(size, wall() - pop.started, env.db_bytes(), env.db_used_bytes(),
                       worker.rss_bytes())
        )
        done = size
    pop.finished = wall()
    return pop


async def run(suite: Suite, config: BenchConfig, rec: Recorder) -> None:
    sizes = sorted(config.waiting_sizes)
    total = sizes[-1]
    delay = config.waiting_delay_seconds
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
        audience = await create_audience(http.next(), "Waiting")
        flow = await create_flow(
            http.next(), audience, [delay_step("wait", f"{delay}s"), send_step("hello")],
            name="Waiting",
        )
        contacts = await create_contacts(suite.pool, audience, total)
        prefix = unique("raw-wait")
        raw_ids = [f"{prefix}-{i}" for i in range(total)]

        async def start_raw(workflow_id: str) -> None:
            await client.start_workflow(
                raw.WORKFLOW_NAME, raw.RawFlowInput(raw.delay_then_noop(delay)),
                id=workflow_id, task_queue=queue + "-raw",
                start_signal=raw.EVENT_SIGNAL,
                start_signal_args=[{"id": workflow_id, "type": "tag_added"}],
            )

        async def enrol_contact(contact: Contact) -> None:
            await tag(http.next(), audience, contact)

        timeout = config.drain_timeout
        print(f"  enrolling {total} raw workflows, then {total} contacts", flush=True)
        theirs = await enrol(env, raw_ids, start_raw, lambda w: w, raw_workers[0], sizes,
                             config.waiting_concurrency, timeout)
        ours = await enrol(env, contacts, enrol_contact,
                           lambda c: f"flow-{flow}-contact-{c.id}", journeys_workers[0], sizes,
                           config.waiting_concurrency, timeout)
        print(f"  all waiting; the last timers fire in about "
              f"{max(0.0, ours.finished + delay - wall()):.0f}s", flush=True)

        emails = {c.email for c in contacts}
        await wait_for(lambda: sink.refresh() and emails <= sink.accepted.keys(),
                       timeout=delay + timeout, what=f"{total} delayed emails", interval=1.0)
        await wait_closed(client, f"WorkflowId STARTS_WITH '{prefix}-'", total,
                          timeout=delay + timeout)
        raw_closed = await close_times(client, f"WorkflowId STARTS_WITH '{prefix}-'")

        _record(rec, ours, theirs)
        our_late = {c: sink.accepted[c.email] - (ours.accepted[c] + delay) for c in contacts}
        their_late = {w: raw_closed[w] - (theirs.accepted[w] + delay) for w in raw_ids}
        for size in sizes:
            mine = histogram(max(our_late[c], 0.0) for c in contacts[:size])
            base = histogram(max(their_late[w], 0.0) for w in raw_ids[:size])
            for label, pct in (("p50", 50.0), ("p99", 99.0), ("max", 100.0)):
                rec.add(Figure(BENCH, f"fire_lateness_{label}_ms", percentile_ms(mine, pct), "ms",
                               percentile_ms(base, pct), RAW_LABEL, "lower",
                               {"n": size, "delay_s": delay}))
        _note_overlap(rec, ours, theirs, delay)


def figure_keys(config: BenchConfig) -> list[str]:
    """Keys of every figure this benchmark records with `config` (for the smoke test)."""
    keys = []
    for n in sorted(config.waiting_sizes):
        keys += [f"{BENCH}.{name}[n={n}]" for name in (
            "enrol_per_s", "db_bytes_per_waiting_contact", "worker_rss_mib",
            "worker_rss_kib_per_waiting_contact")]
        keys += [f"{BENCH}.fire_lateness_{p}_ms[delay_s={config.waiting_delay_seconds},n={n}]"
                 for p in ("p50", "p99", "max")]
    return keys


def _record(rec: Recorder, ours: Population, theirs: Population) -> None:
    base_ours, base_theirs = ours.checkpoints[0], theirs.checkpoints[0]
    for mine, base in zip(ours.checkpoints[1:], theirs.checkpoints[1:], strict=True):
        params = {"n": mine.n}
        rec.add(Figure(BENCH, "enrol_per_s", mine.n / mine.seconds, "contacts/s",
                       base.n / base.seconds, RAW_LABEL + "; started from a Python client",
                       "higher", params))
        rec.add(Figure(BENCH, "db_bytes_per_waiting_contact",
                       (mine.db_bytes - base_ours.db_bytes) / mine.n, "bytes",
                       (base.db_bytes - base_theirs.db_bytes) / base.n, RAW_LABEL, "lower", params))
        if mine.db_used_bytes is not None and base.db_used_bytes is not None and \
                base_ours.db_used_bytes is not None and base_theirs.db_used_bytes is not None:
            rec.add(Figure(BENCH, "db_pages_bytes_per_waiting_contact",
                           (mine.db_used_bytes - base_ours.db_used_bytes) / mine.n, "bytes",
                           (base.db_used_bytes - base_theirs.db_used_bytes) / base.n, RAW_LABEL,
                           "lower", params))
        rec.add(Figure(BENCH, "worker_rss_mib", mine.rss / 2**20, "MiB", base.rss / 2**20,
                       RAW_LABEL, "lower", params))
        rec.add(Figure(BENCH, "worker_rss_kib_per_waiting_contact",
                       (mine.rss - base_ours.rss) / 1024 / mine.n, "KiB",
                       max(base.rss - base_theirs.rss, 1) / 1024 / base.n, RAW_LABEL, "lower",
                       params))


def _note_overlap(rec: Recorder, ours: Population, theirs: Population, delay: int) -> None:
    """Says whether fires of one population overlapped enrolments (they share the CPU)."""
    first_raw_fire = theirs.started + delay
    first_our_fire = ours.started + delay
    if first_raw_fire < ours.finished:
        rec.note(BENCH, f"raw timers began firing {ours.finished - first_raw_fire:.0f}s before "
                 "the journeys enrolment ended: the two shared the CPU then (enrol rate and "
                 "lateness of both sides are pessimistic)")
    if first_our_fire < ours.finished:
        rec.note(BENCH, f"journeys timers began firing {ours.finished - first_our_fire:.0f}s "
                 "before its own enrolment ended (the delay is shorter than the enrolment)")

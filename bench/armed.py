"""Benchmark 7, armed contacts (issue 9): arming a birthday flow's audience, and timers firing.

*Arming.* N contacts with a birthday months ahead are copied into an audience; a `birthday`
flow over it is activated through the gateway, which starts `ArmFlowWorkflow`: pages of
contacts read from Postgres, each contact's moment computed from its page and its run started
with it at a bounded concurrency, resting on one timer from its first task (phase `armed`, set
as it starts). Done when the visibility count of `JourneyPhase = 'armed'` for the flow reaches
N, the worker has no workflow task left in its queue and a sample of the runs has its timer.
Baseline, on the same server, first: raw workflows that only start and sleep until the same
instant, started from the driver at the arming's concurrency; done when every start returned,
the queue is empty and a sample of them has its timer.
At each side: armed/s, the Temporal SQLite growth per armed contact, CPU per process, and the
worker's RSS at several N. Both workers' sticky cache holds a quarter of the population
(`armed_cache`), so the RSS is seen growing while the cache fills, settling while it turns over
once (the memory of evicted runs is reused by new ones, not returned to the system: measured on
an in-process worker, a forced full garbage collection changes nothing) and flat after.

*Firing.* A cohort of contacts (1,000 by default) whose birthday is today, at a minute a little
ahead, in a second flow whose journey is one cheap step (`add_tag`). Baseline: as many raw
workflows sleeping until one instant, then one no-op activity. Lateness, on both sides = the
`ActivityTaskStarted` time of the first activity after the timer (raw's no-op, our step) − the
due instant; our step's effect (the tag's `added_at`) is noted beside it. By default the raw cohort is due two
minutes before ours, so neither side's firing shares the CPU with the other's (a note says
when it still did).

Both sides' workers run with bytecode, as the Docker image does (see `run`).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from activities.arming import _CONCURRENCY as ARMING_CONCURRENCY
from bench import raw
from bench.config import BenchConfig
from bench.fixtures import create_audience, create_contacts, create_draft_flow
from bench.load import add_fire_lateness, closed_loop, histogram, percentile_ms
from bench.procs import Child, wall
from bench.profiling import cpu_per_item, format_cpu
from bench.results import Figure, Recorder
from bench.stack import BenchEnv, Suite, unique
from bench.visibility import count, wait_closed, wait_for
from journeys.domain.runs import workflow_id as flow_run_id

BENCH = "armed"
RAW_LABEL = "raw Temporal: start, sleep until the same instant, same server"
RAW_FIRE_LABEL = "raw Temporal: sleep until one instant, then one no-op activity, same server"
COHORT_TAG = "birthday-fired"
POPULATION_AHEAD = timedelta(days=100)  # the population's birthday: far enough never to fire
_SAMPLE = 12  # raw workflows whose history is checked to know every start has its timer
_HISTORY_READS = 16  # histories read at once after the cohort fired (not measured)


@dataclass
class Armed:
    """One side's arming of the population: how long, what it grew and cost, RSS samples."""

    seconds: float = 0.0
    db_growth: int = 0
    db_used_growth: int | None = None
    cpu: dict[str, float] = field(default_factory=dict)  # ms per armed contact by process
    rss: dict[int, int] = field(default_factory=dict)  # armed so far → worker RSS bytes


def checkpoints(n: int, samples: int) -> list[int]:
    """`samples` evenly spaced counts up to `n` (the RSS samples)."""
    return sorted({max(1, round(n * (i + 1) / samples)) for i in range(samples)})


async def _sample_rss(
    progress: Callable[[], Awaitable[int]], worker: Child, marks: list[int], into: dict[int, int]
) -> None:
    """Takes the worker's RSS each time `progress` passes the next mark (runs until cancelled)."""
    pending = list(marks)
    while pending:
        done = await progress()
        while pending and done >= pending[0]:
            into[pending.pop(0)] = worker.rss_bytes()
        await asyncio.sleep(0.5)  # poll interval


async def _has_timer(client: Client, workflow_id: str) -> bool:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return any(e.event_type == EventType.EVENT_TYPE_TIMER_STARTED for e in history.events)


async def _activity_started(client: Client, workflow_id: str) -> float | None:
    """When the workflow's first activity started (epoch seconds), if it did."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            return event.event_time.ToDatetime(tzinfo=UTC).timestamp()
    return None


async def _measure(
    env: BenchEnv,
    worker: Child,
    marks: list[int],
    work: Callable[[], Awaitable[None]],
    progress: Callable[[], Awaitable[int]],
) -> Armed:
    """Runs one side's arming `work` and measures it (time, SQLite growth, CPU, RSS)."""
    side = Armed()
    cpu_before, db_before, used_before = env.cpu_snapshot(), env.db_bytes(), env.db_used_bytes()
    side.rss[0] = worker.rss_bytes()
    sampler = asyncio.create_task(_sample_rss(progress, worker, marks[:-1], side.rss))
    began = wall()
    try:
        await work()
    finally:
        sampler.cancel()
    side.seconds = wall() - began
    # A small run can finish between two polls of the sampler: a mark it did not reach is
    # read now, when at least that many are armed (so every mark has its figure).
    for mark in marks:
        side.rss.setdefault(mark, worker.rss_bytes())
    side.db_growth = env.db_bytes() - db_before
    used_after = env.db_used_bytes()
    if used_before is not None and used_after is not None:
        side.db_used_growth = used_after - used_before
    side.cpu = cpu_per_item(cpu_before, env.cpu_snapshot(), marks[-1])
    return side


async def _create_birthday_flow(
    http: httpx.AsyncClient, audience_id: str, *, name: str, at: str, steps: list[dict[str, Any]]
) -> str:
    """A draft `birthday` flow firing at `at` (HH:MM, the audience's zone: UTC); its id."""
    return await create_draft_flow(
        http, audience_id, steps, name=name, trigger={"type": "birthday", "time_of_day": at}
    )


async def _activate(http: httpx.AsyncClient, flow_id: str) -> None:
    response = await http.post(f"/v1/flows/{flow_id}/activate")
    if response.status_code != 200:
        raise RuntimeError(f"flow not activated: {response.status_code} {response.text}")


class _Raw:
    """Starts raw "sleep until an instant" workflows from the driver."""

    def __init__(self, client: Client, task_queue: str, concurrency: int, timeout: float) -> None:
        self.client = client
        self.task_queue = task_queue
        self.concurrency = concurrency
        self.timeout = timeout
        self.started = 0

    async def arm(self, ids: Sequence[str], steps: list[str]) -> None:
        """Starts `ids` and returns once they all rest on their timer."""

        async def start(workflow_id: str) -> None:
            await self.client.start_workflow(
                raw.WORKFLOW_NAME,
                raw.RawFlowInput(steps),
                id=workflow_id,
                task_queue=self.task_queue,
            )
            self.started += 1

        run = await closed_loop(ids, start, concurrency=self.concurrency)
        if run.errors:
            raise RuntimeError(f"{len(run.errors)} raw starts failed, first: {run.errors[0]}")
        # The latest starts are processed last; a few random ones guard the rest.
        sample = list(ids[-(_SAMPLE // 2) :]) + random.sample(
            list(ids), min(_SAMPLE // 2, len(ids))
        )

        await _resting(
            self.client,
            self.task_queue,
            sample,
            timeout=self.timeout,
            what=f"{len(ids)} raw timers",
            interval=0.25,
        )


async def _backlog(client: Client, task_queue: str) -> int:
    """Workflow tasks waiting in the queue for a worker (the server's approximate count)."""
    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            report_stats=True,
        )
    )
    return described.stats.approximate_backlog_count


async def _resting(
    client: Client,
    task_queue: str,
    sample: Sequence[str],
    *,
    timeout: float,
    what: str,
    interval: float,
) -> None:
    """Waits until the queue has no workflow task left and each run of `sample` has its timer
    (how both sides tell that what they started rests on its timer)."""

    async def resting() -> bool:
        if await _backlog(client, task_queue):
            return False
        checks = await asyncio.gather(*(_has_timer(client, w) for w in sample))
        return all(checks)

    await wait_for(resting, timeout=timeout, what=what, interval=interval)


def _next_minute(at: datetime) -> datetime:
    """The first whole minute at or after `at`."""
    whole = at.replace(second=0, microsecond=0)
    return whole if whole == at else whole + timedelta(minutes=1)


async def run(suite: Suite, config: BenchConfig, rec: Recorder) -> None:
    n, cohort = config.armed_contacts, config.armed_cohort
    marks = checkpoints(n, config.armed_rss_samples)
    timeout = config.drain_timeout
    async with suite.env(BENCH) as env:
        queue = unique("armed")
        http = await env.start_gateway(task_queue=queue)
        # Every armed contact is a new workflow, and the sandbox imports the workflow module
        # afresh for each: from source (PYTHONDONTWRITEBYTECODE, no __pycache__ in a checkout)
        # that is a compile per contact. The image ships bytecode (Dockerfile: compileall), so
        # both sides' workers keep theirs, in the scratch directory.
        bytecode = {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(env.dir / "pyc")}
        if config.armed_cache is not None:
            bytecode["JOURNEYS_WORKER_MAX_CACHED_WORKFLOWS"] = str(config.armed_cache)
        # The arming activity starts the armed runs from the worker: on the same queue.
        journeys_workers, raw_workers = await asyncio.gather(
            env.start_workers(
                "journeys",
                task_queue=queue,
                processes=1,
                env={**bytecode, "JOURNEYS_TASK_QUEUE": queue},
            ),
            env.start_workers("raw", task_queue=queue + "-raw", processes=1, env=bytecode),
        )
        assert env.client is not None and suite.pool is not None
        client, pool = env.client, suite.pool
        raw_side = _Raw(client, queue + "-raw", ARMING_CONCURRENCY, timeout)

        # -- the population: armed, never fires during the run --------------------------------
        day = (datetime.now(UTC) + POPULATION_AHEAD).date()
        instant = datetime(day.year, day.month, day.day, 9, 0, tzinfo=UTC)
        audience = await create_audience(http.next(), "Armed population")
        population = [
            c.id for c in await create_contacts(pool, audience, n, birthday=f"{day:%m-%d}")
        ]
        flow = await _create_birthday_flow(
            http.next(),
            audience,
            name="Armed population",
            at="09:00",
            steps=[{"id": "mark", "type": "add_tag", "tag": "birthday-greeted"}],
        )
        prefix = unique("raw-armed")
        raw_ids = [f"{prefix}-{i}" for i in range(n)]

        # RSS is sampled against runs the worker holds: started, less the first tasks still
        # waiting in its queue (a run is in the worker's memory only once its task ran).
        async def raw_started() -> int:
            return raw_side.started - await _backlog(client, raw_side.task_queue)

        print(f"  arming {n} per side (raw first)", flush=True)
        theirs = await _measure(
            env,
            raw_workers[0],
            marks,
            lambda: raw_side.arm(raw_ids, raw.until_then_noop(instant)),
            raw_started,
        )
        armed_query = f"FlowId = '{flow}' AND JourneyPhase = 'armed'"

        async def armed_so_far() -> int:
            return await count(client, armed_query)

        async def arm_population() -> None:
            await _activate(http.next(), flow)

            async def all_armed() -> bool:
                return await armed_so_far() >= n

            await wait_for(all_armed, timeout=timeout, what=f"{n} armed runs", interval=0.5)
            # A run is published armed as it starts; done, as raw's, once each rests on its
            # timer: the worker has no first task left and a sample of runs has its timer.
            await _resting(
                client,
                queue,
                [flow_run_id(flow, c) for c in random.sample(population, min(_SAMPLE, n))],
                timeout=timeout,
                what=f"{n} runs on their timer",
                interval=0.5,
            )

        async def ours_held() -> int:
            return await armed_so_far() - await _backlog(client, queue)

        ours = await _measure(env, journeys_workers[0], marks, arm_population, ours_held)
        _record_arming(rec, n, ours, theirs)

        # -- the cohort: due in the same minute, fires during the run -------------------------
        # Arm both cohorts well before they are due: a birthday whose moment has passed by
        # the time its run resolves it is armed for next year, and would never fire here.
        # Both cohorts arm before the raw one is due: raw's time at the measured raw rate, ours
        # with half again as long as the measured rate says (the machine's load moves).
        lead = max(
            config.armed_cohort_lead_s,
            cohort * theirs.seconds / n + 1.5 * cohort * ours.seconds / n + 10,
        )
        raw_due = _next_minute(datetime.now(UTC) + timedelta(seconds=lead))
        due = raw_due + timedelta(seconds=config.armed_cohort_gap_s)
        cohort_audience = await create_audience(http.next(), "Armed cohort")
        cohort_contacts = await create_contacts(
            pool, cohort_audience, cohort, birthday=f"{due:%m-%d}"
        )
        cohort_flow = await _create_birthday_flow(
            http.next(),
            cohort_audience,
            name="Armed cohort",
            at=f"{due:%H:%M}",
            steps=[{"id": "mark", "type": "add_tag", "tag": COHORT_TAG}],
        )
        cohort_prefix = unique("raw-cohort")
        cohort_raw = [f"{cohort_prefix}-{i}" for i in range(cohort)]
        print(
            f"  cohort of {cohort} per side due {raw_due:%H:%M:%S} (raw), {due:%H:%M:%S} "
            "(journeys) UTC",
            flush=True,
        )
        await raw_side.arm(cohort_raw, raw.until_then_noop(raw_due))
        await _activate(http.next(), cohort_flow)
        cohort_armed = f"FlowId = '{cohort_flow}' AND JourneyPhase = 'armed'"

        async def cohort_all_armed() -> bool:
            return await count(client, cohort_armed) >= cohort

        await wait_for(
            cohort_all_armed,
            timeout=max((due - datetime.now(UTC)).total_seconds(), 1.0),
            what=f"{cohort} cohort runs armed before they are due",
            interval=0.5,
        )
        # CPU per fired contact, per side: each window opens just before the side is due.
        # (Sleeping to a wall-clock instant here schedules a snapshot; it waits for nothing.)
        fire_cpu: dict[str, dict[str, float]] = {}
        separate = config.armed_cohort_gap_s > 0
        if separate:
            await asyncio.sleep(max((raw_due - datetime.now(UTC)).total_seconds() - 1.0, 0.0))
        before = env.cpu_snapshot()
        raw_query = f"WorkflowId STARTS_WITH '{cohort_prefix}-'"
        late_after = (due - datetime.now(UTC)).total_seconds() + timeout
        await wait_closed(client, raw_query, cohort, timeout=late_after)
        if separate:
            fire_cpu["raw"] = cpu_per_item(before, env.cpu_snapshot(), cohort)
            overlap = (datetime.now(UTC) - due).total_seconds()
            if overlap > 0:
                rec.note(
                    BENCH,
                    f"The raw cohort was still firing {overlap:.0f}s after ours was due: "
                    "our cohort's lateness and CPU include that overlap.",
                )
            await asyncio.sleep(max((due - datetime.now(UTC)).total_seconds() - 1.0, 0.0))
            before = env.cpu_snapshot()

        async def all_tagged() -> bool:
            return await _tagged(pool, cohort_audience) >= cohort

        await wait_for(all_tagged, timeout=late_after, what=f"{cohort} cohort steps", interval=1.0)
        if separate:
            fire_cpu["journeys"] = cpu_per_item(before, env.cpu_snapshot(), cohort)
        tag_times = await _tag_times(pool, cohort_audience)
        gate = asyncio.Semaphore(_HISTORY_READS)

        async def first_activity(workflow_id: str) -> float:
            async with gate:
                started = await _activity_started(client, workflow_id)
            if started is None:
                raise RuntimeError(f"{workflow_id} closed without starting an activity")
            return started

        # Both sides' lateness is read the same way: when the first activity after the timer
        # (raw's no-op, our journey's step) was handed to the worker, in the run's history.
        fired = await asyncio.gather(*(first_activity(w) for w in cohort_raw))
        ours_fired = await asyncio.gather(
            *(first_activity(flow_run_id(cohort_flow, c.id)) for c in cohort_contacts)
        )
        mine = histogram(max(t - due.timestamp(), 0.0) for t in ours_fired)
        base = histogram(max(t - raw_due.timestamp(), 0.0) for t in fired)
        lateness = add_fire_lateness(rec, BENCH, mine, base, RAW_FIRE_LABEL, {"n": cohort})
        took_effect = histogram(
            max(tag_times[c.id] - due.timestamp(), 0.0) for c in cohort_contacts
        )
        rec.note(
            BENCH,
            "Fire lateness is when the first activity after the timer started (history), on both "
            f"sides. Our step's own effect, the tag's `added_at`, came p50 "
            f"{percentile_ms(took_effect, 50) / 1000:.1f} s, p99 "
            f"{percentile_ms(took_effect, 99) / 1000:.1f} s, max "
            f"{percentile_ms(took_effect, 100) / 1000:.1f} s after the instant.",
        )
        if fire_cpu:
            rec.note(
                BENCH,
                f"Where the time goes, {cohort} firing in one minute: journeys "
                f"{format_cpu(fire_cpu['journeys'], 'contact, timer to step ran')}; raw "
                f"{format_cpu(fire_cpu['raw'], 'workflow, timer to closed')}",
            )
        _note_floors(rec, config, ours, theirs, n, lateness["p99"])


async def _tagged(pool: Any, audience_id: str) -> int:
    value = await pool.fetchval(
        "SELECT count(*) FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id"
        " WHERE t.audience_id = $1::uuid AND t.name = $2",
        audience_id,
        COHORT_TAG,
    )
    return int(value)


async def _tag_times(pool: Any, audience_id: str) -> dict[str, float]:
    """Contact id → when the cohort's step tagged it (epoch seconds)."""
    rows = await pool.fetch(
        "SELECT ct.contact_id::text AS id, extract(epoch FROM ct.added_at)::float8 AS at"
        " FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id"
        " WHERE t.audience_id = $1::uuid AND t.name = $2",
        audience_id,
        COHORT_TAG,
    )
    return {row["id"]: row["at"] for row in rows}


def figure_keys(config: BenchConfig) -> list[str]:
    """Keys of every figure this benchmark records with `config` (for the smoke test)."""
    n = config.armed_contacts
    keys = [
        f"{BENCH}.{name}[n={n}]"
        for name in ("arm_per_s", "db_bytes_per_armed_contact", "cpu_ms_per_armed_contact")
    ]
    keys += [
        f"{BENCH}.worker_rss_mib[n={k}]" for k in [0, *checkpoints(n, config.armed_rss_samples)]
    ]
    keys += [
        f"{BENCH}.fire_lateness_{p}_ms[n={config.armed_cohort}]" for p in ("p50", "p99", "max")
    ]
    return keys


def _record_arming(rec: Recorder, n: int, ours: Armed, theirs: Armed) -> None:
    params = {"n": n}
    rec.add(
        Figure(
            BENCH,
            "arm_per_s",
            n / ours.seconds,
            "contacts/s",
            n / theirs.seconds,
            RAW_LABEL + f"; started from a Python client, {ARMING_CONCURRENCY} at a time",
            "higher",
            params,
        )
    )
    rec.add(
        Figure(
            BENCH,
            "db_bytes_per_armed_contact",
            ours.db_growth / n,
            "bytes",
            theirs.db_growth / n,
            RAW_LABEL,
            "lower",
            params,
        )
    )
    if ours.db_used_growth is not None and theirs.db_used_growth:
        rec.add(
            Figure(
                BENCH,
                "db_pages_bytes_per_armed_contact",
                ours.db_used_growth / n,
                "bytes",
                theirs.db_used_growth / n,
                RAW_LABEL,
                "lower",
                params,
            )
        )
    rec.add(
        Figure(
            BENCH,
            "cpu_ms_per_armed_contact",
            sum(ours.cpu.values()),
            "ms",
            sum(theirs.cpu.values()),
            RAW_LABEL + "; every process of the stack",
            "lower",
            params,
        )
    )
    for k in sorted(ours.rss):
        rec.add(
            Figure(
                BENCH,
                "worker_rss_mib",
                ours.rss[k] / 2**20,
                "MiB",
                theirs.rss[k] / 2**20,
                RAW_LABEL,
                "lower",
                {"n": k},
            )
        )
    rec.note(
        BENCH,
        f"Where the time goes, arming {n}: journeys {format_cpu(ours.cpu, 'armed contact')}; "
        f"raw {format_cpu(theirs.cpu, 'started workflow')}",
    )


def _note_floors(
    rec: Recorder, config: BenchConfig, ours: Armed, theirs: Armed, n: int, p99: Figure
) -> None:
    """Says, in the report, whether each floor of issue 9 held in this run."""
    rate = theirs.seconds / ours.seconds
    db = ours.db_growth / max(theirs.db_growth, 1)
    lateness = p99.ratio if p99.ratio is not None else math.inf
    marks = sorted(ours.rss)
    slope = [(ours.rss[b] - ours.rss[a]) / 1024 / (b - a) for a, b in itertools.pairwise(marks)]
    held = {
        f"arming rate {rate:.2f}× raw (floor ≥ 0.8×)": rate >= 0.8,
        f"SQLite growth per armed contact {db:.2f}× raw (floor ≤ 1.3×)": db <= 1.3,
        f"fire lateness p99 {lateness:.2f}× raw (floor ≤ 1.5×)": lateness <= 1.5,
    }
    cache = config.armed_cache or rec.extras.get("settings", {}).get("max_cached_workflows")
    spans = list(zip(itertools.pairwise(marks), slope, strict=True)) if cache else []
    filling = [s for (a, _), s in spans if a < cache]
    settled = [s for (a, _), s in spans if a >= 2 * cache]
    if filling and settled:
        # Flat: once the full cache has turned over, an armed contact costs the worker under a
        # tenth of what it did while the cache filled.
        flat = max(settled) <= 0.1 * max(filling)
        held[
            f"worker RSS once the full cache turned over (n ≥ {2 * cache}) {max(settled):.1f} KiB "
            f"per armed contact against {max(filling):.0f} while it filled (flat)"
        ] = flat
    rec.note(
        BENCH,
        "Floors of issue 9: "
        + "; ".join(f"{what}: {'met' if ok else 'MISSED'}" for what, ok in held.items())
        + ".",
    )
    raw_slope = [
        (theirs.rss[b] - theirs.rss[a]) / 1024 / (b - a)
        for a, b in itertools.pairwise(sorted(theirs.rss))
    ]
    rec.note(
        BENCH,
        f"Worker RSS growth between samples ({', '.join(str(m) for m in marks)}): "
        f"{', '.join(f'{s:.0f}' for s in slope)} KiB per armed contact; raw "
        f"{', '.join(f'{s:.0f}' for s in raw_slope)} (sticky cache: {cache} workflows, full at "
        f"n = {cache}; past it evicted runs' memory is reused, so the growth must fall to ~0 "
        f"once the cache has turned over, n ≥ {2 * cache}"
        + (
            "; this run does not reach it: `BENCH_LARGE=1` does)"
            if cache and n < 3 * cache
            else ")"
        )
        + ".",
    )
    if config.armed_cohort_gap_s == 0:
        rec.note(BENCH, "Both cohorts were due at the same instant (smoke): they shared the CPU.")

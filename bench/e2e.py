"""Benchmark 2, end to end: completed enrolments/s and latency from HTTP request to SMTP.

The journeys side: `tag_added → send_email`, each enrolment an HTTP request to the gateway,
done when the workflow has completed (the email accepted by the SMTP sink on the way). The
baseline: raw Temporal "start + one no-op activity", started from a Python client with the same
concurrency, on the same server, by workers with the same tuning and process count.

Latency is measured open loop at 25/50/90% of the measured journeys maximum, from when the
request was due to when the sink accepted the email; the baseline at the same rates, from when
the start was due to when the workflow closed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bench import raw
from bench.config import BenchConfig
from bench.fixtures import Contact, create_audience, create_contacts, create_flow, send_step, tag
from bench.load import LoadRun, closed_loop, histogram, open_loop, percentile_ms
from bench.profiling import cpu_per_item, format_cpu, record, summarize
from bench.results import Figure, Recorder
from bench.stack import BenchEnv, Suite, unique
from bench.visibility import close_times, wait_closed, wait_for

BENCH = "e2e"
RAW_LABEL = "raw Temporal: start + one no-op activity, same workers' tuning"


@dataclass
class Side:
    """One side's enrolments: when each was due and when it was done."""

    run: LoadRun  # type: ignore[type-arg]
    finished: dict  # type: ignore[type-arg]  # key → when it was done (SMTP acceptance or close)
    cpu: dict[str, float]  # ms of CPU per enrolment by process role

    @property
    def rate(self) -> float:
        """Completions per second from the first request to the last completion."""
        return len(self.finished) / max(max(self.finished.values()) - self.run.started, 1e-9)

    def latencies(self) -> list[float]:
        return [self.finished[k] - self.run.sent[k] for k in self.finished]


class Journeys:
    """Enrols contacts through the gateway into a one-email flow, in phases."""

    def __init__(self, env: BenchEnv, task_queue: str) -> None:
        self.env = env
        self.task_queue = task_queue

    async def phase(self, name: str, count: int) -> tuple[str, str, list[Contact]]:
        """A fresh audience, one-email flow and `count` contacts: (audience, flow, contacts)."""
        assert self.env.http is not None and self.env.suite.pool is not None
        audience = await create_audience(self.env.http.next(), f"E2E {name}")
        flow = await create_flow(self.env.http.next(), audience, [send_step("hello")], name=name)
        return audience, flow, await create_contacts(self.env.suite.pool, audience, count)

    async def measure(
        self,
        name: str,
        count: int,
        *,
        concurrency: int | None = None,
        rate: float | None = None,
        timeout: float,
    ) -> Side:
        """Enrols `count` contacts (closed loop at `concurrency`, or open loop at `rate`)."""
        env = self.env
        assert env.http is not None and env.sink_log is not None and env.client is not None
        audience, flow, contacts = await self.phase(name, count)
        http = env.http

        async def enrol(contact: Contact) -> None:
            await tag(http.next(), audience, contact)

        before = env.cpu_snapshot()
        run = await _drive(contacts, enrol, concurrency=concurrency, rate=rate)
        _check(run, "gateway")
        emails = {c.email for c in contacts}
        await wait_for(
            lambda: env.sink_log.refresh() and emails <= env.sink_log.accepted.keys(),  # type: ignore[union-attr]
            timeout=timeout,
            what=f"{count} emails accepted",
        )
        query = f"FlowId = '{flow}'"
        await wait_closed(env.client, query, count, timeout=timeout)
        cpu = cpu_per_item(before, env.cpu_snapshot(), count)
        if rate is None:  # throughput: an enrolment is done when its run has completed
            closed = await close_times(env.client, query)
            done = {c: closed[f"flow-{flow}-contact-{c.id}"] for c in contacts}
        else:  # latency: the email has left
            done = {c: env.sink_log.accepted[c.email] for c in contacts}
        return Side(run=run, finished=done, cpu=cpu)


class Raw:
    """Starts raw "start + one no-op activity" workflows from the driver, in phases."""

    def __init__(self, env: BenchEnv, task_queue: str) -> None:
        self.env = env
        self.task_queue = task_queue

    async def measure(
        self,
        name: str,
        count: int,
        *,
        concurrency: int | None = None,
        rate: float | None = None,
        timeout: float,
        steps: list[str] | None = None,
    ) -> Side:
        env = self.env
        client = env.client
        steps = steps or raw.noop_steps()
        assert client is not None
        prefix = unique(f"raw-{name}")
        ids = [f"{prefix}-{i}" for i in range(count)]

        async def start(workflow_id: str) -> None:
            await raw.start(
                client, workflow_id, steps, task_queue=self.task_queue, event_type="tag_added"
            )

        before = env.cpu_snapshot()
        run = await _drive(ids, start, concurrency=concurrency, rate=rate)
        _check(run, "raw")
        query = f"WorkflowId STARTS_WITH '{prefix}-'"
        await wait_closed(client, query, count, timeout=timeout)
        cpu = cpu_per_item(before, env.cpu_snapshot(), count)
        return Side(run=run, finished=await close_times(client, query), cpu=cpu)


async def _drive(keys, call, *, concurrency: int | None, rate: float | None) -> LoadRun:  # type: ignore[no-untyped-def, type-arg]
    if rate is not None:
        return await open_loop(keys, call, rate=rate)
    assert concurrency is not None
    return await closed_loop(keys, call, concurrency=concurrency)


def _check(run: LoadRun, side: str) -> None:  # type: ignore[type-arg]
    if run.errors:
        raise RuntimeError(f"{side}: {len(run.errors)} failed calls, first: {run.errors[0]}")


async def start_sides(env: BenchEnv, *, processes: int) -> tuple[Journeys, Raw]:
    """Starts sink, gateway and both kinds of workers (`processes` each) on fresh queues."""
    queue = unique("e2e")
    await env.start_sink()
    await env.start_gateway(task_queue=queue)
    await asyncio.gather(
        env.start_workers("journeys", task_queue=queue, processes=processes),
        env.start_workers("raw", task_queue=queue + "-raw", processes=processes),
    )
    return Journeys(env, queue), Raw(env, queue + "-raw")


async def max_rates(
    journeys: Journeys,
    baseline: Raw,
    config: BenchConfig,
    rec: Recorder,
    *,
    bench: str,
    params: dict[str, object],
) -> tuple[Side, Side]:
    """Measures both sides' completion rate, records the figure, returns both sides."""
    label = "-".join(f"{k}{v}" for k, v in params.items()) or "max"
    if config.warmup:  # not measured: worker caches, pools, SMTP and HTTP connections
        await journeys.measure(
            f"warm-{label}", config.warmup, concurrency=4, timeout=config.drain_timeout
        )
        await baseline.measure(
            f"warm-{label}", config.warmup, concurrency=4, timeout=config.drain_timeout
        )
    ours = await journeys.measure(
        f"max-{label}",
        config.e2e_contacts,
        concurrency=config.e2e_concurrency,
        timeout=config.drain_timeout,
    )
    theirs = await baseline.measure(
        f"max-{label}",
        config.e2e_contacts,
        concurrency=config.e2e_concurrency,
        timeout=config.drain_timeout,
    )
    rec.add(
        Figure(
            bench,
            "completions_per_s",
            ours.rate,
            "enrolments/s",
            theirs.rate,
            RAW_LABEL,
            "higher",
            dict(params),
        )
    )
    where = ", ".join(f"{k} {v}" for k, v in params.items())
    rec.note(
        bench,
        f"{where}: journeys {format_cpu(ours.cpu, 'enrolment')}; "
        f"raw {format_cpu(theirs.cpu, 'workflow')}",
    )
    rec.cpu(bench, "journeys", ours.cpu, dict(params))
    rec.cpu(bench, "raw", theirs.cpu, dict(params))
    return ours, theirs


def _latency_params(max_rate: float, fraction: float) -> dict[str, object]:
    rate = max(max_rate * fraction, 0.5)
    return {"load": f"{fraction:.0%}", "rate_per_s": round(rate, 1)}


def figure_keys(config: BenchConfig) -> list[str]:
    """Keys of every figure this benchmark records (rates in keys are left as `*`)."""
    keys = [f"{BENCH}.completions_per_s[processes=1]"]
    for fraction in config.latency_fractions:
        keys += [f"{BENCH}.latency_p{p}_ms[load={fraction:.0%},rate_per_s=*]" for p in (50, 95, 99)]
    return keys


async def run(suite: Suite, config: BenchConfig, rec: Recorder) -> None:
    """Max rate with one worker process, latency at fractions of it, then a worker profile."""
    async with suite.env(BENCH) as env:
        journeys, baseline = await start_sides(env, processes=1)
        ours, theirs = await max_rates(
            journeys, baseline, config, rec, bench=BENCH, params={"processes": 1}
        )
        suite.shared["e2e.rates"] = (ours.rate, theirs.rate)
        for fraction in config.latency_fractions:
            rate = max(ours.rate * fraction, 0.5)
            count = max(int(rate * config.latency_seconds), 3)
            name = f"lat{int(fraction * 100)}"
            mine = await journeys.measure(name, count, rate=rate, timeout=config.drain_timeout)
            theirs = await baseline.measure(name, count, rate=rate, timeout=config.drain_timeout)
            params = _latency_params(ours.rate, fraction)
            ours_hist, theirs_hist = histogram(mine.latencies()), histogram(theirs.latencies())
            for pct in (50, 95, 99):
                rec.add(
                    Figure(
                        BENCH,
                        f"latency_p{pct}_ms",
                        percentile_ms(ours_hist, pct),
                        "ms",
                        percentile_ms(theirs_hist, pct),
                        "raw Temporal at the same rate: start due → workflow closed",
                        "lower",
                        params,
                    )
                )
        await _profile(env, journeys, config, rec)


async def _profile(env: BenchEnv, journeys: Journeys, config: BenchConfig, rec: Recorder) -> None:
    """py-spy on the journeys worker during an unmeasured max-rate pass."""
    worker = env.workers[journeys.task_queue][0]
    out = env.dir / "worker.pyspy"
    task = asyncio.create_task(record(worker.pid, seconds=config.profile_seconds, out=out))
    await journeys.measure(
        "profile",
        config.profile_contacts,
        concurrency=config.e2e_concurrency,
        timeout=config.drain_timeout,
    )
    path = await task
    rec.extras["profile.worker"] = "journeys worker during end-to-end enrolments\n" + (
        summarize(path) if path else "(py-spy failed; see stderr)"
    )

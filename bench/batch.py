"""Benchmark: batch ingest (`POST /v1/events:batch`) against single posts and raw Temporal.

The same activity event (`page_visited`), each enrolling one fresh contact in a flow it
triggers, posted one per request (`…/contacts/{id}/activity`, closed loop) and in batches of
each size (closed loop of batch requests), then batches of events that enrol nobody (no flow
matches their URL). The baseline is raw `start_workflow(start_signal=…)` calls/s from a Python
client on the same server in the same run, as in the ingest benchmark. No worker polls: this is
the cost of accepting events durably, not of running them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import httpx

from bench import raw
from bench.config import BenchConfig
from bench.fixtures import Contact, create_audience, create_contacts, send_step
from bench.load import LoadRun, check_run, closed_loop
from bench.profiling import cpu_per_item, format_cpu
from bench.results import Figure, Recorder
from bench.stack import HttpShards, Suite, unique

BENCH = "batch"
RAW_LABEL = "raw start_workflow(start_signal) from a Python client"
SALE = "https://bench.test/sale/shoes"  # matches the flow's trigger: enrols the contact
ABOUT = "https://bench.test/about"  # matches nothing: a page view that enrols nobody


async def _page_flow(http: httpx.AsyncClient, audience_id: str) -> None:
    body = {
        "name": "Batch sale visitors",
        "audience_id": audience_id,
        "triggers": [{"type": "page_visited", "url": "https://bench.test/sale*"}],
        "steps": [send_step("hello")],
    }
    response = await http.post("/v1/flows", json=body)
    if response.status_code != 201:
        raise RuntimeError(f"flow not created: {response.status_code} {response.text}")
    (await http.post(f"/v1/flows/{response.json()['id']}/activate")).raise_for_status()


class _Driver:
    """Posts page views of fresh contacts, one per request or in batches, and checks answers."""

    def __init__(self, http: HttpShards, audience_id: str, contacts: Iterator[Contact]) -> None:
        self.http = http
        self.audience_id = audience_id
        self.contacts = contacts

    async def single(self, _: int) -> None:
        contact = next(self.contacts)
        response = await self.http.next().post(
            f"/v1/audiences/{self.audience_id}/contacts/{contact.id}/activity",
            json={"type": "page_visited", "data": {"url": SALE}},
        )
        if response.status_code != 202:
            raise RuntimeError(f"refused: {response.status_code} {response.text[:300]}")
        _expect([response.json()["enrolments"]], enrols=True)

    async def batch(self, size: int, *, url: str) -> None:
        events = [
            {
                "audience_id": self.audience_id,
                "contact": next(self.contacts).id,
                "type": "page_visited",
                "data": {"url": url},
            }
            for _ in range(size)
        ]
        # A large batch on a busy box can take longer than the clients' default timeout.
        response = await self.http.next().post(
            "/v1/events:batch", json={"events": events}, timeout=httpx.Timeout(600.0)
        )
        if response.status_code != 202:
            raise RuntimeError(f"batch refused: {response.status_code} {response.text[:300]}")
        results = response.json()["results"]
        if len(results) != size or not all(r["delivered"] for r in results):
            raise RuntimeError(f"batch not fully delivered: {results[:3]}")
        _expect([r["enrolments"] for r in results], enrols=url == SALE)


def _expect(enrolments: list[list[dict]], *, enrols: bool) -> None:
    want = ["started"] if enrols else []
    for each in enrolments:
        if [e["outcome"] for e in each] != want:
            raise RuntimeError(f"expected {want}, got {each}")


async def run(suite: Suite, config: BenchConfig, rec: Recorder) -> None:
    """Raw baselines, single posts, then batches of each size (enrolling, then enrolling nobody)."""
    async with suite.env(BENCH) as env:
        queue = unique("batch")
        http = await env.start_gateway(task_queue=queue)
        audience = await create_audience(http.next(), "Batch")
        await _page_flow(http.next(), audience)
        assert suite.pool is not None
        contacts = await create_contacts(suite.pool, audience, config.batch_contacts)
        # Page views that enrol nobody go to contacts never enrolled, again and again.
        idle = await create_contacts(suite.pool, audience, config.batch_idle_contacts)
        driver = _Driver(http, audience, iter(contacts))
        idle_driver = _Driver(http, audience, itertools.cycle(idle))
        raw_ids = (f"raw-{queue}-{i}" for i in itertools.count())

        assert env.client is not None
        via_raw = raw.noop_starts(env.client, task_queue=queue + "-raw", event_type="page_visited")

        # Warm-up, not measured: connections, caches, first-request imports.
        await closed_loop(range(config.warmup), driver.single, concurrency=4)
        await closed_loop(itertools.islice(raw_ids, config.warmup), via_raw, concurrency=4)

        raw_rate: dict[int, float] = {}
        for concurrency in sorted({config.batch_single_concurrency, config.batch_concurrency_raw}):
            before = env.cpu_snapshot()
            baseline = await closed_loop(
                raw_ids, via_raw, concurrency=concurrency, duration=config.batch_seconds
            )
            check_run(baseline, "raw")
            raw_rate[concurrency] = baseline.rate
            per_start = cpu_per_item(before, env.cpu_snapshot(), baseline.ok)
            rec.note(BENCH, f"raw at concurrency {concurrency}: " + format_cpu(per_start, "start"))
            rec.cpu(BENCH, "raw", per_start, {"concurrency": concurrency, "mode": "raw"})

        async def measure(
            name: str, params: dict, calls: LoadRun[int], per_call: int, before: dict
        ) -> None:
            events = calls.ok * per_call
            rate = events / calls.elapsed
            concurrency = params["concurrency"]
            single = name == "single"
            raw_at = config.batch_single_concurrency if single else config.batch_concurrency_raw
            rec.add(
                Figure(
                    BENCH,
                    "events_per_s",
                    rate,
                    "events/s",
                    raw_rate[raw_at],
                    f"{RAW_LABEL} at concurrency {raw_at}",
                    "higher",
                    {"mode": name, **params},
                )
            )
            per_event = cpu_per_item(before, env.cpu_snapshot(), events)
            rec.note(
                BENCH,
                f"{name} {', '.join(f'{k} {v}' for k, v in params.items())}: "
                + format_cpu(per_event, "event")
                + f" (concurrency {concurrency} requests)",
            )
            rec.cpu(BENCH, "journeys", per_event, {"mode": name, **params})

        before = env.cpu_snapshot()
        single = await closed_loop(
            itertools.count(),
            driver.single,
            concurrency=config.batch_single_concurrency,
            duration=config.batch_seconds,
        )
        check_run(single, "single posts")
        await measure("single", {"concurrency": config.batch_single_concurrency}, single, 1, before)
        single_rate = single.rate

        for mode, url, posting in (
            ("batch", SALE, driver),
            ("batch-enrolling-nobody", ABOUT, idle_driver),
        ):
            for size in config.batch_sizes:
                before = env.cpu_snapshot()

                async def one(
                    _: int, size: int = size, url: str = url, posting: _Driver = posting
                ) -> None:
                    await posting.batch(size, url=url)

                calls = await closed_loop(
                    itertools.count(),
                    one,
                    concurrency=config.batch_concurrency,
                    duration=config.batch_seconds,
                )
                check_run(calls, mode)
                params = {"concurrency": config.batch_concurrency, "size": size}
                await measure(mode, params, calls, size, before)
                rec.note(
                    BENCH,
                    f"{mode} size {size}: {calls.ok * size / calls.elapsed / single_rate:.2f}×"
                    " the events/s of single posts",
                )


def figure_keys(config: BenchConfig) -> list[str]:
    """Keys of every figure this benchmark records with `config` (for the smoke test)."""
    return [
        f"{BENCH}.events_per_s[concurrency={config.batch_single_concurrency},mode=single]",
        *(
            f"{BENCH}.events_per_s[concurrency={config.batch_concurrency},mode={mode},size={s}]"
            for mode in ("batch", "batch-enrolling-nobody")
            for s in config.batch_sizes
        ),
    ]

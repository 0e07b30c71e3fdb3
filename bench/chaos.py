"""The crash test (`make chaos`): contacts go through tag → email → delay → email on a real
stack while the worker is SIGKILLed at random moments and deliberately mid-send.

The stack is the benchmarks' (`bench.stack`): embedded Postgres, a Temporal dev server, the SMTP
sink, the gateway and worker processes, all on loopback. The workers run with the fault hook of
`activities.faults` armed by file, so a "mid-send" kill lands exactly between the sink's 250 and
the ledger's record. A supervisor restarts every dead worker at once, as a process manager would.
At the end, the sink's file and the send ledger are compared: duplicates, missing, uncertain.

Run as `python -m bench.chaos [--contacts N] [--kills K] ...`; exits 1 on a duplicate, a missing
email or an unfinished run. Every wait has a deadline: the run stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from activities.faults import CHAOS_KILL_FILE
from bench.chaos_count import ChaosReport, count
from bench.chaos_fleet import Fleet
from bench.fixtures import (
    Contact,
    create_audience,
    create_contacts,
    create_flow,
    delay_step,
    send_step,
    tag,
)
from bench.procs import leftover_children
from bench.stack import BenchEnv, HttpShards, Suite, unique
from bench.visibility import wait_for
from journeys.domain.durations import parse_duration

STEPS = ["hello", "again"]


@dataclass(frozen=True, kw_only=True)
class ChaosConfig:
    """One crash test.

    Args:
        contacts: Contacts tagged into the flow.
        kills: Worker kills in all.
        mid_send_kills: How many of them are armed to land after SMTP acceptance.
        delay: The flow's delay between the two emails.
        workers: Worker processes.
        seed: Seed of the kill plan (random if None).
        timeout: Seconds after which the run gives up and reports itself incomplete.
        root: Scratch directory (Postgres, Temporal, logs, sink file).
    """

    contacts: int = 300
    kills: int = 6
    mid_send_kills: int = 3
    delay: str = "20s"
    workers: int = 2
    seed: int | None = None
    timeout: float = 900
    root: Path


def _plan(config: ChaosConfig, rng: random.Random) -> list[tuple[float, str]]:
    """(seconds after tagging starts, "random" | "mid-send"), in time order.

    Random kills fall while contacts are tagged and their first emails go out (estimated at 25
    contacts/s), during the delay and when the second emails go out. Mid-send kills are armed
    before the delay can have ended, so sends are still to come: every one of them fires.
    """
    delay = parse_duration(config.delay).total_seconds()
    window = config.contacts / 25 + delay + 5
    plan = [(rng.uniform(0, 0.9 * delay), "mid-send") for _ in range(config.mid_send_kills)]
    plan += [
        (rng.uniform(0, window), "random") for _ in range(config.kills - config.mid_send_kills)
    ]
    return sorted(plan)


async def _in_flight(pool: asyncpg.Pool, flow_id: str) -> set[str]:
    rows = await pool.fetch(
        "SELECT idempotency_key FROM messages"
        " WHERE flow_id = $1::uuid AND status IN ('pending', 'sending')",
        flow_id,
    )
    return {row["idempotency_key"] for row in rows}


async def _settled(pool: asyncpg.Pool, keys: set[str]) -> bool:
    left = await pool.fetchval(
        "SELECT count(*) FROM messages"
        " WHERE idempotency_key = ANY($1::text[]) AND status IN ('pending', 'sending')",
        list(keys),
    )
    return left == 0


class _Chaos:
    """Carries out the kill plan and times how long each kill's sends took to be retried."""

    def __init__(
        self, fleet: Fleet, pool: asyncpg.Pool, *, flow_id: str, report: ChaosReport
    ) -> None:
        self.fleet = fleet
        self.pool = pool
        self.flow_id = flow_id
        self.report = report
        self._watchers: list[asyncio.Task[None]] = []

    async def run(self, plan: list[tuple[float, str]], rng: random.Random) -> None:
        start = time.monotonic()
        for at, kind in plan:
            await asyncio.sleep(max(0.0, start + at - time.monotonic()))  # the planned moment
            await self.fleet.wait_all_up(timeout=120)
            died = None
            if kind == "mid-send":
                died = await self.fleet.kill_mid_send(timeout=60)
                if died is not None:
                    self.report.mid_send_kills += 1
            if died is None:  # planned at random, or no send came by to die in
                died = await self.fleet.kill(rng.choice(self.fleet.workers), timeout=30)
                self.report.random_kills += 1
            keys = await _in_flight(self.pool, self.flow_id)
            if keys:
                self._watchers.append(asyncio.create_task(self._recovery(died, keys)))
        await asyncio.gather(*self._watchers)

    async def _recovery(self, died: float, keys: set[str]) -> None:
        await wait_for(lambda: _settled(self.pool, keys), timeout=300, what="interrupted sends")
        self.report.recovery.append(time.monotonic() - died)


async def _tag_all(http: HttpShards, audience: str, contacts: list[Contact]) -> None:
    gate = asyncio.Semaphore(16)

    async def one(contact: Contact) -> None:
        async with gate:
            await tag(http.next(), audience, contact)

    await asyncio.gather(*(one(c) for c in contacts))


async def _finished(pool: asyncpg.Pool, flow_id: str, contacts: int) -> bool:
    runs = await pool.fetchrow(
        "SELECT count(*) AS total, count(*) FILTER (WHERE status = 'running') AS running"
        " FROM enrollments WHERE flow_id = $1::uuid",
        flow_id,
    )
    settled = await pool.fetchval(
        "SELECT count(*) FROM messages"
        " WHERE flow_id = $1::uuid AND status IN ('sent', 'uncertain', 'failed')",
        flow_id,
    )
    return runs["total"] == contacts and runs["running"] == 0 and settled == contacts * len(STEPS)


async def _drive(
    env: BenchEnv, fleet: Fleet, config: ChaosConfig, report: ChaosReport, rng: random.Random
) -> tuple[str, str]:
    """Sets the flow up, tags everyone while the kills happen, waits for the end."""
    assert env.http is not None and env.suite.pool is not None
    pool = env.suite.pool
    audience = await create_audience(env.http.next(), "Chaos")
    steps = [send_step("hello"), delay_step("pause", config.delay), send_step("again")]
    flow = await create_flow(env.http.next(), audience, steps, name="Chaos")
    people = await create_contacts(pool, audience, config.contacts)
    chaos = _Chaos(fleet, pool, flow_id=flow, report=report)
    kills = asyncio.create_task(chaos.run(_plan(config, rng), rng))
    try:
        await _tag_all(env.http, audience, people)
        await kills
    finally:
        kills.cancel()
    await wait_for(
        lambda: fleet.check() or _finished(pool, flow, config.contacts),
        timeout=config.timeout,
        what="every run finished",
    )
    report.complete = True
    return audience, flow


async def run_chaos(config: ChaosConfig) -> ChaosReport:
    """Runs one crash test on a stack of its own and counts the emails."""
    seed = config.seed if config.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    report = ChaosReport(seed=seed, contacts=config.contacts)
    started = time.monotonic()
    async with Suite(config.root) as suite, suite.env("chaos") as env:
        await env.start_sink()
        task_queue = unique("chaos")
        await env.start_gateway(task_queue=task_queue)
        kill_base = env.dir / "kill"
        workers = await env.start_workers(
            "journeys",
            task_queue=task_queue,
            processes=config.workers,
            env={CHAOS_KILL_FILE: str(kill_base)},
        )
        fleet = Fleet(workers, kill_base=kill_base)
        ids: tuple[str, str] | None = None
        try:
            async with asyncio.timeout(config.timeout):
                ids = await _drive(env, fleet, config, report, rng)
        except TimeoutError:
            report.problems.append(f"not finished within {config.timeout:.0f} s")
        finally:
            await fleet.close()
        if ids is None:
            ids = await _chaos_ids(suite)
        if ids is not None:
            assert env.sink_log is not None and suite.pool is not None
            await count(
                suite.pool,
                report,
                audience_id=ids[0],
                flow_id=ids[1],
                steps=STEPS,
                sink=env.sink_log.path,
            )
    report.elapsed = time.monotonic() - started
    return report


async def _chaos_ids(suite: Suite) -> tuple[str, str] | None:
    """(audience, flow) of an unfinished run, to count what it did."""
    assert suite.pool is not None
    row = await suite.pool.fetchrow(
        "SELECT audience_id::text AS audience, id::text AS flow FROM flows WHERE name = 'Chaos'"
    )
    return (row["audience"], row["flow"]) if row else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = ChaosConfig(root=Path())
    parser.add_argument("--contacts", type=int, default=defaults.contacts)
    parser.add_argument("--kills", type=int, default=defaults.kills)
    parser.add_argument("--mid-send-kills", type=int, default=defaults.mid_send_kills)
    parser.add_argument("--delay", default=defaults.delay)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--timeout", type=float, default=defaults.timeout)
    parser.add_argument("--keep", type=Path, help="keep the scratch files in this directory")
    args = parser.parse_args()
    if not 0 <= args.mid_send_kills <= args.kills:
        parser.error("--mid-send-kills must be between 0 and --kills")
    root = args.keep or Path(tempfile.mkdtemp(prefix="journeys-chaos-"))
    config = ChaosConfig(
        contacts=args.contacts,
        kills=args.kills,
        mid_send_kills=args.mid_send_kills,
        delay=args.delay,
        workers=args.workers,
        seed=args.seed,
        timeout=args.timeout,
        root=root,
    )
    try:
        report = asyncio.run(run_chaos(config))
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    left = leftover_children()
    if left:
        report.problems.append(f"processes left running: {left}")
    print(report.render())
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()

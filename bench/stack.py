"""The real stack a benchmark runs on, started and stopped by the benchmark itself.

`Suite` owns what the whole run shares: embedded Postgres (not durable: a benchmark needs no
crash safety), the driver's pool and an API key. `BenchEnv` owns what one benchmark uses: a
fresh Temporal dev server on its own SQLite file (so its growth is this benchmark's), the SMTP
sink, the gateway and worker processes. Every child runs in its own process, so the load
generator, the gateway and the workers never share a GIL; all of them stop when the context
exits, also on errors.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
import uuid
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from temporalio.client import Client

from bench.procs import Child, cpu_seconds, python_child
from bench.sink import SinkLog
from journeys.config import Settings
from journeys.embedded.postgres import EmbeddedPostgres
from journeys.embedded.process import free_port
from journeys.embedded.temporal import DevTemporalServer
from journeys.store import apikeys
from journeys.store.migrate import migrate
from journeys.store.pool import create_pool
from workers.worker import worker_tuning


@dataclass
class Suite:
    """Resources shared by every benchmark of one run.

    Args:
        root: Scratch directory (databases, logs, sink files, profiles).
        tuning: `JOURNEYS_*` worker settings given to every worker process.
    """

    root: Path
    tuning: dict[str, str] = field(default_factory=dict)
    postgres: EmbeddedPostgres | None = None
    pool: asyncpg.Pool | None = None
    api_key: str = ""
    shared: dict[str, Any] = field(default_factory=dict)  # results one benchmark hands another
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    async def __aenter__(self) -> Suite:
        self.root.mkdir(parents=True, exist_ok=True)
        self.postgres = EmbeddedPostgres(self.root / "postgres", port=free_port(), durable=False)
        await self.postgres.start()
        self._stack.push_async_callback(self.postgres.stop)
        await migrate(self.postgres.dsn)
        self.pool = await create_pool(self.postgres.dsn, max_size=20)
        self._stack.push_async_callback(self.pool.close)
        self.api_key = await apikeys.create(self.pool, "bench")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def settle(self) -> None:
        """Vacuums and checkpoints the shared database between benchmarks, so the cleanup a
        benchmark's writes leave behind (autovacuum, dirty pages) is not done, and billed,
        inside the next one's measurement. Raw Temporal never touches this database."""
        assert self.pool is not None
        async with self.pool.acquire() as conn:
            await conn.execute("VACUUM (ANALYZE)")
            await conn.execute("CHECKPOINT")

    def tuning_settings(self) -> dict[str, Any]:
        """The worker and pool settings every benchmark's processes run with."""
        settings = Settings(
            **{k.removeprefix("JOURNEYS_").lower(): v for k, v in self.tuning.items()}
        )
        tuning = {
            name: value.total_seconds() if isinstance(value, timedelta) else value
            for name, value in worker_tuning(settings).items()
        }
        return {
            **tuning,
            "worker processes": "1 per side (2 in the tuning benchmark)",
            "db_pool_max (per process)": settings.db_pool_max,
            "smtp_pool_size": settings.smtp_pool_size,
            "workflow sandbox (journeys workers)": settings.worker_workflow_sandbox,
        }

    def env(self, name: str) -> BenchEnv:
        """A fresh per-benchmark environment (new Temporal server and SQLite file)."""
        return BenchEnv(self, name)


class BenchEnv:
    """One benchmark's Temporal server, sink, gateway and workers."""

    def __init__(self, suite: Suite, name: str) -> None:
        self.suite = suite
        self.name = name
        self.dir = suite.root / name
        self.temporal: DevTemporalServer | None = None
        self.client: Client | None = None
        self.sink: Child | None = None
        self.sink_log: SinkLog | None = None
        self.gateway: Child | None = None
        self.http: HttpShards | None = None
        self.workers: dict[str, list[Child]] = {}
        self._stack = AsyncExitStack()
        self._smtp_port = free_port()
        self._api_port = free_port()

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> BenchEnv:
        self.dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(_PORT_ATTEMPTS):
            self.temporal = DevTemporalServer(
                db_file=self.dir / f"temporal{attempt or ''}.db",
                port=free_port(),
                log_file=self.dir / "temporal.log",
            )
            self._stack.push_async_callback(self.temporal.stop)
            try:
                await self.temporal.start()
                break
            except RuntimeError:
                if attempt + 1 == _PORT_ATTEMPTS:
                    raise
        # Raw starts and history reads need no pydantic: the SDK's default converter.
        self.client = await Client.connect(self.temporal.address)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    # -- children --------------------------------------------------------------------------

    def child_env(self, **extra: str) -> dict[str, str]:
        """`JOURNEYS_*` environment of the gateway and journeys workers."""
        assert self.suite.postgres is not None and self.temporal is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
        env.update(
            JOURNEYS_HOME=str(self.dir),
            JOURNEYS_DATABASE_URL=self.suite.postgres.dsn,
            JOURNEYS_TEMPORAL_ADDRESS=self.temporal.address,
            JOURNEYS_SMTP_PORT=str(self._smtp_port),
            JOURNEYS_API_PORT=str(self._api_port),
            JOURNEYS_MAIL_FROM="Bench <bench@journeys.test>",
            **self.suite.tuning,
            **extra,
        )
        return env

    async def _start(self, child: Child) -> Child:
        self._stack.push_async_callback(child.stop)
        await child.start()
        return child

    async def _start_on_free_port(
        self, make: Callable[[], Child], repick: Callable[[], None]
    ) -> Child:
        # free_port() only finds a port free *now*: on a shared machine another process may
        # take it before the child binds it. Then the child fails to start; pick another.
        for attempt in range(_PORT_ATTEMPTS):
            try:
                return await self._start(make())
            except RuntimeError:
                if attempt + 1 == _PORT_ATTEMPTS:
                    raise
                repick()
        raise AssertionError("unreachable")

    async def start_sink(self) -> SinkLog:
        """Starts the SMTP sink the journeys workers send to."""
        out = self.dir / "sink.tsv"

        def repick() -> None:
            self._smtp_port = free_port()

        self.sink = await self._start_on_free_port(
            lambda: python_child(
                "sink",
                "bench.sink",
                "--port",
                str(self._smtp_port),
                "--out",
                str(out),
                env=self.child_env(),
                log=self.dir / "sink.log",
            ),
            repick,
        )
        self.sink_log = SinkLog(out)
        return self.sink_log

    async def start_gateway(self, *, task_queue: str) -> HttpShards:
        """Starts the gateway; returns keep-alive, authenticated HTTP clients for it."""

        def repick() -> None:
            self._api_port = free_port()

        self.gateway = await self._start_on_free_port(
            lambda: python_child(
                "gateway",
                "bench.gateway",
                env=self.child_env(JOURNEYS_TASK_QUEUE=task_queue),
                log=self.dir / "gateway.log",
            ),
            repick,
        )
        self.http = HttpShards(f"http://127.0.0.1:{self._api_port}", self.suite.api_key)
        self._stack.push_async_callback(self.http.aclose)
        return self.http

    async def start_workers(
        self,
        kind: str,
        *,
        task_queue: str,
        processes: int,
        env: Mapping[str, str] | None = None,
    ) -> list[Child]:
        """Starts `processes` worker processes of `kind` (`journeys` or `raw`) on one queue.

        Args:
            env: Extra environment of the workers (the crash test arms its fault hook here).
        """
        children = [
            python_child(
                f"{kind}-worker-{i + 1}",
                "bench.worker",
                "--kind",
                kind,
                "--task-queue",
                task_queue,
                env=self.child_env(**(env or {})),
                log=self.dir / f"{kind}-worker-{task_queue}-{i + 1}.log",
            )
            for i in range(processes)
        ]
        await asyncio.gather(*(self._start(child) for child in children))
        self.workers[task_queue] = children
        return children

    async def stop_workers(self, task_queue: str) -> None:
        """Stops the workers of one queue (their cleanup callback then finds them stopped)."""
        await asyncio.gather(*(child.stop() for child in self.workers.pop(task_queue, [])))

    # -- measurement -----------------------------------------------------------------------

    def processes(self) -> dict[str, int]:
        """Pids of every process of the stack by role, for CPU accounting."""
        assert self.suite.postgres is not None and self.temporal is not None
        roles: dict[str, int] = {"driver": os.getpid()}
        if self.temporal.pid is not None:
            roles["temporal"] = self.temporal.pid
        if self.suite.postgres.pid is not None:
            roles["postgres"] = self.suite.postgres.pid
        for child in (self.gateway, self.sink):
            if child is not None and child.running:
                roles[child.name] = child.pid
        for children in self.workers.values():
            for child in children:
                if child.running:
                    roles[child.name] = child.pid
        return roles

    def cpu_snapshot(self) -> dict[str, float]:
        """CPU seconds used so far by each role (workers summed as `worker`).

        The driver (load generator, raw client) counts alone: its children are the other roles.
        """
        snap: dict[str, float] = {}
        for role, pid in self.processes().items():
            key = "worker" if "worker" in role else role
            used = cpu_seconds(pid, children=role != "driver")
            snap[key] = snap.get(key, 0.0) + used
        return snap

    def db_bytes(self) -> int:
        """Bytes the Temporal SQLite database takes on disk: main file plus write-ahead log."""
        assert self.temporal is not None and self.temporal.db_file is not None
        base = self.temporal.db_file
        return sum(
            p.stat().st_size for p in (base, base.with_name(base.name + "-wal")) if p.exists()
        )

    def db_used_bytes(self) -> int | None:
        """Bytes of the database's pages in use (what the files hold, minus free pages).

        Unlike file sizes this does not depend on when SQLite checkpoints its WAL. None if the
        database could not be read (it is busy).
        """
        assert self.temporal is not None and self.temporal.db_file is not None
        try:
            conn = sqlite3.connect(f"file:{self.temporal.db_file}?mode=ro", uri=True, timeout=5)
            try:
                pages = conn.execute("PRAGMA page_count").fetchone()[0]
                free = conn.execute("PRAGMA freelist_count").fetchone()[0]
                size = conn.execute("PRAGMA page_size").fetchone()[0]
            finally:
                conn.close()
        except sqlite3.Error:
            return None
        return (pages - free) * size


class HttpShards:
    """Several httpx clients used in turn, each with a small connection pool.

    One httpx client with a hundred connections spends more CPU choosing a connection than
    sending the request (its pool scans every connection per request), which would make the
    load generator, not the gateway, the bottleneck at high concurrency.
    """

    def __init__(
        self, base_url: str, api_key: str, *, shards: int = 8, per_shard: int = 32
    ) -> None:
        self.clients = [
            httpx.AsyncClient(
                base_url=base_url,
                headers={"Authorization": f"Bearer {api_key}"},
                limits=httpx.Limits(
                    max_connections=per_shard,
                    max_keepalive_connections=per_shard,
                    # Shorter than the gateway keeps them (30 s), so no request races its close.
                    keepalive_expiry=2.0,
                ),
                timeout=httpx.Timeout(120.0),
            )
            for _ in range(shards)
        ]
        self._turn = itertools.cycle(self.clients)

    def next(self) -> httpx.AsyncClient:
        """The client for the next request."""
        return next(self._turn)

    async def aclose(self) -> None:
        await asyncio.gather(*(client.aclose() for client in self.clients))


_PORT_ATTEMPTS = 3


def unique(prefix: str) -> str:
    """A short unique name (task queues, workflow id prefixes)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"

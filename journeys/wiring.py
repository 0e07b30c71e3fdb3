"""Process start-up wiring in one place: pool, Temporal client, flow registry, ingest.

The API, the worker, `journeys dev`, the tests and the benchmarks all open their shared
resources through `open_core`, so each is built, started and closed the same way everywhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import asyncpg
from temporalio.client import Client
from temporalio.runtime import Runtime

from journeys.config import Settings
from journeys.dispatch import Dispatcher
from journeys.ingest import Ingest
from journeys.registry import FlowRegistry
from journeys.store.pool import create_pool
from journeys.temporal import connect_client


@dataclass(frozen=True)
class Core:
    """What every journeys process shares."""

    settings: Settings
    pool: asyncpg.Pool
    client: Client
    registry: FlowRegistry
    ingest: Ingest


@asynccontextmanager
async def open_core(
    settings: Settings, *, runtime: Runtime | None = None, client: Client | None = None
) -> AsyncIterator[Core]:
    """Opens the pool, connects to Temporal, loads the flow registry; closes them on exit.

    Args:
        settings: The process's settings.
        runtime: A Temporal runtime (the worker's, which serves SDK metrics).
        client: An already connected client to use instead of a new one.
    """
    dsn = settings.effective_database_url
    async with AsyncExitStack() as stack:
        pool = await create_pool(dsn, min_size=settings.db_pool_min, max_size=settings.db_pool_max)
        stack.push_async_callback(pool.close)
        client = client or await connect_client(settings, runtime=runtime)
        registry = FlowRegistry(pool, dsn)
        await registry.start()
        stack.push_async_callback(registry.close)
        dispatcher = Dispatcher(
            pool, client, registry, task_queue=settings.task_queue, limits=settings.run_limits()
        )
        yield Core(settings, pool, client, registry, Ingest(pool, dispatcher))

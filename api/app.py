"""The FastAPI application; its lifespan owns the pool, the Temporal client and the registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import metrics, problems
from api.outbox import OutboxRelay
from api.routes import health, v1
from journeys import __version__
from journeys.config import Settings
from journeys.dispatch import Dispatcher
from journeys.domain.flow import TYPE_TAGS
from journeys.registry import FlowRegistry
from journeys.store.pool import create_pool
from journeys.temporal import connect_client


def create_app(settings: Settings | None = None) -> FastAPI:
    """Builds the app; resources are opened when it starts, not here."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        dsn = settings.effective_database_url
        pool = await create_pool(dsn, min_size=settings.db_pool_min, max_size=settings.db_pool_max)
        try:
            temporal = await connect_client(settings)
            registry = FlowRegistry(pool, dsn)
            await registry.start()
            try:
                app.state.settings = settings
                app.state.pool = pool
                app.state.temporal = temporal
                app.state.registry = registry
                app.state.key_cache = {}
                app.state.dispatcher = Dispatcher(
                    pool, temporal, registry, task_queue=settings.task_queue
                )
                relay = OutboxRelay(pool, app.state.dispatcher)
                relay.start()
                try:
                    yield
                finally:
                    await relay.close()
            finally:
                await registry.close()
        finally:
            await pool.close()

    app = FastAPI(
        title="temporal-journeys",
        version=__version__,
        summary="Marketing-automation flows where every contact in a flow is a durable workflow.",
        lifespan=lifespan,
    )
    problems.install(app, tags=TYPE_TAGS)
    app.include_router(v1)
    app.include_router(health.router)
    if settings.api_metrics:
        metrics.install(app)
    return app

"""The FastAPI application; its lifespan owns the pool, the Temporal client and the registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import metrics, problems
from api.outbox import OutboxRelay
from api.routes import health, tracking, v1
from journeys import __version__
from journeys.config import Settings
from journeys.domain.flow import TYPE_TAGS
from journeys.wiring import open_core


def create_app(settings: Settings | None = None) -> FastAPI:
    """Builds the app; resources are opened when it starts, not here."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_core(settings) as core:
            app.state.settings = settings
            app.state.core = core
            app.state.key_cache = {}
            relay = OutboxRelay(core.ingest)
            relay.start()
            try:
                yield
            finally:
                await relay.close()

    app = FastAPI(
        title="temporal-journeys",
        version=__version__,
        summary="Marketing-automation flows where every contact in a flow is a durable workflow.",
        lifespan=lifespan,
    )
    problems.install(app, tags=TYPE_TAGS)
    app.include_router(v1)
    app.include_router(health.router)
    app.include_router(tracking.router)
    if settings.api_metrics:
        metrics.install(app)
    return app

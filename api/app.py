"""The FastAPI application; its lifespan owns the pool, the Temporal client and the registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import metrics, openapi, problems
from api.keycache import KeyCache
from api.outbox import OutboxRelay
from api.request_guard import RequestGuard
from api.routes import health, mailchimp, site, tracking, v1
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
            app.state.key_cache = KeyCache(settings.effective_database_url)
            await app.state.key_cache.start()
            relay = OutboxRelay(
                core.ingest,
                max_attempts=settings.outbox_max_attempts,
                backoff_max=settings.outbox_backoff_max_seconds,
                registry=request_metrics.registry if request_metrics else None,
            )
            app.state.outbox = relay
            relay.start()
            try:
                yield
            finally:
                await relay.close()
                await app.state.key_cache.close()

    app = FastAPI(
        title="temporal-journeys",
        version=__version__,
        summary="Marketing-automation flows where every contact in a flow is a durable workflow.",
        lifespan=lifespan,
    )
    problems.install(app, tags=TYPE_TAGS)
    app.include_router(v1)
    app.include_router(health.router)
    app.include_router(site.router)
    app.include_router(mailchimp.router)
    app.include_router(tracking.router)
    openapi.install(app)
    # Added before the metrics middleware, so it runs inside it: refusals are counted too.
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_request_body_bytes)
    request_metrics = metrics.install(app) if settings.api_metrics else None
    return app

"""/readyz never hangs: a dependency that stops answering fails within the timeout."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any, ClassVar

import httpx
from fastapi import FastAPI

from api import problems
from api.routes import health
from journeys.config import Settings


class _Silent:
    """Accepts the call and never answers, like a database behind a dropped network link.

    Each entry and each timeout is written to `log`, so a test can tell whether checks ran
    together or one after the other.
    """

    log: ClassVar[list[str]] = []

    async def hang(self, *_args: Any, **_kwargs: Any) -> None:
        name = type(self).__name__
        self.log.append(f"enter {name}")
        try:
            await asyncio.Event().wait()
        finally:
            self.log.append(f"gave up {name}")


class SilentPool(_Silent):
    @asynccontextmanager
    async def acquire(self) -> Any:
        await self.hang()
        yield None


class SilentTemporal(_Silent):
    def __init__(self) -> None:
        self.workflow_service = self
        self.describe_namespace = self.hang


class BrokenPool:
    @asynccontextmanager
    async def acquire(self) -> Any:
        raise OSError("connection reset by peer\nwith a second line")
        yield None  # pragma: no cover


def _app(pool: object, temporal: object, timeout: float) -> FastAPI:
    app = FastAPI()
    problems.install(app, tags=frozenset())
    app.include_router(health.router)
    app.state.core = SimpleNamespace(pool=pool, client=temporal)
    app.state.settings = Settings(readiness_timeout_seconds=timeout)
    return app


async def test_silent_dependencies_fail_within_the_timeout_together() -> None:
    app = _app(SilentPool(), SilentTemporal(), timeout=0.3)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        _Silent.log.clear()
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    body = response.json()
    assert body["checks"] == {
        "postgres": "no answer within 0.3s",
        "temporal": "no answer within 0.3s",
    }
    assert body["detail"] == (
        "not ready: postgres: no answer within 0.3s; temporal: no answer within 0.3s"
    )
    # Checked concurrently: both were waiting before either was given up.
    assert sorted(_Silent.log[:2]) == ["enter SilentPool", "enter SilentTemporal"]


async def test_a_failing_check_reports_the_error_on_one_line() -> None:
    reason = await health.run_check("postgres", health.check_postgres(BrokenPool()), 1.0)
    assert reason == "OSError: connection reset by peer"


def test_readiness_is_documented_in_openapi_as_a_problem() -> None:
    schema = _app(None, None, 1.0).openapi()["paths"]["/readyz"]["get"]["responses"]
    assert set(schema) >= {"200", "503"}
    assert "application/problem+json" in schema["503"]["content"]

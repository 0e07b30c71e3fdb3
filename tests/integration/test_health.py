"""/healthz, /readyz and /metrics of the API against real (and really stopped) services."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from journeys.config import Settings
from journeys.embedded.postgres import EmbeddedPostgres
from journeys.embedded.process import free_port
from journeys.embedded.temporal import DevTemporalServer
from journeys.store.migrate import migrate
from tests.helpers import eventually

TIMEOUT = 1.0  # readiness timeout of these apps: a failing check must answer within it


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with its lifespan, and a client that presents no API key."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://journeys.test") as http:
            yield http


def _assert_not_ready_because_of(response: httpx.Response, failing: str, healthy: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 503 and problem["instance"] == "/readyz"
    assert problem["detail"].startswith(f"not ready: {failing}: ")
    assert healthy not in problem["detail"]
    assert problem["checks"][healthy] == "ok"
    assert problem["checks"][failing] != "ok"


async def test_readyz_is_503_naming_postgres_while_it_is_down(
    tmp_path: Path, temporal_server: DevTemporalServer
) -> None:
    own = EmbeddedPostgres(tmp_path / "postgres", port=free_port(), durable=False)
    await own.start()
    try:
        await migrate(own.dsn)
        settings = Settings(
            home=tmp_path,
            database_url=own.dsn,
            temporal_address=temporal_server.address,
            readiness_timeout_seconds=TIMEOUT,
        )
        async with serving(settings) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 200
            assert ready.json() == {
                "status": "ready",
                "checks": {"postgres": "ok", "temporal": "ok"},
            }

            await own.stop()
            response = await http.get("/readyz")
            _assert_not_ready_because_of(response, "postgres", "temporal")
            assert (await http.get("/healthz")).json() == {"status": "ok"}  # still alive

            # Postgres back: the pool replaces its dead connections, the replica is ready again.
            await own.start()
            await eventually(lambda: _status(http, "/readyz", 200), timeout=15)
    finally:
        await own.stop()


async def test_readyz_is_503_naming_temporal_while_it_is_down(
    tmp_path: Path, settings: Settings
) -> None:
    own = DevTemporalServer(db_file=None, port=free_port(), log_file=tmp_path / "temporal.log")
    await own.start()
    try:
        app_settings = Settings(
            home=tmp_path,
            database_url=settings.effective_database_url,
            temporal_address=own.address,
            readiness_timeout_seconds=TIMEOUT,
        )
        async with serving(app_settings) as http:
            assert (await http.get("/readyz")).status_code == 200
            await own.stop()
            response = await http.get("/readyz")
            _assert_not_ready_because_of(response, "temporal", "postgres")
    finally:
        await own.stop()


async def _status(http: httpx.AsyncClient, path: str, expected: int) -> bool:
    return (await http.get(path)).status_code == expected


async def test_health_routes_need_no_api_key_but_the_api_does(settings: Settings) -> None:
    async with serving(settings) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200
        assert (await http.get("/metrics")).status_code == 200
        assert (await http.get(f"/v1/audiences/{uuid.uuid4()}")).status_code == 401


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


async def test_api_metrics_count_requests_by_route_template(
    settings: Settings, api_key: str
) -> None:
    audience = uuid.uuid4()
    async with serving(settings) as http:
        auth = {"Authorization": f"Bearer {api_key}"}
        assert (await http.get(f"/v1/audiences/{audience}", headers=auth)).status_code == 404
        assert (await http.get(f"/v1/audiences/{audience}", headers=auth)).status_code == 404
        assert (await http.get(f"/v1/audiences/{audience}")).status_code == 401
        assert (await http.get("/no/such/page")).status_code == 404

        response = await http.get("/metrics")
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
    requests = _samples(text, "journeys_http_requests_total")
    route = "/v1/audiences/{audience_id}"
    assert requests[(("method", "GET"), ("route", route), ("status", "404"))] == 2
    assert requests[(("method", "GET"), ("route", route), ("status", "401"))] == 1
    assert requests[(("method", "GET"), ("route", "unmatched"), ("status", "404"))] == 1
    durations = _samples(text, "journeys_http_request_duration_seconds_count")
    assert durations[(("method", "GET"), ("route", route))] == 3
    # Labels are templates: ids and unknown paths never become series of their own.
    assert str(audience) not in text and "/no/such/page" not in text


async def test_api_metrics_can_be_turned_off(settings: Settings) -> None:
    quiet = Settings(
        home=settings.home,
        database_url=settings.effective_database_url,
        temporal_address=settings.effective_temporal_address,
        api_metrics=False,
    )
    async with serving(quiet) as http:
        response = await http.get("/metrics")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")

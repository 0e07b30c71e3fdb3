"""Session-wide real services: embedded Postgres, the Temporal dev server, an SMTP catcher."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from journeys.channels import netguard
from journeys.config import Settings
from journeys.embedded.mailcatcher import MailCatcher
from journeys.embedded.postgres import EmbeddedPostgres
from journeys.embedded.process import free_port
from journeys.embedded.temporal import DevTemporalServer
from journeys.store import apikeys
from journeys.store.migrate import migrate
from journeys.store.pool import create_pool
from journeys.temporal import connect_client
from journeys.wiring import Core, open_core
from tests.helpers import HostsResolver, api_client
from workers.worker import build_worker


@pytest.fixture(scope="session", autouse=True)
def hosts() -> Iterator[HostsResolver]:
    """Webhook targets resolve from a table: no test sends a DNS query off this machine."""
    resolver = HostsResolver()
    previous = netguard.install_resolver(resolver)
    yield resolver
    netguard.install_resolver(previous)


@pytest.fixture(scope="session")
def tmp_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("journeys")


@pytest.fixture(scope="session")
async def postgres(tmp_home: Path) -> AsyncIterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_home / "postgres", port=free_port(), durable=False)
    await server.start()
    await migrate(server.dsn)
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def temporal_server(tmp_home: Path) -> AsyncIterator[DevTemporalServer]:
    server = DevTemporalServer(db_file=None, port=free_port(), log_file=tmp_home / "temporal.log")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
def mail() -> Iterator[MailCatcher]:
    with MailCatcher(port=free_port()) as catcher:
        yield catcher


@pytest.fixture(scope="session")
def settings(
    postgres: EmbeddedPostgres,
    temporal_server: DevTemporalServer,
    mail: MailCatcher,
    tmp_home: Path,
) -> Settings:
    return Settings(
        home=tmp_home,
        database_url=postgres.dsn,
        temporal_address=temporal_server.address,
        smtp_port=mail.port,
        task_queue=f"test-{uuid.uuid4().hex[:8]}",
        mail_from="Journeys Test <flows@journeys.test>",
        sms_provider="outbox",
        # Webhook tests call listeners on 127.0.0.1; every other internal address is refused.
        webhook_allowed_hosts="127.0.0.1",
        # Production runs workflows unsandboxed (cheaper); the suite's worker keeps the sandbox,
        # so a non-deterministic call in any path a test takes still fails.
        worker_workflow_sandbox=True,
    )


@pytest.fixture(scope="session")
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings.effective_database_url)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def client(settings: Settings) -> Client:
    return await connect_client(settings)


@pytest.fixture(scope="session")
async def core(settings: Settings, client: Client) -> AsyncIterator[Core]:
    """The worker's shared resources, wired as `journeys worker` wires them."""
    async with open_core(settings, client=client) as opened:
        yield opened


@pytest.fixture(scope="session")
async def worker(core: Core) -> AsyncIterator[Worker]:
    """The worker; steps that tag contacts start other flows through its ingest."""
    async with build_worker(core) as running:
        yield running


@pytest.fixture(scope="session")
async def api_key(pool: asyncpg.Pool) -> str:
    return await apikeys.create(pool, "tests")


@pytest.fixture(scope="session")
async def app_client(settings: Settings, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """The real app (real lifespan, pool, Temporal client) over an in-process transport."""
    async with api_client(settings, api_key) as http:
        yield http


@pytest.fixture
async def audience_id(app_client: httpx.AsyncClient) -> str:
    """A fresh audience per test, so tests never see each other's contacts."""
    response = await app_client.post(
        "/v1/audiences", json={"name": "Test audience", "timezone": "Europe/Paris"}
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]

"""Activating a birthday flow over 5,000 contacts on the dev server, with the worker SIGKILLed
mid-fan-out: every contact ends armed exactly once, and the API answers while it runs.

The worker runs in a subprocess (`bench.worker`, as the crash test runs it) on a task queue of
its own, so the session's in-process worker cannot do the work for it and the kill is real.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from bench.chaos_fleet import Fleet
from bench.procs import Child, python_child
from journeys.config import Settings
from journeys.embedded.process import free_port
from journeys.embedded.temporal import DevTemporalServer
from journeys.security import subscriber_hash
from journeys.temporal import connect_client
from tests.helpers import api_client, eventually

CONTACTS = 5_000


def _worker_env(settings: Settings) -> dict[str, str]:
    """The `JOURNEYS_*` environment that makes a worker process use the test's services."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    env.update(
        JOURNEYS_HOME=str(settings.home),
        JOURNEYS_DATABASE_URL=settings.effective_database_url,
        JOURNEYS_TEMPORAL_ADDRESS=settings.effective_temporal_address,
        JOURNEYS_TASK_QUEUE=settings.task_queue,
        JOURNEYS_SMTP_PORT=str(settings.smtp_port),
        JOURNEYS_MAIL_FROM=settings.mail_from,
        JOURNEYS_SMS_PROVIDER=settings.sms_provider,
        JOURNEYS_WEBHOOK_ALLOWED_HOSTS=settings.webhook_allowed_hosts,
        JOURNEYS_LOG_LEVEL="WARNING",
    )
    return env


@pytest.fixture(scope="module")
async def own_temporal(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A dev server of this module's own (on a file, as `journeys dev` runs it): 5,000 armed
    runs stay off the session's server, and their load off the other tests."""
    folder = tmp_path_factory.mktemp("arming-temporal")
    server = DevTemporalServer(
        db_file=folder / "temporal.db", port=free_port(), log_file=folder / "temporal.log"
    )
    await server.start()
    yield server.address
    await server.stop()


@pytest.fixture(scope="module")
def own_settings(settings: Settings, own_temporal: str) -> Settings:
    """The session's Postgres and SMTP, this module's Temporal, a task queue of its own."""
    return settings.model_copy(
        update={"task_queue": f"arming-{uuid.uuid4().hex[:8]}", "temporal_address": own_temporal}
    )


@pytest.fixture(scope="module")
async def own_client(own_settings: Settings) -> Client:
    return await connect_client(own_settings)


@pytest.fixture(scope="module")
async def api(own_settings: Settings, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(own_settings, api_key, timeout=60) as http:
        yield http


async def _copy_contacts(pool: asyncpg.Pool, audience_id: str, birthday: str) -> None:
    """5,000 subscribed contacts with a birthday, in one COPY (set-up, not what is tested)."""
    batch = uuid.uuid4().hex[:6]
    emails = [f"b{i}-{batch}@example.com" for i in range(CONTACTS)]
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            "contacts",
            columns=["audience_id", "email", "subscriber_hash", "first_name", "birthday"],
            records=[
                (uuid.UUID(audience_id), email, subscriber_hash(email), "Bea", birthday)
                for email in emails
            ],
        )


async def _armed_rows(pool: asyncpg.Pool, flow_id: str) -> int:
    return int(
        await pool.fetchval("SELECT count(*) FROM armed_runs WHERE flow_id = $1::uuid", flow_id)
    )


# Generous deadlines: 5,000 starts and first workflow tasks share two cores with everything else.
@pytest.mark.timeout(1800)
async def test_activating_a_birthday_flow_arms_5000_contacts_through_a_worker_kill(
    api: httpx.AsyncClient,
    own_settings: Settings,
    pool: asyncpg.Pool,
    own_client: Client,
    tmp_path: Path,
) -> None:
    client = own_client
    response = await api.post("/v1/audiences", json={"name": "Birthdays", "timezone": "UTC"})
    audience = response.json()["id"]
    # Far from today, so no timer fires while the test runs.
    birthday = f"{datetime.now(UTC) + timedelta(days=180):%m-%d}"
    await _copy_contacts(pool, audience, birthday)
    response = await api.post(
        "/v1/flows",
        json={
            "name": "Happy birthday",
            "audience_id": audience,
            "triggers": [{"type": "birthday", "time_of_day": "09:00"}],
            "steps": [{"id": "hello", "type": "send_email", "subject": "Happy", "text": "Hi"}],
        },
    )
    assert response.status_code == 201, response.text
    flow = response.json()["id"]

    worker: Child = python_child(
        "arming-worker",
        "bench.worker",
        "--kind",
        "journeys",
        "--task-queue",
        own_settings.task_queue,
        env=_worker_env(own_settings),
        log=tmp_path / "worker.log",
    )
    await worker.start(timeout=90)
    fleet = Fleet([worker], kill_base=tmp_path / "kill")  # restarts the worker when it dies
    try:
        response = await api.post(f"/v1/flows/{flow}/activate")
        assert response.status_code == 200, response.text

        # Mid-fan-out: some contacts armed, the arming not done. The API answers meanwhile.
        async def midway() -> dict | None:
            got = await api.get(f"/v1/flows/{flow}")
            assert got.status_code == 200, got.text
            assert (await api.get("/healthz")).status_code == 200
            arming = got.json()["arming"]
            return arming if await _armed_rows(pool, flow) >= 1_200 else None

        before_kill = await eventually(midway, timeout=600, interval=0.5)
        assert not before_kill["done"], f"the fan-out ended before the kill: {before_kill}"
        await fleet.kill(worker, timeout=30)
        await fleet.wait_all_up(timeout=120)

        async def done() -> dict | None:
            got = await api.get(f"/v1/flows/{flow}")
            assert got.status_code == 200, got.text
            assert (await api.get("/healthz")).status_code == 200
            arming = got.json()["arming"]
            return arming if arming["done"] else None

        arming = await eventually(done, timeout=900, interval=1)
        assert (arming["total"], arming["armed"], arming["skipped"]) == (CONTACTS, CONTACTS, 0)
        assert len(fleet.deaths) == 1

        query = f"FlowId = '{flow}'"

        async def all_armed() -> bool:
            return (await client.count_workflows(f"{query} AND JourneyPhase = 'armed'")).count >= (
                CONTACTS
            )

        await eventually(all_armed, timeout=300, interval=1)
        # Exactly one run per contact, every one of them armed and still running.
        assert (await client.count_workflows(f"{query} AND JourneyPhase = 'armed'")).count == (
            CONTACTS
        )
        assert (await client.count_workflows(query)).count == CONTACTS
        assert (
            await client.count_workflows(f"{query} AND ExecutionStatus = 'Running'")
        ).count == CONTACTS
        assert await _armed_rows(pool, flow) == CONTACTS
        distinct = await pool.fetchval(
            "SELECT count(DISTINCT workflow_id) FROM armed_runs WHERE flow_id = $1::uuid", flow
        )
        assert distinct == CONTACTS
    finally:
        await fleet.close()

"""The gateway's registry (LISTEN/NOTIFY) and the outbox relay that finishes interrupted deliveries."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from api.outbox import OutboxRelay
from journeys.config import Settings
from journeys.dispatch import Dispatcher
from journeys.domain.events import IncomingEvent
from journeys.domain.runs import workflow_id
from journeys.embedded.mailcatcher import MailCatcher
from journeys.ingest import Ingest
from journeys.registry import FlowRegistry
from journeys.store import contacts, events
from tests.helpers import eventually, flow_body


@pytest.fixture
async def registry(pool: asyncpg.Pool, settings: Settings) -> AsyncIterator[FlowRegistry]:
    """A second gateway's registry: it learns of changes only through NOTIFY."""
    other = FlowRegistry(pool, settings.effective_database_url)
    await other.start()
    yield other
    await other.close()


def _tag_event(audience_id: str, contact_id: str, tag: str = "vip") -> IncomingEvent:
    return IncomingEvent(
        type="tag_added",
        audience_id=audience_id,
        contact_id=contact_id,
        idempotency_key=uuid.uuid4().hex,
        data={"tag": tag},
    )


async def test_other_gateways_hear_activation_and_pause_through_notify(
    app_client: httpx.AsyncClient, audience_id: str, registry: FlowRegistry, pool: asyncpg.Pool
) -> None:
    contact, _ = await contacts.upsert(pool, audience_id=audience_id, email="n@example.com")
    event = _tag_event(audience_id, contact["id"])
    now = await pool.fetchval("SELECT now()")
    assert registry.matching(event, now) == []

    flow_id = (await app_client.post("/v1/flows", json=flow_body(audience_id))).json()["id"]
    await app_client.post(f"/v1/flows/{flow_id}/activate")

    async def matched() -> list[str]:
        later = await pool.fetchval("SELECT now()")
        return [flow.id for flow, _ in registry.matching(event, later)]

    assert await eventually(matched) == [flow_id]
    # Activity from before the activation does not count.
    assert registry.matching(event, now) == []


async def test_relay_delivers_an_event_whose_delivery_was_interrupted(
    app_client: httpx.AsyncClient,
    audience_id: str,
    registry: FlowRegistry,
    pool: asyncpg.Pool,
    client: Client,
    settings: Settings,
    mail: MailCatcher,
    worker: object,
) -> None:
    email = f"relay-{uuid.uuid4().hex[:6]}@example.com"
    contact, _ = await contacts.upsert(pool, audience_id=audience_id, email=email, first_name="Rae")
    flow_id = (await app_client.post("/v1/flows", json=flow_body(audience_id))).json()["id"]
    await app_client.post(f"/v1/flows/{flow_id}/activate")
    await eventually(lambda: registry.holds(flow_id))
    # The process stored the event with the tag, then died before telling Temporal.
    event = _tag_event(audience_id, contact["id"])
    await events.record(
        pool,
        idempotency_key=event.idempotency_key,
        audience_id=audience_id,
        contact_id=contact["id"],
        type=event.type,
        data=event.data,
    )
    relay = OutboxRelay(
        Ingest(pool, Dispatcher(pool, client, registry, task_queue=settings.task_queue)),
        min_age=0,
    )
    assert await relay.run_once() >= 1
    assert await relay.run_once() == 0  # delivered events are not delivered again

    first = (await eventually(lambda: mail.to(email)))[0]
    assert first.subject == "Welcome Rae"
    handle = client.get_workflow_handle(workflow_id(flow_id, contact["id"]))
    assert (await handle.describe()).status is not None
    stored = await events.by_key(pool, event.idempotency_key)
    assert stored and stored["dispatched_at"] is not None

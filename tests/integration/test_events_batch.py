"""`POST /v1/events:batch`: all-or-nothing validation, one transaction, per-event outcomes."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
from temporalio.client import Client

from api.outbox import OutboxRelay
from journeys import batch
from journeys.config import Settings
from journeys.dispatch import Dispatcher
from journeys.domain.events import IncomingEvent
from journeys.domain.runs import workflow_id
from journeys.ingest import Ingest
from journeys.registry import FlowRegistry
from journeys.store import contacts
from tests.helpers import eventually, flow_body

SEND_ONLY = [{"id": "hello", "type": "send_email", "subject": "Hi", "html": "<p>Hi</p>"}]


async def _active_flow(
    http: httpx.AsyncClient, audience_id: str, trigger: dict, *, steps: list[dict] = SEND_ONLY
) -> str:
    body = flow_body(audience_id, name=f"batch {uuid.uuid4().hex[:6]}", triggers=[trigger])
    body["steps"] = steps
    response = await http.post("/v1/flows", json=body)
    assert response.status_code == 201, response.text
    flow_id: str = response.json()["id"]
    assert (await http.post(f"/v1/flows/{flow_id}/activate")).status_code == 200
    return flow_id


def _page(audience_id: str, contact: str, url: str, **extra: object) -> dict:
    return {"audience_id": audience_id, "contact": contact, "type": "page_visited",
            "data": {"url": url}, **extra}  # fmt: skip


def _visit(audience_id: str, contact: dict, url: str) -> IncomingEvent:
    """A `page_visited` event as the ingest layer takes it (no HTTP)."""
    return IncomingEvent(
        type="page_visited",
        audience_id=audience_id,
        contact_id=contact["id"],
        idempotency_key=uuid.uuid4().hex,
        data={"url": url},
    )


async def _stored_events(pool: asyncpg.Pool, audience_id: str) -> int:
    # Only what was posted: the runs' sends add `email_sent` rows whenever they get to them.
    return await pool.fetchval(
        "SELECT count(*) FROM events WHERE audience_id = $1 AND type <> 'email_sent'", audience_id
    )


async def test_a_batch_of_mixed_events_enrols_the_right_contacts(
    app_client: httpx.AsyncClient, audience_id: str, pool: asyncpg.Pool, client: Client
) -> None:
    buyer, _ = await contacts.upsert(pool, audience_id=audience_id, email="buyer@example.com")
    visitor, _ = await contacts.upsert(pool, audience_id=audience_id, email="visitor@example.com")
    browser, _ = await contacts.upsert(pool, audience_id=audience_id, email="browser@example.com")
    bought = await _active_flow(app_client, audience_id, {"type": "purchased_any_product"})
    sale = await _active_flow(
        app_client, audience_id, {"type": "page_visited", "url": "https://shop.example/sale*"}
    )
    # Posted once already, through the single endpoint: the batch's copy is a duplicate.
    earlier = await app_client.post(
        f"/v1/audiences/{audience_id}/contacts/{browser['id']}/activity",
        json={"type": "page_visited", "data": {"url": "https://shop.example/about"}},
        headers={"Idempotency-Key": "seen-1"},
    )
    assert earlier.status_code == 202, earlier.text
    order = {"audience_id": audience_id, "contact": "Buyer@Example.com", "type": "order_placed",
             "data": {"order_id": "o-1", "total": 30}, "idempotency_key": "order-1"}  # fmt: skip
    response = await app_client.post(
        "/v1/events:batch",
        json={
            "events": [
                order,
                _page(audience_id, visitor["id"], "https://shop.example/sale/shoes"),
                _page(
                    audience_id,
                    browser["id"],
                    "https://shop.example/about",
                    idempotency_key="seen-1",
                ),
                _page(audience_id, browser["subscriber_hash"], "https://shop.example/about"),
                order,
            ]
        },
    )

    assert response.status_code == 202, response.text
    results = response.json()["results"]
    assert [r["outcome"] for r in results] == [
        "stored",
        "stored",
        "duplicate",
        "stored",
        "duplicate",
    ]
    assert all(r["delivered"] for r in results)
    assert results[2]["event_id"] == earlier.json()["event_id"]
    assert results[4]["event_id"] == results[0]["event_id"]
    assert [(e["flow_id"], e["outcome"]) for e in results[0]["enrolments"]] == [(bought, "started")]
    assert [(e["flow_id"], e["outcome"]) for e in results[1]["enrolments"]] == [(sale, "started")]
    assert [r["enrolments"] for r in results[2:]] == [[], [], []]
    for flow_id, contact in ((bought, buyer), (sale, visitor)):
        handle = client.get_workflow_handle(workflow_id(flow_id, contact["id"]))
        assert (await handle.describe()).id == workflow_id(flow_id, contact["id"])
    # Stored once each, and the order reached the orders ledger once.
    assert await _stored_events(pool, audience_id) == 4
    assert (
        await pool.fetchval("SELECT count(*) FROM orders WHERE contact_id = $1", buyer["id"]) == 1
    )
    undelivered = await pool.fetchval(
        "SELECT count(*) FROM events"
        " WHERE audience_id = $1 AND type <> 'email_sent' AND dispatched_at IS NULL",
        audience_id,
    )
    assert undelivered == 0


async def test_an_invalid_event_refuses_the_whole_batch(
    app_client: httpx.AsyncClient, audience_id: str, pool: asyncpg.Pool
) -> None:
    contact, _ = await contacts.upsert(pool, audience_id=audience_id, email="v@example.com")
    good = _page(audience_id, contact["id"], "https://shop.example/")
    cases = [
        ({**good, "type": "page_vistied"}, "events[3].type"),
        ({**good, "data": {"referrer": "x"}}, "events[3].data.url"),
        ({**good, "contact": "nobody@example.com"}, "events[3].contact"),
        ({**good, "audience_id": str(uuid.uuid4())}, "events[3].audience_id"),
        ({**good, "occurred_at": "yesterday"}, "events[3].occurred_at"),
    ]
    for bad, field in cases:
        response = await app_client.post(
            "/v1/events:batch", json={"events": [good, good, good, bad, good]}
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in response.json()["errors"]] == [field]
    assert await _stored_events(pool, audience_id) == 0


async def test_a_batch_over_500_events_is_refused(
    app_client: httpx.AsyncClient, audience_id: str, pool: asyncpg.Pool
) -> None:
    contact, _ = await contacts.upsert(pool, audience_id=audience_id, email="many@example.com")
    event = _page(audience_id, contact["id"], "https://shop.example/")
    response = await app_client.post("/v1/events:batch", json={"events": [event] * 501})
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["events"]
    empty = await app_client.post("/v1/events:batch", json={"events": []})
    assert [e["field"] for e in empty.json()["errors"]] == ["events"]
    assert await _stored_events(pool, audience_id) == 0


async def test_an_event_temporal_refuses_is_left_to_the_relay_with_the_contacts_later_ones(
    app_client: httpx.AsyncClient,
    audience_id: str,
    pool: asyncpg.Pool,
    client: Client,
    settings: Settings,
) -> None:
    contact, _ = await contacts.upsert(pool, audience_id=audience_id, email="late@example.com")
    other, _ = await contacts.upsert(pool, audience_id=audience_id, email="idle@example.com")
    sale = await _active_flow(
        app_client, audience_id, {"type": "page_visited", "url": "https://shop.example/sale*"}
    )
    registry = FlowRegistry(pool, settings.effective_database_url)
    await registry.start()
    try:
        # Temporal refuses every start of this dispatcher (no task queue): a real refusal.
        refusing = Ingest(pool, Dispatcher(pool, client, registry, task_queue=""))
        events = [
            _visit(audience_id, c, url)
            for c, url in (
                (contact, "https://shop.example/sale/1"),
                (contact, "https://shop.example/about"),
                (other, "https://shop.example/about"),
            )
        ]
        stored = await batch.store_batch(refusing, events)
        outcomes = await batch.deliver_batch(refusing, events, stored)
        # The refused start and the same contact's later event wait; the idle one is done.
        assert [o.delivered for o in outcomes] == [False, False, True]
        relay = OutboxRelay(
            Ingest(pool, Dispatcher(pool, client, registry, task_queue=settings.task_queue)),
            min_age=0,
        )
        assert await relay.run_once() >= 2
    finally:
        await registry.close()
    for row, _ in stored:
        again = await pool.fetchval("SELECT dispatched_at FROM events WHERE id = $1", row["id"])
        assert again is not None
    handle = client.get_workflow_handle(workflow_id(sale, contact["id"]))
    assert (await handle.describe()).id == workflow_id(sale, contact["id"])


async def test_recorded_events_nobody_hears_are_stored_delivered_and_the_others_reach_runs(
    app_client: httpx.AsyncClient,
    audience_id: str,
    pool: asyncpg.Pool,
    client: Client,
    settings: Settings,
) -> None:
    """`Ingest.events` (a campaign page's `email_sent` events): one statement stores the idle
    ones delivered; a contact with a run in progress, or an event a flow wants, is delivered."""
    idle, _ = await contacts.upsert(pool, audience_id=audience_id, email="idle@example.com")
    waiting, _ = await contacts.upsert(pool, audience_id=audience_id, email="waiting@example.com")
    buyer, _ = await contacts.upsert(pool, audience_id=audience_id, email="sale@example.com")
    staying = await _active_flow(
        app_client,
        audience_id,
        {"type": "tag_added", "tag": "vip"},
        steps=[{"id": "stay", "type": "delay", "duration": "30d"}],
    )
    tagged = await app_client.post(
        f"/v1/audiences/{audience_id}/contacts/{waiting['id']}/tags", json={"tags": ["vip"]}
    )
    assert tagged.status_code < 300, tagged.text

    async def entered() -> bool:
        return bool(
            await pool.fetchval(
                "SELECT count(*) FROM enrollments WHERE flow_id = $1::uuid AND status = 'running'",
                staying,
            )
        )

    await eventually(entered, timeout=30)
    sale = await _active_flow(
        app_client, audience_id, {"type": "page_visited", "url": "https://shop.example/sale*"}
    )

    batch_events = [
        _visit(audience_id, idle, "https://shop.example/about"),
        _visit(audience_id, waiting, "https://shop.example/about"),
        _visit(audience_id, buyer, "https://shop.example/sale/shoes"),
        # after an enrolling one of the same contact: delivered too
        _visit(audience_id, buyer, "https://shop.example/about"),
    ]
    registry = FlowRegistry(pool, settings.effective_database_url)
    await registry.start()
    try:
        ingest = Ingest(pool, Dispatcher(pool, client, registry, task_queue=settings.task_queue))
        results = await ingest.events(batch_events)
    finally:
        await registry.close()
    assert len(results) == 4
    rows = {
        r["idempotency_key"]: r
        for r in await pool.fetch(
            "SELECT idempotency_key, dispatched_at, received_at FROM events"
            " WHERE idempotency_key = ANY($1::text[])",
            [e.idempotency_key for e in batch_events],
        )
    }
    # Every event is delivered; only the idle one was stored so (its dispatched_at is the
    # insert's own now()), the others once Temporal took them.
    assert all(r["dispatched_at"] is not None for r in rows.values())
    settled_at_insert = [
        rows[e.idempotency_key]["dispatched_at"] == rows[e.idempotency_key]["received_at"]
        for e in batch_events
    ]
    assert settled_at_insert == [True, False, False, False]
    run = client.get_workflow_handle(workflow_id(sale, buyer["id"]))
    assert (await run.describe()).id == workflow_id(sale, buyer["id"])

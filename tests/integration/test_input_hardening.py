"""Issue 11, findings 1, 2, 7, 8 and 9: bad or hostile input is refused cleanly, never a 500.

Each test is the regression test of one finding, as an attacker or a careless client met it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RetryConfig

from api.outbox import OutboxRelay
from journeys.config import Settings
from journeys.dispatch import Dispatcher
from journeys.domain.runs import workflow_id
from journeys.embedded.process import free_port
from journeys.ingest import Ingest
from journeys.store import apikeys, contacts, events
from journeys.wiring import Core
from tests.helpers import eventually, flow_body

PROBLEM = "application/problem+json"


def _problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["title"]
    return body


def _fields(problem: dict) -> list[str]:
    return [e["field"] for e in problem["errors"]]


async def _contact(app_client: httpx.AsyncClient, audience_id: str, **extra: object) -> dict:
    email = f"h-{uuid.uuid4().hex[:8]}@example.com"
    response = await app_client.post(
        f"/v1/audiences/{audience_id}/contacts", json={"email": email, **extra}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _event_count(pool: asyncpg.Pool, contact_id: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM events WHERE contact_id = $1", contact_id)


# --- finding 1: an oversized event is refused before it is stored, and cannot block the outbox


async def test_oversized_event_is_refused_before_it_is_stored(
    app_client: httpx.AsyncClient, audience_id: str, pool: asyncpg.Pool, settings: Settings
) -> None:
    contact = await _contact(app_client, audience_id)
    url = f"/v1/audiences/{audience_id}/contacts/{contact['id']}"
    before = await _event_count(pool, contact["id"])

    # The 3 MB: over the request body limit, refused before it is even parsed.
    huge = {"name": "big", "properties": {"blob": "x" * 3_000_000}}
    problem = _problem(await app_client.post(f"{url}/events", json=huge), 413)
    assert _fields(problem) == ["body"]

    # Under the body limit but over what an event may carry: the field is named.
    over = settings.max_event_data_bytes + 10
    big = {"name": "big", "properties": {"blob": "x" * over}}
    problem = _problem(await app_client.post(f"{url}/events", json=big), 413)
    assert _fields(problem) == ["properties"]
    activity = {"type": "page_visited", "data": {"url": "https://shop.example/", "x": "y" * over}}
    problem = _problem(await app_client.post(f"{url}/activity", json=activity), 413)
    assert _fields(problem) == ["data"]

    assert await _event_count(pool, contact["id"]) == before  # nothing stored

    # Just under the limit is fine.
    small = {"name": "big", "properties": {"blob": "x" * (settings.max_event_data_bytes - 100)}}
    assert (await app_client.post(f"{url}/events", json=small)).status_code == 202


async def _store(
    pool: asyncpg.Pool, audience_id: str, contact_id: str, properties: dict, *, order: int = 0
) -> str:
    """An event stored but never delivered (the process died before telling Temporal).

    `order` spaces events apart in receipt order. They are younger than the app's own relay's
    minimum age, so only the relay a test runs sees them.
    """
    stored, _ = await events.record(
        pool,
        idempotency_key=uuid.uuid4().hex,
        audience_id=audience_id,
        contact_id=contact_id,
        type="custom_event",
        data={"name": "trial_started", "properties": properties},
    )
    await pool.execute(
        "UPDATE events SET received_at = now() + $2 * interval '1 ms' WHERE id = $1::uuid",
        stored["id"],
        order,
    )
    return stored["id"]


async def _trial_flow_and_contact(
    app_client: httpx.AsyncClient, core: Core, pool: asyncpg.Pool, audience_id: str
) -> tuple[str, dict[str, Any]]:
    """An active flow on the `trial_started` custom event, known to the registry, and a contact."""
    body = flow_body(audience_id, name=f"Trial {uuid.uuid4().hex[:6]}")
    body["triggers"] = [{"type": "event_api", "event_name": "trial_started"}]
    flow_id = (await app_client.post("/v1/flows", json=body)).json()["id"]
    assert (await app_client.post(f"/v1/flows/{flow_id}/activate")).status_code == 200
    await eventually(lambda: core.registry.holds(flow_id))
    contact, _ = await contacts.upsert(
        pool, audience_id=audience_id, email=f"t-{uuid.uuid4().hex[:6]}@example.com"
    )
    return flow_id, contact


async def test_an_event_temporal_refuses_is_dead_lettered_and_does_not_block_the_relay(
    app_client: httpx.AsyncClient,
    audience_id: str,
    pool: asyncpg.Pool,
    client: Client,
    core: Core,
) -> None:
    flow_id, contact = await _trial_flow_and_contact(app_client, core, pool, audience_id)
    # Stored before this fix (or by a path without the size check): 3 MB, then a normal event
    # behind it. Temporal refuses the first (its blob limit is 2 MB).
    poison = await _store(pool, audience_id, contact["id"], {"blob": "x" * 3_000_000}, order=0)
    normal = await _store(pool, audience_id, contact["id"], {"plan": "pro"}, order=1)

    relay = OutboxRelay(core.ingest, min_age=-1)
    await relay.run_once()

    stored = await pool.fetchrow(
        "SELECT dead_lettered_at, dead_letter_reason, dispatched_at FROM events WHERE id = $1",
        uuid.UUID(poison),
    )
    assert stored["dead_lettered_at"] is not None and stored["dispatched_at"] is None
    assert "Temporal refused" in stored["dead_letter_reason"], stored["dead_letter_reason"]
    delivered = await events.by_key(
        pool, await pool.fetchval("SELECT idempotency_key FROM events WHERE id = $1::uuid", normal)
    )
    assert delivered and delivered["dispatched_at"] is not None
    handle = client.get_workflow_handle(workflow_id(flow_id, contact["id"]))
    assert (await handle.describe()).id == workflow_id(flow_id, contact["id"])
    # The entry recorded for the refused event went with it: the contact's one entry is the
    # normal event's, which started the run.
    entries = await pool.fetch(
        "SELECT event_id, run_id FROM enrollments WHERE flow_id = $1::uuid", flow_id
    )
    assert [(e["event_id"], e["run_id"] is not None) for e in entries] == [(normal, True)]

    # The next round does not try the dead letter again.
    await relay.run_once()
    attempts = await pool.fetchval(
        "SELECT dispatch_attempts FROM events WHERE id = $1::uuid", poison
    )
    assert attempts == 1
    # Handed back by an operator (docs/operations.md): tried once more, set aside again.
    await pool.execute("UPDATE events SET dead_lettered_at = NULL WHERE id = $1::uuid", poison)
    await relay.run_once()
    row = await pool.fetchrow(
        "SELECT dispatch_attempts, dead_lettered_at FROM events WHERE id = $1::uuid", poison
    )
    assert row["dispatch_attempts"] == 2 and row["dead_lettered_at"] is not None

    # Operators see it: the admin endpoint with its reason, and the gauge in /metrics.
    listing = (await app_client.get("/v1/admin/dead-letters")).json()
    mine = [d for d in listing["dead_letters"] if d["id"] == poison]
    assert mine and "Temporal refused" in mine[0]["reason"] and mine[0]["data_bytes"] > 3_000_000
    assert listing["total"] >= 1

    async def gauge() -> float:
        text = (await app_client.get("/metrics")).text
        line = next(
            (ln for ln in text.splitlines() if ln.startswith("journeys_outbox_dead_letters ")), ""
        )
        return float(line.split()[1]) if line else 0.0

    assert await eventually(gauge, timeout=20) >= 1


async def test_a_transient_failure_backs_off_that_event_only(
    app_client: httpx.AsyncClient, audience_id: str, pool: asyncpg.Pool, core: Core
) -> None:
    _, contact = await _trial_flow_and_contact(app_client, core, pool, audience_id)
    event_id = await _store(pool, audience_id, contact["id"], {"k": "v"})
    # A Temporal frontend that is down: a loopback port nobody listens on.
    down = await Client.connect(
        f"127.0.0.1:{free_port()}",
        lazy=True,
        retry_config=RetryConfig(max_retries=0),
        data_converter=pydantic_data_converter,
    )
    dispatcher = Dispatcher(pool, down, core.registry, task_queue=core.settings.task_queue)
    relay = OutboxRelay(Ingest(pool, dispatcher), min_age=-1, max_attempts=2)
    await relay.run_once()
    row = await pool.fetchrow(
        "SELECT dispatch_attempts, next_attempt_at > now() AS later, last_error,"
        " dead_lettered_at FROM events WHERE id = $1::uuid",
        event_id,
    )
    assert row["dispatch_attempts"] == 1 and row["later"] and row["dead_lettered_at"] is None
    assert row["last_error"]
    # Backing off: the next round leaves it alone.
    await relay.run_once()
    attempts = "SELECT dispatch_attempts FROM events WHERE id = $1::uuid"
    assert await pool.fetchval(attempts, event_id) == 1
    # Due again and failing again: the bound is reached, it is dead-lettered, not retried forever.
    await pool.execute("UPDATE events SET next_attempt_at = now() WHERE id = $1::uuid", event_id)
    await relay.run_once()
    reason = await pool.fetchval(
        "SELECT dead_letter_reason FROM events WHERE id = $1::uuid", event_id
    )
    assert reason and "gave up after 2" in reason


# --- finding 2: bad input gets a 422 naming the field, never a 500


@pytest.mark.parametrize(
    "query",
    ["offset=9223372036854775808", "offset=-1", "limit=0", "limit=100000", "offset=1e3"],
)
async def test_page_parameters_are_bounded(app_client: httpx.AsyncClient, query: str) -> None:
    for path in ("/v1/flows", "/v1/admin/dead-letters"):
        problem = _problem(await app_client.get(f"{path}?{query}"), 422)
        assert _fields(problem) == [f"query.{query.split('=')[0]}"]
    # A single-valued parameter given twice is refused, not silently half-read.
    problem = _problem(await app_client.get("/v1/flows?limit=1&limit=2"), 422)
    assert _fields(problem) == ["query.limit"]


@pytest.mark.parametrize("duration", ["999999999w", "99999999999999999999d", "P999999999W"])
async def test_absurd_durations_are_refused_everywhere(
    app_client: httpx.AsyncClient, audience_id: str, duration: str
) -> None:
    problem = _problem(
        await app_client.post("/v1/flows", json=flow_body(audience_id, delay=duration)), 422
    )
    assert _fields(problem) == ["steps[1].duration"]
    reentry = flow_body(
        audience_id, settings={"reentry": {"allowed": True, "min_interval": duration}}
    )
    problem = _problem(await app_client.post("/v1/flows", json=reentry), 422)
    assert _fields(problem) == ["settings.reentry.min_interval"]

    report = await app_client.post(
        "/v1/flows/validate", json=flow_body(audience_id, delay=duration)
    )
    assert report.status_code == 200 and report.json()["valid"] is False
    assert [v["path"] for v in report.json()["violations"]] == ["steps[1].duration"]

    flow_id = (await app_client.post("/v1/flows", json=flow_body(audience_id))).json()["id"]
    problem = _problem(
        await app_client.put(f"/v1/flows/{flow_id}", json=flow_body(audience_id, delay=duration)),
        422,
    )
    assert _fields(problem) == ["steps[1].duration"]
    # Ten years is the longest wait a flow may write.
    ok = await app_client.post("/v1/flows/validate", json=flow_body(audience_id, delay="3650d"))
    assert ok.json()["valid"] is True


async def test_nul_and_control_characters_are_refused_naming_the_field(
    app_client: httpx.AsyncClient, audience_id: str, pool: asyncpg.Pool
) -> None:
    contacts_url = f"/v1/audiences/{audience_id}/contacts"
    email = f"nul-{uuid.uuid4().hex[:6]}@example.com"
    cases: list[tuple[str, dict, str]] = [
        ("/v1/audiences", {"name": "Shop\x00"}, "name"),
        (contacts_url, {"email": email, "first_name": "Ann\x00"}, "first_name"),
        (contacts_url, {"email": email, "first_name": "Ann\r\nBcc: x"}, "first_name"),
        (contacts_url, {"email": email, "last_name": "Lee\u2028"}, "last_name"),
        (contacts_url, {"email": email, "fields": {"a": {"b": ["ok", "\x00"]}}}, "fields.a.b[1]"),
        ("/v1/flows", {**flow_body(audience_id), "name": "Welcome\x00"}, "name"),
    ]
    for url, body, field in cases:
        problem = _problem(await app_client.post(url, json=body), 422)
        assert field in _fields(problem), (field, problem)
    assert await contacts.resolve(pool, audience_id, email) is None  # nothing half-written

    contact = await _contact(app_client, audience_id)
    url = f"{contacts_url}/{contact['id']}"
    problem = _problem(await app_client.post(f"{url}/tags", json={"tags": ["vip\x00"]}), 422)
    assert _fields(problem) == ["tags[0]"]
    problem = _problem(await app_client.post(f"{url}/tags", json={"tags": ["v\x07ip"]}), 422)
    assert _fields(problem) == ["tags[0]"]
    problem = _problem(
        await app_client.post(
            f"{url}/events", json={"name": "n1", "properties": {"deep": [{"x": "a\x00b"}]}}
        ),
        422,
    )
    assert _fields(problem) == ["properties.deep[0].x"]
    problem = _problem(
        await app_client.post(f"{url}/events", json={"name": "n1", "properties": {"x": "\x1b["}}),
        422,
    )
    assert _fields(problem) == ["properties"]
    assert problem["errors"][0]["message"].startswith("x: control character U+001B")
    # NUL in the path or the query string.
    problem = _problem(await app_client.get(f"{contacts_url}/a%00b"), 422)
    assert _fields(problem) == ["path"]
    problem = _problem(await app_client.get("/v1/flows?status=%00"), 422)
    assert _fields(problem) == ["query.status"]
    # Free text may hold line breaks and tabs.
    fine = {"name": "n1", "properties": {"note": "line one\nline two\tend"}}
    assert (await app_client.post(f"{url}/events", json=fine)).status_code == 202


async def test_ids_in_every_spelling_are_404_or_422_never_500(
    app_client: httpx.AsyncClient, audience_id: str
) -> None:
    contact = await _contact(app_client, audience_id)
    flow_id = (await app_client.post("/v1/flows", json=flow_body(audience_id))).json()["id"]
    spellings = [
        "{" + contact["id"] + "}",
        f"urn:uuid:{contact['id']}",
        contact["id"].replace("-", ""),
        contact["id"].upper() + "0",
        "garbage",
        "' OR 1=1 --",
        "%7B%7D",
    ]
    for spelling in spellings:
        for path in (
            f"/v1/audiences/{spelling}",
            f"/v1/audiences/{spelling}/contacts/{contact['id']}",
            f"/v1/audiences/{audience_id}/contacts/{spelling}",
            f"/v1/flows/{spelling}",
            f"/v1/flows/{spelling}/versions",
            f"/v1/flows/{spelling}/runs",
            f"/v1/campaigns/{spelling}",
        ):
            response = await app_client.get(path)
            assert response.status_code in (404, 422), (path, response.status_code)
            assert response.headers["content-type"] == PROBLEM
        for path, body in (
            (f"/v1/audiences/{audience_id}/contacts/{spelling}/tags", {"tags": ["x"]}),
            (f"/v1/flows/{flow_id}/contacts", {"contacts": [spelling]}),
            ("/v1/flows/validate?flow_id=" + spelling, flow_body(audience_id)),
            ("/v1/campaigns", {"audience_id": spelling, "name": "c", "subject": "s"}),
            ("/v1/flows", flow_body(spelling)),
        ):
            response = await app_client.post(path, json=body)
            assert response.status_code < 500, (path, response.status_code, response.text)
        for action in ("activate", "pause", "resume", "archive", "contacts", "trigger"):
            body = {"contacts": ["x@example.com"], "email_address": "x@example.com"}
            response = await app_client.post(f"/v1/flows/{spelling}/{action}", json=body)
            assert response.status_code in (404, 422), (action, response.status_code)
        for method, path in (
            ("PUT", f"/v1/flows/{spelling}"),
            ("DELETE", f"/v1/flows/{spelling}"),
            ("DELETE", f"/v1/audiences/{audience_id}/contacts/{spelling}/tags/vip"),
            ("DELETE", f"/v1/audiences/{audience_id}/contacts/{spelling}/groups/g"),
        ):
            response = await app_client.request(method, path, json=flow_body(audience_id))
            assert response.status_code in (404, 422), (method, path, response.status_code)


# --- finding 7: one address is one mailbox


@pytest.mark.parametrize(
    "email",
    [
        "x,victim@evil.example",
        "a@b.example, victim@evil.example",
        "a@b.example\r\nBcc: victim@evil.example",
        '"x,victim@evil.example"@b.example',
        "Ann <a@b.example>",
        "a@b.example;victim@evil.example",
        "a@localhost",
    ],
)
async def test_an_address_that_is_not_one_mailbox_is_refused(
    app_client: httpx.AsyncClient, audience_id: str, email: str
) -> None:
    response = await app_client.post(f"/v1/audiences/{audience_id}/contacts", json={"email": email})
    assert _fields(_problem(response, 422)) == ["email"]


# --- finding 8: bodies and fields have size limits


async def test_request_bodies_over_the_limit_are_refused_unread(
    app_client: httpx.AsyncClient, audience_id: str, settings: Settings, pool: asyncpg.Pool
) -> None:
    url = f"/v1/audiences/{audience_id}/contacts"
    email = f"big-{uuid.uuid4().hex[:6]}@example.com"
    body = json.dumps({"email": email, "fields": {"x": "y" * settings.max_request_body_bytes}})
    problem = _problem(
        await app_client.post(url, content=body, headers={"content-type": "application/json"}), 413
    )
    assert _fields(problem) == ["body"]

    # Streamed without a length (or with a lying one): refused once the cap is passed.
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536].encode()

    problem = _problem(
        await app_client.post(url, content=chunks(), headers={"content-type": "application/json"}),
        413,
    )
    assert _fields(problem) == ["body"]
    assert await contacts.resolve(pool, audience_id, email) is None


async def test_contact_fields_over_their_limit_are_refused(
    app_client: httpx.AsyncClient, audience_id: str, settings: Settings, pool: asyncpg.Pool
) -> None:
    email = f"fields-{uuid.uuid4().hex[:6]}@example.com"
    body = {"email": email, "fields": {"bio": "z" * (settings.max_contact_fields_bytes + 1)}}
    response = await app_client.post(f"/v1/audiences/{audience_id}/contacts", json=body)
    assert _fields(_problem(response, 413)) == ["fields"]
    assert await contacts.resolve(pool, audience_id, email) is None


# --- finding 9: a revoked key stops working in every process at once


async def test_a_revoked_key_is_refused_at_once_even_when_cached(
    app_client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    key = await apikeys.create(pool, f"cached-{uuid.uuid4().hex[:6]}")
    headers = {"Authorization": f"Bearer {key}"}
    assert (await app_client.get("/v1/flows?limit=1", headers=headers)).status_code == 200
    # Now cached: the next request asks no database. Revoke it from elsewhere (the CLI's query).
    key_id = await pool.fetchval("SELECT id::text FROM api_keys WHERE prefix = $1", key[:8])
    assert await apikeys.revoke(pool, [key_id]) == 1

    async def refused() -> bool:
        return (await app_client.get("/v1/flows?limit=1", headers=headers)).status_code == 401

    await eventually(refused, timeout=1.0, interval=0.05)


# --- OpenAPI is the truth


async def test_openapi_documents_every_error_as_problem_json(app_client: httpx.AsyncClient) -> None:
    document = (await app_client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            label = f"{method.upper()} {path}"
            assert {"413", "422"} <= responses.keys(), label
            # Every /v1 route needs a key, but the schema and the opt-in link (a signed token).
            if path.startswith("/v1/") and path not in ("/v1/flows/schema", "/v1/optin/confirm"):
                assert "401" in responses, label
            if "{" in path:
                assert "404" in responses, label
            for code, response in responses.items():
                if code[0] in "45":
                    assert list(response["content"]) == [PROBLEM], (label, code)
                    ref = response["content"][PROBLEM]["schema"]["$ref"]
                    assert ref.rsplit("/", 1)[1] in ("Problem", "NotReady"), (label, code)
    # And the app answers as documented: a 401 without a key is problem+json.
    response = await app_client.get("/v1/flows", headers={"Authorization": ""})
    _problem(response, 401)

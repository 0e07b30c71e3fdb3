"""Regression tests for issue 11, findings 3 (SSRF), 4 (poison sends) and 5 (runaway templates).

Real API, real worker, real Postgres, Temporal and SMTP catcher. Webhook listeners are on
loopback only; names resolve from the test hosts table (`tests.helpers.HostsResolver`), and
the session settings allow 127.0.0.1 only, so 127.0.0.2 stands for "an internal host".
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import asyncpg
import httpx
import pytest
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from journeys.config import Settings
from journeys.domain import search
from journeys.domain.flow import FlowDefinition
from journeys.domain.runs import (
    EVENT_SIGNAL,
    WORKFLOW_NAME,
    ContactFlowInput,
    FlowEvent,
    Phase,
    RunResult,
    workflow_id,
)
from journeys.embedded.mailcatcher import MailCatcher
from journeys.embedded.process import free_port
from journeys.store import messages
from tests.helpers import HostsResolver, eventually

PUBLIC = "93.184.215.14"  # only ever a resolver answer at validation: nothing connects to it
RUN_DEADLINE = 60.0  # a run that retries a poison send forever would never end: fail instead
NESTED_LOOPS = "{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}"


class _Listener(BaseHTTPRequestHandler):
    """Records (listening address, headers, body); `/redirect?to=URL` answers 302 to URL."""

    received: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append((self.server.server_address[0], dict(self.headers), body))  # type: ignore[index]
        path, _, target = self.path.partition("?to=")
        self.send_response(302 if path == "/redirect" else 204)
        if path == "/redirect":
            self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _serve(host: str) -> Iterator[int]:
    server = HTTPServer((host, free_port()), _Listener)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    server.server_close()


@pytest.fixture
def allowed_port() -> Iterator[int]:
    """A listener on 127.0.0.1, the one internal address the test settings allow."""
    yield from _serve("127.0.0.1")


@pytest.fixture
def internal_port() -> Iterator[int]:
    """A listener on 127.0.0.2: internal, not allowed, so it must never hear from a flow."""
    yield from _serve("127.0.0.2")


def _flow(audience_id: str, steps: list[dict[str, Any]], tag: str = "go") -> dict[str, Any]:
    return {
        "name": f"Sandbox {uuid.uuid4().hex[:8]}",
        "audience_id": audience_id,
        "triggers": [{"type": "tag_added", "tag": tag}],
        "steps": steps,
    }


def _email(step_id: str, subject: str, **extra: str) -> dict[str, Any]:
    return {"id": step_id, "type": "send_email", "subject": subject, "text": "Hello", **extra}


def _hook(step_id: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "webhook", "url": url, **extra}


async def _contact(http: httpx.AsyncClient, audience_id: str) -> dict[str, Any]:
    email = f"sandbox-{uuid.uuid4().hex[:8]}@example.com"
    response = await http.post(
        f"/v1/audiences/{audience_id}/contacts", json={"email": email, "first_name": "Ann"}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _active_flow(http: httpx.AsyncClient, body: dict[str, Any]) -> str:
    created = await http.post("/v1/flows", json=body)
    assert created.status_code == 201, created.text
    flow_id = created.json()["id"]
    assert (await http.post(f"/v1/flows/{flow_id}/activate")).status_code == 200
    return flow_id


async def _tag(
    http: httpx.AsyncClient, client: Client, audience_id: str, flow_id: str, contact_id: str
) -> RunResult:
    response = await http.post(
        f"/v1/audiences/{audience_id}/contacts/{contact_id}/tags", json={"tags": ["go"]}
    )
    assert response.json()["enrolments"][0]["outcome"] == "started", response.text
    handle = client.get_workflow_handle(workflow_id(flow_id, contact_id), result_type=RunResult)
    return await asyncio.wait_for(handle.result(), RUN_DEADLINE)


# --- Finding 3: SSRF -----------------------------------------------------------------------


async def test_internal_webhook_targets_are_refused_at_save_with_their_path(
    app_client: httpx.AsyncClient, audience_id: str, hosts: HostsResolver, internal_port: int
) -> None:
    hosts.table["intranet.sandbox.test"] = ["10.20.30.40"]
    urls = [
        f"http://127.0.0.2:{internal_port}/hook",
        f"http://2130706434:{internal_port}/hook",  # 127.0.0.2 in decimal
        f"http://0177.0.0.2:{internal_port}/hook",
        f"http://0x7f.2:{internal_port}/hook",
        f"http://127.2:{internal_port}/hook",
        "http://[::1]:8233/",
        "http://[::ffff:127.0.0.2]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.1.1/hook",
        "http://[fd00::1]/hook",
        "http://intranet.sandbox.test/hook",
    ]
    body = _flow(audience_id, [_hook(f"h{i}", url) for i, url in enumerate(urls)])
    response = await app_client.post("/v1/flows", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    errors = {e["field"]: e for e in response.json()["errors"]}
    assert set(errors) == {f"steps[{i}].url" for i in range(len(urls))}
    assert {e["code"] for e in errors.values()} == {"webhook_target"}
    assert "10.20.30.40, a private address" in errors[f"steps[{len(urls) - 1}].url"]["message"]
    report = (await app_client.post("/v1/flows/validate", json=body)).json()
    assert {v["path"] for v in report["violations"]} == set(errors)


async def test_a_name_rebound_to_an_internal_address_is_refused_at_connect_time(
    app_client: httpx.AsyncClient,
    audience_id: str,
    client: Client,
    hosts: HostsResolver,
    mail: MailCatcher,
    internal_port: int,
    worker: object,
) -> None:
    name = f"rebind-{uuid.uuid4().hex[:8]}.sandbox.test"
    hosts.table[name] = [PUBLIC]  # what validation sees
    flow_id = await _active_flow(
        app_client,
        _flow(
            audience_id,
            [_hook("hook", f"http://{name}:{internal_port}/hook"), _email("after", "After")],
        ),
    )
    hosts.table[name] = ["127.0.0.2"]  # what the worker's connection would see
    contact = await _contact(app_client, audience_id)
    before = len(_Listener.received)
    result = await _tag(app_client, client, audience_id, flow_id, contact["id"])
    assert result.phase == Phase.COMPLETED
    await eventually(lambda: mail.to(contact["email"]))  # the journey went on
    assert [h for h, *_ in _Listener.received[before:] if h == "127.0.0.2"] == []


@pytest.mark.parametrize("body_format", ["json", "form"])
async def test_an_allowlisted_internal_host_is_reached_under_its_own_name(
    app_client: httpx.AsyncClient,
    audience_id: str,
    client: Client,
    hosts: HostsResolver,
    allowed_port: int,
    worker: object,
    body_format: str,
) -> None:
    name = f"crm-{uuid.uuid4().hex[:8]}.sandbox.test"
    hosts.table[name] = ["127.0.0.1"]
    hook = _hook(
        "hook",
        f"http://{name}:{allowed_port}/in",
        format=body_format,
        body={"email": "{{ contact.email }}"},
    )
    flow_id = await _active_flow(app_client, _flow(audience_id, [hook]))
    contact = await _contact(app_client, audience_id)
    await _tag(app_client, client, audience_id, flow_id, contact["id"])
    hits = [(h, b) for _, h, b in _Listener.received if h.get("Host", "").startswith(name)]
    [(headers, body)] = hits
    assert headers["Host"] == f"{name}:{allowed_port}"
    if body_format == "form":
        assert headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert body == str(httpx.QueryParams({"email": contact["email"]})).encode()
    else:
        assert json.loads(body) == {"email": contact["email"]}


async def test_a_redirect_is_not_followed(
    app_client: httpx.AsyncClient,
    audience_id: str,
    client: Client,
    mail: MailCatcher,
    allowed_port: int,
    internal_port: int,
    worker: object,
) -> None:
    target = f"http://127.0.0.2:{internal_port}/hook"
    hook = _hook("hook", f"http://127.0.0.1:{allowed_port}/redirect?to={target}")
    flow_id = await _active_flow(app_client, _flow(audience_id, [hook, _email("after", "After")]))
    contact = await _contact(app_client, audience_id)
    before = len(_Listener.received)
    result = await _tag(app_client, client, audience_id, flow_id, contact["id"])
    assert result.phase == Phase.COMPLETED
    await eventually(lambda: mail.to(contact["email"]))
    hosts_hit = [h for h, *_ in _Listener.received[before:]]
    assert hosts_hit.count("127.0.0.1") == 1  # asked once: a redirect is final, not retried
    assert "127.0.0.2" not in hosts_hit


# --- Finding 5: templates refused at save -------------------------------------------------


async def test_templates_that_cannot_render_are_refused_at_save_naming_the_field(
    app_client: httpx.AsyncClient, audience_id: str, allowed_port: int
) -> None:
    body = _flow(
        audience_id,
        [
            _email("mro", "{{ ''.__class__.__mro__ }}"),
            _email("loops", "Hi", html=NESTED_LOOPS),
            {"id": "sms", "type": "send_sms", "body": "{{ 'x' * 100000000 }}"},
            _hook(
                "hook",
                f"http://127.0.0.1:{allowed_port}/in",
                headers={"X-Big": "{{ 'x'|center(1000000000) }}"},
                body={"name": "{% if true %}{{ contact.first_name|nofilter }}{% endif %}"},
            ),
            {"id": "set", "type": "update_field", "field": "x", "value": "{{ contact.__class__ }}"},
        ],
    )
    response = await app_client.post("/v1/flows", json=body)
    assert response.status_code == 422, response.text
    errors = {e["field"]: e["message"] for e in response.json()["errors"]}
    assert set(errors) == {
        "steps[0].subject",
        "steps[1].html",
        "steps[2].body",
        "steps[3].headers.X-Big",
        "steps[3].body.name",
        "steps[4].value",
    }
    assert "unsafe" in errors["steps[0].subject"]
    assert "loops ran more than" in errors["steps[1].html"]
    assert "No filter named 'nofilter'" in errors["steps[3].body.name"]


# --- Finding 4 (and 5 at send time): poison sends -----------------------------------------


async def _start_unchecked(
    client: Client,
    settings: Settings,
    pool: asyncpg.Pool,
    flow_id: str,
    contact: dict[str, Any],
    body: dict,
) -> RunResult:
    """Starts a run on a definition that never went through validation (as stored before it
    existed), the way the dispatcher starts runs: stored as the flow's version 1, which the
    send activities read their templates from."""
    definition = FlowDefinition.model_validate(body)
    await pool.execute(
        "UPDATE flow_versions SET definition = $2 WHERE flow_id = $1::uuid AND version = 1",
        flow_id,
        definition.authored(),
    )
    handle = await client.start_workflow(
        WORKFLOW_NAME,
        ContactFlowInput(
            flow_id=flow_id,
            version=1,
            definition=definition,
            contact_id=contact["id"],
            audience_id=definition.audience_id,
            trigger_type="tag_added",
        ),
        id=workflow_id(flow_id, contact["id"]),
        task_queue=settings.task_queue,
        start_signal=EVENT_SIGNAL,
        start_signal_args=[
            FlowEvent(id=str(uuid.uuid4()), type="tag_added", occurred_at=datetime.now(UTC))
        ],
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(search.FLOW_ID, flow_id),
                SearchAttributePair(search.CONTACT_ID, contact["id"]),
                SearchAttributePair(search.AUDIENCE_ID, definition.audience_id),
                SearchAttributePair(search.TRIGGER_TYPE, "tag_added"),
                SearchAttributePair(search.JOURNEY_PHASE, Phase.ENTERING.value),
            ]
        ),
        result_type=RunResult,
    )
    return await asyncio.wait_for(handle.result(), RUN_DEADLINE)


async def test_templates_refused_at_send_time_fail_their_step_and_the_journey_goes_on(
    app_client: httpx.AsyncClient,
    audience_id: str,
    client: Client,
    settings: Settings,
    pool: asyncpg.Pool,
    mail: MailCatcher,
    worker: object,
) -> None:
    steps = [
        _email("mro", "M"),
        _email("loops", "L"),
        _email("next", "Next {{ contact.first_name }}"),
    ]
    body = _flow(audience_id, steps)
    flow_id = await _active_flow(app_client, body)
    body["steps"][0]["subject"] = "{{ ''.__class__.__mro__ }}"
    body["steps"][1]["html"] = NESTED_LOOPS
    contact = await _contact(app_client, audience_id)

    result = await _start_unchecked(client, settings, pool, flow_id, contact, body)

    assert result.phase == Phase.COMPLETED and "next" in result.steps_done
    [sent] = await eventually(lambda: mail.to(contact["email"]))
    assert sent.subject == "Next Ann"
    records = {m["step_id"]: m for m in await messages.for_contact(pool, contact["id"])}
    assert records["mro"]["status"] == "failed" and "unsafe" in records["mro"]["error"]
    assert records["loops"]["status"] == "failed"
    assert "html: loops ran more than" in records["loops"]["error"]
    assert records["next"]["status"] == "sent"


async def test_line_breaks_in_contact_data_never_reach_a_header(
    app_client: httpx.AsyncClient,
    audience_id: str,
    client: Client,
    pool: asyncpg.Pool,
    mail: MailCatcher,
    worker: object,
) -> None:
    flow_id = await _active_flow(
        app_client, _flow(audience_id, [_email("hi", "Hi {{ contact.first_name }}!")])
    )
    contact = await _contact(app_client, audience_id)
    victim = f"victim-{uuid.uuid4().hex[:8]}@evil.example"
    # Stored as an import or an older API version could have stored it.
    await pool.execute(
        "UPDATE contacts SET first_name = $1 WHERE id = $2::uuid",
        f"Ann\r\nBcc: {victim}\u2028X",
        contact["id"],
    )
    result = await _tag(app_client, client, audience_id, flow_id, contact["id"])
    assert result.phase == Phase.COMPLETED
    [sent] = await eventually(lambda: mail.to(contact["email"]))
    assert sent.subject == f"Hi Ann Bcc: {victim} X!"
    assert sent.message["Bcc"] is None and mail.to(victim) == []
    [record] = await messages.for_contact(pool, contact["id"])
    assert record["status"] == "sent"


async def test_an_invalid_recipient_is_recorded_failed_not_retried(
    app_client: httpx.AsyncClient,
    audience_id: str,
    client: Client,
    pool: asyncpg.Pool,
    mail: MailCatcher,
    worker: object,
) -> None:
    flow_id = await _active_flow(
        app_client,
        _flow(audience_id, [_email("hi", "Hi"), {"id": "t", "type": "add_tag", "tag": "after"}]),
    )
    contact = await _contact(app_client, audience_id)
    victim = f"victim-{uuid.uuid4().hex[:8]}@evil.example"
    await pool.execute(
        "UPDATE contacts SET email = $1 WHERE id = $2::uuid", f"x,{victim}", contact["id"]
    )
    result = await _tag(app_client, client, audience_id, flow_id, contact["id"])
    assert result.phase == Phase.COMPLETED and "t" in result.steps_done
    [record] = await messages.for_contact(pool, contact["id"])
    assert record["status"] == "failed" and "invalid recipient" in record["error"]
    assert mail.to(victim) == []

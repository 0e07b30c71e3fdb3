"""Every kind of step, run by the real worker against Postgres, SMTP, an SMS outbox and HTTP."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import httpx
import pytest
from temporalio.client import Client

from activities.webhooks import SIGNATURE_HEADER, verify
from journeys.channels.sms import OutboxSmsProvider
from journeys.config import Settings
from journeys.domain.runs import Phase, RunResult, workflow_id
from journeys.embedded.mailcatcher import MailCatcher
from journeys.embedded.process import free_port
from tests.helpers import eventually


async def _contact(http: httpx.AsyncClient, audience_id: str, **fields: Any) -> dict:
    email = f"step-{uuid.uuid4().hex[:8]}@example.com"
    response = await http.post(
        f"/v1/audiences/{audience_id}/contacts", json={"email": email, **fields}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _flow(
    http: httpx.AsyncClient, audience_id: str, tag: str, steps: list, **extra: Any
) -> str:
    body = {
        "name": f"Flow {tag}",
        "audience_id": audience_id,
        "triggers": [{"type": "tag_added", "tag": tag}],
        "steps": steps,
        **extra,
    }
    created = await http.post("/v1/flows", json=body)
    assert created.status_code == 201, created.text
    activated = await http.post(f"/v1/flows/{created.json()['id']}/activate")
    assert activated.status_code == 200, activated.text
    return created.json()["id"]


async def _run(
    http: httpx.AsyncClient, client: Client, audience_id: str, flow_id: str, contact: dict, tag: str
) -> RunResult:
    response = await http.post(
        f"/v1/audiences/{audience_id}/contacts/{contact['id']}/tags", json={"tags": [tag]}
    )
    assert response.json()["enrolments"][0]["outcome"] == "started", response.text
    handle = client.get_workflow_handle(workflow_id(flow_id, contact["id"]), result_type=RunResult)
    return await handle.result()


def _email(step_id: str, subject: str) -> dict:
    return {"id": step_id, "type": "send_email", "subject": subject, "text": subject}


async def test_contact_steps_branch_and_chain_into_another_flow(
    app_client: httpx.AsyncClient,
    audience_id: str,
    mail: MailCatcher,
    client: Client,
    worker: object,
) -> None:
    await _flow(
        app_client, audience_id, "chained", [_email("b", "B hello {{ contact.fields.plan }}")]
    )
    flow_a = await _flow(
        app_client,
        audience_id,
        "start",
        [
            {"id": "plan", "type": "update_field", "field": "plan", "value": "pro"},
            {
                "id": "name",
                "type": "update_field",
                "field": "first_name",
                "value": "{{ contact.first_name }}-x",
            },
            {
                "id": "check",
                "type": "if_else",
                "conditions": {
                    "match": "all",
                    "conditions": [{"type": "field", "field": "plan", "op": "eq", "value": "PRO"}],
                },
                "yes": [
                    {"id": "tag", "type": "add_tag", "tag": "chained"},
                    {"id": "grp", "type": "add_to_group", "group": "Members"},
                ],
                "no": [_email("no", "wrong branch")],
            },
            {"id": "untag", "type": "remove_tag", "tag": "start"},
            _email("a", "A done {{ contact.fields.plan }}"),
        ],
    )
    contact = await _contact(app_client, audience_id, first_name="Ann")
    result = await _run(app_client, client, audience_id, flow_a, contact, "start")
    # In the order they were entered: the branch step before the steps inside it.
    assert result.steps_done == ["plan", "name", "check", "tag", "grp", "untag", "a"]

    subjects = await eventually(
        lambda: (
            sorted(m.subject for m in mail.to(contact["email"]))
            if len(mail.to(contact["email"])) == 2
            else None
        )
    )
    assert subjects == ["A done pro", "B hello pro"]
    stored = (await app_client.get(f"/v1/audiences/{audience_id}/contacts/{contact['id']}")).json()
    assert stored["fields"]["plan"] == "pro" and stored["first_name"] == "Ann-x"
    assert stored["tags"] == ["chained"]


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", free_port()), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()


async def test_webhook_step_sends_signed_rendered_body(
    app_client: httpx.AsyncClient,
    audience_id: str,
    client: Client,
    settings: Settings,
    hook_server: str,
    worker: object,
) -> None:
    flow_id = await _flow(
        app_client,
        audience_id,
        "hook",
        [
            {
                "id": "crm",
                "type": "webhook",
                "url": hook_server,
                "method": "PUT",
                "headers": {"X-Source": "flow {{ flow.name }}"},
                "body": {"email": "{{ contact.email }}", "stage": "lead"},
            }
        ],
    )
    contact = await _contact(app_client, audience_id)
    _Hook.received.clear()
    await _run(app_client, client, audience_id, flow_id, contact, "hook")
    [(headers, body)] = _Hook.received
    assert json.loads(body) == {"email": contact["email"], "stage": "lead"}
    assert headers["X-Source"] == "flow Flow hook"
    assert headers["Idempotency-Key"].startswith(workflow_id(flow_id, contact["id"]))
    assert verify(settings.webhook_signing_key(), headers[SIGNATURE_HEADER], body)
    assert not verify(b"another key", headers[SIGNATURE_HEADER], body)


async def test_sms_step_texts_consenting_contacts_only(
    app_client: httpx.AsyncClient,
    audience_id: str,
    client: Client,
    settings: Settings,
    worker: object,
) -> None:
    flow_id = await _flow(
        app_client,
        audience_id,
        "text",
        [{"id": "t", "type": "send_sms", "body": "Hi {{ contact.first_name }}!"}],
    )
    yes = await _contact(
        app_client, audience_id, first_name="Sam", phone="+12025550101", sms_status="subscribed"
    )
    no = await _contact(app_client, audience_id, first_name="Noe", phone="+12025550102")
    await _run(app_client, client, audience_id, flow_id, yes, "text")
    await _run(app_client, client, audience_id, flow_id, no, "text")
    sent = [
        m
        for m in OutboxSmsProvider(settings.home / "sms").messages()
        if m["to"] in ("+12025550101", "+12025550102")
    ]
    assert [(m["to"], m["body"]) for m in sent] == [("+12025550101", "Hi Sam!")]


async def test_wait_for_trigger_takes_the_matched_or_the_timeout_branch(
    app_client: httpx.AsyncClient,
    audience_id: str,
    mail: MailCatcher,
    client: Client,
    worker: object,
) -> None:
    def waiting_for_trial(timeout: str) -> list[dict]:
        return [
            {
                "id": "wait",
                "type": "wait_for_trigger",
                "timeout": timeout,
                "conditions": {
                    "conditions": [{"type": "event", "name": "trial_started", "within_days": 1}]
                },
                "matched": [_email("yes", "Enjoy your trial")],
                "timed_out": [_email("no", "Start your trial?")],
            }
        ]

    # The contact who starts a trial has an hour to do it, so no timer races the event; the
    # idle one hears nothing, so its short timeout races nothing.
    keen_flow = await _flow(app_client, audience_id, "trial", waiting_for_trial("1h"))
    idle_flow = await _flow(app_client, audience_id, "trial-idle", waiting_for_trial("2s"))
    keen, idle = await _contact(app_client, audience_id), await _contact(app_client, audience_id)
    await app_client.post(
        f"/v1/audiences/{audience_id}/contacts/{keen['id']}/tags", json={"tags": ["trial"]}
    )
    await app_client.post(
        f"/v1/audiences/{audience_id}/contacts/{idle['id']}/tags", json={"tags": ["trial-idle"]}
    )

    async def waiting() -> bool:
        runs = (await app_client.get(f"/v1/flows/{keen_flow}/runs")).json()["runs"]
        return len(runs) == 1 and runs[0]["phase"] == "waiting"

    await eventually(waiting)
    posted = await app_client.post(
        f"/v1/audiences/{audience_id}/contacts/{keen['email']}/events",
        json={"name": "trial_started"},
    )
    assert posted.status_code == 202, posted.text
    await client.get_workflow_handle(workflow_id(keen_flow, keen["id"])).result()
    await client.get_workflow_handle(workflow_id(idle_flow, idle["id"])).result()
    assert [m.subject for m in mail.to(keen["email"])] == ["Enjoy your trial"]
    assert [m.subject for m in mail.to(idle["email"])] == ["Start your trial?"]


async def test_exit_goal_removes_a_waiting_contact(
    app_client: httpx.AsyncClient,
    audience_id: str,
    mail: MailCatcher,
    client: Client,
    worker: object,
) -> None:
    flow_id = await _flow(
        app_client,
        audience_id,
        "nurture",
        [
            _email("one", "One"),
            {"id": "wait", "type": "delay", "duration": "1h"},
            _email("two", "Two"),
        ],
        settings={"exit_when": [{"type": "tag_added", "tag": "customer"}]},
    )
    contact = await _contact(app_client, audience_id)
    await app_client.post(
        f"/v1/audiences/{audience_id}/contacts/{contact['id']}/tags", json={"tags": ["nurture"]}
    )
    await eventually(lambda: mail.to(contact["email"]))
    await app_client.post(
        f"/v1/audiences/{audience_id}/contacts/{contact['id']}/tags", json={"tags": ["customer"]}
    )
    result = await client.get_workflow_handle(
        workflow_id(flow_id, contact["id"]), result_type=RunResult
    ).result()
    assert (result.phase, result.reason) == (Phase.EXITED, "reached the exit goal `tag_added`")
    assert [m.subject for m in mail.to(contact["email"])] == ["One"]


async def test_starting_filter_keeps_others_out(
    app_client: httpx.AsyncClient, audience_id: str, client: Client, worker: object
) -> None:
    flow_id = await _flow(
        app_client,
        audience_id,
        "vipflow",
        [_email("hi", "Hi")],
        settings={
            "starting_filter": {
                "conditions": [{"type": "field", "field": "tier", "op": "eq", "value": "gold"}]
            }
        },
    )
    gold = await _contact(app_client, audience_id, fields={"tier": "gold"})
    plain = await _contact(app_client, audience_id)
    assert (
        await _run(app_client, client, audience_id, flow_id, gold, "vipflow")
    ).phase == Phase.COMPLETED
    skipped = await _run(app_client, client, audience_id, flow_id, plain, "vipflow")
    assert (skipped.phase, skipped.reason) == (
        Phase.SKIPPED,
        "the contact does not meet the flow's starting filter",
    )


async def test_split_exit_and_unsubscribe(
    app_client: httpx.AsyncClient,
    audience_id: str,
    mail: MailCatcher,
    client: Client,
    worker: object,
) -> None:
    flow_id = await _flow(
        app_client,
        audience_id,
        "split",
        [
            {
                "id": "ab",
                "type": "percent_split",
                "paths": [
                    {"weight": 50, "steps": [_email("a", "A")]},
                    {"weight": 50, "steps": [_email("b", "B")]},
                ],
            },
            {"id": "bye", "type": "unsubscribe", "channels": ["email"]},
            _email("after", "never sent: unsubscribed"),
            {"id": "out", "type": "exit"},
        ],
    )
    contacts = [await _contact(app_client, audience_id) for _ in range(6)]
    results = [await _run(app_client, client, audience_id, flow_id, c, "split") for c in contacts]
    assert all(r.reason == "reached the exit step `out`" for r in results)
    got = [[m.subject for m in mail.to(c["email"])] for c in contacts]
    assert all(subjects in (["A"], ["B"]) for subjects in got)
    statuses = {
        (await app_client.get(f"/v1/audiences/{audience_id}/contacts/{c['id']}")).json()["status"]
        for c in contacts
    }
    assert statuses == {"unsubscribed"}


async def test_manual_add_and_flow_api_enrol_only_into_their_flow(
    app_client: httpx.AsyncClient,
    audience_id: str,
    mail: MailCatcher,
    client: Client,
    worker: object,
) -> None:
    flows = []
    for trigger in ("manual_add", "flow_api"):
        created = await app_client.post(
            "/v1/flows",
            json={
                "name": f"By hand {trigger}",
                "audience_id": audience_id,
                "triggers": [{"type": trigger}],
                "steps": [_email("hi", f"Hi from {trigger}")],
            },
        )
        await app_client.post(f"/v1/flows/{created.json()['id']}/activate")
        flows.append(created.json()["id"])
    a, b = await _contact(app_client, audience_id), await _contact(app_client, audience_id)
    added = (
        await app_client.post(
            f"/v1/flows/{flows[0]}/contacts", json={"contacts": [a["email"], "nobody@x.io"]}
        )
    ).json()
    assert [e["outcome"] for e in added["enrolled"]] == ["started"] and added["not_found"] == [
        "nobody@x.io"
    ]
    triggered = await app_client.post(
        f"/v1/flows/{flows[1]}/trigger", json={"email_address": b["subscriber_hash"]}
    )
    assert triggered.status_code == 200, triggered.text
    for flow_id, contact in zip(flows, (a, b), strict=True):
        await client.get_workflow_handle(workflow_id(flow_id, contact["id"])).result()
    assert [m.subject for m in mail.to(a["email"])] == ["Hi from manual_add"]
    assert [m.subject for m in mail.to(b["email"])] == ["Hi from flow_api"]
    wrong = await app_client.post(
        f"/v1/flows/{flows[0]}/trigger", json={"email_address": a["email"]}
    )
    assert wrong.status_code == 409
    missing = await app_client.post(
        f"/v1/flows/{flows[1]}/trigger", json={"email_address": "ghost@x.io"}
    )
    assert missing.status_code == 404 and missing.json()["errors"][0]["field"] == "email_address"


async def test_backend_activity_events_fire_triggers_and_feed_conditions(
    app_client: httpx.AsyncClient,
    audience_id: str,
    mail: MailCatcher,
    client: Client,
    worker: object,
) -> None:
    created = await app_client.post(
        "/v1/flows",
        json={
            "name": "Thanks for boots",
            "audience_id": audience_id,
            "triggers": [{"type": "purchased_specific_product", "product_ids": ["boots"]}],
            "steps": [
                {
                    "id": "check",
                    "type": "if_else",
                    "conditions": {
                        "conditions": [
                            {"type": "purchased", "product_id": "boots", "within_days": 1}
                        ]
                    },
                    "yes": [_email("thanks", "Enjoy your boots, order {{ event.order_id }}")],
                }
            ],
        },
    )
    flow_id = created.json()["id"]
    await app_client.post(f"/v1/flows/{flow_id}/activate")
    contact = await _contact(app_client, audience_id)
    url = f"/v1/audiences/{audience_id}/contacts/{contact['email']}/activity"
    order = {
        "type": "order_placed",
        "data": {"order_id": "A-1001", "product_ids": ["socks", "boots"], "total": 120},
    }

    posted = await app_client.post(
        url, json=order, headers={"Idempotency-Key": "shopify-delivery-1"}
    )
    assert posted.status_code == 202, posted.text
    assert [e["outcome"] for e in posted.json()["enrolments"]] == ["started"]
    again = await app_client.post(
        url, json=order, headers={"Idempotency-Key": "shopify-delivery-1"}
    )
    assert again.json()["duplicate"] is True and again.json()["enrolments"] == []
    await client.get_workflow_handle(workflow_id(flow_id, contact["id"])).result()
    assert [m.subject for m in mail.to(contact["email"])] == ["Enjoy your boots, order A-1001"]

    bad = await app_client.post(url, json={"type": "order_placed", "data": {"total": 3}})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "data.order_id"
    unknown = await app_client.post(url, json={"type": "teleported", "data": {}})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "type"

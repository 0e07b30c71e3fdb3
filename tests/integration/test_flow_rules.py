"""Each flow rule: `POST /v1/flows/validate` names the path and says what is wrong."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from api.app import create_app
from journeys.config import Settings
from tests.flow_samples import SEND, STEPS, TRIGGERS, step_flow

Flow = dict[str, Any]


def _send(step_id: str) -> dict[str, Any]:
    return {**SEND, "id": step_id}


def _triggers(*types: str) -> Callable[[Flow], None]:
    def change(flow: Flow) -> None:
        flow["triggers"] = [{"type": t, **copy.deepcopy(TRIGGERS[t])} for t in types]

    return change


def _steps(*steps: dict[str, Any]) -> Callable[[Flow], None]:
    def change(flow: Flow) -> None:
        flow["steps"] = list(steps)

    return change


def _both(*changes: Callable[[Flow], None]) -> Callable[[Flow], None]:
    def change(flow: Flow) -> None:
        for one in changes:
            one(flow)

    return change


RULES = [
    # (rule, change to a valid flow, path, code, words of the message)
    (
        "alone trigger combined",
        _triggers("abandoned_cart", "tag_added"),
        "triggers[0]",
        "trigger_not_alone",
        "must be the flow's only trigger",
    ),
    (
        "abandoned cart allows only sends and delays",
        _both(
            _triggers("abandoned_cart"),
            _steps(_send("a"), {"id": "t", "type": "add_tag", "tag": "x"}),
        ),
        "steps[1]",
        "abandoned_cart_step",
        "may only send email/SMS and delay",
    ),
    (
        "specific date with a yearly trigger",
        _triggers("specific_date", "birthday"),
        "triggers[0]",
        "specific_date_with_yearly",
        "birthday",
    ),
    (
        "specific date with a wait rule",
        _both(
            _triggers("specific_date"),
            _steps(_send("a"), {"id": "w", "type": "delay", "duration": "1d"}),
        ),
        "steps[1]",
        "specific_date_with_wait",
        "wait rules like `delay`",
    ),
    (
        "transactional flow with a marketing-only step",
        _both(_triggers("order_confirmation"), _steps(*copy.deepcopy(STEPS["percent_split"]))),
        "steps[0]",
        "marketing_step_in_transactional",
        "cannot contain `percent_split`",
    ),
    (
        "step after an exit",
        _steps(_send("a"), {"id": "out", "type": "exit"}, _send("b")),
        "steps[2]",
        "unreachable_step",
        "can never run",
    ),
    (
        "duplicate id in a branch",
        _steps(
            _send("a"),
            {
                "id": "br",
                "type": "if_else",
                "conditions": {"conditions": [{"type": "tag", "tag": "x"}]},
                "yes": [_send("a")],
            },
        ),
        "steps[1].yes[0].id",
        "duplicate_step_id",
        "already used at steps[0]",
    ),
    (
        "more than 100 steps",
        _steps(*(_send(f"s{i}") for i in range(101))),
        "steps",
        "too_many_steps",
        "at most 100 steps",
    ),
    (
        "more than 10 wait_for_trigger",
        _steps(
            *(
                {
                    "id": f"w{i}",
                    "type": "wait_for_trigger",
                    "timeout": "1d",
                    "conditions": {"conditions": [{"type": "tag", "tag": "x"}]},
                }
                for i in range(11)
            )
        ),
        "steps[10]",
        "too_many_wait_for_trigger",
        "at most 10",
    ),
    (
        "unknown merge tag",
        _steps({**SEND, "subject": "Hi {{ contact.frist_name }}"}),
        "steps[0].subject",
        "template",
        "did you mean 'first_name'",
    ),
    (
        "broken template",
        _steps({**SEND, "html": "<p>{% if contact.first_name %}</p>"}),
        "steps[0].html",
        "template",
        "template error",
    ),
    (
        "campaign that does not exist",
        lambda f: f.update(
            triggers=[{"type": "email_opened", "email": {"campaign_id": str(uuid.uuid4())}}]
        ),
        "triggers[0].email",
        "unknown_email_ref",
        "does not exist",
    ),
    (
        "duplicate trigger",
        _triggers("tag_added", "tag_added"),
        "triggers[1]",
        "duplicate_trigger",
        "listed twice",
    ),
    (
        "unknown audience",
        lambda f: f.update(audience_id=str(uuid.uuid4())),
        "audience_id",
        "unknown_audience",
        "does not exist",
    ),
    # Schema layer: each parameter's constraint, reported the same way.
    (
        "keyword too short",
        lambda f: f.update(triggers=[{"type": "sms_keyword", "keyword": "J"}]),
        "triggers[0].keyword",
        "schema",
        "2–30 letters or digits",
    ),
    (
        "event name with spaces",
        lambda f: f.update(triggers=[{"type": "event_api", "event_name": "signed up"}]),
        "triggers[0].event_name",
        "schema",
        "not an event name",
    ),
    (
        "birthday offset after the day",
        lambda f: f.update(triggers=[{"type": "birthday", "offset_days": 2}]),
        "triggers[0].offset_days",
        "schema",
        "less than or equal to 0",
    ),
    (
        "include and exclude products",
        lambda f: f.update(
            triggers=[
                {
                    "type": "abandoned_cart_specific_products",
                    "include_product_ids": ["a"],
                    "exclude_product_ids": ["b"],
                }
            ]
        ),
        "triggers[0]",
        "schema",
        "exactly one",
    ),
    (
        "email ref naming both targets",
        lambda f: f.update(
            triggers=[
                {
                    "type": "email_opened",
                    "email": {"campaign_id": "c", "flow_id": "f", "step_id": "s"},
                }
            ]
        ),
        "triggers[0].email",
        "schema",
        "not both",
    ),
    (
        "bad within duration",
        lambda f: f.update(
            triggers=[
                {"type": "campaign_unopened", "email": {"campaign_id": "c"}, "within": "3 days"}
            ]
        ),
        "triggers[0].within",
        "schema",
        "invalid duration",
    ),
    (
        "split weights not summing to 100",
        _steps({"id": "ab", "type": "percent_split", "paths": [{"weight": 50}, {"weight": 40}]}),
        "steps[0]",
        "schema",
        "sum to 100",
    ),
    (
        "sms body too long",
        _steps({"id": "t", "type": "send_sms", "body": "x" * 1601}),
        "steps[0].body",
        "schema",
        "at most 1600",
    ),
    (
        "four triggers",
        _triggers("tag_added", "manual_add", "flow_api", "event_api"),
        "triggers",
        "schema",
        "at most 3",
    ),
    (
        "template too large",
        lambda f: f["steps"][0].update(html="<p>" + "x" * 101 * 1024 + "</p>"),
        "steps[0].html",
        "template_too_large",
        "at most 100 KiB",
    ),
    (
        "flow too large",
        lambda f: f.update(
            steps=[
                {"id": f"s{i}", "type": "send_email", "subject": "s", "html": "x" * 90 * 1024}
                for i in range(7)
            ]
        ),
        "steps",
        "flow_too_large",
        "at most 512 KiB",
    ),
    (
        "unknown trigger type",
        lambda f: f.update(triggers=[{"type": "moon_phase"}]),
        "triggers[0].type",
        "schema",
        "moon_phase",
    ),
]


@pytest.mark.parametrize(
    ("rule", "change", "path", "code", "words"), RULES, ids=[r[0] for r in RULES]
)
async def test_rule_reports_path_and_message(
    app_client: httpx.AsyncClient,
    audience_id: str,
    rule: str,
    change: Callable[[Flow], None],
    path: str,
    code: str,
    words: str,
) -> None:
    flow = step_flow("send_email", audience_id, {})
    change(flow)
    report = (await app_client.post("/v1/flows/validate", json=flow)).json()
    assert report["valid"] is False
    matching = [v for v in report["violations"] if v["path"] == path and v["code"] == code]
    assert matching, report["violations"]
    assert words in matching[0]["message"]


async def test_email_ref_to_a_missing_step_of_an_existing_flow(
    app_client: httpx.AsyncClient, audience_id: str
) -> None:
    other = (
        await app_client.post(
            "/v1/flows", json={**step_flow("send_email", audience_id, {}), "name": "Other"}
        )
    ).json()
    flow = step_flow("send_email", audience_id, {})
    flow["triggers"] = [
        {"type": "email_opened", "email": {"flow_id": other["id"], "step_id": "nope"}}
    ]
    report = (await app_client.post("/v1/flows/validate", json=flow)).json()
    assert report["violations"] == [
        {
            "path": "triggers[0].email",
            "code": "unknown_email_ref",
            "blocks": "save",
            "message": f"flow {other['id']} has no send_email step 'nope'",
        }
    ]
    flow["triggers"][0]["email"]["step_id"] = "mail"
    assert (await app_client.post("/v1/flows/validate", json=flow)).json() == {
        "valid": True,
        "violations": [],
    }


async def test_validate_returns_every_violation_at_once(
    app_client: httpx.AsyncClient, audience_id: str
) -> None:
    flow = step_flow("send_email", audience_id, {})
    flow["triggers"] = [{"type": "order_confirmation"}, {"type": "tag_added", "tag": "x"}]
    flow["steps"] = [
        {**SEND, "subject": "{{ contact.nmae }}"},
        {"id": "x", "type": "exit"},
        _send("hello"),
    ]
    report = (await app_client.post("/v1/flows/validate", json=flow)).json()
    codes = sorted(v["code"] for v in report["violations"])
    assert codes == ["duplicate_step_id", "template", "trigger_not_alone", "unreachable_step"]
    created = await app_client.post("/v1/flows", json=flow)
    assert created.status_code == 422
    assert len(created.json()["errors"]) == 4


async def test_valid_flow_is_valid_and_nothing_is_saved(
    app_client: httpx.AsyncClient, audience_id: str
) -> None:
    flow = step_flow("wait_for_trigger", audience_id, {})
    flow["steps"][0]["conditions"]["conditions"] = [{"type": "tag", "tag": "vip"}]
    assert (await app_client.post("/v1/flows/validate", json=flow)).json() == {
        "valid": True,
        "violations": [],
    }
    listed = (await app_client.get("/v1/flows", params={"audience_id": audience_id})).json()[
        "flows"
    ]
    assert listed == []


@pytest.fixture
async def no_sms_client(settings: Settings, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """The same API on a deployment with no SMS provider."""
    app = create_app(settings.model_copy(update={"sms_provider": "none"}))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://journeys.test",
            headers={"Authorization": f"Bearer {api_key}"},
        ) as http,
    ):
        yield http


async def test_sms_flows_can_be_drafted_but_not_activated_without_sms(
    no_sms_client: httpx.AsyncClient, audience_id: str
) -> None:
    flow = step_flow("send_sms", audience_id, {})
    flow["triggers"].append({"type": "sms_keyword", "keyword": "JOIN"})
    report = (await no_sms_client.post("/v1/flows/validate", json=flow)).json()
    assert {(v["path"], v["code"], v["blocks"]) for v in report["violations"]} == {
        ("triggers[1]", "sms_not_configured", "activation"),
        ("steps[0]", "sms_not_configured", "activation"),
    }
    created = await no_sms_client.post("/v1/flows", json=flow)
    assert created.status_code == 201
    refused = await no_sms_client.post(f"/v1/flows/{created.json()['id']}/activate")
    assert refused.status_code == 422
    assert {e["field"] for e in refused.json()["errors"]} == {"triggers[1]", "steps[0]"}
    assert (await no_sms_client.get(f"/v1/flows/{created.json()['id']}")).json()[
        "status"
    ] == "draft"

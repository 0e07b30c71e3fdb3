"""Eventbrite, LiveChat, Zapier, surveys and site tracking, each from its real shape."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from journeys.config import Settings
from journeys.contact_token import sign_contact, verify_contact
from tests.helpers import in_flow
from tests.providers.conftest import ProviderApi, active_flow, contact, started

EVENTBRITE_TOKEN = "PRIVATETOKEN1234567890"
LIVECHAT_SECRET = "lc-webhook-secret-0f1e2d3c"
LIVECHAT_TOKEN = "dal:livechat-agent-token"


async def _events(pool: asyncpg.Pool, audience: str) -> int:
    return int(
        await pool.fetchval("SELECT count(*) FROM events WHERE audience_id = $1::uuid", audience)
    )


# --- Eventbrite ------------------------------------------------------------------------------


def eventbrite_order(event_id: str, email: str) -> dict[str, Any]:
    return {
        "id": "1234567890",
        "created": "2026-11-28T02:00:00Z",
        "changed": "2026-11-28T02:00:00Z",
        "name": "Jane Doe",
        "first_name": "Jane",
        "last_name": "Doe",
        "email": email,
        "costs": {
            "gross": {"currency": "USD", "value": 2500, "major_value": "25.00", "display": "$25.00"}
        },
        "event_id": event_id,
        "time_remaining": None,
        "resource_uri": "https://www.eventbriteapi.com/v3/orders/1234567890/",
        "status": "placed",
    }


def eventbrite_attendee(event_id: str, email: str) -> dict[str, Any]:
    return {
        "id": "5550001",
        "created": "2026-11-28T02:00:00Z",
        "changed": "2026-11-28T02:10:00Z",
        "ticket_class_id": "112233",
        "ticket_class_name": "General Admission",
        "profile": {"first_name": "Jane", "last_name": "Doe", "email": email, "name": "Jane Doe"},
        "checked_in": True,
        "cancelled": False,
        "refunded": False,
        "status": "Checked In",
        "event_id": event_id,
        "order_id": "1234567890",
        "resource_uri": f"https://www.eventbriteapi.com/v3/events/{event_id}/attendees/5550001/",
    }


@pytest.fixture
async def eventbrite(hooks: httpx.AsyncClient, audience: str) -> str:
    put = await hooks.put(
        f"/v1/audiences/{audience}/integrations/eventbrite", json={"secret": EVENTBRITE_TOKEN}
    )
    assert put.status_code == 200, put.text
    return str(put.json()["url"]).split("/v1/", 1)[1]


def eventbrite_hook(action: str, api_url: str) -> dict[str, Any]:
    return {
        "config": {
            "action": action,
            "user_id": "163054428874",
            "endpoint_url": "https://hooks.journeys.example/base/v1/eventbrite/hooks/x",
            "webhook_id": "1793865",
        },
        "api_url": api_url,
    }


EVENTBRITE_CASES = [
    (
        {"type": "eventbrite_any_ticket_purchase"},
        "order.placed",
        "777",
        "attendee.checked_in",
        "777",
    ),
    ({"type": "eventbrite_any_checkin"}, "attendee.checked_in", "777", "order.placed", "777"),
    (
        {"type": "eventbrite_event_purchase", "event_id": "777"},
        "order.placed",
        "777",
        "order.placed",
        "888",
    ),
    (
        {"type": "eventbrite_event_checkin", "event_id": "777"},
        "attendee.checked_in",
        "777",
        "attendee.checked_in",
        "888",
    ),
]


@pytest.mark.parametrize(
    ("trigger", "action", "event_id", "miss_action", "miss_event"),
    EVENTBRITE_CASES,
    ids=[c[0]["type"] for c in EVENTBRITE_CASES],
)
async def test_eventbrite_orders_and_checkins_enrol_the_buyer(
    hooks: httpx.AsyncClient,
    audience: str,
    eventbrite: str,
    provider_api: ProviderApi,
    trigger: dict[str, Any],
    action: str,
    event_id: str,
    miss_action: str,
    miss_event: str,
) -> None:
    email = f"jane-{uuid.uuid4().hex[:6]}@example.com"

    def url_for(act: str, event: str) -> str:
        path = (
            "/v3/orders/1234567890/"
            if act == "order.placed"
            else f"/v3/events/{event}/attendees/5550001/"
        )
        path = path.replace("1234567890", f"1234567890{event}")
        build = eventbrite_order if act == "order.placed" else eventbrite_attendee
        provider_api.routes[("GET", path)] = lambda _body: (200, build(event, email))
        return provider_api.base + path

    flow_id = await active_flow(hooks, audience, trigger)
    miss = await hooks.post(
        f"/v1/{eventbrite}", json=eventbrite_hook(miss_action, url_for(miss_action, miss_event))
    )
    assert not started(miss, flow_id)
    hit_url = url_for(action, event_id)
    hit = await hooks.post(f"/v1/{eventbrite}", json=eventbrite_hook(action, hit_url))
    assert started(hit, flow_id)
    fetched = [
        c for c in provider_api.calls if c["path"] == hit_url.removeprefix(provider_api.base)
    ]
    assert fetched and fetched[-1]["auth"] == f"Bearer {EVENTBRITE_TOKEN}"
    again = await hooks.post(f"/v1/{eventbrite}", json=eventbrite_hook(action, hit_url))
    assert again.json()["duplicate"] is True and again.json()["enrolments"] == []


async def test_eventbrite_ping_is_answered_without_fetching(
    hooks: httpx.AsyncClient,
    audience: str,
    eventbrite: str,
    provider_api: ProviderApi,
    pool: asyncpg.Pool,
) -> None:
    calls = len(provider_api.calls)
    ping = await hooks.post(
        f"/v1/{eventbrite}",
        json=eventbrite_hook("test", "https://www.eventbriteapi.com/v3/users/me/"),
    )
    assert ping.status_code == 200 and ping.json()["events"] == 0
    assert len(provider_api.calls) == calls and await _events(pool, audience) == 0


async def test_eventbrite_refusals(
    hooks: httpx.AsyncClient,
    audience: str,
    eventbrite: str,
    provider_api: ProviderApi,
    hook_settings: Settings,
    pool: asyncpg.Pool,
) -> None:
    calls = len(provider_api.calls)
    wrong = await hooks.post(
        "/v1/eventbrite/hooks/not-our-token",
        json=eventbrite_hook("order.placed", provider_api.base + "/v3/orders/1/"),
    )
    assert wrong.status_code == 401 and wrong.headers["content-type"] == "application/problem+json"
    # URLs outside the configured API base are never called (another port, another path).
    for outside in (
        f"http://127.0.0.1:{provider_api.port + 1}/v3/orders/1/",
        provider_api.base + "/admin/orders/1/",
    ):
        refused = await hooks.post(
            f"/v1/{eventbrite}", json=eventbrite_hook("order.placed", outside)
        )
        assert refused.status_code == 422, refused.text
        assert "api_url" in refused.json()["detail"]
    assert len(provider_api.calls) == calls
    # An API that keeps failing is tried a bounded number of times, then the delivery fails.
    provider_api.routes[("GET", "/v3/orders/503/")] = lambda _b: (503, {"error": "BUSY"})
    failed = await hooks.post(
        f"/v1/{eventbrite}",
        json=eventbrite_hook("order.placed", provider_api.base + "/v3/orders/503/"),
    )
    assert failed.status_code == 502
    tries = [c for c in provider_api.calls[calls:] if c["path"] == "/v3/orders/503/"]
    assert len(tries) == hook_settings.provider_fetch_attempts
    assert await _events(pool, audience) == 0


# --- LiveChat --------------------------------------------------------------------------------


def chat_deactivated(secret: str, chat_id: str) -> dict[str, Any]:
    return {
        "webhook_id": "3a9b2c1d-0e9f-4a8b-9c7d-6e5f4a3b2c1d",
        "secret_key": secret,
        "action": "chat_deactivated",
        "organization_id": "390e44e6-f1e6-0368c-z6ddb-74g14508c2ex",
        "payload": {"chat_id": chat_id, "thread_id": "K600PKZON8", "user_id": "agent@shop.example"},
        "additional_data": {},
    }


@pytest.fixture
async def livechat(hooks: httpx.AsyncClient, audience: str, provider_api: ProviderApi) -> str:
    put = await hooks.put(
        f"/v1/audiences/{audience}/integrations/livechat",
        json={"secret": LIVECHAT_SECRET, "api_token": LIVECHAT_TOKEN},
    )
    assert put.status_code == 200, put.text

    def get_chat(body: dict[str, Any] | None) -> tuple[int, Any]:
        assert body is not None
        return 200, {
            "id": body["chat_id"],
            "users": [
                {
                    "id": "agent@shop.example",
                    "name": "Agent",
                    "email": "agent@shop.example",
                    "type": "agent",
                },
                {
                    "id": "b7eff798-f8df-4364-8059-649c35c9ed0c",
                    "name": "Thomas Anderson",
                    "email": f"{body['chat_id'].lower()}@example.com",
                    "type": "customer",
                    "present": False,
                },
            ],
            "thread": {"id": body["thread_id"], "active": False},
        }

    provider_api.routes[("POST", "/v3.5/agent/action/get_chat")] = get_chat
    return f"/v1/livechat/{audience}/webhooks"


async def test_a_finished_livechat_chat_enrols_its_customer(
    hooks: httpx.AsyncClient,
    audience: str,
    livechat: str,
    pool: asyncpg.Pool,
    provider_api: ProviderApi,
) -> None:
    flow_id = await active_flow(hooks, audience, {"type": "livechat_chat_finished"})
    other = chat_deactivated(LIVECHAT_SECRET, "PJ0MRSHTDG") | {"action": "incoming_chat"}
    assert not started(await hooks.post(livechat, json=other), flow_id)
    hit = await hooks.post(livechat, json=chat_deactivated(LIVECHAT_SECRET, "PJ0MRSHTDG"))
    assert started(hit, flow_id)
    assert provider_api.calls[-1]["auth"] == f"Bearer {LIVECHAT_TOKEN}"
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM contacts WHERE audience_id = $1::uuid AND email = 'pj0mrshtdg@example.com'",
            audience,
        )
        == 1
    )
    again = await hooks.post(livechat, json=chat_deactivated(LIVECHAT_SECRET, "PJ0MRSHTDG"))
    assert again.json()["duplicate"] is True and again.json()["enrolments"] == []


@pytest.mark.parametrize("secret", ["lc-someone-elses-secret", None])
async def test_livechat_without_its_secret_key_is_refused(
    hooks: httpx.AsyncClient, audience: str, livechat: str, pool: asyncpg.Pool, secret: str | None
) -> None:
    body = chat_deactivated(secret or "", "QQ1")
    if secret is None:
        del body["secret_key"]
    answer = await hooks.post(livechat, json=body)
    assert answer.status_code == 401
    assert await _events(pool, audience) == 0


# --- Zapier ----------------------------------------------------------------------------------


@pytest.fixture
async def zap(hooks: httpx.AsyncClient, audience: str) -> str:
    put = await hooks.put(f"/v1/audiences/{audience}/integrations/zapier", json={})
    assert put.status_code == 200, put.text
    url = str(put.json()["url"])
    assert url.startswith("https://hooks.journeys.example/base/v1/zapier/hooks/")
    return url.removeprefix("https://hooks.journeys.example/base")


@pytest.mark.parametrize("encoding", ["json", "form"])
async def test_zapier_custom_events_enrol_the_named_contact(
    hooks: httpx.AsyncClient, audience: str, zap: str, client: Client, encoding: str
) -> None:
    person = await contact(hooks, audience, "zed@example.com")
    flow_id = await active_flow(
        hooks, audience, {"type": "zapier_custom_event", "event_name": "demo-booked"}
    )
    path = zap[zap.index("/v1/") :]

    async def send(event: str, run: str) -> httpx.Response:
        fields = {"email": "zed@example.com", "event": event, "id": run}
        return await (
            hooks.post(path, json=fields) if encoding == "json" else hooks.post(path, data=fields)
        )

    assert not started(await send("demo-cancelled", "run-1"), flow_id)
    assert started(await send("demo-booked", "run-2"), flow_id)
    assert await in_flow(client, flow_id, person["id"])
    again = await send("demo-booked", "run-2")
    assert again.json()["duplicate"] is True


async def test_zapier_refuses_an_unknown_hook_and_names_bad_fields(
    hooks: httpx.AsyncClient, audience: str, zap: str, pool: asyncpg.Pool
) -> None:
    assert (
        await hooks.post("/v1/zapier/hooks/guessed", json={"email": "a@b.co", "event": "x1"})
    ).status_code == 401
    bad = await hooks.post(
        zap[zap.index("/v1/") :], json={"email": "zed@example.com", "event": "no spaces!"}
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "event"
    assert await _events(pool, audience) == 0


# --- Surveys ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("survey", "answer", "fires"),
    [("nps-2026", "10", True), ("nps-2026", "3", False), ("churn-2026", "10", False)],
)
async def test_survey_responses_enrol_by_survey_question_and_answer(
    hooks: httpx.AsyncClient, audience: str, client: Client, survey: str, answer: str, fires: bool
) -> None:
    person = await contact(hooks, audience, "sue@example.com")
    question = "How likely are you to recommend us?"
    flow_id = await active_flow(
        hooks,
        audience,
        {"type": "survey_responded", "survey_id": "nps-2026", "question": question, "answer": "10"},
    )
    posted = await hooks.post(
        f"/v1/surveys/{survey}/responses",
        json={
            "audience_id": audience,
            "contact": "sue@example.com",
            "response_id": "r-1",
            "answers": {question: answer},
        },
    )
    assert posted.status_code == 202, posted.text
    assert await in_flow(client, flow_id, person["id"]) is fires


async def test_survey_responses_need_an_api_key(hooks: httpx.AsyncClient, audience: str) -> None:
    answer = await hooks.post(
        "/v1/surveys/nps-2026/responses",
        json={"audience_id": audience, "contact": "sue@example.com", "answers": {}},
        headers={"Authorization": ""},
    )
    assert answer.status_code == 401


# --- Site tracking ---------------------------------------------------------------------------


@pytest.fixture
async def site_key(hooks: httpx.AsyncClient, audience: str) -> str:
    put = await hooks.put(f"/v1/audiences/{audience}/integrations/site", json={})
    assert put.status_code == 200 and put.json()["url"].endswith("/t/site.js")
    return str(put.json()["token"])


async def test_the_snippet_is_served(hooks: httpx.AsyncClient) -> None:
    js = await hooks.get("/t/site.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("application/javascript")
    assert "/t/collect" in js.text and "data-site-key" in js.text and "identify" in js.text


@pytest.mark.parametrize(
    ("trigger", "kind"),
    [
        ({"type": "page_visited", "url": "https://shop.example/sale/*"}, "page"),
        ({"type": "website_link_clicked", "url": "https://shop.example/sale/*"}, "link"),
    ],
)
async def test_site_visits_and_clicks_enrol_identified_visitors(
    hooks: httpx.AsyncClient,
    audience: str,
    site_key: str,
    client: Client,
    trigger: dict[str, Any],
    kind: str,
) -> None:
    person = await contact(hooks, audience, "vic@example.com")
    flow_id = await active_flow(hooks, audience, trigger)
    visitor = uuid.uuid4().hex

    async def collect(**body: Any) -> None:
        answer = await hooks.post(
            "/t/collect", content=_json({"site_key": site_key, "visitor_id": visitor, **body})
        )
        assert answer.status_code == 204, answer.text

    await collect(type=kind, url="https://shop.example/sale/boots")  # anonymous: nobody
    assert not await in_flow(client, flow_id, person["id"])
    await collect(type="identify", email="vic@example.com")
    await collect(type=kind, url="https://shop.example/about")  # another page: near miss
    assert not await in_flow(client, flow_id, person["id"])
    await collect(type=kind, url="https://shop.example/sale/boots")
    assert await in_flow(client, flow_id, person["id"])


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()  # sent as text/plain, as navigator.sendBeacon does


@pytest.mark.parametrize("forged", [False, True])
async def test_a_signed_click_through_token_ties_the_visitor(
    hooks: httpx.AsyncClient,
    audience: str,
    site_key: str,
    client: Client,
    hook_settings: Settings,
    forged: bool,
) -> None:
    person = await contact(hooks, audience, "tok@example.com")
    flow_id = await active_flow(
        hooks, audience, {"type": "page_visited", "url": "https://shop.example/sale/*"}
    )
    key = "not-the-secret-key" if forged else hook_settings.secret_key.get_secret_value()
    token = sign_contact(person["id"], key)
    answer = await hooks.post(
        "/t/collect",
        content=_json(
            {
                "site_key": site_key,
                "visitor_id": uuid.uuid4().hex,
                "type": "page",
                "url": "https://shop.example/sale/x",
                "token": token,
            }
        ),
    )
    assert answer.status_code == 204
    assert await in_flow(client, flow_id, person["id"]) is not forged


def test_contact_tokens_round_trip_and_reject_tampering() -> None:
    contact_id = str(uuid.uuid4())
    token = sign_contact(contact_id, "k1")
    assert verify_contact(token, "k1") == contact_id
    assert verify_contact(token, "k2") is None
    assert (
        verify_contact(
            sign_contact(str(uuid.uuid4()), "k1").split(".")[0] + "." + token.split(".")[1], "k1"
        )
        is None
    )
    assert verify_contact("garbage", "k1") is None


async def test_collect_refuses_an_unknown_site_key(
    hooks: httpx.AsyncClient, audience: str, pool: asyncpg.Pool
) -> None:
    answer = await hooks.post(
        "/t/collect",
        content=_json(
            {"site_key": "nope", "visitor_id": "v", "type": "page", "url": "https://x.example/"}
        ),
    )
    assert (
        answer.status_code == 401 and answer.headers["content-type"] == "application/problem+json"
    )


async def test_survey_responses_name_bad_fields_and_are_size_limited(
    hooks: httpx.AsyncClient, audience: str, pool: asyncpg.Pool
) -> None:
    bad = await hooks.post(
        "/v1/surveys/nps-2026/responses", json={"audience_id": audience, "answers": {}}
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "contact"
    big = {"audience_id": audience, "contact": "sue@example.com", "answers": {"q": "x" * 70_000}}
    assert (await hooks.post("/v1/surveys/nps-2026/responses", json=big)).status_code == 413
    assert await _events(pool, audience) == 0


@pytest.mark.parametrize(
    ("provider", "body", "field"),
    [
        ("shopify", {}, "secret"),
        ("eventbrite", {"secret": "short"}, "secret"),
        ("livechat", {"secret": LIVECHAT_SECRET}, "api_token"),
        ("mailgun", {"secret": "whatever-secret"}, "path.provider"),
    ],
)
async def test_integration_settings_name_what_is_missing(
    hooks: httpx.AsyncClient, audience: str, provider: str, body: dict[str, Any], field: str
) -> None:
    answer = await hooks.put(f"/v1/audiences/{audience}/integrations/{provider}", json=body)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["errors"][0]["field"] == field

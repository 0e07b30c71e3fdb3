"""Twilio inbound SMS and status callbacks, signed by the `twilio` package's own validator."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client
from twilio.request_validator import RequestValidator

from journeys.channels.sms import OutboxSmsProvider, TwilioSmsProvider
from journeys.config import Settings
from journeys.domain.runs import workflow_id
from journeys.store import messages
from tests.helpers import in_flow
from tests.providers.conftest import (
    PUBLIC_URL,
    TWILIO_TOKEN,
    ProviderApi,
    active_flow,
    contact,
)

VALIDATOR = RequestValidator(TWILIO_TOKEN)


def inbound(phone: str, text: str) -> dict[str, str]:
    """The form Twilio posts for an inbound SMS."""
    return {
        "ToCountry": "US",
        "ToState": "CA",
        "SmsMessageSid": f"SM{uuid.uuid4().hex}",
        "NumMedia": "0",
        "FromCountry": "FR",
        "SmsSid": f"SM{uuid.uuid4().hex}",
        "MessageSid": f"SM{uuid.uuid4().hex}",
        "AccountSid": "AC" + "0" * 32,
        "From": phone,
        "To": "+14155550100",
        "Body": text,
        "NumSegments": "1",
        "ApiVersion": "2010-04-01",
    }


async def post_signed(
    hooks: httpx.AsyncClient,
    path: str,
    form: dict[str, str],
    *,
    alter: dict[str, str] | None = None,
) -> httpx.Response:
    """Posts the form with Twilio's signature over the public URL (then, if asked, alters it)."""
    signature = VALIDATOR.compute_signature(PUBLIC_URL + path, form)
    return await hooks.post(
        path, data={**form, **(alter or {})}, headers={"X-Twilio-Signature": signature}
    )


async def text(hooks: httpx.AsyncClient, audience: str, phone: str, body: str) -> httpx.Response:
    answer = await post_signed(hooks, f"/v1/twilio/{audience}/sms", inbound(phone, body))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/xml")
    return answer


def _phone() -> str:
    return "+336" + str(uuid.uuid4().int)[:8]


@pytest.mark.parametrize("tamper", ["altered_body", "no_signature", "other_url"])
async def test_requests_twilio_did_not_sign_are_refused(
    hooks: httpx.AsyncClient, audience: str, pool: asyncpg.Pool, tamper: str
) -> None:
    phone = _phone()
    await contact(hooks, audience, "ann@example.com", phone=phone)
    path = f"/v1/twilio/{audience}/sms"
    form = inbound(phone, "STOP")
    if tamper == "altered_body":
        answer = await post_signed(hooks, path, inbound(phone, "HELLO"), alter={"Body": "STOP"})
    elif tamper == "no_signature":
        answer = await hooks.post(path, data=form)
    else:  # signed for another URL (e.g. the proxy's inside address)
        signature = VALIDATOR.compute_signature("http://journeys.test" + path, form)
        answer = await hooks.post(path, data=form, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert await pool.fetchval("SELECT sms_status FROM contacts WHERE phone = $1", phone) == "none"
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM events WHERE audience_id = $1::uuid AND type <> 'subscribed_email'",
            audience,
        )
        == 0
    )


async def test_a_signed_request_is_accepted(hooks: httpx.AsyncClient, audience: str) -> None:
    answer = await text(hooks, audience, _phone(), "HELP")
    assert "Reply STOP to unsubscribe" in answer.text


@pytest.mark.parametrize(
    ("body", "fires"), [("  join ", True), ("JOIN", True), ("JOINED", False), ("join us", False)]
)
async def test_sms_keyword_matches_the_whole_trimmed_text_in_any_case(
    hooks: httpx.AsyncClient, audience: str, client: Client, body: str, fires: bool
) -> None:
    phone = _phone()
    person = await contact(hooks, audience, f"k{uuid.uuid4().hex[:6]}@example.com", phone=phone)
    flow_id = await active_flow(hooks, audience, {"type": "sms_keyword", "keyword": "JOIN"})
    await text(hooks, audience, phone, body)
    assert await in_flow(client, flow_id, person["id"]) is fires


@pytest.mark.parametrize(
    ("sms_status", "body", "fires"),
    [
        ("none", "JOIN", True),  # keyword opt-in
        ("unsubscribed", "START", True),  # carriers' re-subscribe word
        ("unsubscribed", "JOIN", False),  # texted STOP before: a keyword is no consent
        ("none", "HELLO", False),  # no keyword any flow listens for
        ("subscribed", "START", False),  # already subscribed: no new sign-up
    ],
)
async def test_signed_up_sms_fires_on_start_or_keyword_opt_in(
    hooks: httpx.AsyncClient,
    audience: str,
    client: Client,
    pool: asyncpg.Pool,
    sms_status: str,
    body: str,
    fires: bool,
) -> None:
    phone = _phone()
    person = await contact(
        hooks, audience, f"s{uuid.uuid4().hex[:6]}@example.com", phone=phone, sms_status=sms_status
    )
    await active_flow(hooks, audience, {"type": "sms_keyword", "keyword": "JOIN"})
    flow_id = await active_flow(hooks, audience, {"type": "signed_up_sms"})
    await text(hooks, audience, phone, body)
    assert await in_flow(client, flow_id, person["id"]) is fires
    expected = "subscribed" if fires else sms_status
    assert (
        await pool.fetchval("SELECT sms_status FROM contacts WHERE id = $1::uuid", person["id"])
        == expected
    )


async def test_stop_then_a_marketing_sms_step_sends_nothing(
    hooks: httpx.AsyncClient,
    audience: str,
    client: Client,
    hook_settings: Settings,
    worker: object,
) -> None:
    sms_step = [
        {"id": "promo", "type": "send_sms", "body": "Sale today, {{ contact.first_name }}!"}
    ]
    flow_id = await active_flow(
        hooks, audience, {"type": "tag_added", "tag": "promo"}, steps=sms_step
    )
    stopped, kept = _phone(), _phone()
    people: dict[str, Any] = {}
    for phone in (stopped, kept):
        people[phone] = await contact(
            hooks,
            audience,
            f"p{phone[-6:]}@example.com",
            phone=phone,
            sms_status="subscribed",
            first_name="Max",
        )
    answer = await text(hooks, audience, stopped, "stop")
    assert "unsubscribed" in answer.text
    for person in people.values():
        tagged = await hooks.post(
            f"/v1/audiences/{audience}/contacts/{person['id']}/tags", json={"tags": ["promo"]}
        )
        assert tagged.status_code == 200, tagged.text
        handle = client.get_workflow_handle(workflow_id(flow_id, person["id"]))
        await asyncio.wait_for(handle.result(), timeout=60)
    sent = [m["to"] for m in OutboxSmsProvider(hook_settings.home / "sms").messages()]
    assert kept in sent  # the same flow does text a contact who did not STOP
    assert stopped not in sent


async def _claimed_sms(pool: asyncpg.Pool, recipient: str) -> str:
    """The key of an SMS claimed in the ledger (as a send does before calling the provider)."""
    key = f"sms-{uuid.uuid4().hex}"
    await messages.claim(
        pool,
        idempotency_key=key,
        channel="sms",
        flow_id=None,
        step_id="promo",
        contact_id=None,
        workflow_id=None,
        recipient=recipient,
        subject=None,
        message_id=key,
    )
    return key


async def test_status_callbacks_update_the_message(
    hooks: httpx.AsyncClient, audience: str, pool: asyncpg.Pool
) -> None:
    key = await _claimed_sms(pool, "+33600000000")
    form = {
        "MessageSid": f"SM{uuid.uuid4().hex}",
        "MessageStatus": "undelivered",
        "ErrorCode": "30003",
        "AccountSid": "AC" + "0" * 32,
        "To": "+33600000000",
        "From": "+14155550100",
        "ApiVersion": "2010-04-01",
    }
    path = f"/v1/twilio/status?key={key}"
    assert (
        await post_signed(hooks, path, form, alter={"MessageStatus": "delivered"})
    ).status_code == 401
    answer = await post_signed(hooks, path, form)
    assert answer.status_code == 204, answer.text
    stored = await messages.delivery(pool, key)
    assert stored == {
        "status": "pending",
        "delivery_status": "undelivered",
        "delivery_error": "30003",
        "provider_message_id": form["MessageSid"],
    }


async def test_a_redelivered_inbound_sms_enrols_no_one_twice(
    hooks: httpx.AsyncClient, audience: str, client: Client, pool: asyncpg.Pool
) -> None:
    phone = _phone()
    person = await contact(hooks, audience, "rep@example.com", phone=phone)
    flow_id = await active_flow(hooks, audience, {"type": "sms_keyword", "keyword": "JOIN"})
    form = inbound(phone, "JOIN")
    for _ in range(2):  # Twilio retries a delivery it did not see answered
        answer = await post_signed(hooks, f"/v1/twilio/{audience}/sms", form)
        assert answer.status_code == 200
    assert await in_flow(client, flow_id, person["id"])
    count = await pool.fetchval(
        "SELECT count(*) FROM events WHERE contact_id = $1::uuid AND type = 'sms_received'",
        person["id"],
    )
    assert count == 1


async def test_sent_messages_ask_twilio_for_status_callbacks_that_land_on_them(
    hooks: httpx.AsyncClient, audience: str, pool: asyncpg.Pool, provider_api: ProviderApi
) -> None:
    account = "AC" + "1" * 32
    path = f"/2010-04-01/Accounts/{account}/Messages.json"
    provider_api.routes[("POST", path)] = lambda body: (
        201,
        {"sid": "SM" + "a" * 32, "status": "queued"},
    )
    key = await _claimed_sms(pool, "+33600000001")
    provider = TwilioSmsProvider(
        account_sid=account,
        auth_token=TWILIO_TOKEN,
        from_number="+14155550100",
        base_url=provider_api.base,
        status_callback=f"{PUBLIC_URL}/v1/twilio/status",
    )
    assert await provider.send(to="+33600000001", body="Hi", idempotency_key=key) == "SM" + "a" * 32
    callback = provider_api.calls[-1]["body"]["StatusCallback"]
    assert callback.startswith(PUBLIC_URL + "/v1/twilio/status?")
    form = {"MessageSid": "SM" + "a" * 32, "MessageStatus": "delivered", "AccountSid": account}
    answer = await post_signed(hooks, callback.removeprefix(PUBLIC_URL), form)
    assert answer.status_code == 204, answer.text
    assert (await messages.delivery(pool, key))["delivery_status"] == "delivered"

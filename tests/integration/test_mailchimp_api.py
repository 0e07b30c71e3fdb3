"""The official `mailchimp-marketing` client, pointed at our /3.0 routes on a loopback server,
drives the real stack: members, batch subscribe, events, tags and journey triggers enrol as
they would at Mailchimp, and errors come back as the client's `ApiClientError`."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import mailchimp_marketing as MailchimpMarketing
import pytest
from mailchimp_marketing.api_client import ApiClientError
from temporalio.client import Client, WorkflowExecutionStatus

from journeys.domain.runs import workflow_id
from journeys.embedded.mailcatcher import MailCatcher
from tests.helpers import eventually, in_flow
from tests.live_server import live_api  # noqa: F401

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
def mailchimp(live_api: str, api_key: str) -> MailchimpMarketing.Client:  # noqa: F811
    """The client as a Mailchimp program builds it; only the base URL and the key differ."""
    client = MailchimpMarketing.Client()
    client.set_config({"api_key": api_key, "server": "us1"})
    client.api_client.host = f"{live_api}/3.0"
    return client


async def call(method: Callable[..., Any], *args: Any) -> Any:
    """Runs a blocking client call off the loop that serves it."""
    return await asyncio.to_thread(method, *args)


async def failure(method: Callable[..., Any], *args: Any) -> tuple[int, dict[str, Any]]:
    """The status and Mailchimp-shaped body of a call that must fail."""
    with pytest.raises(ApiClientError) as caught:
        await call(method, *args)
    return caught.value.status_code, json.loads(caught.value.text)


def md5(email: str) -> str:
    return hashlib.md5(email.lower().encode()).hexdigest()


def email(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@Example.com"


async def active_flow(
    http: httpx.AsyncClient,
    audience_id: str,
    trigger: dict[str, Any],
    subject: str,
    *,
    send: bool = True,
) -> dict[str, Any]:
    """An active flow: send an email with this subject (unless `send` is False), then wait."""
    mail = {"id": "mail", "type": "send_email", "subject": subject, "html": "<p>Hello</p>"}
    body = {
        "name": f"{subject} {uuid.uuid4().hex[:6]}",
        "audience_id": audience_id,
        "triggers": [trigger],
        "steps": [*([mail] if send else []), {"id": "stay", "type": "delay", "duration": "30d"}],
    }
    response = await http.post("/v1/flows", json=body)
    assert response.status_code == 201, response.text
    flow = response.json()
    response = await http.post(f"/v1/flows/{flow['id']}/activate")
    assert response.status_code == 200, response.text
    return flow


async def received(mail: MailCatcher, to: str, *expected: str) -> None:
    """Waits until exactly these subjects have reached `to`."""

    def check() -> bool:
        assert sorted(m.subject for m in mail.to(to)) == sorted(expected)
        return True

    await eventually(check, timeout=30)


async def test_members_are_created_updated_and_enrolled_with_mailchimp_errors(
    mailchimp: MailchimpMarketing.Client,
    app_client: httpx.AsyncClient,
    audience_id: str,
    client: Client,
    mail: MailCatcher,
) -> None:
    response = await app_client.post(
        f"/v1/audiences/{audience_id}/merge-fields",
        json={"tag": "PLAN", "name": "Plan", "type": "dropdown", "choices": ["free", "pro"]},
    )
    assert response.status_code == 201, response.text
    signed_up = await active_flow(app_client, audience_id, {"type": "signed_up_email"}, "Welcome")
    upgraded = await active_flow(
        app_client,
        audience_id,
        {"type": "field_changed", "field": "PLAN", "value": "pro"},
        "Thanks for upgrading",
    )

    ada = email("ada")
    member = await call(
        mailchimp.lists.add_list_member,
        audience_id,
        {
            "email_address": ada,
            "status": "subscribed",
            "merge_fields": {
                "FNAME": "Ada",
                "LNAME": "Lovelace",
                "BIRTHDAY": "12/10",
                "PHONE": "+44 20 7946 0958",
                "PLAN": "free",
            },
            "tags": ["early"],
            "location": {"latitude": 51.5, "longitude": -0.12, "timezone": "Europe/London"},
        },
    )
    assert member["id"] == md5(ada)
    assert member["status"] == "subscribed"
    assert member["full_name"] == "Ada Lovelace"
    assert member["merge_fields"] == {
        "FNAME": "Ada",
        "LNAME": "Lovelace",
        "BIRTHDAY": "12/10",
        "PHONE": "+442079460958",
        "PLAN": "free",
    }
    assert member["location"]["timezone"] == "Europe/London"
    assert [t["name"] for t in member["tags"]] == ["early"]
    await received(mail, ada, "Welcome")

    # The native API sees the same contact, with the merge fields in its own columns.
    native = (await app_client.get(f"/v1/audiences/{audience_id}/contacts/{ada}")).json()
    assert (native["birthday"], native["phone"], native["fields"]) == (
        "12-10",
        "+442079460958",
        {"PLAN": "free"},
    )

    status, body = await failure(
        mailchimp.lists.add_list_member, audience_id, {"email_address": ada, "status": "subscribed"}
    )
    assert (status, body["title"], body["status"]) == (400, "Member Exists", 400)
    assert body["instance"] == f"/3.0/lists/{audience_id}/members"
    assert body["type"].startswith("https://mailchimp.com/developer/")

    # PATCH changes a merge field: the field_changed flow takes it, the value must fit.
    updated = await call(
        mailchimp.lists.update_list_member, audience_id, md5(ada), {"merge_fields": {"PLAN": "pro"}}
    )
    assert updated["merge_fields"]["PLAN"] == "pro"
    await received(mail, ada, "Welcome", "Thanks for upgrading")
    status, body = await failure(
        mailchimp.lists.update_list_member,
        audience_id,
        md5(ada),
        {"merge_fields": {"PLAN": "gold", "SHOE": "42"}},
    )
    assert (status, body["title"]) == (400, "Invalid Resource")
    assert {(e["field"], e["message"]) for e in body["errors"]} == {
        ("merge_fields.PLAN", "must be one of free, pro"),
        ("merge_fields.SHOE", "SHOE is not a merge field of this audience"),
    }
    status, body = await failure(
        mailchimp.lists.update_list_member, audience_id, md5(ada), {"vip": True}
    )
    assert status == 400 and body["errors"][0]["field"] == "vip"

    # PUT upserts: `status_if_new` for a new member; near misses enrol no one.
    grace = email("grace")
    created = await call(
        mailchimp.lists.set_list_member,
        audience_id,
        md5(grace),
        {"email_address": grace, "status_if_new": "unsubscribed", "merge_fields": {"PLAN": "free"}},
    )
    assert created["status"] == "unsubscribed"
    assert not await in_flow(client, signed_up["id"], created["contact_id"])  # no consent
    await call(
        mailchimp.lists.set_list_member,
        audience_id,
        grace,  # the email is accepted where the hash is
        {"email_address": grace, "status_if_new": "subscribed", "merge_fields": {"PLAN": "free"}},
    )
    assert not await in_flow(client, signed_up["id"], created["contact_id"])  # not new: no status
    assert not await in_flow(client, upgraded["id"], created["contact_id"])  # other value
    await call(
        mailchimp.lists.set_list_member,
        audience_id,
        md5(grace),
        {"email_address": grace, "status": "subscribed"},
    )
    assert await in_flow(client, signed_up["id"], created["contact_id"])

    status, body = await failure(
        mailchimp.lists.set_list_member,
        audience_id,
        md5(ada),
        {"email_address": grace, "status": "subscribed"},
    )
    assert (status, body["errors"][0]["field"]) == (400, "email_address")
    status, body = await failure(mailchimp.lists.get_list_member, audience_id, md5("x@y.org"))
    assert (status, body["title"]) == (404, "Resource Not Found")
    assert (await call(mailchimp.lists.get_list_member, audience_id, md5(ada)))["id"] == md5(ada)
    picked = await asyncio.to_thread(
        mailchimp.lists.get_list_member,
        audience_id,
        md5(ada),
        fields=["id", "merge_fields.FNAME", "merge_fields.PLAN"],
    )
    assert picked == {"id": md5(ada), "merge_fields": {"FNAME": "Ada", "PLAN": "pro"}}
    trimmed = await asyncio.to_thread(
        mailchimp.lists.get_list_member,
        audience_id,
        md5(ada),
        exclude_fields=["tags", "merge_fields.PHONE", "location"],
    )
    assert "tags" not in trimmed and "location" not in trimmed
    assert "PHONE" not in trimmed["merge_fields"] and trimmed["merge_fields"]["FNAME"] == "Ada"

    # Double opt-in: a pending member is emailed a confirmation link and enrols only later.
    pending = email("pending")
    member = await call(
        mailchimp.lists.add_list_member,
        audience_id,
        {"email_address": pending, "status": "pending"},
    )
    assert member["status"] == "pending"
    await received(mail, pending, "Please confirm your subscription to Test audience")
    assert not await in_flow(client, signed_up["id"], member["contact_id"])

    wrong = MailchimpMarketing.Client()
    wrong.set_config({"api_key": "jrn_not-a-key", "server": "us1"})
    wrong.api_client.host = mailchimp.api_client.host
    status, body = await failure(wrong.lists.get_list_member, audience_id, md5(ada))
    assert (status, body["title"]) == (401, "API Key Invalid")


async def test_batch_subscribe_of_500_enrols_each_new_subscriber(
    mailchimp: MailchimpMarketing.Client,
    app_client: httpx.AsyncClient,
    audience_id: str,
    pool: asyncpg.Pool,
) -> None:
    flow = await active_flow(app_client, audience_id, {"type": "signed_up_email"}, "Hi", send=False)
    batch = [
        {"email_address": f"b{i}-{uuid.uuid4().hex[:6]}@example.com", "status": "subscribed"}
        for i in range(497)
    ]
    batch += [
        {"email_address": "not-an-email", "status": "subscribed"},
        {"email_address": email("quiet"), "status": "unsubscribed"},
        {"email_address": email("odd"), "status": "subscribed", "merge_fields": {"NOPE": 1}},
    ]
    result = await call(mailchimp.lists.batch_list_members, audience_id, {"members": batch})
    assert (result["total_created"], result["total_updated"], result["error_count"]) == (498, 0, 2)
    assert {e["email_address"]: e["field"] for e in result["errors"]} == {
        "not-an-email": "email_address",
        batch[-1]["email_address"]: "members[499].merge_fields.NOPE",
    }
    assert len(result["new_members"]) == 498

    async def enrolled() -> int:
        return await pool.fetchval(
            "SELECT count(*) FROM enrollments WHERE flow_id = $1::uuid", flow["id"]
        )

    # The 497 subscribers; the unsubscribed one has not consented.
    assert await eventually(lambda: _equals(enrolled, 497), timeout=120)

    again = await call(
        mailchimp.lists.batch_list_members,
        audience_id,
        {"members": [{"email_address": batch[0]["email_address"], "status": "subscribed"}]},
    )
    assert again["errors"][0]["error_code"] == "ERROR_CONTACT_EXISTS"
    updated = await call(
        mailchimp.lists.batch_list_members,
        audience_id,
        {
            "members": [
                {"email_address": batch[0]["email_address"], "merge_fields": {"FNAME": "Bo"}}
            ],
            "update_existing": True,
        },
    )
    assert updated["total_updated"] == 1
    assert updated["updated_members"][0]["merge_fields"]["FNAME"] == "Bo"

    status, body = await failure(
        mailchimp.lists.batch_list_members, audience_id, {"members": batch + batch[:1]}
    )
    assert (status, body["errors"][0]["field"]) == (400, "members")


async def _equals(count: Callable[[], Any], expected: int) -> bool:
    return await count() == expected


async def test_events_and_tags_enrol_like_the_native_api(
    mailchimp: MailchimpMarketing.Client,
    app_client: httpx.AsyncClient,
    audience_id: str,
    client: Client,
) -> None:
    by_event = await active_flow(
        app_client, audience_id, {"type": "event_api", "event_name": "trial_ended"}, "Trial"
    )
    by_tag = await active_flow(app_client, audience_id, {"type": "tag_added", "tag": "vip"}, "VIP")
    ada = email("ada")
    member = await call(
        mailchimp.lists.add_list_member, audience_id, {"email_address": ada, "status": "subscribed"}
    )
    contact_id = member["contact_id"]

    async def post_event(body: dict[str, Any]) -> None:
        answer = await call(mailchimp.lists.create_list_member_event, audience_id, md5(ada), body)
        assert answer.status_code == 204

    await post_event({"name": "trial_started", "properties": {"plan": "pro"}})  # other event
    await post_event({"name": "trial_ended", "is_syncing": True})  # stored, triggers nothing
    assert not await in_flow(client, by_event["id"], contact_id)
    # Activity that happened before the flow was activated does not trigger it.
    await post_event({"name": "trial_ended", "occurred_at": "2020-01-02T10:00:00+00:00"})
    assert not await in_flow(client, by_event["id"], contact_id)
    await post_event({"name": "trial_ended"})
    assert await in_flow(client, by_event["id"], contact_id)
    listed = await call(mailchimp.lists.get_list_member_events, audience_id, md5(ada))
    assert listed["total_items"] == 4
    names = [e["name"] for e in listed["events"]]
    assert names == ["trial_ended", "trial_ended", "trial_started", "trial_ended"]
    assert listed["events"][2]["properties"] == {"plan": "pro"}
    assert listed["events"][3]["occurred_at"].startswith("2020-01-02T10:00:00")

    status, body = await failure(
        mailchimp.lists.create_list_member_event, audience_id, md5(ada), {"name": "x"}
    )
    assert (status, body["title"], body["errors"][0]["field"]) == (400, "Invalid Resource", "name")

    async def tags(changes: list[dict[str, str]], **extra: Any) -> None:
        answer = await call(
            mailchimp.lists.update_list_member_tags,
            audience_id,
            md5(ada),
            {"tags": changes, **extra},
        )
        assert answer.status_code == 204

    await tags([{"name": "other", "status": "active"}])  # another tag
    await tags([{"name": "vip", "status": "active"}], is_syncing=True)  # syncing
    assert not await in_flow(client, by_tag["id"], contact_id)
    await tags([{"name": "vip", "status": "inactive"}, {"name": "other", "status": "inactive"}])
    shown = await call(mailchimp.lists.get_list_member, audience_id, md5(ada))
    assert shown["tags"] == []
    await tags([{"name": "vip", "status": "active"}])
    assert await in_flow(client, by_tag["id"], contact_id)
    shown = await call(mailchimp.lists.get_list_member, audience_id, md5(ada))
    assert [t["name"] for t in shown["tags"]] == ["vip"]


async def test_journey_trigger_uses_the_ids_the_flow_shows(
    mailchimp: MailchimpMarketing.Client,
    app_client: httpx.AsyncClient,
    audience_id: str,
    client: Client,
) -> None:
    body = {
        "name": f"API {uuid.uuid4().hex[:6]}",
        "audience_id": audience_id,
        "triggers": [{"type": "flow_api"}],
        "steps": [{"id": "stay", "type": "delay", "duration": "30d"}],
    }
    flow = (await app_client.post("/v1/flows", json=body)).json()
    shown = (await app_client.get(f"/v1/flows/{flow['id']}")).json()
    journey, step = shown["journey_id"], shown["step_id"]
    assert isinstance(journey, int) and isinstance(step, int)
    ada = email("ada")
    member = await call(
        mailchimp.lists.add_list_member, audience_id, {"email_address": ada, "status": "subscribed"}
    )
    trigger = mailchimp.customerJourneys.trigger

    status, problem = await failure(trigger, journey, step, {"email_address": ada})
    assert (status, problem["title"]) == (400, "Bad Request")  # before activation
    assert not await in_flow(client, flow["id"], member["contact_id"])

    await app_client.post(f"/v1/flows/{flow['id']}/activate")
    assert (await failure(trigger, journey, step + 1, {"email_address": ada}))[0] == 404
    assert (await failure(trigger, journey, step, {"email_address": email("nobody")}))[0] == 404
    answer = await call(trigger, journey, step, {"email_address": ada})
    assert answer.status_code == 204
    assert await in_flow(client, flow["id"], member["contact_id"])

    # A flow without a flow_api trigger shows no ids.
    other = (
        await app_client.post(
            "/v1/flows", json={**body, "name": "x", "triggers": [{"type": "tag_added", "tag": "t"}]}
        )
    ).json()
    assert (other["journey_id"], other["step_id"]) == (None, None)


async def test_archive_then_delete_permanently_erases_the_contact_and_ends_its_runs(
    mailchimp: MailchimpMarketing.Client,
    app_client: httpx.AsyncClient,
    audience_id: str,
    client: Client,
    pool: asyncpg.Pool,
    mail: MailCatcher,
) -> None:
    flow = await active_flow(app_client, audience_id, {"type": "signed_up_email"}, "Welcome")
    ada = email("ada")
    member = await call(
        mailchimp.lists.add_list_member,
        audience_id,
        {"email_address": ada, "status": "subscribed", "merge_fields": {"FNAME": "Ada"}},
    )
    contact_id = member["contact_id"]
    await eventually(lambda: mail.to(ada))  # the welcome email went out; the run now waits
    handle = client.get_workflow_handle(workflow_id(flow["id"], contact_id))
    sent_to = "SELECT count(*) FROM messages WHERE recipient = $1"
    assert await eventually(lambda: pool.fetchval(sent_to, ada)) == 1

    archived = await call(mailchimp.lists.delete_list_member, audience_id, md5(ada))
    assert archived.status_code == 204
    shown = await call(mailchimp.lists.get_list_member, audience_id, md5(ada))
    assert shown["status"] == "archived"
    back = await call(
        mailchimp.lists.set_list_member,
        audience_id,
        md5(ada),
        {"email_address": ada, "status_if_new": "subscribed"},
    )
    assert back["status"] == "subscribed"  # putting an archived member back adds it again

    erased = await call(mailchimp.lists.delete_list_member_permanent, audience_id, md5(ada))
    assert erased.status_code == 204
    assert (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED
    assert (await failure(mailchimp.lists.get_list_member, audience_id, md5(ada)))[0] == 404
    assert (
        await pool.fetchval("SELECT count(*) FROM events WHERE contact_id = $1::uuid", contact_id)
        == 0
    )
    assert await pool.fetchval(sent_to, ada) == 0
    assert (await failure(mailchimp.lists.delete_list_member, audience_id, md5(ada)))[0] == 404

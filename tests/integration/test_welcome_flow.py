"""The walking skeleton on the real stack: a tag enrols a contact into a durable email flow."""

from __future__ import annotations

import uuid

import httpx
from temporalio.client import Client

from journeys.domain.runs import RunStatus, workflow_id
from journeys.embedded.mailcatcher import MailCatcher
from tests.helpers import eventually, flow_body


async def _contact(http: httpx.AsyncClient, audience_id: str, first_name: str = "Ada") -> dict:
    email = f"{first_name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
    response = await http.post(
        f"/v1/audiences/{audience_id}/contacts", json={"email": email, "first_name": first_name}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _active_flow(http: httpx.AsyncClient, audience_id: str, **kwargs: object) -> str:
    response = await http.post("/v1/flows", json=flow_body(audience_id, **kwargs))
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "draft"
    flow_id = response.json()["id"]
    response = await http.post(f"/v1/flows/{flow_id}/activate")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "active"
    return flow_id


async def _tag(http: httpx.AsyncClient, audience_id: str, contact: str, tag: str = "vip") -> dict:
    response = await http.post(
        f"/v1/audiences/{audience_id}/contacts/{contact}/tags", json={"tags": [tag]}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_tag_enrols_contact_sends_rendered_email_and_shows_run(
    app_client: httpx.AsyncClient,
    audience_id: str,
    mail: MailCatcher,
    client: Client,
    worker: object,
) -> None:
    contact = await _contact(app_client, audience_id, "Ada")
    flow_id = await _active_flow(app_client, audience_id)

    tagged = await _tag(app_client, audience_id, contact["subscriber_hash"])
    assert tagged["added"] == ["vip"]
    assert [e["outcome"] for e in tagged["enrolments"]] == ["started"]

    first = (await eventually(lambda: mail.to(contact["email"])))[0]
    assert first.subject == "Welcome Ada"
    assert "<p>Hi Ada</p>" in first.body("html")
    assert "Hi Ada" in first.body("plain")
    assert first.message["From"] == "Journeys Test <flows@journeys.test>"

    async def run_listed() -> dict | None:
        runs = (await app_client.get(f"/v1/flows/{flow_id}/runs")).json()["runs"]
        return runs[0] if runs and runs[0]["step"] == "pause" else None

    run = await eventually(run_listed)
    assert run["contact_id"] == contact["id"]
    assert run["workflow_id"] == workflow_id(flow_id, contact["id"])
    assert (run["status"], run["phase"]) == ("running", "waiting")

    found = [wf.id async for wf in client.list_workflows(f"FlowId = '{flow_id}'")]
    assert found == [workflow_id(flow_id, contact["id"])]

    status = await client.get_workflow_handle(run["workflow_id"]).query(
        "status", result_type=RunStatus
    )
    assert status.step_id == "pause"
    assert status.details.startswith("Waiting 2d (until ")
    assert "then `again` (send_email)" in status.details


async def test_tagging_twice_keeps_one_run_and_two_emails(
    app_client: httpx.AsyncClient,
    audience_id: str,
    mail: MailCatcher,
    client: Client,
    worker: object,
) -> None:
    contact = await _contact(app_client, audience_id, "Bo")
    flow_id = await _active_flow(app_client, audience_id, delay="3s")

    await _tag(app_client, audience_id, contact["email"])
    await eventually(lambda: mail.to(contact["email"]))
    again = await _tag(app_client, audience_id, contact["email"])
    assert again["added"] == [] and again["enrolments"] == []
    # Removing and re-adding the tag is a new tag_added event: the open run absorbs it.
    response = await app_client.delete(
        f"/v1/audiences/{audience_id}/contacts/{contact['id']}/tags/vip"
    )
    assert response.status_code == 204
    readded = await _tag(app_client, audience_id, contact["email"])
    assert readded["added"] == ["vip"]
    assert len(readded["enrolments"]) == 1

    handle = client.get_workflow_handle(workflow_id(flow_id, contact["id"]))
    await handle.result()
    assert [m.subject for m in mail.to(contact["email"])] == ["Welcome Bo", "Still there?"]
    runs = [wf async for wf in client.list_workflows(f"FlowId = '{flow_id}'")]
    assert len(runs) == 1


async def test_completed_contact_is_not_enrolled_again(
    app_client: httpx.AsyncClient,
    audience_id: str,
    mail: MailCatcher,
    client: Client,
    worker: object,
) -> None:
    contact = await _contact(app_client, audience_id, "Cy")
    flow_id = await _active_flow(app_client, audience_id, delay="1s")
    await _tag(app_client, audience_id, contact["id"])
    await client.get_workflow_handle(workflow_id(flow_id, contact["id"])).result()

    await app_client.delete(f"/v1/audiences/{audience_id}/contacts/{contact['id']}/tags/vip")
    again = await _tag(app_client, audience_id, contact["id"])
    assert again["enrolments"][0]["outcome"] == "refused"
    assert "re-entry is off" in again["enrolments"][0]["reason"]
    assert len(mail.to(contact["email"])) == 2


async def test_tag_added_before_activation_enrols_nobody(
    app_client: httpx.AsyncClient, audience_id: str, client: Client, worker: object
) -> None:
    early = await _contact(app_client, audience_id, "Early")
    late = await _contact(app_client, audience_id, "Late")
    response = await app_client.post("/v1/flows", json=flow_body(audience_id))
    flow_id = response.json()["id"]

    tagged = await _tag(app_client, audience_id, early["email"])
    assert tagged["enrolments"] == []
    await app_client.post(f"/v1/flows/{flow_id}/activate")
    # Once a contact tagged after activation shows up, the early one would have too.
    await _tag(app_client, audience_id, late["email"])

    async def listed() -> list[str]:
        return [
            wf.search_attributes.get("ContactId", [None])[0]
            async for wf in client.list_workflows(f"FlowId = '{flow_id}'")
        ]

    assert await eventually(listed) == [late["id"]]

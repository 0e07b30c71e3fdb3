"""Versions and lifecycle on the real stack: draft → active ⇄ paused → archived."""

from __future__ import annotations

import uuid

import httpx
from temporalio.client import Client

from journeys.domain.runs import Phase, RunResult, RunStatus, workflow_id
from journeys.embedded.mailcatcher import MailCatcher
from tests.helpers import eventually


def _flow(audience_id: str, label: str, *, delay: str = "3s", tag: str = "go") -> dict:
    return {
        "name": "Lifecycle",
        "audience_id": audience_id,
        "triggers": [{"type": "tag_added", "tag": tag}],
        "steps": [
            {"id": "first", "type": "send_email", "subject": f"{label} first", "text": "1"},
            {"id": "wait", "type": "delay", "duration": delay},
            {"id": "second", "type": "send_email", "subject": f"{label} second", "text": "2"},
        ],
    }


async def _contact(http: httpx.AsyncClient, audience_id: str) -> dict:
    email = f"life-{uuid.uuid4().hex[:8]}@example.com"
    response = await http.post(f"/v1/audiences/{audience_id}/contacts", json={"email": email})
    return response.json()


async def _tag(http: httpx.AsyncClient, audience_id: str, contact: dict, tag: str = "go") -> dict:
    response = await http.post(
        f"/v1/audiences/{audience_id}/contacts/{contact['id']}/tags", json={"tags": [tag]}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def _status(client: Client, flow_id: str, contact: dict) -> RunStatus:
    return await client.get_workflow_handle(workflow_id(flow_id, contact["id"])).query(
        "status", result_type=RunStatus
    )


async def test_contact_mid_flow_finishes_on_its_version_while_new_ones_get_the_edit(
    app_client: httpx.AsyncClient,
    audience_id: str,
    mail: MailCatcher,
    client: Client,
    worker: object,
) -> None:
    flow_id = (
        await app_client.post("/v1/flows", json=_flow(audience_id, "v1", delay="4s"))
    ).json()["id"]
    await app_client.post(f"/v1/flows/{flow_id}/activate")
    early, late = await _contact(app_client, audience_id), await _contact(app_client, audience_id)
    await _tag(app_client, audience_id, early)
    await eventually(lambda: mail.to(early["email"]))

    edited = await app_client.put(f"/v1/flows/{flow_id}", json=_flow(audience_id, "v2", delay="1s"))
    assert edited.status_code == 200, edited.text
    assert (edited.json()["version"], edited.json()["status"]) == (2, "active")
    await _tag(app_client, audience_id, late)

    for contact in (early, late):
        await client.get_workflow_handle(
            workflow_id(flow_id, contact["id"]), result_type=RunResult
        ).result()
    assert [m.subject for m in mail.to(early["email"])] == ["v1 first", "v1 second"]
    assert [m.subject for m in mail.to(late["email"])] == ["v2 first", "v2 second"]
    versions = (await app_client.get(f"/v1/flows/{flow_id}/versions")).json()
    assert [v["version"] for v in versions["versions"]] == [1, 2] and versions["current"] == 2
    assert versions["versions"][0]["definition"]["steps"][0]["subject"] == "v1 first"


async def test_drafts_are_edited_in_place_and_deleted(
    app_client: httpx.AsyncClient, audience_id: str
) -> None:
    flow_id = (await app_client.post("/v1/flows", json=_flow(audience_id, "d1"))).json()["id"]
    edited = await app_client.put(f"/v1/flows/{flow_id}", json=_flow(audience_id, "d2"))
    assert edited.json()["version"] == 1
    assert edited.json()["definition"]["steps"][0]["subject"] == "d2 first"
    assert (await app_client.delete(f"/v1/flows/{flow_id}")).status_code == 204
    assert (await app_client.get(f"/v1/flows/{flow_id}")).status_code == 404


async def test_triggers_change_only_while_draft_or_paused(
    app_client: httpx.AsyncClient, audience_id: str, worker: object
) -> None:
    flow_id = (await app_client.post("/v1/flows", json=_flow(audience_id, "t"))).json()["id"]
    await app_client.post(f"/v1/flows/{flow_id}/activate")
    other_trigger = _flow(audience_id, "t", tag="other")
    refused = await app_client.put(f"/v1/flows/{flow_id}", json=other_trigger)
    assert refused.status_code == 409
    assert refused.json()["errors"][0]["field"] == "triggers"
    assert (await app_client.delete(f"/v1/flows/{flow_id}")).status_code == 409
    await app_client.post(f"/v1/flows/{flow_id}/pause")
    changed = await app_client.put(f"/v1/flows/{flow_id}", json=other_trigger)
    assert changed.status_code == 200
    assert changed.json()["definition"]["triggers"] == [{"type": "tag_added", "tag": "other"}]
    moved = await app_client.put(
        f"/v1/flows/{flow_id}", json={**other_trigger, "audience_id": str(uuid.uuid4())}
    )
    assert moved.status_code == 422 and moved.json()["errors"][0]["field"] == "audience_id"


async def test_names_are_unique_per_audience(
    app_client: httpx.AsyncClient, audience_id: str
) -> None:
    assert (await app_client.post("/v1/flows", json=_flow(audience_id, "a"))).status_code == 201
    taken = await app_client.post(
        "/v1/flows", json={**_flow(audience_id, "b"), "name": "LIFECYCLE"}
    )
    assert taken.status_code == 409 and taken.json()["errors"][0]["field"] == "name"


async def test_pause_holds_contacts_and_stops_enrolment_resume_restores_both(
    app_client: httpx.AsyncClient,
    audience_id: str,
    mail: MailCatcher,
    client: Client,
    worker: object,
) -> None:
    flow_id = (await app_client.post("/v1/flows", json=_flow(audience_id, "p", delay="2s"))).json()[
        "id"
    ]
    await app_client.post(f"/v1/flows/{flow_id}/activate")
    inside, outside = (
        await _contact(app_client, audience_id),
        await _contact(app_client, audience_id),
    )
    await _tag(app_client, audience_id, inside)
    await eventually(lambda: mail.to(inside["email"]))

    paused = await app_client.post(f"/v1/flows/{flow_id}/pause")
    assert paused.json()["status"] == "paused"
    assert (await _tag(app_client, audience_id, outside))["enrolments"] == []

    async def holding() -> bool:
        return (await _status(client, flow_id, inside)).phase == Phase.PAUSED

    # The delay ends while paused: the contact holds before its next step instead of sending.
    assert await eventually(holding, timeout=30)
    assert [m.subject for m in mail.to(inside["email"])] == ["p first"]

    resumed = await app_client.post(f"/v1/flows/{flow_id}/resume")
    assert resumed.json()["status"] == "active"
    result = await client.get_workflow_handle(
        workflow_id(flow_id, inside["id"]), result_type=RunResult
    ).result()
    assert result.phase == Phase.COMPLETED
    assert [m.subject for m in mail.to(inside["email"])] == ["p first", "p second"]
    await app_client.delete(f"/v1/audiences/{audience_id}/contacts/{outside['id']}/tags/go")
    assert (await _tag(app_client, audience_id, outside))["enrolments"][0]["outcome"] == "started"


async def test_archive_ends_runs_and_enrolment_for_good(
    app_client: httpx.AsyncClient,
    audience_id: str,
    mail: MailCatcher,
    client: Client,
    worker: object,
) -> None:
    flow_id = (await app_client.post("/v1/flows", json=_flow(audience_id, "a", delay="1h"))).json()[
        "id"
    ]
    await app_client.post(f"/v1/flows/{flow_id}/activate")
    inside, later = await _contact(app_client, audience_id), await _contact(app_client, audience_id)
    await _tag(app_client, audience_id, inside)
    await eventually(lambda: mail.to(inside["email"]))

    assert (await app_client.post(f"/v1/flows/{flow_id}/archive")).json()["status"] == "archived"
    result = await client.get_workflow_handle(
        workflow_id(flow_id, inside["id"]), result_type=RunResult
    ).result()
    assert (result.phase, result.reason) == (Phase.EXITED, "the flow was archived")
    assert len(mail.to(inside["email"])) == 1
    assert (await _tag(app_client, audience_id, later))["enrolments"] == []
    for action in ("activate", "resume", "pause"):
        assert (await app_client.post(f"/v1/flows/{flow_id}/{action}")).status_code == 409
    assert (
        await app_client.put(f"/v1/flows/{flow_id}", json=_flow(audience_id, "z"))
    ).status_code == 409

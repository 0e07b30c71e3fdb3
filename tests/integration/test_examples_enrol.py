"""Every example flow, once active, starts a run for a contact from its own trigger's event:
instant triggers enter the contact, timer triggers arm it (no example idles)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from journeys import flowfile
from journeys.domain.runs import Phase, RunStatus, workflow_id
from tests.helpers import eventually

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "flows"

# Example → (contact fields, the activity event that starts its run; None: activation arms).
CASES: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {
    "welcome-series": ({}, None),
    "order-confirmation": ({}, {"type": "order_placed", "data": {"order_id": "o-1"}}),
    "sms-keyword-optin": (
        {"phone": "+15550142", "sms_status": "subscribed"},
        {"type": "sms_received", "data": {"body": " join "}},
    ),
    "eventbrite-followup": (
        {},
        {"type": "eventbrite_checked_in", "data": {"event_id": "512345678"}},
    ),
    "abandoned-cart": (
        {},
        {
            "type": "cart_updated",
            "data": {"cart_id": "c-1", "items": [{"product_id": "p-1", "quantity": 1}]},
        },
    ),
    "win-back": ({}, {"type": "order_placed", "data": {"order_id": "o-2"}}),
    "unopened-resend": ({}, {"type": "email_sent", "data": {"campaign_id": "{campaign}"}}),
    "birthday": ({"birthday": "07-14"}, None),
}


async def start_example(app_client: httpx.AsyncClient, example: str) -> tuple[str, str]:
    """Creates and activates the example in an audience of its own, then does what starts a
    contact's run (signs up, or posts the trigger's activity). Returns (flow id, contact id)."""
    fields, activity = CASES[example]
    audience = (await app_client.post("/v1/audiences", json={"name": example})).json()["id"]
    campaign = (
        await app_client.post(
            "/v1/campaigns", json={"audience_id": audience, "name": "Autumn", "subject": "Autumn"}
        )
    ).json()["id"]
    env = {"AUDIENCE_ID": audience, "CAMPAIGN_ID": campaign, "EVENTBRITE_EVENT_ID": "512345678"}
    text = (EXAMPLES / f"{example}.yaml").read_text()
    for name, value in env.items():
        text = text.replace("${" + name + "}", value)
    email = f"ex-{uuid.uuid4().hex[:8]}@example.com"
    if example == "birthday":  # already in the audience when the flow is activated
        await app_client.post(f"/v1/audiences/{audience}/contacts", json={"email": email, **fields})
    created = await app_client.post("/v1/flows", json=flowfile.load(text))
    assert created.status_code == 201, created.text
    flow_id = created.json()["id"]
    activated = await app_client.post(f"/v1/flows/{flow_id}/activate")
    assert activated.status_code == 200, activated.text
    contact = (
        await app_client.post(f"/v1/audiences/{audience}/contacts", json={"email": email, **fields})
    ).json()
    if activity is not None:
        data = {
            k: v.replace("{campaign}", campaign) if isinstance(v, str) else v
            for k, v in activity["data"].items()
        }
        posted = await app_client.post(
            f"/v1/audiences/{audience}/contacts/{contact['id']}/activity",
            json={"type": activity["type"], "data": data},
        )
        assert posted.status_code == 202, posted.text
    return flow_id, contact["id"]


@pytest.mark.parametrize("example", sorted(CASES))
async def test_every_example_starts_a_run_from_its_trigger(
    app_client: httpx.AsyncClient, client: Client, worker: object, example: str
) -> None:
    flow_id, contact_id = await start_example(app_client, example)
    handle = client.get_workflow_handle(workflow_id(flow_id, contact_id))

    async def started() -> RunStatus | None:
        try:
            return await handle.query("status", result_type=RunStatus)
        except Exception:  # noqa: BLE001 - not started yet
            return None

    status = await eventually(started)
    assert status.phase != Phase.SKIPPED, status.details
    if example == "birthday":  # armed by the activation's pass over the audience, which reports

        async def armed() -> dict[str, Any] | None:
            flow = (await app_client.get(f"/v1/flows/{flow_id}")).json()
            return flow["arming"] if flow["arming"] and flow["arming"]["done"] else None

        progress = await eventually(armed)
        assert (progress["total"], progress["armed"], progress["skipped"]) == (1, 1, 0)
    if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        await handle.terminate("test over")

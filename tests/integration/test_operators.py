"""What operators see: runs found by flow name, a contact found by email with its waits in words
and links to the right runs, and steps in the order they were entered."""

from __future__ import annotations

import asyncio
import contextlib
import io
import uuid
from typing import Any
from urllib.parse import quote

import httpx
from temporalio.client import Client

from journeys.cli import main
from journeys.config import Settings
from journeys.domain.runs import Phase, RunStatus, workflow_id
from tests.helpers import eventually
from tests.live_server import live_api  # noqa: F401


async def _flow(http: httpx.AsyncClient, audience_id: str, name: str, steps: list[Any]) -> str:
    body = {
        "name": name,
        "audience_id": audience_id,
        "triggers": [{"type": "tag_added", "tag": "ops"}],
        "steps": steps,
    }
    created = await http.post("/v1/flows", json=body)
    assert created.status_code == 201, created.text
    await http.post(f"/v1/flows/{created.json()['id']}/activate")
    return str(created.json()["id"])


def _email(step_id: str) -> dict[str, Any]:
    return {"id": step_id, "type": "send_email", "subject": step_id, "text": step_id}


async def _waiting(client: Client, flow_id: str, contact_id: str) -> RunStatus | None:
    handle = client.get_workflow_handle(workflow_id(flow_id, contact_id))
    status = await handle.query("status", result_type=RunStatus)
    return status if status.phase == Phase.WAITING else None


async def test_a_contact_is_found_by_email_with_its_waits_in_words_and_its_runs(
    app_client: httpx.AsyncClient,
    audience_id: str,
    client: Client,
    settings: Settings,
    api_key: str,
    live_api: str,  # noqa: F811
    worker: object,
) -> None:
    tag = uuid.uuid4().hex[:6]
    delayed = await _flow(
        app_client,
        audience_id,
        f"Ops delay {tag}",
        [_email("hello"), {"id": "breathe", "type": "delay", "duration": "3d"}, _email("again")],
    )
    waiting = await _flow(
        app_client,
        audience_id,
        f"Ops wait {tag}",
        [
            {
                "id": "upgrade",
                "type": "wait_for_trigger",
                "timeout": "7d",
                "conditions": {"conditions": [{"type": "tag", "tag": "customer"}]},
                "matched": [_email("thanks")],
                "timed_out": [_email("nudge")],
            }
        ],
    )
    email = f"ops-{tag}@example.com"
    created = await app_client.post(
        f"/v1/audiences/{audience_id}/contacts", json={"email": email, "timezone": "Asia/Tokyo"}
    )
    contact_id = created.json()["id"]
    await app_client.post(
        f"/v1/audiences/{audience_id}/contacts/{contact_id}/tags", json={"tags": ["ops"]}
    )
    for flow_id in (delayed, waiting):
        await eventually(lambda flow_id=flow_id: _waiting(client, flow_id, contact_id))

    # Runs are found by the flow's name in Temporal's visibility.
    async def listed() -> list[str]:
        query = f"FlowName = 'Ops delay {tag}'"
        return [run.id async for run in client.list_workflows(query)]

    assert await eventually(listed) == [workflow_id(delayed, contact_id)]

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = await asyncio.to_thread(
            main,
            ["contact", "where", email, "--api-url", live_api, "--api-key", api_key],
        )
    assert code == 0
    text = out.getvalue()
    assert f"Ops delay {tag} (v1, entry 1): waiting" in text
    assert "then `again` (send_email)" in text
    assert f"Ops wait {tag} (v1, entry 1): waiting" in text
    assert "Waiting until tagged `customer`, then take `thanks`; or on " in text
    assert "UTC take `nudge`." in text
    assert "Asia/Tokyo" in text
    assert "· " in text and "hello (send_email): sent" in text

    journeys = (
        await app_client.get(f"/v1/audiences/{audience_id}/contacts/{email}/journeys")
    ).json()["journeys"]
    by_flow = {j["flow_id"]: j for j in journeys}
    for flow_id in (delayed, waiting):
        journey = by_flow[flow_id]
        description = await client.get_workflow_handle(workflow_id(flow_id, contact_id)).describe()
        # The link opens this very run: namespace, workflow id and run id.
        assert journey["link"] == (
            f"{settings.effective_temporal_ui_url}/namespaces/{settings.temporal_namespace}"
            f"/workflows/{quote(description.id, safe='')}/{description.run_id}/history"
        )
        assert journey["link"] in text
        assert journey["until"] is not None and journey["until_local"] is not None
    assert [s["step_id"] for s in by_flow[delayed]["timeline"]] == ["hello", "breathe"]

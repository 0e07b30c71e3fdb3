"""An activation arms a contact by starting its run with the arming event in the run's input
(no signal); arming the same contact again, as a page redone after a crash does, reaches the
same run, which ignores the repeat."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from journeys.dispatch import Arming
from journeys.domain.runs import FireMoment, FlowEvent, Phase, RunStatus, workflow_id
from journeys.registry import ActiveFlow
from journeys.store import flows
from journeys.wiring import Core
from tests.helpers import eventually


async def _kinds(client: Client, wf_id: str) -> list[EventType.ValueType]:
    history = await client.get_workflow_handle(wf_id).fetch_history()
    return [event.event_type for event in history.events]


async def test_an_activation_starts_armed_runs_with_their_event_and_a_repeat_is_absorbed(
    app_client: httpx.AsyncClient, client: Client, core: Core, worker: object
) -> None:
    audience = (await app_client.post("/v1/audiences", json={"name": "Arming"})).json()["id"]
    email = f"arm-{uuid.uuid4().hex[:8]}@example.com"
    contact = (
        await app_client.post(
            f"/v1/audiences/{audience}/contacts", json={"email": email, "birthday": "07-14"}
        )
    ).json()
    body = {
        "name": "Birthdays",
        "audience_id": audience,
        "triggers": [{"type": "birthday", "time_of_day": "09:00"}],
        "steps": [{"id": "hello", "type": "send_email", "subject": "Happy", "text": "Hi"}],
    }
    flow_id = (await app_client.post("/v1/flows", json=body)).json()["id"]
    assert (await app_client.post(f"/v1/flows/{flow_id}/activate")).status_code == 200

    async def arming_done() -> dict[str, Any] | None:
        arming = (await app_client.get(f"/v1/flows/{flow_id}")).json()["arming"]
        return arming if arming and arming["done"] else None

    assert (await arming_done() or await eventually(arming_done))["armed"] == 1
    handle = client.get_workflow_handle(workflow_id(flow_id, contact["id"]))

    async def armed() -> RunStatus | None:
        status = await handle.query("status", result_type=RunStatus)
        return status if status.phase == Phase.ARMED and status.fires_at else None

    status = await eventually(armed)
    assert status.details.startswith("Armed: `birthday` fires ")
    assert "-07-14 09:00 UTC" in status.details
    kinds = await _kinds(client, handle.id)
    # The arming event came in the input: no signal, no read before the timer.
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED not in kinds
    assert EventType.EVENT_TYPE_TIMER_STARTED in kinds
    started = (await handle.fetch_history()).events[0]
    given = json.loads(started.workflow_execution_started_event_attributes.input.payloads[0].data)
    armed_by = given["state"]["armed_by"]
    assert armed_by["id"].startswith("arm:") and armed_by["id"].endswith(contact["id"])
    run_id = (await handle.describe()).run_id

    # The page again (a worker died after its starts): the same run hears the same event.
    row = await flows.get(core.pool, flow_id)
    assert row is not None
    repeat = FlowEvent.model_validate(armed_by)
    later = FireMoment(at=status.fires_at.replace(year=status.fires_at.year + 1), described="x")
    enrolments = await core.ingest.arm_many(
        ActiveFlow.from_row(row), "birthday", [Arming(contact["id"], repeat, later)], concurrency=1
    )
    assert [e.outcome for e in enrolments] == ["started"]
    kinds = await _kinds(client, handle.id)
    assert kinds.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) == 1
    assert (await handle.describe()).run_id == run_id
    again = await handle.query("status", result_type=RunStatus)
    assert (again.phase, again.fires_at, again.details) == (
        Phase.ARMED,
        status.fires_at,
        status.details,
    )
    await handle.terminate("test over")

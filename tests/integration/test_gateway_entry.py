"""Entry decided at the gateway (issue 13): the run begins with its first step.

The gateway records the entry next to the event and starts the run with it, so the run has no
`begin_enrollment` activity and no start signal; a run whose start was lost is started by the
outbox relay, once; a run that still holds the workflow id takes the event instead.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from api.outbox import OutboxRelay
from journeys.domain.runs import ActivityName, workflow_id
from journeys.domain.search import JOURNEY_PHASE
from journeys.ingest import from_stored
from journeys.store import contacts, enrollments, events
from journeys.wiring import Core
from tests.helpers import eventually, flow_body

_SEND = [{"id": "hello", "type": "send_email", "subject": "Hi", "html": "<p>Hi</p>"}]


@dataclass
class _Stack:
    """What every test here arranges with: the API, the stack behind it and a fresh audience."""

    http: httpx.AsyncClient
    audience_id: str
    pool: asyncpg.Pool
    client: Client
    core: Core

    async def flow(self, **extra: object) -> str:
        """Creates and activates a flow of the audience; returns once the gateway holds it."""
        body = flow_body(self.audience_id, name=f"Entry {uuid.uuid4().hex[:6]}", **extra)
        flow_id = (await self.http.post("/v1/flows", json=body)).json()["id"]
        assert (await self.http.post(f"/v1/flows/{flow_id}/activate")).status_code == 200
        await eventually(lambda: self.core.registry.holds(flow_id))
        return str(flow_id)

    async def contact(self) -> str:
        """A new contact of the audience."""
        row, _ = await contacts.upsert(
            self.pool,
            audience_id=self.audience_id,
            email=f"entry-{uuid.uuid4().hex[:8]}@example.com",
        )
        return str(row["id"])

    async def entries(self, flow_id: str, contact_id: str) -> list[dict]:
        """The contact's entries into the flow, first first."""
        rows = await self.pool.fetch(
            "SELECT entry, status, run_id, event_id FROM enrollments"
            " WHERE flow_id = $1::uuid AND contact_id = $2::uuid ORDER BY entry",
            flow_id,
            contact_id,
        )
        return [dict(r) for r in rows]


@pytest.fixture
def stack(
    app_client: httpx.AsyncClient,
    audience_id: str,
    pool: asyncpg.Pool,
    client: Client,
    core: Core,
    worker: object,
) -> _Stack:
    """The API with a worker running, and a fresh audience."""
    return _Stack(http=app_client, audience_id=audience_id, pool=pool, client=client, core=core)


async def test_a_tag_enters_at_the_gateway_and_the_run_only_sends(stack: _Stack) -> None:
    flow_id = await stack.flow(steps=_SEND)
    contact_id = await stack.contact()

    tagged = await stack.http.post(
        f"/v1/audiences/{stack.audience_id}/contacts/{contact_id}/tags", json={"tags": ["vip"]}
    )
    assert [e["outcome"] for e in tagged.json()["enrolments"]] == ["started"]

    handle = stack.client.get_workflow_handle(workflow_id(flow_id, contact_id))
    result = await handle.result()
    assert result["phase"] == "completed" and result["entry"] == 1
    history = await handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert scheduled == [ActivityName.SEND_EMAIL]
    assert not any(
        e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED for e in history.events
    )
    # The last step's send closed the entry: no bookkeeping marker, a short history.
    assert not any(e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED for e in history.events)
    assert len(history.events) <= 14
    described = await handle.describe()
    assert described.typed_search_attributes.get(JOURNEY_PHASE) == "completed"
    # The entry the gateway recorded names the run it started and was closed by it.
    [entry] = await stack.entries(flow_id, contact_id)
    assert (entry["entry"], entry["status"], entry["run_id"]) == (1, "completed", described.run_id)
    stored = await stack.pool.fetchrow(
        "SELECT dispatched_at FROM events WHERE id = $1::uuid", uuid.UUID(entry["event_id"])
    )
    assert stored["dispatched_at"] is not None


async def test_a_last_step_that_tags_closes_the_entry_in_its_own_transaction(
    stack: _Stack,
) -> None:
    flow_id = await stack.flow(steps=[{"id": "mark", "type": "add_tag", "tag": "greeted"}])
    contact_id = await stack.contact()
    await stack.http.post(
        f"/v1/audiences/{stack.audience_id}/contacts/{contact_id}/tags", json={"tags": ["vip"]}
    )
    handle = stack.client.get_workflow_handle(workflow_id(flow_id, contact_id))
    assert (await handle.result())["phase"] == "completed"
    # The tag and the end of the entry in one activity: the run records no end of its own.
    history = await handle.fetch_history()
    assert not any(e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED for e in history.events)
    [entry] = await stack.entries(flow_id, contact_id)
    assert entry["status"] == "completed"
    tags = await stack.http.get(f"/v1/audiences/{stack.audience_id}/contacts/{contact_id}")
    assert "greeted" in tags.json()["tags"]


async def test_an_entry_whose_run_never_started_is_started_once_by_the_relay(stack: _Stack) -> None:
    flow_id = await stack.flow(steps=_SEND)
    contact_id = await stack.contact()
    # The gateway stored the event and recorded the entry, then died before Temporal heard.
    stored, _ = await events.record(
        stack.pool,
        idempotency_key=f"lost-{uuid.uuid4().hex}",
        audience_id=stack.audience_id,
        contact_id=contact_id,
        type="tag_added",
        data={"tag": "vip"},
    )
    assert await enrollments.admit(
        stack.pool,
        flow_id=flow_id,
        contact_id=contact_id,
        entry=1,
        version=1,
        workflow_id=workflow_id(flow_id, contact_id),
        trigger_type="tag_added",
        event_id=stored["id"],
    )

    relay = OutboxRelay(stack.core.ingest, min_age=-1)
    assert await relay.run_once() >= 1
    handle = stack.client.get_workflow_handle(workflow_id(flow_id, contact_id))
    result = await handle.result()
    assert (result["phase"], result["entry"]) == ("completed", 1)
    [entry] = await stack.entries(flow_id, contact_id)
    assert (entry["entry"], entry["status"]) == (1, "completed")
    assert entry["run_id"] == (await handle.describe()).run_id

    # Delivering the same event again (a second relay racing the first) changes nothing.
    dispatcher = stack.core.ingest.dispatcher
    assert dispatcher is not None
    again = await dispatcher.deliver(
        from_stored({**stored, "idempotency_key": "again"}), {**stored, "dispatched_at": None}
    )
    assert [e.outcome for e in again.enrolments] == ["already_in_flow"]
    assert len(await stack.entries(flow_id, contact_id)) == 1
    runs = [wf async for wf in stack.client.list_workflows(f"FlowId = '{flow_id}'")]
    assert len(runs) == 1


async def test_a_run_still_holding_the_workflow_id_takes_the_event(stack: _Stack) -> None:
    steps = [{"id": "pause", "type": "delay", "duration": "1d"}, *_SEND]
    flow_id = await stack.flow(steps=steps, settings={"reentry": {"allowed": True}})
    contact_id = await stack.contact()
    tags = f"/v1/audiences/{stack.audience_id}/contacts/{contact_id}/tags"
    assert (await stack.http.post(tags, json={"tags": ["vip"]})).status_code == 200
    handle = stack.client.get_workflow_handle(workflow_id(flow_id, contact_id))
    first_run = (await handle.describe()).run_id
    # The entry was closed while its run is still open (it finishes right after closing it).
    await stack.pool.execute(
        "UPDATE enrollments SET status = 'completed', ended_at = now()"
        " WHERE flow_id = $1::uuid AND contact_id = $2::uuid",
        flow_id,
        contact_id,
    )
    assert (await stack.http.delete(f"{tags}/vip")).status_code == 204
    again = (await stack.http.post(tags, json={"tags": ["vip"]})).json()

    assert [e["outcome"] for e in again["enrolments"]] == ["already_in_flow"]
    assert [e["entry"] for e in await stack.entries(flow_id, contact_id)] == [1]
    assert (await handle.describe()).run_id == first_run
    await handle.terminate("test over")


async def test_one_event_decides_entries_into_two_flows_by_their_rules(stack: _Stack) -> None:
    spaced = await stack.flow(
        steps=_SEND,
        settings={"reentry": {"allowed": True, "min_interval": "30d"}},
    )
    again = await stack.flow(steps=_SEND, settings={"reentry": {"allowed": True}})
    contact_id = await stack.contact()
    tags = f"/v1/audiences/{stack.audience_id}/contacts/{contact_id}/tags"
    first = (await stack.http.post(tags, json={"tags": ["vip"]})).json()["enrolments"]
    assert sorted(e["outcome"] for e in first) == ["started", "started"]
    for flow_id in (spaced, again):
        await stack.client.get_workflow_handle(workflow_id(flow_id, contact_id)).result()

    assert (await stack.http.delete(f"{tags}/vip")).status_code == 204
    second = {
        e["flow_id"]: e
        for e in (await stack.http.post(tags, json={"tags": ["vip"]})).json()["enrolments"]
    }
    assert second[spaced]["outcome"] == "refused"
    assert "re-entry is allowed only" in second[spaced]["reason"]
    assert second[again]["outcome"] == "started"
    handle = stack.client.get_workflow_handle(workflow_id(again, contact_id))
    result = await handle.result()
    assert (result["phase"], result["entry"]) == ("completed", 2)
    assert [e["entry"] for e in await stack.entries(spaced, contact_id)] == [1]
    assert [(e["entry"], e["status"]) for e in await stack.entries(again, contact_id)] == [
        (1, "completed"),
        (2, "completed"),
    ]

    # Consent is the run's to refuse, so the runs list shows the contact skipped, with why.
    unsubscribed = await stack.contact()
    await stack.pool.execute(
        "UPDATE contacts SET status = 'unsubscribed' WHERE id = $1::uuid", unsubscribed
    )
    tagged = await stack.http.post(
        f"/v1/audiences/{stack.audience_id}/contacts/{unsubscribed}/tags", json={"tags": ["vip"]}
    )
    assert [e["outcome"] for e in tagged.json()["enrolments"]] == ["started", "started"]
    skipped = await stack.client.get_workflow_handle(workflow_id(spaced, unsubscribed)).result()
    assert skipped["phase"] == "skipped" and "unsubscribed" in skipped["reason"]

    async def listed() -> dict | None:
        runs = (await stack.http.get(f"/v1/flows/{spaced}/runs")).json()["runs"]
        return next((r for r in runs if r["contact_id"] == unsubscribed), None)

    run = await eventually(listed)
    assert run["phase"] == "skipped"


async def test_an_event_that_enrols_nobody_is_settled_and_open_runs_still_hear_theirs(
    stack: _Stack,
) -> None:
    idle = await stack.contact()
    posted = await stack.http.post(
        f"/v1/audiences/{stack.audience_id}/contacts/{idle}/events", json={"name": "page_viewed"}
    )
    assert posted.status_code == 202 and posted.json()["enrolments"] == []
    stored = await stack.pool.fetchrow(
        "SELECT dispatched_at FROM events WHERE id = $1::uuid", uuid.UUID(posted.json()["event_id"])
    )
    assert stored["dispatched_at"] is not None

    # A contact waiting in a flow whose exit goal is that event is told, and leaves.
    steps = [{"id": "pause", "type": "delay", "duration": "1d"}, *_SEND]
    goal = {"exit_when": [{"type": "event", "name": "page_viewed"}]}
    flow_id = await stack.flow(steps=steps, settings=goal)
    waiting = await stack.contact()
    tags = f"/v1/audiences/{stack.audience_id}/contacts/{waiting}/tags"
    assert (await stack.http.post(tags, json={"tags": ["vip"]})).status_code == 200
    posted = await stack.http.post(
        f"/v1/audiences/{stack.audience_id}/contacts/{waiting}/events", json={"name": "page_viewed"}
    )
    assert posted.status_code == 202 and posted.json()["enrolments"] == []
    result = await stack.client.get_workflow_handle(workflow_id(flow_id, waiting)).result()
    assert result["phase"] == "exited" and "exit goal" in result["reason"]


async def test_an_event_that_enrols_nobody_is_stored_delivered_once_and_a_repeat_is_a_duplicate(
    stack: _Stack,
) -> None:
    # Settled by the insert that stores it (no flow could concern it, the contact is in none).
    idle = await stack.contact()
    url = f"/v1/audiences/{stack.audience_id}/contacts/{idle}/activity"
    body = {"type": "page_visited", "data": {"url": "https://shop.test/about"}}
    headers = {"Idempotency-Key": f"visit-{uuid.uuid4().hex}"}
    first = await stack.http.post(url, json=body, headers=headers)
    assert first.status_code == 202, first.text
    assert first.json()["duplicate"] is False and first.json()["enrolments"] == []
    stored = await stack.pool.fetchrow(
        "SELECT dispatched_at FROM events WHERE id = $1::uuid", uuid.UUID(first.json()["event_id"])
    )
    assert stored["dispatched_at"] is not None

    again = await stack.http.post(url, json=body, headers=headers)
    assert again.status_code == 202, again.text
    assert again.json() == {**first.json(), "duplicate": True}
    count = await stack.pool.fetchval(
        "SELECT count(*) FROM events WHERE contact_id = $1::uuid", uuid.UUID(idle)
    )
    assert count == 1

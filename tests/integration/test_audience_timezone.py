"""`PATCH /v1/audiences/{id}`: renaming, and a new time zone that moves armed date timers.

On the dev server with the session's worker: the birthday flow arms the audience's contacts on
activation; moving the audience's zone moves the timers of contacts without a zone of their own.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from api.outbox import OutboxRelay
from journeys.domain import search
from journeys.domain.runs import Phase, RunStatus, workflow_id
from journeys.store import audiences, rezones
from journeys.wiring import Core
from tests.helpers import eventually


def _birthday() -> date:
    """A day two months ahead (not 29 February), so the next birthday is that very day."""
    day = datetime.now(UTC).date() + timedelta(days=60)
    return day + timedelta(days=1) if (day.month, day.day) == (2, 29) else day


def _at_nine(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(9), ZoneInfo(zone)).astimezone(UTC)


async def _fires_at(client: Client, wf_id: str, expected: datetime) -> RunStatus:
    async def check() -> RunStatus | None:
        try:
            status = await client.get_workflow_handle(wf_id).query("status", result_type=RunStatus)
        except RPCError as err:  # not started yet by the activation's arming
            assert err.status == RPCStatusCode.NOT_FOUND, err
            return None
        return status if status.phase == Phase.ARMED and status.fires_at == expected else None

    return await eventually(check, timeout=60, interval=0.2)


async def _reads_and_updates(client: Client, wf_id: str) -> tuple[int, int]:
    """Local-activity markers and search-attribute updates in the run's history so far."""
    history = await client.get_workflow_handle(wf_id).fetch_history()
    kinds = [event.event_type for event in history.events]
    return (
        kinds.count(EventType.EVENT_TYPE_MARKER_RECORDED),
        kinds.count(EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES),
    )


async def _signals_handled(client: Client, wf_id: str) -> int:
    """Signals in the run's history that a workflow task after them has handled."""
    history = await client.get_workflow_handle(wf_id).fetch_history()
    kinds = [event.event_type for event in history.events]
    last_task = max(
        (i for i, k in enumerate(kinds) if k == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
        default=-1,
    )
    return kinds[:last_task].count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)


async def _signals_handled_reach(client: Client, wf_id: str, count: int) -> bool:
    return await _signals_handled(client, wf_id) >= count


async def _armed_audience(
    app_client: httpx.AsyncClient, client: Client
) -> tuple[str, str, str, str, date]:
    """An audience in New York time with Ada (no zone of her own) and Kenji (Asia/Tokyo), and
    an active birthday flow that armed both: (audience, flow, Ada's run, Kenji's run, day)."""
    response = await app_client.post(
        "/v1/audiences", json={"name": "Zones", "timezone": "America/New_York"}
    )
    audience = response.json()["id"]
    day = _birthday()
    people = {}
    for name, own_zone in (("ada", None), ("kenji", "Asia/Tokyo")):
        body = {"email": f"{name}-{uuid.uuid4().hex[:6]}@example.com", "birthday": f"{day:%m-%d}"}
        if own_zone:
            body["timezone"] = own_zone
        response = await app_client.post(f"/v1/audiences/{audience}/contacts", json=body)
        assert response.status_code in (200, 201), response.text
        people[name] = response.json()["id"]
    response = await app_client.post(
        "/v1/flows",
        json={
            "name": "Birthday",
            "audience_id": audience,
            "triggers": [{"type": "birthday", "time_of_day": "09:00"}],
            "steps": [{"id": "hello", "type": "send_email", "subject": "Happy", "text": "Hi"}],
        },
    )
    flow = response.json()["id"]
    assert (await app_client.post(f"/v1/flows/{flow}/activate")).status_code == 200
    ada, kenji = (workflow_id(flow, people[name]) for name in ("ada", "kenji"))
    status = await _fires_at(client, ada, _at_nine(day, "America/New_York"))
    assert "America/New_York" in status.details
    await _fires_at(client, kenji, _at_nine(day, "Asia/Tokyo"))
    return audience, flow, ada, kenji, day


async def test_a_new_audience_zone_moves_the_timers_of_contacts_without_their_own(
    app_client: httpx.AsyncClient, client: Client, worker: Worker
) -> None:
    audience, flow, ada, kenji, day = await _armed_audience(app_client, client)
    # The activation computed each moment: the run rested on its timer from its first task,
    # already published as armed (no read, no search-attribute update of its own).
    assert await _reads_and_updates(client, ada) == (0, 0)
    assert (await client.get_workflow_handle(ada).describe()).typed_search_attributes.get(
        search.JOURNEY_PHASE
    ) == "armed"

    response = await app_client.patch(
        f"/v1/audiences/{audience}", json={"timezone": "Europe/Paris"}
    )
    assert response.status_code == 200, response.text
    assert (response.json()["timezone"], response.json()["rearmed"]) == ("Europe/Paris", 1)
    assert (await app_client.get(f"/v1/audiences/{audience}")).json()["timezone"] == (
        "Europe/Paris"
    )
    status = await _fires_at(client, ada, _at_nine(day, "Europe/Paris"))
    assert "Europe/Paris" in status.details
    assert await _reads_and_updates(client, ada) == (1, 0)  # the new zone's moment, read once
    # Kenji's own zone rules his timer: it has not moved (and it is still armed).
    await _fires_at(client, kenji, _at_nine(day, "Asia/Tokyo"))

    # A rename alone re-arms nobody.
    response = await app_client.patch(f"/v1/audiences/{audience}", json={"name": "Zones (EU)"})
    assert (response.json()["name"], response.json()["rearmed"]) == ("Zones (EU)", 0)
    await app_client.post(f"/v1/flows/{flow}/archive")


async def test_a_zone_change_whose_request_died_is_told_by_the_outbox_relay(
    app_client: httpx.AsyncClient, client: Client, core: Core, worker: Worker
) -> None:
    audience, flow, ada, kenji, day = await _armed_audience(app_client, client)
    # What a PATCH whose process died after its commit leaves: the zone and the change stored,
    # no run told yet.
    async with core.pool.acquire() as conn, conn.transaction():
        await audiences.update(conn, audience, timezone="Europe/Paris")
        change = await rezones.record(
            conn, audience_id=audience, zone="Europe/Paris", previous="America/New_York"
        )
    relay = OutboxRelay(core.ingest, min_age=0.0)
    assert await relay.tell_rezones() == 1
    status = await _fires_at(client, ada, _at_nine(day, "Europe/Paris"))
    assert "Europe/Paris" in status.details
    await _fires_at(client, kenji, _at_nine(day, "Asia/Tokyo"))
    told = await core.pool.fetchrow(
        "SELECT told, told_at FROM audience_rezones WHERE id = $1::uuid", change["id"]
    )
    assert told is not None and told["told"] == 1 and told["told_at"] is not None
    assert await relay.tell_rezones() == 0  # told once
    # Told twice (two processes finishing the same change): the run ignores the repeat.
    reads = await _reads_and_updates(client, ada)
    signals = await _signals_handled(client, ada)
    assert await core.ingest.audience_rezoned(change) == 1
    await eventually(lambda: _signals_handled_reach(client, ada, signals + 1))
    assert await _reads_and_updates(client, ada) == reads
    await _fires_at(client, ada, _at_nine(day, "Europe/Paris"))
    await app_client.post(f"/v1/flows/{flow}/archive")


async def test_a_bad_audience_update_is_a_problem_naming_the_field(
    app_client: httpx.AsyncClient, audience_id: str
) -> None:
    for body, field in (
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": None}, "timezone"),
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"name": "two\nlines"}, "name"),
        ({"colour": "blue"}, "colour"),
    ):
        response = await app_client.patch(f"/v1/audiences/{audience_id}", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in response.json()["errors"]] == [field], response.text
    missing = await app_client.patch(f"/v1/audiences/{uuid.uuid4()}", json={"name": "x"})
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    # Nothing was changed by the refused requests.
    audience = (await app_client.get(f"/v1/audiences/{audience_id}")).json()
    assert (audience["name"], audience["timezone"]) == ("Test audience", "Europe/Paris")

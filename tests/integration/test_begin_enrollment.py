"""`begin_enrollment`, which a run that fires a timer trigger uses to decide its own entry: the
plain case in one statement, every refusal with its reason, each run entering once."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from activities.enrollment import EnrollmentActivities
from journeys.domain.runs import BeginEnrollmentInput, BeginEnrollmentResult
from journeys.store import audiences, contacts, flows


async def _flow_and_contact(pool: asyncpg.Pool, **contact: Any) -> tuple[str, str]:
    audience = await audiences.create(pool, name="Entries", timezone="UTC")
    person, _ = await contacts.upsert(
        pool,
        audience_id=audience["id"],
        email=f"e-{uuid.uuid4().hex[:8]}@example.com",
        **contact,
    )
    body = {
        "name": "Entries",
        "audience_id": audience["id"],
        "triggers": [{"type": "birthday"}],
        "steps": [{"id": "hello", "type": "send_email", "subject": "Hi", "text": "Hi"}],
    }
    async with pool.acquire() as conn, conn.transaction():
        flow = await flows.create(conn, audience_id=audience["id"], definition=body)
    return flow["id"], person["id"]


async def _begin(
    pool: asyncpg.Pool,
    flow_id: str,
    contact_id: str,
    run_id: str,
    *,
    allowed: bool = True,
    interval: float | None = None,
) -> BeginEnrollmentResult:
    # Run ids are unique across flows (a retry is recognised by its run id alone).
    run_id = f"{flow_id}/{run_id}"
    return await EnrollmentActivities(pool).begin_enrollment(
        BeginEnrollmentInput(
            flow_id=flow_id,
            version=1,
            contact_id=contact_id,
            workflow_id=f"flow-{flow_id}-contact-{contact_id}",
            run_id=run_id,
            trigger_type="birthday",
            event_id=None,
            reentry_allowed=allowed,
            reentry_min_interval_seconds=interval,
        )
    )


async def _entries(pool: asyncpg.Pool, flow_id: str) -> list[tuple[int, str, str]]:
    rows = await pool.fetch(
        "SELECT entry, status, run_id FROM enrollments WHERE flow_id = $1::uuid ORDER BY entry",
        flow_id,
    )
    return [(r["entry"], r["status"], r["run_id"].split("/")[-1]) for r in rows]


async def test_a_plain_entry_is_recorded_once_per_run_and_ends_a_stale_one(
    pool: asyncpg.Pool,
) -> None:
    flow, contact = await _flow_and_contact(pool)
    assert await _begin(pool, flow, contact, "run-1") == BeginEnrollmentResult(
        admitted=True, entry=1
    )
    # A retry of the same run (its first attempt's answer was lost) makes no second entry.
    assert (await _begin(pool, flow, contact, "run-1")).entry == 1
    assert await _entries(pool, flow) == [(1, "running", "run-1")]
    # Another run holds the workflow id now (run-1 was terminated): run-1's entry is stale.
    assert await _begin(pool, flow, contact, "run-2") == BeginEnrollmentResult(
        admitted=True, entry=2
    )
    assert await _entries(pool, flow) == [(1, "abandoned", "run-1"), (2, "running", "run-2")]


async def test_every_refusal_is_explained_and_records_nothing(pool: asyncpg.Pool) -> None:
    flow, contact = await _flow_and_contact(pool)
    assert (await _begin(pool, flow, contact, "run-1")).admitted
    off = await _begin(pool, flow, contact, "run-2", allowed=False)
    assert off == BeginEnrollmentResult(
        admitted=False, reason="the contact already went through this flow and re-entry is off"
    )
    soon = await _begin(pool, flow, contact, "run-3", interval=86_400)
    assert not soon.admitted and (soon.reason or "").startswith("re-entry is allowed only")
    assert [entry for entry, _, _ in await _entries(pool, flow)] == [1]

    gone, unsubscribed = await _flow_and_contact(pool, status="unsubscribed")
    refused = await _begin(pool, gone, unsubscribed, "run-4")
    assert refused == BeginEnrollmentResult(
        admitted=False,
        reason="the contact is unsubscribed and the flow is not transactional",
    )
    missing = await _begin(pool, gone, str(uuid.uuid4()), "run-5")
    assert missing == BeginEnrollmentResult(admitted=False, reason="the contact no longer exists")
    assert await _entries(pool, gone) == []

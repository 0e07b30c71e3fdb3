"""Benchmark data: audiences and flows through the API, contacts in bulk straight into Postgres.

Contacts are set-up, not what is measured, so they are copied in (100k in a few seconds)
rather than created one request at a time. Flows go through the API like an author's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from journeys.security import subscriber_hash

TAG = "vip"


@dataclass(frozen=True)
class Contact:
    id: str
    email: str


async def create_audience(http: httpx.AsyncClient, name: str) -> str:
    """A new audience; its id."""
    response = await http.post("/v1/audiences", json={"name": name, "timezone": "UTC"})
    response.raise_for_status()
    return response.json()["id"]


async def create_contacts(
    pool: asyncpg.Pool, audience_id: str, count: int, *, birthday: str | None = None
) -> list[Contact]:
    """`count` subscribed contacts in the audience, in a stable order.

    Args:
        birthday: Every contact's `birthday` (`MM-DD`), for date-trigger benchmarks.
    """
    batch = uuid.uuid4().hex[:6]
    emails = [f"c{i}-{batch}@bench.test" for i in range(count)]
    audience = uuid.UUID(audience_id)
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            "contacts",
            columns=["audience_id", "email", "subscriber_hash", "first_name", "birthday"],
            records=[
                (audience, email, subscriber_hash(email), "Bench", birthday) for email in emails
            ],
        )
        rows = await conn.fetch(
            "SELECT id::text, email FROM contacts WHERE audience_id = $1 AND email LIKE $2",
            audience,
            f"%-{batch}@bench.test",
        )
    ids = {row["email"]: row["id"] for row in rows}
    return [Contact(ids[email], email) for email in emails]


def send_step(step_id: str) -> dict[str, Any]:
    """A `send_email` step with merge tags, as a real welcome email has."""
    return {
        "id": step_id,
        "type": "send_email",
        "subject": "Welcome {{ contact.first_name }}",
        "html": "<p>Hi {{ contact.first_name }}, thanks for joining.</p>",
    }


def delay_step(step_id: str, duration: str) -> dict[str, Any]:
    return {"id": step_id, "type": "delay", "duration": duration}


async def create_draft_flow(
    http: httpx.AsyncClient,
    audience_id: str,
    steps: list[dict[str, Any]],
    *,
    name: str,
    trigger: dict[str, Any],
) -> str:
    """Creates a draft flow with one trigger; returns its id.

    Raises:
        RuntimeError: the API refused the flow (its answer in the message).
    """
    body = {"name": name, "audience_id": audience_id, "triggers": [trigger], "steps": steps}
    response = await http.post("/v1/flows", json=body)
    if response.status_code != 201:
        raise RuntimeError(f"flow not created: {response.status_code} {response.text}")
    return str(response.json()["id"])


async def create_flow(
    http: httpx.AsyncClient, audience_id: str, steps: list[dict[str, Any]], *, name: str
) -> str:
    """Creates and activates a `tag_added` flow; returns its id."""
    flow_id = await create_draft_flow(
        http, audience_id, steps, name=name, trigger={"type": "tag_added", "tag": TAG}
    )
    response = await http.post(f"/v1/flows/{flow_id}/activate")
    response.raise_for_status()
    return flow_id


async def tag(http: httpx.AsyncClient, audience_id: str, contact: Contact) -> None:
    """Tags the contact through the gateway: the `tag_added` event that enrols it.

    Raises:
        RuntimeError: the gateway refused, or did not start exactly one run.
    """
    response = await http.post(
        f"/v1/audiences/{audience_id}/contacts/{contact.id}/tags", json={"tags": [TAG]}
    )
    if response.status_code != 200:
        raise RuntimeError(f"tag refused: {response.status_code} {response.text[:300]}")
    outcomes = [e["outcome"] for e in response.json()["enrolments"]]
    if outcomes != ["started"]:
        raise RuntimeError(f"expected one started run, got {outcomes}")


async def visit(
    http: httpx.AsyncClient, audience_id: str, contact: Contact, url: str, *, enrols: bool
) -> None:
    """Posts a `page_visited` activity event of the contact through the gateway.

    Raises:
        RuntimeError: the gateway refused, or enrolled the contact when `enrols` is False (or
            did not start exactly one run when it is True).
    """
    response = await http.post(
        f"/v1/audiences/{audience_id}/contacts/{contact.id}/activity",
        json={"type": "page_visited", "data": {"url": url}},
    )
    if response.status_code != 202:
        raise RuntimeError(f"event refused: {response.status_code} {response.text[:300]}")
    outcomes = [e["outcome"] for e in response.json()["enrolments"]]
    if outcomes != (["started"] if enrols else []):
        raise RuntimeError(
            f"expected {'one started run' if enrols else 'no enrolment'}, got {outcomes}"
        )

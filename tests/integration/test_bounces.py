"""Bounces and complaints: an SMTP server that refuses addresses, and reports after the send."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from temporalio.exceptions import ApplicationError

from activities.delivery import DeliveryActivities
from journeys.channels.email import EmailSender, SmtpConfig
from journeys.config import Settings
from journeys.domain.runs import SendEmailInput
from journeys.embedded.mailcatcher import CatchingHandler, MailCatcher
from journeys.embedded.process import free_port
from journeys.ingest import Ingest
from journeys.store import audiences, contacts, flows
from tests.helpers import flow_body
from workers.worker import tracking_config


class RefusingHandler(CatchingHandler):
    """Refuses the addresses in `replies` at RCPT with the reply given for each."""

    def __init__(self) -> None:
        super().__init__(None)
        self.replies: dict[str, str] = {}

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.replies:
            return self.replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture(scope="module")
def refusing() -> Iterator[tuple[MailCatcher, RefusingHandler]]:
    handler = RefusingHandler()
    with MailCatcher(port=free_port(), handler=handler) as catcher:
        yield catcher, handler


@pytest.fixture
def delivery(
    pool: asyncpg.Pool, settings: Settings, refusing: tuple[MailCatcher, RefusingHandler]
) -> DeliveryActivities:
    catcher, _ = refusing
    return DeliveryActivities(
        pool,
        EmailSender(SmtpConfig(host="127.0.0.1", port=catcher.port, timeout=5)),
        default_from=settings.mail_from,
        ingest=Ingest(pool, None),
        tracking=tracking_config(settings),
        soft_bounce_limit=3,
    )


async def _audience(pool: asyncpg.Pool, count: int) -> tuple[str, list[dict[str, Any]]]:
    audience = await audiences.create(pool, name="Bounces", timezone="UTC")
    async with pool.acquire() as conn, conn.transaction():
        steps = [
            {
                "id": "hello",
                "type": "send_email",
                "subject": "News",
                "html": '<p>Hi</p><a href="https://example.com/x">x</a>',
            }
        ]
        flow = await flows.create(
            conn, audience_id=audience["id"], definition=flow_body(audience["id"], steps=steps)
        )
    people = []
    for _ in range(count):
        row, _ = await contacts.upsert(
            pool, audience_id=audience["id"], email=f"b-{uuid.uuid4().hex[:8]}@example.com"
        )
        people.append(row)
    return flow["id"], people


def _send(flow_id: str, contact: dict, key: str | None = None) -> SendEmailInput:
    return SendEmailInput(
        idempotency_key=key or uuid.uuid4().hex,
        workflow_id="wf",
        flow_id=flow_id,
        version=1,
        step_id="hello",
        contact_id=contact["id"],
        audience_id=contact["audience_id"],
    )


async def _status(pool: asyncpg.Pool, contact: dict) -> str:
    return (await contacts.get(pool, contact["id"]))["status"]


async def _bounces(pool: asyncpg.Pool, flow_id: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT data->>'bounce' AS kind FROM events WHERE type = 'email_bounced'"
        " AND data->>'flow_id' = $1 ORDER BY received_at",
        flow_id,
    )
    return [r["kind"] for r in rows]


async def test_permanent_refusal_cleans_that_contact_and_the_others_are_sent(
    pool: asyncpg.Pool,
    delivery: DeliveryActivities,
    refusing: tuple[MailCatcher, RefusingHandler],
) -> None:
    catcher, handler = refusing
    flow_id, people = await _audience(pool, 3)
    gone = people[1]
    handler.replies[gone["email"]] = f"550 5.1.1 <{gone['email']}>: mailbox unavailable"

    results = []
    for person in people:
        try:
            results.append((await delivery.send_email(_send(flow_id, person))).status)
        except ApplicationError as err:
            assert err.non_retryable and err.type == "PermanentSendError"
            results.append("refused")
    assert results == ["sent", "refused", "sent"]
    assert [await _status(pool, p) for p in people] == ["subscribed", "cleaned", "subscribed"]
    assert [len(catcher.to(p["email"])) for p in people] == [1, 0, 1]
    assert await _bounces(pool, flow_id) == ["hard"]
    bounced = await pool.fetch(
        "SELECT recipient, status FROM messages WHERE bounce = 'hard' AND flow_id = $1::uuid",
        flow_id,
    )
    assert [(r["recipient"], r["status"]) for r in bounced] == [(gone["email"], "failed")]

    # A cleaned address gets no more marketing email.
    again = await delivery.send_email(_send(flow_id, gone))
    assert (again.status, again.reason) == ("skipped", "status is cleaned")


async def test_soft_bounces_retry_and_clean_at_the_limit_a_delivery_resets_the_count(
    pool: asyncpg.Pool,
    delivery: DeliveryActivities,
    refusing: tuple[MailCatcher, RefusingHandler],
) -> None:
    catcher, handler = refusing
    flow_id, [full, recovers] = await _audience(pool, 2)
    for person in (full, recovers):
        handler.replies[person["email"]] = "452 4.2.2 mailbox full"

    # Deferred twice: retryable, still subscribed; then delivered, which resets the count.
    key = uuid.uuid4().hex
    for _ in range(2):
        with pytest.raises(ApplicationError) as err:
            await delivery.send_email(_send(flow_id, recovers, key))
        assert not err.value.non_retryable
    del handler.replies[recovers["email"]]
    assert (await delivery.send_email(_send(flow_id, recovers, key))).status == "sent"
    count = await pool.fetchval(
        "SELECT soft_bounces FROM contacts WHERE id = $1::uuid", recovers["id"]
    )
    assert (count, await _status(pool, recovers)) == (0, "subscribed")

    # Three in a row (the limit): the third is refused for good and the address cleaned.
    outcomes = []
    for _ in range(3):
        with pytest.raises(ApplicationError) as err:
            await delivery.send_email(_send(flow_id, full, key + "-full"))
        outcomes.append(err.value.non_retryable)
    assert outcomes == [False, False, True]
    assert await _status(pool, full) == "cleaned"
    assert catcher.to(full["email"]) == []
    assert (await _bounces(pool, flow_id)).count("soft") == 5


async def test_reported_bounces_and_complaints(
    app_client: httpx.AsyncClient,
    audience_id: str,
    pool: asyncpg.Pool,
    delivery: DeliveryActivities,
) -> None:
    people = []
    for name in ("hard", "soft", "spam"):
        response = await app_client.post(
            f"/v1/audiences/{audience_id}/contacts",
            json={"email": f"{name}-{uuid.uuid4().hex[:6]}@example.com"},
        )
        people.append(response.json())
    hard, soft, spam = people
    async with pool.acquire() as conn, conn.transaction():
        flow = await flows.create(conn, audience_id=audience_id, definition=flow_body(audience_id))
    result = await delivery.send_email(_send(flow["id"], hard))
    assert result.status == "sent"

    response = await app_client.post(
        "/v1/bounces", json={"type": "hard", "message_id": result.message_id, "id": "r-1"}
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"contact_id": hard["id"], "status": "cleaned", "recorded": True}
    repeat = await app_client.post(
        "/v1/bounces", json={"type": "hard", "message_id": result.message_id, "id": "r-1"}
    )
    assert repeat.json()["recorded"] is False
    assert await _bounces(pool, flow["id"]) == ["hard"]

    body = {
        "type": "soft",
        "audience_id": audience_id,
        "email": soft["email"],
        "diagnostic": "452 4.2.2 mailbox full",
    }
    response = await app_client.post("/v1/bounces", json=body)
    assert response.json()["status"] == "subscribed"
    data = await pool.fetchval(
        "SELECT data FROM events WHERE contact_id = $1::uuid AND type = 'email_bounced'",
        soft["id"],
    )
    assert data == {"bounce": "soft", "diagnostic": "452 4.2.2 mailbox full"}

    body = {"type": "complaint", "audience_id": audience_id, "email": spam["email"]}
    response = await app_client.post("/v1/bounces", json=body)
    assert response.json()["status"] == "unsubscribed"
    types = await pool.fetch(
        "SELECT type FROM events WHERE contact_id = $1::uuid ORDER BY received_at", spam["id"]
    )
    assert [r["type"] for r in types][-2:] == ["email_complained", "unsubscribed"]

    # Bad reports: named fields, nothing recorded; no key, no entry.
    response = await app_client.post("/v1/bounces", json={"type": "hard"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    response = await app_client.post(
        "/v1/bounces", json={"type": "hard", "message_id": "<nobody@example.com>"}
    )
    assert response.status_code == 404 and response.json()["errors"][0]["field"] == "message_id"
    response = await app_client.post(
        "/v1/bounces", json={"type": "bounced", "message_id": result.message_id}
    )
    assert response.status_code == 422 and "type" in response.json()["errors"][0]["field"]
    response = await app_client.post(
        "/v1/bounces", json=body, headers={"Authorization": "Bearer nope"}
    )
    assert response.status_code == 401

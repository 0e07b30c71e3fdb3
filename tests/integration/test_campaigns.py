"""Campaigns on the real stack: a durable fan-out that sends exactly one email per recipient."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
from temporalio.client import Client
from temporalio.worker import Worker

from activities.campaigns import CampaignActivities
from journeys.channels.email import EmailSender, SmtpConfig
from journeys.config import Settings
from journeys.domain.campaigns import (
    SEND_CAMPAIGN_PAGE,
    CampaignProgress,
    CampaignSendInput,
    campaign_workflow_id,
)
from journeys.embedded.mailcatcher import CaughtMail, MailCatcher
from journeys.embedded.process import free_port
from journeys.store import campaigns
from journeys.wiring import Core
from tests.helpers import eventually
from workers.worker import tracking_config
from workflows.campaign_send import CampaignSendWorkflow


async def _bulk_contacts(
    pool: asyncpg.Pool, audience_id: str, count: int, *, status: str = "subscribed"
) -> str:
    """`count` contacts with addresses `<prefix>-<n>@example.com`; returns the prefix."""
    prefix = f"c{uuid.uuid4().hex[:6]}"
    await pool.execute(
        """
        INSERT INTO contacts (audience_id, email, subscriber_hash, status, first_name)
        SELECT $1::uuid, e, md5(lower(e)), $4, 'N' || n
        FROM generate_series(1, $3) AS n, LATERAL (SELECT $2 || '-' || n || '@example.com') AS x(e)
        """,
        audience_id,
        prefix,
        count,
        status,
    )
    return prefix


def _of(mail: MailCatcher, campaign_id: str) -> list[CaughtMail]:
    return [m for m in mail.messages if m.message["X-Journeys-Campaign"] == campaign_id]


async def _campaign(http: httpx.AsyncClient, audience_id: str, **content: Any) -> str:
    body = {"audience_id": audience_id, "name": "Spring", "subject": "Spring sale", **content}
    response = await http.post("/v1/campaigns", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def test_campaign_to_a_thousand_sends_exactly_one_each_and_counts_unique_opens(
    app_client: httpx.AsyncClient,
    audience_id: str,
    pool: asyncpg.Pool,
    mail: MailCatcher,
    client: Client,
    worker: object,
    settings: Settings,
) -> None:
    prefix = await _bulk_contacts(pool, audience_id, 1000)
    await _bulk_contacts(pool, audience_id, 10, status="unsubscribed")
    await _bulk_contacts(pool, audience_id, 5, status="cleaned")
    campaign_id = await _campaign(
        app_client,
        audience_id,
        html='<p>Hi {{ contact.first_name }}</p><a href="https://shop.example.com/spring">Shop</a>',
        rate_per_second=5000,
    )
    response = await app_client.post(f"/v1/campaigns/{campaign_id}/send")
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "sending"

    handle = client.get_workflow_handle(
        campaign_workflow_id(campaign_id), result_type=CampaignProgress
    )
    final = await handle.result(rpc_timeout=None)
    assert (final.recipients, final.sent, final.failed) == (1000, 1000, 0)
    # Every page in one run: a run that continues as new within a second of its start is held
    # back a second by the server, so a run goes on to the next page itself.
    history = await handle.fetch_history()
    first = history.events[0].workflow_execution_started_event_attributes
    assert not first.continued_execution_run_id
    pages = [
        e
        for e in history.events
        if e.activity_task_scheduled_event_attributes.activity_type.name == SEND_CAMPAIGN_PAGE
    ]
    assert len(pages) == -(-1015 // settings.campaign_batch_size)
    sent = _of(mail, campaign_id)
    assert len(sent) == 1000
    assert len({m.rcpt_tos[0] for m in sent}) == 1000
    assert all(m.rcpt_tos[0].startswith(prefix) for m in sent)
    assert sent[0].message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # 30 recipients open it (some twice): 30 unique opens.
    pixels = [re.search(r'src="([^"]*/t/o/[^"]+)"', m.body("html")).group(1) for m in sent[:30]]  # type: ignore[union-attr]
    for url in pixels + pixels[:5]:
        assert (await app_client.get(urlsplit(url).path)).status_code == 200
    campaign = (await app_client.get(f"/v1/campaigns/{campaign_id}")).json()
    assert campaign["status"] == "sent" and campaign["sent_at"]
    progress = campaign["progress"]
    assert {k: progress[k] for k in ("recipients", "sent", "failed", "bounced")} == {
        "recipients": 1000,
        "sent": 1000,
        "failed": 0,
        "bounced": 0,
    }
    assert (progress["unique_opens"], progress["opens"]) == (30, 35)
    assert progress["unique_clicks"] == 0 and progress["unsubscribes"] == 0
    sent_events = await pool.fetchval(
        "SELECT count(*) FROM events WHERE type = 'email_sent' AND data->>'campaign_id' = $1",
        campaign_id,
    )
    assert sent_events == 1000

    again = await app_client.post(f"/v1/campaigns/{campaign_id}/send")
    assert again.status_code == 409


async def test_segment_test_send_schedule_pause_resume_cancel(
    app_client: httpx.AsyncClient,
    audience_id: str,
    mail: MailCatcher,
    client: Client,
    worker: object,
) -> None:
    people = []
    for name in ("Ann", "Ben", "Cid"):
        response = await app_client.post(
            f"/v1/audiences/{audience_id}/contacts",
            json={
                "email": f"{name.lower()}-{uuid.uuid4().hex[:6]}@example.com",
                "first_name": name,
            },
        )
        people.append(response.json())
    for person in people[:2]:
        await app_client.post(
            f"/v1/audiences/{audience_id}/contacts/{person['id']}/tags", json={"tags": ["vip"]}
        )
    segment = {"conditions": [{"type": "tag", "tag": "vip"}]}
    campaign_id = await _campaign(
        app_client, audience_id, text="Hello {{ contact.first_name }}", segment=segment
    )

    # A typo in a merge tag is refused, naming the field.
    bad = await app_client.put(
        f"/v1/campaigns/{campaign_id}",
        json={"name": "x", "subject": "{{ contact.frist_name }}", "text": "t"},
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "subject"

    test = await app_client.post(
        f"/v1/campaigns/{campaign_id}/test", json={"email": people[2]["email"]}
    )
    assert test.status_code == 200, test.text
    [tested] = await eventually(lambda: mail.to(people[2]["email"]))
    assert tested.subject == "[Test] Spring sale" and "Hello Cid" in tested.body()

    # Scheduled for later: a durable timer; pause, resume, then cancel before it fires.
    later = await app_client.post(
        f"/v1/campaigns/{campaign_id}/send", json={"send_at": "2099-01-01T09:00:00Z"}
    )
    assert later.status_code == 202 and later.json()["status"] == "scheduled"
    handle = client.get_workflow_handle(campaign_workflow_id(campaign_id))
    assert await handle.query("progress", result_type=CampaignProgress) == CampaignProgress()
    assert (await app_client.post(f"/v1/campaigns/{campaign_id}/pause")).json()[
        "status"
    ] == "paused"
    assert (await app_client.post(f"/v1/campaigns/{campaign_id}/resume")).json()[
        "status"
    ] == "sending"
    assert (await app_client.post(f"/v1/campaigns/{campaign_id}/cancel")).status_code == 200
    await handle.result()
    campaign = (await app_client.get(f"/v1/campaigns/{campaign_id}")).json()
    assert campaign["status"] == "cancelled" and campaign["progress"]["recipients"] == 0
    assert (await app_client.post(f"/v1/campaigns/{campaign_id}/resume")).status_code == 409

    # Sent now, untracked: it reaches the segment only, links as written, no pixel.
    now_id = await _campaign(
        app_client,
        audience_id,
        html='<p>Hello</p><a href="https://example.com/a">a</a>',
        segment=segment,
        tracking={"opens": False, "clicks": False},
    )
    await app_client.post(f"/v1/campaigns/{now_id}/send")
    await client.get_workflow_handle(campaign_workflow_id(now_id)).result()
    sent = _of(mail, now_id)
    assert sorted(m.rcpt_tos[0] for m in sent) == sorted(p["email"] for p in people[:2])
    html = sent[0].body("html")
    assert 'href="https://example.com/a"' in html and "/t/o/" not in html and "/u/" in html


async def test_worker_killed_mid_send_and_restarted_still_sends_exactly_one_each(
    app_client: httpx.AsyncClient,
    audience_id: str,
    pool: asyncpg.Pool,
    settings: Settings,
    core: Core,
    client: Client,
) -> None:
    await _bulk_contacts(pool, audience_id, 1000)
    campaign_id = await _campaign(app_client, audience_id, text="Hi", rate_per_second=100)
    await campaigns.set_status(pool, campaign_id, "sending", only_from=("draft",))
    queue = f"campaign-restart-{uuid.uuid4().hex[:6]}"

    def worker(catcher: MailCatcher) -> Worker:
        sender = CampaignActivities(
            pool,
            EmailSender(SmtpConfig(host="127.0.0.1", port=catcher.port)),
            default_from=settings.mail_from,
            ingest=core.ingest,
            tracking=tracking_config(settings),
        )
        return Worker(
            client,
            task_queue=queue,
            workflows=[CampaignSendWorkflow],
            activities=[sender.send_campaign_page, sender.finish_campaign],
            graceful_shutdown_timeout=timedelta(0),
        )

    with MailCatcher(port=free_port()) as catcher:
        first = worker(catcher)
        running = asyncio.create_task(first.run())
        handle = await client.start_workflow(
            CampaignSendWorkflow.run,
            CampaignSendInput(campaign_id=campaign_id, batch_size=200, rate_per_second=100),
            id=campaign_workflow_id(campaign_id),
            task_queue=queue,
        )
        await eventually(lambda: len(catcher.messages) >= 150, timeout=60)
        await first.shutdown()  # mid-page: the activity is cancelled
        await running
        at_kill = len(catcher.messages)
        assert at_kill < 1000

        async with worker(catcher):
            final = await handle.result()
        recipients = [m.rcpt_tos[0] for m in catcher.messages]
    assert (final.sent, len(recipients), len(set(recipients))) == (1000, 1000, 1000)
    report = await campaigns.report(pool, campaign_id)
    assert (report["recipients"], report["sent"]) == (1000, 1000)

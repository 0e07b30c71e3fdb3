"""A campaign to 1,000 contacts whose worker process is SIGKILLed mid-send and restarted.

The worker runs in a subprocess (`bench.worker`, the real worker) with the fault hook of
`activities.faults` armed by file, so the kill lands right after the SMTP server accepted an
email and before the ledger recorded it: the worst moment. A supervisor restarts it, as a
process manager would. Then: exactly one email per recipient at the SMTP server; 30 recipients
open theirs through the pixel URL in the email they received; the 970 others start the
`campaign_unopened` journey once `within` has passed, the 30 do not.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from activities.faults import CHAOS_KILL_FILE
from bench.chaos_fleet import Fleet
from bench.procs import Child
from journeys.config import Settings
from journeys.domain.campaigns import CampaignProgress, CampaignSendInput, campaign_workflow_id
from journeys.embedded.mailcatcher import CaughtMail, MailCatcher
from journeys.embedded.process import free_port
from journeys.store import campaigns
from tests.helpers import eventually
from tests.integration.test_campaigns import _bulk_contacts, _campaign

RECIPIENTS = 1000
OPENERS = 15  # before the kill, and as many after the restart
# Short for the test; long enough to open a few emails within it on a busy machine.
WITHIN_SECONDS = 45
WITHIN = f"{WITHIN_SECONDS}s"
TAG = "unopened-followup"


@pytest.fixture
async def catcher() -> AsyncIterator[MailCatcher]:
    with MailCatcher(port=free_port()) as caught:
        yield caught


@asynccontextmanager
async def _workers(
    settings: Settings, catcher: MailCatcher, tmp_path: Path, queue: str
) -> AsyncIterator[Fleet]:
    """Two worker processes: the campaign's sender on `queue`, restarted whenever it dies, and
    one that runs the journeys its `email_sent` events arm (on a queue of their own)."""
    journeys = f"{queue}-journeys"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    env.update(
        JOURNEYS_HOME=str(tmp_path),
        JOURNEYS_DATABASE_URL=settings.effective_database_url,
        JOURNEYS_TEMPORAL_ADDRESS=settings.effective_temporal_address,
        JOURNEYS_TASK_QUEUE=journeys,
        JOURNEYS_SMTP_PORT=str(catcher.port),
        JOURNEYS_MAIL_FROM=settings.mail_from,
        JOURNEYS_SECRET_KEY=settings.secret_key.get_secret_value(),
    )

    def child(name: str, task_queue: str, **extra: str) -> Child:
        return Child(
            name,
            [
                sys.executable,
                "-m",
                "bench.worker",
                "--kind",
                "journeys",
                "--task-queue",
                task_queue,
            ],
            env={**env, **extra},
            log=tmp_path / f"{name}.log",
        )

    sender = child(
        "sender",
        queue,
        # One connection, so one email in flight: the kill cannot land while another email
        # is between its `sending` mark and the server (that one would be lost, not doubled).
        JOURNEYS_SMTP_POOL_SIZE="1",
        **{CHAOS_KILL_FILE: str(tmp_path / "kill")},
    )
    runner = child("journeys", journeys)
    await asyncio.gather(sender.start(timeout=90), runner.start(timeout=90))
    supervised = Fleet([sender], kill_base=tmp_path / "kill")
    try:
        yield supervised
    finally:
        await supervised.close()
        await runner.stop()


def _pixel(mail: CaughtMail) -> str:
    """The path of the open pixel in the email as received."""
    found = re.search(r'src="([^"]*/t/o/[^"]+)"', mail.body("html"))
    assert found, mail.body("html")
    return urlsplit(found.group(1)).path


async def _armed(pool: asyncpg.Pool, emails: list[str]) -> bool:
    """Whether Temporal has each of these recipients' `campaign_unopened` run (their
    `email_sent` was delivered: the run was started, armed by it)."""
    delivered = await pool.fetchval(
        "SELECT count(*) FROM events e JOIN contacts c ON c.id = e.contact_id"
        " WHERE e.type = 'email_sent' AND e.dispatched_at IS NOT NULL"
        " AND c.email = ANY($1::text[])",
        emails,
    )
    return delivered == len(emails)


async def _open(http: httpx.AsyncClient, mails: list[CaughtMail]) -> None:
    for mail in mails:
        response = await http.get(_pixel(mail))
        assert response.status_code == 200, response.text


@pytest.mark.timeout(900)  # a thousand journeys; far less on a machine that is not shared
async def test_campaign_worker_killed_mid_send_sends_exactly_one_each_and_unopened_follow_up(
    app_client: httpx.AsyncClient,
    audience_id: str,
    pool: asyncpg.Pool,
    client: Client,
    worker: object,
    settings: Settings,
    catcher: MailCatcher,
    tmp_path: Path,
) -> None:
    await _bulk_contacts(pool, audience_id, RECIPIENTS)
    campaign_id = await _campaign(
        app_client,
        audience_id,
        html='<p>Hi {{ contact.first_name }}</p><a href="https://shop.example.com/spring">Shop</a>',
        rate_per_second=5000,
    )
    created = await app_client.post(
        "/v1/flows",
        json={
            "name": "Did not open the spring sale",
            "audience_id": audience_id,
            "triggers": [
                {
                    "type": "campaign_unopened",
                    "email": {"campaign_id": campaign_id},
                    "within": WITHIN,
                }
            ],
            "steps": [{"id": "tag", "type": "add_tag", "tag": TAG}],
        },
    )
    assert created.status_code == 201, created.text
    flow_id = created.json()["id"]
    assert (await app_client.post(f"/v1/flows/{flow_id}/activate")).status_code == 200
    await campaigns.set_status(pool, campaign_id, "sending", only_from=("draft",))
    queue = f"campaign-crash-{uuid.uuid4().hex[:6]}"
    # Started after the activation: their registries load the flow as they start.
    async with _workers(settings, catcher, tmp_path, queue) as supervisor:
        await _send_kill_restart_and_open(
            app_client, pool, client, supervisor, catcher, queue, campaign_id, flow_id
        )
        await _journeys_follow_for_the_unopened(pool, audience_id, flow_id)


async def _send_kill_restart_and_open(
    http: httpx.AsyncClient,
    pool: asyncpg.Pool,
    client: Client,
    supervisor: Fleet,
    catcher: MailCatcher,
    queue: str,
    campaign_id: str,
    flow_id: str,
) -> None:
    handle = await client.start_workflow(
        "CampaignSendWorkflow",
        CampaignSendInput(campaign_id=campaign_id, batch_size=250, rate_per_second=5000),
        id=campaign_workflow_id(campaign_id),
        task_queue=queue,
        result_type=CampaignProgress,
    )

    # Some recipients open their email before the kill...
    await eventually(lambda: len(catcher.messages) >= OPENERS, timeout=60)
    early = list(catcher.messages[:OPENERS])
    await eventually(lambda: _armed(pool, [m.rcpt_tos[0] for m in early]), timeout=30)
    await _open(http, early)

    # ...then the worker dies right after the server accepted an email, and is restarted.
    died = await supervisor.kill_mid_send(timeout=60)
    assert died is not None, "no send came by to die in"
    at_kill = len(catcher.messages)
    assert at_kill < RECIPIENTS
    await supervisor.wait_all_up(timeout=90)

    # Some recipients of emails sent by the restarted worker open theirs too.
    await eventually(lambda: len(catcher.messages) >= at_kill + 10 + OPENERS, timeout=60)
    late = list(catcher.messages[at_kill + 10 : at_kill + 10 + OPENERS])
    await eventually(lambda: _armed(pool, [m.rcpt_tos[0] for m in late]), timeout=30)
    await _open(http, late)

    final = await handle.result(rpc_timeout=None)
    recipients = [m.rcpt_tos[0] for m in catcher.messages]
    assert len(supervisor.deaths) == 1
    assert (len(recipients), len(set(recipients))) == (RECIPIENTS, RECIPIENTS)
    # The email the kill cut off had reached the server: recorded uncertain, not sent again.
    assert (final.recipients, final.sent, final.uncertain, final.failed) == (
        RECIPIENTS,
        RECIPIENTS - 1,
        1,
        0,
    )
    report = await campaigns.report(pool, campaign_id)
    assert (report["sent"], report["uncertain"], report["unique_opens"]) == (
        RECIPIENTS - 1,
        1,
        2 * OPENERS,
    )


async def _journeys_follow_for_the_unopened(
    pool: asyncpg.Pool, audience_id: str, flow_id: str
) -> None:
    """After `within`: a journey (the tag) for each of the 970 who did not open, none for the
    30 who did; every run has ended."""
    opened = {
        r["email"]
        for r in await pool.fetch(
            "SELECT DISTINCT c.email FROM events e JOIN contacts c ON c.id = e.contact_id"
            " WHERE e.audience_id = $1::uuid AND e.type = 'email_opened'",
            audience_id,
        )
    }
    assert len(opened) == 2 * OPENERS

    async def settled() -> dict[str, int]:
        # One snapshot for both reads: a run ending between them would count as a run but
        # not yet as a tag (its tag and its entry's end commit together).
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            return await _counts(conn)

    async def _counts(conn: asyncpg.Connection) -> dict[str, int]:
        rows = await conn.fetch(
            "SELECT c.email FROM contacts c JOIN contact_tags ct ON ct.contact_id = c.id"
            " JOIN tags t ON t.id = ct.tag_id WHERE t.audience_id = $1::uuid AND t.name = $2",
            audience_id,
            TAG,
        )
        runs = await conn.fetchrow(
            "SELECT count(*) AS total, count(*) FILTER (WHERE status = 'running') AS running"
            " FROM enrollments WHERE flow_id = $1::uuid",
            flow_id,
        )
        counts = {
            "tagged": len(rows),
            "opened_and_tagged": len(opened & {r["email"] for r in rows}),
            "runs": runs["total"],
            "running": runs["running"],
        }
        assert counts["running"] == 0 and counts["runs"] >= RECIPIENTS - 2 * OPENERS, counts
        return counts

    counts = await eventually(settled, timeout=300, interval=0.5)
    early = await pool.fetchval(
        "SELECT count(*) FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id"
        " JOIN events e ON e.contact_id = ct.contact_id AND e.type = 'email_sent'"
        " WHERE t.audience_id = $1::uuid AND t.name = $2"
        " AND ct.added_at < e.occurred_at + $3::interval",
        audience_id,
        TAG,
        timedelta(seconds=WITHIN_SECONDS),
    )
    assert early == 0, f"{early} journeys started before `within` had passed"
    # A run is recorded in `enrollments` once its journey starts: a disarmed one never is.
    assert counts == {
        "tagged": RECIPIENTS - 2 * OPENERS,
        "opened_and_tagged": 0,
        "runs": RECIPIENTS - 2 * OPENERS,
        "running": 0,
    }

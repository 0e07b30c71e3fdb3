"""Benchmark: the engagement loop. A campaign send through the SMTP sink, and the open pixel.

Campaign: `POST /v1/campaigns/{id}/send` to N contacts (no rate limit in the way), timed from the
request to the sink accepting the last email; baseline: a raw `aiosmtplib` loop sending the same
messages (assembled here with the worker's code and serialised, untimed: the loop only sends)
to the same sink over as many connections as the worker keeps (`JOURNEYS_SMTP_POOL_SIZE`).

Tracking: opens/s and response times of `GET /t/o/<token>.gif` in a closed loop, against the
gateway's plain event ingest of the same event (`POST …/activity` with `email_opened`).
"""

from __future__ import annotations

import asyncio
import itertools
import time

import aiosmtplib

from bench.config import BenchConfig
from bench.fixtures import Contact, create_audience, create_contacts
from bench.load import closed_loop, percentile_ms
from bench.procs import wall
from bench.results import Figure, Recorder
from bench.stack import Suite, unique
from journeys.channels.assembly import Engagement, assemble
from journeys.channels.email import OutgoingEmail, message_id_for
from journeys.channels.tracking import TokenKind, TrackingConfig, message_ref, sign
from journeys.config import Settings
from journeys.domain.campaigns import campaign_message_key
from journeys.domain.templating import contact_context, render

BENCH = "engagement"
RAW_SMTP = "raw aiosmtplib loop, same rendered messages, same number of connections"
RAW_INGEST = "the gateway's plain event ingest (POST …/activity, email_opened)"
HTML = '<p>Hi {{ contact.first_name }}</p><p><a href="https://shop.example.com/spring">Shop</a></p>'
SENDER = "Bench <bench@journeys.test>"


async def run(suite: Suite, config: BenchConfig, rec: Recorder) -> None:
    async with suite.env(BENCH) as env:
        queue = unique("engagement")
        sink = await env.start_sink()
        http = await env.start_gateway(task_queue=queue)
        await env.start_workers("journeys", task_queue=queue, processes=1)
        assert suite.pool is not None
        audience = await create_audience(http.next(), "Engagement")
        people = await create_contacts(suite.pool, audience, config.engagement_recipients)
        response = await http.next().post(
            "/v1/campaigns",
            json={
                "audience_id": audience,
                "name": "Bench",
                "subject": "Spring {{ contact.first_name }}",
                "html": HTML,
                "rate_per_second": 10_000,
            },
        )
        response.raise_for_status()
        campaign_id = response.json()["id"]

        started = wall()
        (await http.next().post(f"/v1/campaigns/{campaign_id}/send")).raise_for_status()
        deadline = time.monotonic() + config.drain_timeout
        while sink.refresh() < len(people):
            if time.monotonic() > deadline:
                raise RuntimeError(f"campaign: {sink.refresh()} of {len(people)} accepted")
            await asyncio.sleep(0.2)  # poll the sink's log
        stamps = sorted(sink.accepted[p.email] for p in people)
        journeys_rate = len(people) / (stamps[-1] - started)
        journeys_first = stamps[0] - started

        settings = Settings(**_settings_env(env.child_env()))  # type: ignore[arg-type]
        messages = _rendered(settings, campaign_id, people)
        raw_rate, raw_first = await _raw_smtp(
            messages, port=settings.smtp_port, connections=max(1, settings.smtp_pool_size)
        )
        params = {"recipients": len(people)}
        rec.add(
            Figure(
                BENCH,
                "campaign_emails_per_s",
                journeys_rate,
                "emails/s",
                raw_rate,
                RAW_SMTP,
                "higher",
                params,
            )
        )
        rec.add(
            Figure(
                BENCH,
                "campaign_first_email_s",
                journeys_first,
                "s",
                raw_first,
                RAW_SMTP,
                "lower",
                params,
            )
        )

        # Opens: the pixel against plain ingest of the same event.
        key = settings.tracking_signing_key()
        pixels = itertools.cycle(
            f"/t/o/{sign(key, TokenKind.OPEN, message_ref(campaign_message_key(campaign_id, p.id)))}.gif"
            for p in people
        )
        targets = itertools.cycle(people)

        async def open_pixel(path: str) -> None:
            (await http.next().get(path)).raise_for_status()

        async def plain_ingest(contact: Contact) -> None:
            response = await http.next().post(
                f"/v1/audiences/{audience}/contacts/{contact.id}/activity",
                json={"type": "email_opened", "data": {"campaign_id": campaign_id}},
            )
            response.raise_for_status()

        await closed_loop(itertools.islice(pixels, config.warmup), open_pixel, concurrency=4)
        await closed_loop(itertools.islice(targets, config.warmup), plain_ingest, concurrency=4)
        concurrency = config.engagement_open_concurrency
        opens = await closed_loop(
            pixels, open_pixel, concurrency=concurrency, duration=config.engagement_open_seconds
        )
        plain = await closed_loop(
            targets, plain_ingest, concurrency=concurrency, duration=config.engagement_open_seconds
        )
        for side, load in (("pixel", opens), ("ingest", plain)):
            if load.errors or not load.ok:
                raise RuntimeError(f"{side}: {len(load.errors)} errors, first {load.errors[:1]}")
        params = {"concurrency": concurrency}
        rec.add(
            Figure(
                BENCH,
                "opens_per_s",
                opens.rate,
                "opens/s",
                plain.rate,
                RAW_INGEST,
                "higher",
                params,
            )
        )
        rec.add(
            Figure(
                BENCH,
                "open_response_p99_ms",
                percentile_ms(opens.response_histogram(), 99),
                "ms",
                percentile_ms(plain.response_histogram(), 99),
                RAW_INGEST,
                "lower",
                params,
            )
        )
        rec.note(
            BENCH,
            f"campaign of {len(people)}: first email after {journeys_first:.2f}s, last after "
            f"{stamps[-1] - started:.1f}s; raw loop {len(messages) / raw_rate:.1f}s",
        )


def _settings_env(env: dict[str, str]) -> dict[str, str]:
    return {
        k.removeprefix("JOURNEYS_").lower(): v
        for k, v in env.items()
        if k.startswith("JOURNEYS_") and k != "JOURNEYS_HOME"
    }


def _rendered(settings: Settings, campaign_id: str, people: list[Contact]) -> list[OutgoingEmail]:
    """The campaign's messages as the worker assembles them (recipients differ: the baseline's),
    serialised here, untimed: the raw loop only sends."""
    tracking = TrackingConfig(
        key=settings.tracking_signing_key(), base_url=settings.effective_public_url
    )
    built = []
    for person in people:
        key = campaign_message_key(campaign_id, person.id) + ":raw"
        tracker = tracking.tracker(message_ref(key))
        context = contact_context(
            {"email": person.email, "first_name": "Bench"},
            unsubscribe_url=tracker.unsubscribe_url(),
        )
        built.append(
            assemble(
                sender=SENDER,
                to="raw-" + person.email,
                subject=render("Spring {{ contact.first_name }}", context),
                html=render(HTML, context, html=True),
                text=None,
                message_id=message_id_for(key, SENDER),
                headers={"X-Journeys-Campaign": campaign_id},
                engagement=Engagement.of(tracker, opens=True, clicks=True, templates=(HTML,)),
            )
        )
    return built


async def _raw_smtp(
    messages: list[OutgoingEmail], *, port: int, connections: int
) -> tuple[float, float]:
    """(emails/s, seconds to the first accepted email) over `connections` kept-open connections."""
    queue = iter(messages)
    first: list[float] = []
    started = time.monotonic()

    async def lane() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await client.connect()
        try:
            for message in queue:
                await client.sendmail(message.envelope_from, [message.recipient], message.data)
                if not first:
                    first.append(time.monotonic())
        finally:
            await client.quit()

    await asyncio.gather(*(lane() for _ in range(connections)))
    elapsed = time.monotonic() - started
    return len(messages) / elapsed, first[0] - started


def figure_keys(config: BenchConfig) -> list[str]:
    """Keys of every figure this benchmark records with `config` (for the smoke test)."""
    r, c = config.engagement_recipients, config.engagement_open_concurrency
    return [
        f"{BENCH}.campaign_emails_per_s[recipients={r}]",
        f"{BENCH}.campaign_first_email_s[recipients={r}]",
        f"{BENCH}.opens_per_s[concurrency={c}]",
        f"{BENCH}.open_response_p99_ms[concurrency={c}]",
    ]

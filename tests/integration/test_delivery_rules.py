"""Who may receive what, and when: consent, transactional sends, quiet hours, local waits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from activities.contacts import ContactActivities
from activities.delivery import DeliveryActivities
from journeys.channels.email import EmailSender, SmtpConfig
from journeys.config import Settings
from journeys.domain.flow import QuietHours
from journeys.domain.runs import ResolveWaitInput, SendEmailInput
from journeys.domain.steps import WaitUntil
from journeys.embedded.mailcatcher import MailCatcher
from journeys.ingest import Ingest
from journeys.store import audiences, contacts
from tests.helpers import flow_body, stored_send
from workers.worker import tracking_config


@pytest.fixture
def delivery(pool: asyncpg.Pool, settings: Settings) -> DeliveryActivities:
    return DeliveryActivities(
        pool,
        EmailSender(SmtpConfig.from_settings(settings)),
        default_from=settings.mail_from,
        ingest=Ingest(pool, None),
        tracking=tracking_config(settings),
    )


async def _contact(pool: asyncpg.Pool, *, zone: str = "UTC", **fields: object) -> dict:
    audience = await audiences.create(pool, name="Rules", timezone=zone)
    row, _ = await contacts.upsert(
        pool, audience_id=audience["id"], email=f"r-{uuid.uuid4().hex[:8]}@example.com", **fields
    )
    return row


async def _send(
    pool: asyncpg.Pool, contact: dict, *, transactional: bool = False, **settings: object
) -> SendEmailInput:
    """A send of the first email of a flow stored with these settings (a real flow version)."""
    trigger = {"type": "order_confirmation"} if transactional else {"type": "tag_added", "tag": "t"}
    body = flow_body(
        contact["audience_id"], name=uuid.uuid4().hex, triggers=[trigger], settings=settings
    )
    return await stored_send(pool, contact, body)


def _window_around_now(zone: ZoneInfo) -> QuietHours:
    now = datetime.now(UTC).astimezone(zone)
    start, end = now - timedelta(hours=1), now + timedelta(hours=2)
    return QuietHours(start=start.strftime("%H:%M"), end=end.strftime("%H:%M"))


async def test_quiet_hours_defer_marketing_until_the_window_ends(
    delivery: DeliveryActivities, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    contact = await _contact(pool, zone="Asia/Tokyo")
    quiet = _window_around_now(ZoneInfo("Asia/Tokyo"))
    quiet_json = quiet.model_dump()
    result = await delivery.send_email(
        await _send(pool, contact, quiet_hours=quiet_json, timezone_basis="audience")
    )
    assert result.status == "deferred"
    assert timedelta(hours=1) < result.not_before - datetime.now(UTC) <= timedelta(hours=2)
    assert result.not_before.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%H:%M") == quiet.end
    assert mail.to(contact["email"]) == []
    # Transactional messages (an order confirmation) ignore quiet hours.
    sent = await delivery.send_email(
        await _send(pool, contact, quiet_hours=quiet_json, transactional=True)
    )
    assert sent.status == "sent" and len(mail.to(contact["email"])) == 1


async def test_marketing_needs_consent_transactional_does_not(
    delivery: DeliveryActivities, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    contact = await _contact(pool, status="unsubscribed")
    skipped = await delivery.send_email(await _send(pool, contact))
    assert (skipped.status, skipped.reason) == ("skipped", "status is unsubscribed")
    transactional = await _send(pool, contact, transactional=True)
    assert (await delivery.send_email(transactional)).status == "sent"
    assert len(mail.to(contact["email"])) == 1


async def test_wait_until_uses_the_contacts_own_time_zone(pool: asyncpg.Pool) -> None:
    contact = await _contact(pool, zone="UTC", timezone="America/New_York")
    activities = ContactActivities(pool, Ingest(pool, None))
    rule = WaitUntil(id="w", time_of_day="09:00")
    mine = await activities.resolve_wait(
        ResolveWaitInput(contact_id=contact["id"], audience_id=contact["audience_id"], rule=rule)
    )
    assert mine.zone == "America/New_York"
    assert mine.until.astimezone(ZoneInfo("America/New_York")).strftime("%H:%M") == "09:00"
    audience_basis = await activities.resolve_wait(
        ResolveWaitInput(
            contact_id=contact["id"],
            audience_id=contact["audience_id"],
            rule=rule,
            timezone_basis="audience",
        )
    )
    assert audience_basis.zone == "UTC" and audience_basis.until.strftime("%H:%M") == "09:00"

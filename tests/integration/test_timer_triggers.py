"""Every timer trigger fires at its computed instant and not before; every disarming event
stops it. Durable timers on the time-skipping test server, real activities, Postgres and SMTP."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from journeys.config import Settings
from journeys.domain import search
from journeys.domain.events import IncomingEvent
from journeys.domain.flow import FlowDefinition
from journeys.domain.runs import (
    CONTROL_SIGNAL,
    EVENT_SIGNAL,
    ContactFlowInput,
    FlowControl,
    FlowEvent,
    Phase,
    RunLimits,
    RunResult,
    RunStatus,
    workflow_id,
)
from journeys.embedded.mailcatcher import MailCatcher
from journeys.ingest import store
from journeys.store import audiences, contacts, flows
from journeys.wiring import open_core
from tests.helpers import eventually, time_skipping_env
from workers.worker import build_worker


@asynccontextmanager
async def worker_on(env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[str]:
    """The real worker on the test server, on a task queue of its own (yielded)."""
    queue = f"timer-triggers-{uuid.uuid4().hex[:8]}"
    async with open_core(settings, client=env.client) as core, build_worker(core, task_queue=queue):
        yield queue


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with time_skipping_env() as environment:
        yield environment


@pytest.fixture(scope="module")
async def task_queue(env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[str]:
    async with worker_on(env, settings) as queue:
        yield queue


class Armed:
    """One contact armed by one timer trigger, and the means to drive its time."""

    def __init__(
        self,
        env: WorkflowEnvironment,
        pool: asyncpg.Pool,
        handle: WorkflowHandle[Any, RunResult],
        contact: dict[str, Any],
        flow_id: str,
    ) -> None:
        self.env, self.pool, self.handle = env, pool, handle
        self.contact, self.flow_id = contact, flow_id

    async def status(self) -> RunStatus:
        return await self.handle.query("status", result_type=RunStatus)

    async def armed(self) -> RunStatus:
        async def check() -> RunStatus | None:
            status = await self.status()
            return status if status.phase == Phase.ARMED and status.fires_at else None

        return await eventually(check)

    async def advance_to(self, moment: datetime) -> None:
        """Moves the test server's clock to `moment` (timers due by then fire)."""
        gap = moment - await self.env.get_current_time()
        if gap > timedelta(0):
            await self.env.sleep(gap)

    async def tell(self, type: str, data: dict[str, Any]) -> None:
        """Delivers an event the way the gateway does (stored first, then signalled)."""
        occurred = await self.env.get_current_time()
        event = IncomingEvent(
            type=type,
            audience_id=self.contact["audience_id"],
            contact_id=self.contact["id"],
            idempotency_key=uuid.uuid4().hex,
            data=data,
            occurred_at=occurred,
        )
        async with self.pool.acquire() as conn, conn.transaction():
            stored, _ = await store(conn, event)
        await self.handle.signal(
            EVENT_SIGNAL,
            FlowEvent(id=stored["id"], type=type, occurred_at=occurred, data=data),
        )


async def _arm(
    env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    task_queue: str,
    trigger: dict[str, Any],
    *,
    zone: str = "UTC",
    arm_type: str = "armed",
    arm_data: dict[str, Any] | None = None,
    subject: str = "Hello {{ contact.first_name }}",
    signup_at: datetime | None = None,
    limits: RunLimits | None = None,
    **fields: Any,
) -> Armed:
    audience = await audiences.create(pool, name="Timers", timezone=zone)
    contact, _ = await contacts.upsert(
        pool,
        audience_id=audience["id"],
        email=f"t-{uuid.uuid4().hex[:8]}@example.com",
        first_name="Tim",
        **fields,
    )
    if signup_at is not None:  # signed up on the test server's clock, not the machine's
        await pool.execute(
            "UPDATE contacts SET signup_at = $2 WHERE id = $1::uuid", contact["id"], signup_at
        )
    body = {
        "name": f"Timer {trigger['type']}",
        "audience_id": audience["id"],
        "triggers": [trigger],
        "steps": [{"id": "hello", "type": "send_email", "subject": subject, "text": "Hi"}],
    }
    definition = FlowDefinition.model_validate(body)
    async with pool.acquire() as conn, conn.transaction():
        flow = await flows.create(conn, audience_id=audience["id"], definition=body)
        await flows.set_status(conn, flow["id"], "active")
    now = await env.get_current_time()
    handle = await env.client.start_workflow(
        "ContactFlowWorkflow",
        ContactFlowInput(
            flow_id=flow["id"],
            version=1,
            definition=definition,
            contact_id=contact["id"],
            audience_id=audience["id"],
            trigger_type=trigger["type"],
            enter_locally=True,  # as every starter sets it
            rearm_off_peak=True,
            limits=limits or RunLimits(),
        ),
        id=workflow_id(flow["id"], contact["id"]),
        task_queue=task_queue,
        start_signal=EVENT_SIGNAL,
        start_signal_args=[
            FlowEvent(id=uuid.uuid4().hex, type=arm_type, occurred_at=now, data=arm_data or {})
        ],
        result_type=RunResult,
    )
    return Armed(env, pool, handle, contact, flow["id"])


async def _result(armed: Armed) -> RunResult:
    """The run's result without moving the clock (other runs' timers stay where they are)."""
    with armed.env.auto_time_skipping_disabled():
        return await armed.handle.result()


async def _fires_exactly_at(armed: Armed, mail: MailCatcher, expected: datetime) -> None:
    """Nothing a minute before the instant; the email once the instant has passed."""
    status = await armed.armed()
    assert status.fires_at == expected, status.details
    before = len(mail.to(armed.contact["email"]))
    await armed.advance_to(expected - timedelta(minutes=1))
    assert (await armed.status()).phase == Phase.ARMED
    assert len(mail.to(armed.contact["email"])) == before
    await armed.advance_to(expected + timedelta(minutes=1))
    await eventually(lambda: len(mail.to(armed.contact["email"])) == before + 1)


async def _rearms_off_peak(armed: Armed, fired: datetime, *, spread_minutes: int = 15) -> datetime:
    """A yearly run whose journey is done says when it re-arms (1 to `spread_minutes` after the
    journey, at random), is still completed a moment before, and re-arms once it is past.

    Returns:
        The re-arm moment it stated (to the minute).
    """

    async def completed() -> RunStatus | None:
        status = await armed.status()
        return status if status.phase == Phase.COMPLETED and "Re-arms" in status.details else None

    status = await eventually(completed)
    stated = re.search(r"Re-arms for next year at (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", status.details)
    assert stated, status.details
    at = datetime.strptime(stated.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    assert fired < at <= fired + timedelta(minutes=spread_minutes + 1), status.details
    await armed.advance_to(at - timedelta(minutes=1))
    assert (await armed.status()).phase == Phase.COMPLETED
    # Its journey never rested, so the run stays published as armed: no update while it fired.
    described = await armed.handle.describe()
    assert described.typed_search_attributes.get(search.JOURNEY_PHASE) == "armed"
    kinds = [e.event_type for e in (await armed.handle.fetch_history()).events]
    fired_at = kinds.index(EventType.EVENT_TYPE_TIMER_FIRED)
    assert EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES not in kinds[fired_at:]
    await armed.advance_to(at + timedelta(minutes=1))
    return at


def _local(day: date, clock: time, zone: str) -> datetime:
    return datetime.combine(day, clock, ZoneInfo(zone)).astimezone(UTC)


@pytest.mark.parametrize("kind", ["recurring_date", "specific_date"])
async def test_a_date_trigger_fires_at_its_local_instant(
    env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, mail: MailCatcher, kind: str
) -> None:
    # Dates ahead of the test server's clock (earlier tests moved it on).
    today = (await env.get_current_time()).date()
    if kind == "recurring_date":
        day = today + timedelta(days=40)
        trigger = {"type": kind, "field": "anniversary", "time_of_day": "10:30"}
        fields, zone = {"anniversary": f"2019-{day:%m-%d}"}, "Europe/Paris"
        if (day.month, day.day) == (2, 29):
            day += timedelta(days=1)
            fields = {"anniversary": f"2019-{day:%m-%d}"}
        expected = _local(day, time(10, 30), zone)
    else:
        day = today + timedelta(days=30)
        trigger = {"type": kind, "field": "renewal", "offset_days": -2}
        fields, zone = {"renewal": day.isoformat()}, "Asia/Kolkata"
        expected = _local(day - timedelta(days=2), time(9), zone)
    armed = await _arm(env, pool, task_queue, trigger, zone=zone, fields=fields)
    await _fires_exactly_at(armed, mail, expected)
    if kind == "recurring_date":  # yearly: it re-arms instead of ending
        await _rearms_off_peak(armed, expected)

        async def rearmed() -> bool:
            status = await armed.status()
            return status.last_fired == expected and status.phase == Phase.ARMED

        await eventually(rearmed)
        await armed.handle.terminate("test over")
        return
    result = await armed.handle.result()
    assert (result.phase, result.steps_done) == (Phase.COMPLETED, ["hello"])


async def test_a_signup_date_fires_days_after_signing_up(
    env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, mail: MailCatcher
) -> None:
    signup = await env.get_current_time()
    armed = await _arm(
        env,
        pool,
        task_queue,
        {"type": "signup_date", "offset_days": 3, "time_of_day": "07:15"},
        signup_at=signup,
    )
    day = signup.astimezone(UTC).date() + timedelta(days=3)
    await _fires_exactly_at(armed, mail, datetime(day.year, day.month, day.day, 7, 15, tzinfo=UTC))
    await armed.handle.terminate("test over")  # yearly: it re-arms for the next anniversary


async def test_a_cleared_date_or_a_passed_one_disarms_the_contact(
    env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, mail: MailCatcher
) -> None:
    armed = await _arm(env, pool, task_queue, {"type": "birthday"}, birthday="07-01")
    await armed.armed()
    await pool.execute(
        "UPDATE contacts SET birthday = NULL WHERE id = $1::uuid", armed.contact["id"]
    )
    await armed.tell("field_changed", {"field": "birthday", "value": None, "previous": "07-01"})
    result = await armed.handle.result()
    assert result.phase == Phase.SKIPPED and "no" in (result.reason or "")
    passed = await _arm(
        env,
        pool,
        task_queue,
        {"type": "specific_date", "field": "renewal"},
        fields={"renewal": "2020-01-01"},
    )
    result = await passed.handle.result()
    assert result.phase == Phase.SKIPPED and "passed" in (result.reason or "")
    assert mail.to(armed.contact["email"]) == mail.to(passed.contact["email"]) == []


async def test_a_pause_holds_the_timer_and_resume_fires_within_the_grace_only(
    env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, mail: MailCatcher
) -> None:
    trigger = {"type": "specific_date", "field": "renewal", "time_of_day": "09:00"}
    day = (await env.get_current_time()).date() + timedelta(days=10)
    soon = await _arm(env, pool, task_queue, trigger, fields={"renewal": day.isoformat()})
    late = await _arm(env, pool, task_queue, trigger, fields={"renewal": day.isoformat()})
    due = _local(day, time(9), "UTC")
    for armed in (soon, late):
        assert (await armed.armed()).fires_at == due
        await armed.handle.signal(CONTROL_SIGNAL, FlowControl(action="paused"))
    await soon.advance_to(due + timedelta(hours=12))
    assert mail.to(soon.contact["email"]) == []  # held while paused
    await soon.handle.signal(CONTROL_SIGNAL, FlowControl(action="resumed"))
    assert (await _result(soon)).phase == Phase.COMPLETED  # 12 h late: within the grace
    await late.advance_to(due + timedelta(days=2))
    await late.handle.signal(CONTROL_SIGNAL, FlowControl(action="resumed"))
    result = await _result(late)
    assert result.phase == Phase.SKIPPED and "passed while the flow was paused" in (
        result.reason or ""
    )
    assert len(mail.to(soon.contact["email"])) == 1 and mail.to(late.contact["email"]) == []


async def test_the_missed_fire_grace_is_a_setting(
    env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, mail: MailCatcher
) -> None:
    # Three hours late is within the default grace (above) but not within one hour.
    limits = Settings(missed_fire_grace_seconds=3600).run_limits()
    trigger = {"type": "specific_date", "field": "renewal", "time_of_day": "09:00"}
    day = (await env.get_current_time()).date() + timedelta(days=10)
    armed = await _arm(
        env, pool, task_queue, trigger, limits=limits, fields={"renewal": day.isoformat()}
    )
    due = _local(day, time(9), "UTC")
    assert (await armed.armed()).fires_at == due
    await armed.handle.signal(CONTROL_SIGNAL, FlowControl(action="paused"))
    await armed.advance_to(due + timedelta(hours=3))
    await armed.handle.signal(CONTROL_SIGNAL, FlowControl(action="resumed"))
    result = await _result(armed)
    assert result.phase == Phase.SKIPPED and "passed while the flow was paused" in (
        result.reason or ""
    )
    assert mail.to(armed.contact["email"]) == []


async def test_the_yearly_re_arm_spread_is_a_setting(
    env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, mail: MailCatcher
) -> None:
    # Two minutes: the re-arm comes one to two minutes after the journey (at 09:00).
    limits = Settings(yearly_rearm_spread_seconds=120).run_limits()
    day = (await env.get_current_time()).date() + timedelta(days=25)
    if (day.month, day.day) == (2, 29):
        day += timedelta(days=1)
    armed = await _arm(
        env, pool, task_queue, {"type": "birthday"}, limits=limits, birthday=f"{day:%m-%d}"
    )
    due = _local(day, time(9), "UTC")
    await _fires_exactly_at(armed, mail, due)
    assert await _rearms_off_peak(armed, due, spread_minutes=2) <= due + timedelta(minutes=2)

    async def rearmed() -> bool:
        status = await armed.status()
        return status.phase == Phase.ARMED and status.last_fired == due

    await eventually(rearmed)
    await armed.handle.terminate("test over")


async def test_a_yearly_run_archived_before_it_re_arms_ends_published_as_completed(
    env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, mail: MailCatcher
) -> None:
    day = (await env.get_current_time()).date() + timedelta(days=20)
    if (day.month, day.day) == (2, 29):
        day += timedelta(days=1)
    armed = await _arm(env, pool, task_queue, {"type": "birthday"}, birthday=f"{day:%m-%d}")
    due = _local(day, time(9), "UTC")
    await _fires_exactly_at(armed, mail, due)

    async def waiting_to_rearm() -> bool:
        status = await armed.status()
        return status.phase == Phase.COMPLETED and "Re-arms" in status.details

    await eventually(waiting_to_rearm)
    await armed.handle.signal(CONTROL_SIGNAL, FlowControl(action="archived"))
    result = await _result(armed)
    assert (result.phase, result.steps_done) == (Phase.COMPLETED, ["hello"])
    described = await armed.handle.describe()
    assert described.typed_search_attributes.get(search.JOURNEY_PHASE) == "completed"
    assert (await armed.status()).details == "Finished the flow."


async def test_archiving_ends_an_armed_run(
    env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    armed = await _arm(env, pool, task_queue, {"type": "birthday"}, birthday="05-05")
    await armed.armed()
    await armed.handle.signal(CONTROL_SIGNAL, FlowControl(action="archived"))
    result = await armed.handle.result()
    assert (result.phase, result.reason, result.entry) == (
        Phase.EXITED,
        "the flow was archived",
        None,
    )


async def test_every_purchase_moves_the_lapse_timer(
    env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, mail: MailCatcher
) -> None:
    armed = await _arm(
        env,
        pool,
        task_queue,
        {"type": "time_since_last_purchase", "days": 30},
        arm_type="order_placed",
        arm_data={"order_id": "o-1"},
    )
    first = (await armed.armed()).fires_at
    assert first is not None
    await armed.advance_to(first - timedelta(days=20))
    await armed.tell("order_placed", {"order_id": "o-2"})

    async def moved() -> datetime | None:
        fires_at = (await armed.status()).fires_at
        return fires_at if fires_at and fires_at > first else None

    second = await eventually(moved)
    assert second - (await armed.env.get_current_time()) <= timedelta(days=30)
    await armed.advance_to(first + timedelta(hours=1))
    assert mail.to(armed.contact["email"]) == []  # the first lapse was cancelled by the order
    await _fires_exactly_at(armed, mail, second)


async def _cart(armed: Armed, items: list[dict[str, Any]], cart_id: str) -> dict[str, Any]:
    data = {"cart_id": cart_id, "items": items, "url": "https://shop.test/cart/1", "total": 42.5}
    event = IncomingEvent(
        type="cart_updated",
        audience_id=armed.contact["audience_id"],
        contact_id=armed.contact["id"],
        idempotency_key=uuid.uuid4().hex,
        data=data,
    )
    async with armed.pool.acquire() as conn, conn.transaction():
        await store(conn, event)
    return data


async def test_an_abandoned_cart_fires_after_the_wait_with_the_cart_in_merge_tags(
    env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, mail: MailCatcher
) -> None:
    cart_id = uuid.uuid4().hex
    items = [{"product_id": "p-1", "quantity": 2, "price": 21.25}]
    data = {"cart_id": cart_id, "items": items}
    armed = await _arm(
        env,
        pool,
        task_queue,
        {"type": "abandoned_cart", "wait": "2h"},
        arm_type="cart_updated",
        arm_data=data,
        subject="Still {{ cart.items | length }} item(s), {{ cart.total }} at {{ cart.url }}",
    )
    await _cart(armed, items, cart_id)
    status = await armed.armed()
    assert status.fires_at is not None
    await _fires_exactly_at(armed, mail, status.fires_at)
    [sent] = mail.to(armed.contact["email"])
    assert sent.subject == "Still 1 item(s), 42.5 at https://shop.test/cart/1"


async def test_a_bought_cart_or_one_without_the_products_does_not_fire(
    env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, mail: MailCatcher
) -> None:
    cart_id = uuid.uuid4().hex
    items = [{"product_id": "p-9", "quantity": 1, "price": 5}]
    bought = await _arm(
        env,
        pool,
        task_queue,
        {"type": "abandoned_cart", "wait": "1h"},
        arm_type="cart_updated",
        arm_data={"cart_id": cart_id, "items": items},
    )
    await _cart(bought, items, cart_id)
    await bought.armed()
    await bought.tell("checkout_action", {"action": "completed", "cart_id": cart_id})
    result = await bought.handle.result()
    assert (result.phase, result.reason) == (Phase.SKIPPED, "the cart was bought")

    other = uuid.uuid4().hex
    excluded = await _arm(
        env,
        pool,
        task_queue,
        {"type": "abandoned_cart_specific_products", "wait": "1h", "exclude_product_ids": ["p-9"]},
        arm_type="cart_updated",
        arm_data={"cart_id": other, "items": items},
    )
    await _cart(excluded, items, other)
    result = await excluded.handle.result()
    assert result.phase == Phase.SKIPPED and "products" in (result.reason or "")
    assert mail.to(bought.contact["email"]) == mail.to(excluded.contact["email"]) == []


@pytest.mark.parametrize(
    ("kind", "engaged"),
    [("campaign_unopened", "email_opened"), ("email_not_clicked", "email_clicked")],
)
async def test_an_email_not_engaged_with_fires_and_an_engagement_disarms(
    env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    task_queue: str,
    mail: MailCatcher,
    kind: str,
    engaged: str,
) -> None:
    ref = {"flow_id": str(uuid.uuid4()), "step_id": "news"}
    trigger = {"type": kind, "email": ref, "within": "3d"}
    idle = await _arm(env, pool, task_queue, trigger, arm_type="email_sent", arm_data=ref)
    keen = await _arm(env, pool, task_queue, trigger, arm_type="email_sent", arm_data=ref)
    status = await idle.armed()
    assert status.fires_at is not None
    await keen.armed()
    await keen.tell(engaged, {**ref, "url": "https://shop.test/"})
    result = await _result(keen)
    assert result.phase == Phase.SKIPPED
    await _fires_exactly_at(idle, mail, status.fires_at)
    assert mail.to(keen.contact["email"]) == []

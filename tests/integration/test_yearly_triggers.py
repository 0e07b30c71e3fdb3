"""A yearly trigger runs one journey a year for the same contact, forever (its own test server:
it moves the clock to fixed dates)."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from journeys.domain.runs import Phase
from journeys.embedded.mailcatcher import MailCatcher
from tests.helpers import eventually
from tests.integration.test_timer_triggers import (  # noqa: F401 - fixtures
    _arm,
    _fires_exactly_at,
    _rearms_off_peak,
    env,
    task_queue,
)

# The same fixtures as test_timer_triggers.py, on this module's own test server and worker.


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


async def test_a_birthday_fires_every_year_and_29_february_on_the_28th_in_other_years(
    env: WorkflowEnvironment,  # noqa: F811 - the imported fixture
    pool: asyncpg.Pool,
    task_queue: str,  # noqa: F811
    mail: MailCatcher,
) -> None:
    armed = await _arm(
        env,
        pool,
        task_queue,
        {"type": "birthday", "time_of_day": "09:00"},
        birthday="02-29",
        timezone="America/New_York",
    )
    first = _utc(2027, 2, 28, 14)  # 09:00 EST
    status = await armed.armed()
    assert status.details == (
        "Armed: `birthday` fires 2027-02-28 09:00 America/New_York (14:00 UTC),"
        " then `hello` (send_email)."
    )
    await _fires_exactly_at(armed, mail, first)

    async def rearmed_for(moment: datetime) -> bool:
        status = await armed.status()
        return status.phase == Phase.ARMED and status.fires_at == moment

    # One journey, then the same workflow (continued as new) waits for the next birthday; it
    # re-arms a random moment 1 to 15 minutes after the journey, off the cohort's peak.
    await _rearms_off_peak(armed, first)
    second = _utc(2028, 2, 29, 14)
    await eventually(lambda: rearmed_for(second))
    assert (await armed.status()).last_fired == first
    # Next year's moment came with the re-arm: the new run rests on its timer from its first
    # task, published as armed, with no read and no search-attribute update of its own.
    history = await env.client.get_workflow_handle(armed.handle.id).fetch_history()
    kinds = [event.event_type for event in history.events]
    assert EventType.EVENT_TYPE_TIMER_STARTED in kinds
    assert EventType.EVENT_TYPE_MARKER_RECORDED not in kinds
    assert EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES not in kinds
    await _fires_exactly_at(armed, mail, second)
    await _rearms_off_peak(armed, second)
    await eventually(lambda: rearmed_for(_utc(2029, 2, 28, 14)))
    assert [m.subject for m in mail.to(armed.contact["email"])] == ["Hello Tim", "Hello Tim"]
    await armed.handle.terminate("test over")

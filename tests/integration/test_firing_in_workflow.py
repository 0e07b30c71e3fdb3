"""The date-trigger policy inside a real workflow sandbox, with timers on the time-skipping server.

The contact-flow workflow computes its timer with `journeys.domain.firing`; this proves that
module imports and runs in the sandbox (zoneinfo included), that a timer set from it fires at the
computed instant and not before, and that yearly re-arming walks 28 Feb → 29 Feb across years.
"""

from __future__ import annotations

import calendar
import uuid
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from pydantic import BaseModel
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    from journeys.domain.firing import FireAt, fire_after, next_fire
    from journeys.domain.triggers import Birthday
    from tests.helpers import time_skipping_env


class YearlyTimerInput(BaseModel):
    """A birthday, where the contact lives, and how many yearly fires to wait for."""

    birthday: str
    zone: str
    time_of_day: str
    years: int


class Fired(BaseModel):
    """One fire: the instant computed for it and the workflow time the timer woke at."""

    planned: FireAt
    woke: datetime


@workflow.defn
class YearlyTimerWorkflow:
    """Sleeps until each computed birthday instant, re-arming with `fire_after`."""

    @workflow.run
    async def run(self, input: YearlyTimerInput) -> list[Fired]:
        trigger = Birthday(time_of_day=input.time_of_day)
        fire = next_fire(trigger, date_value=input.birthday, zone=input.zone, now=workflow.now())
        fired: list[Fired] = []
        for _ in range(input.years):
            assert isinstance(fire, FireAt), fire
            await workflow.sleep(fire.utc - workflow.now())
            fired.append(Fired(planned=fire, woke=workflow.now()))
            fire = fire_after(trigger, date_value=input.birthday, zone=input.zone, fired=fire.utc)
        return fired


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with time_skipping_env() as environment:
        yield environment


async def test_a_29_february_birthday_fires_twice_in_the_sandbox_never_early(
    env: WorkflowEnvironment,
) -> None:
    queue = f"firing-{uuid.uuid4().hex[:8]}"
    async with Worker(env.client, task_queue=queue, workflows=[YearlyTimerWorkflow]):
        fired = await env.client.execute_workflow(
            YearlyTimerWorkflow.run,
            YearlyTimerInput(birthday="02-29", zone="Europe/Paris", time_of_day="09:00", years=2),
            id=f"firing-{uuid.uuid4().hex}",
            task_queue=queue,
            result_type=list[Fired],
        )
    assert len(fired) == 2
    first, second = fired[0].planned, fired[1].planned
    assert second.local.year == first.local.year + 1
    for fire in (first, second):
        day = 29 if calendar.isleap(fire.local.year) else 28
        assert fire.local.strftime("%m-%d %H:%M") == f"02-{day:02d} 09:00"
        assert fire.utc.strftime("%H:%M") == "08:00"  # CET, +01:00, in February
    for one in fired:
        assert one.woke >= one.planned.utc  # a timer never fires before its instant

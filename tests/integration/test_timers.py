"""Durable timers on the time-skipping test server, with the real activities, Postgres and SMTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.delivery import EmailJob
from journeys.config import Settings
from journeys.domain.flow import FlowDefinition
from journeys.domain.runs import (
    EVENT_SIGNAL,
    ContactFlowInput,
    FlowEvent,
    Phase,
    RunResult,
    workflow_id,
)
from journeys.embedded.mailcatcher import MailCatcher
from journeys.store import audiences, contacts, flows, messages
from journeys.wiring import open_core
from tests.helpers import eventually, flow_body, time_skipping_env
from workers.worker import build_worker
from workflows.contact_flow import ContactFlowWorkflow


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with time_skipping_env() as environment:
        yield environment


async def _enrol_input(pool: asyncpg.Pool, email: str) -> ContactFlowInput:
    audience = await audiences.create(pool, name="Timers", timezone="UTC")
    contact, _ = await contacts.upsert(
        pool, audience_id=audience["id"], email=email, first_name="Tim"
    )
    definition = FlowDefinition.model_validate(flow_body(audience["id"], delay="2d"))
    async with pool.acquire() as conn, conn.transaction():
        flow = await flows.create(
            conn, audience_id=audience["id"], definition=definition.authored()
        )
    return ContactFlowInput(
        flow_id=flow["id"],
        version=1,
        definition=definition,
        contact_id=contact["id"],
        audience_id=audience["id"],
        trigger_type="tag_added",
    )


async def _run(env: WorkflowEnvironment, input: ContactFlowInput, task_queue: str) -> RunResult:
    client: Client = env.client
    handle = await client.start_workflow(
        ContactFlowWorkflow.run,
        input,
        id=workflow_id(input.flow_id, input.contact_id),
        task_queue=task_queue,
        start_signal=EVENT_SIGNAL,
        start_signal_args=[
            FlowEvent(
                id=uuid.uuid4().hex, type="tag_added", occurred_at=await env.get_current_time()
            )
        ],
    )
    return await handle.result()


async def test_second_email_after_two_days_exactly_once_despite_a_failed_attempt(
    env: WorkflowEnvironment, settings: Settings, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    email = f"tim-{uuid.uuid4().hex[:8]}@example.com"
    input = await _enrol_input(pool, email)
    failures: list[str] = []

    async def fail_once_after_recording(send: EmailJob) -> None:
        # The worst moment: the email is out and recorded, but the activity reports failure.
        if send.step_id == "hello" and not failures:
            failures.append(send.idempotency_key)
            raise RuntimeError("worker lost after sending")

    task_queue = f"timers-{uuid.uuid4().hex[:8]}"
    started = await env.get_current_time()
    async with (
        open_core(settings, client=env.client) as core,
        build_worker(core, task_queue=task_queue, after_send=fail_once_after_recording),
    ):
        result = await _run(env, input, task_queue)

    assert result.phase == Phase.COMPLETED
    assert result.steps_done == ["hello", "pause", "again"]
    assert failures, "the send activity was never made to fail"
    assert await env.get_current_time() - started >= timedelta(days=2)
    assert [m.subject for m in mail.to(email)] == ["Welcome Tim", "Still there?"]
    rows = await messages.for_contact(pool, input.contact_id)
    assert [(r["step_id"], r["status"]) for r in rows] == [("hello", "sent"), ("again", "sent")]
    # Both deliveries of the first email carry one Message-ID: receivers could dedupe too.
    assert mail.to(email)[0].message["Message-ID"] == rows[0]["message_id"]


async def test_no_second_email_before_the_delay_is_over(
    env: WorkflowEnvironment, settings: Settings, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    email = f"early-{uuid.uuid4().hex[:8]}@example.com"
    input = await _enrol_input(pool, email)
    task_queue = f"timers-{uuid.uuid4().hex[:8]}"
    async with (
        open_core(settings, client=env.client) as core,
        build_worker(core, task_queue=task_queue),
    ):
        handle = await env.client.start_workflow(
            ContactFlowWorkflow.run,
            input,
            id=workflow_id(input.flow_id, input.contact_id),
            task_queue=task_queue,
            start_signal=EVENT_SIGNAL,
            start_signal_args=[
                FlowEvent(id="e1", type="tag_added", occurred_at=await env.get_current_time())
            ],
        )
        with env.auto_time_skipping_disabled():
            await eventually(lambda: mail.to(email))
            await env.sleep(timedelta(days=1, hours=23))
            status = await handle.query(ContactFlowWorkflow.status)
            assert status.step_id == "pause"
            assert len(mail.to(email)) == 1
            await env.sleep(timedelta(hours=1, minutes=1))
        await handle.result()
    assert len(mail.to(email)) == 2

"""Issue 8's defects, each shown on the real worker: versions, waits, exhaustive steps, sends."""

from __future__ import annotations

import ast
import asyncio
import inspect
import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from activities.contacts import AfterEvaluateHook
from journeys.config import Settings
from journeys.domain.flow import FlowDefinition
from journeys.domain.runs import (
    CONTROL_SIGNAL,
    EVENT_SIGNAL,
    ContactFlowInput,
    EvaluateInput,
    FlowControl,
    FlowEvent,
    Phase,
    RunLimits,
    RunResult,
    RunStatus,
    TimelineEntry,
    workflow_id,
)
from journeys.domain.steps import STEP_MODELS
from journeys.embedded.mailcatcher import MailCatcher
from journeys.embedded.process import free_port
from journeys.store import audiences, contacts, flows
from journeys.wiring import open_core
from tests.helpers import eventually
from workers.worker import build_worker
from workflows import contact_flow
from workflows.contact_flow import ContactFlowWorkflow


def _email(step_id: str, subject: str) -> dict[str, Any]:
    return {"id": step_id, "type": "send_email", "subject": subject, "text": subject}


def _definition(audience_id: str, steps: list[dict[str, Any]], **settings: Any) -> dict[str, Any]:
    return {
        "name": f"Correctness {uuid.uuid4().hex[:8]}",
        "audience_id": audience_id,
        "triggers": [{"type": "tag_added", "tag": "go"}],
        "steps": steps,
        "settings": settings,
    }


async def _contact(http: httpx.AsyncClient, audience_id: str) -> dict[str, Any]:
    email = f"c-{uuid.uuid4().hex[:8]}@example.com"
    response = await http.post(
        f"/v1/audiences/{audience_id}/contacts", json={"email": email, "first_name": "Cy"}
    )
    return response.json()


async def _status(handle: WorkflowHandle[Any, Any]) -> RunStatus:
    return await handle.query("status", result_type=RunStatus)


async def test_a_run_of_an_older_version_hears_its_own_exit_goal(
    app_client: httpx.AsyncClient,
    audience_id: str,
    client: Client,
    mail: MailCatcher,
    worker: object,
) -> None:
    steps = [_email("first", "first"), {"id": "wait", "type": "delay", "duration": "1h"}]
    v1 = _definition(audience_id, [*steps, _email("second", "second")])
    v1["settings"] = {"exit_when": [{"type": "purchased"}]}
    flow_id = (await app_client.post("/v1/flows", json=v1)).json()["id"]
    await app_client.post(f"/v1/flows/{flow_id}/activate")
    contact = await _contact(app_client, audience_id)
    await app_client.post(
        f"/v1/audiences/{audience_id}/contacts/{contact['id']}/tags", json={"tags": ["go"]}
    )
    handle = client.get_workflow_handle(workflow_id(flow_id, contact["id"]), result_type=RunResult)
    await eventually(lambda: _phase_is(handle, Phase.WAITING))

    # v2 drops the goal; the v1 run must still leave when its goal is met.
    v2 = {**v1, "settings": {}}
    edited = await app_client.put(f"/v1/flows/{flow_id}", json=v2)
    assert edited.json()["version"] == 2, edited.text
    posted = await app_client.post(
        f"/v1/audiences/{audience_id}/contacts/{contact['id']}/activity",
        json={"type": "order_placed", "data": {"order_id": "o-1"}},
    )
    assert posted.status_code == 202, posted.text
    result = await asyncio.wait_for(handle.result(), timeout=60)
    assert (result.phase, result.reason) == (Phase.EXITED, "reached the exit goal `purchased`")
    assert [m.subject for m in mail.to(contact["email"])] == ["first"]


async def _phase_is(handle: WorkflowHandle[Any, Any], phase: Phase) -> bool:
    return (await _status(handle)).phase == phase


async def _started(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    steps: list[dict[str, Any]],
    *,
    task_timeout: timedelta | None = None,
    **limits: Any,
) -> tuple[WorkflowHandle[Any, RunResult], dict[str, Any]]:
    """A run started on its own task queue, as the gateway starts one.

    Args:
        task_timeout: The workflow task timeout; default the server's (10 s).
        **limits: `RunLimits` fields.
    """
    audience = await audiences.create(pool, name="Correctness", timezone="UTC")
    contact, _ = await contacts.upsert(
        pool, audience_id=audience["id"], email=f"r-{uuid.uuid4().hex[:8]}@example.com"
    )
    body = _definition(audience["id"], steps)
    definition = FlowDefinition.model_validate(body)
    async with pool.acquire() as conn, conn.transaction():
        flow = await flows.create(conn, audience_id=audience["id"], definition=body)
    handle = await client.start_workflow(
        ContactFlowWorkflow.run,
        ContactFlowInput(
            flow_id=flow["id"],
            version=1,
            definition=definition,
            contact_id=contact["id"],
            audience_id=audience["id"],
            trigger_type="tag_added",
            limits=RunLimits(**limits),
        ),
        id=workflow_id(flow["id"], contact["id"]),
        task_queue=task_queue,
        start_signal=EVENT_SIGNAL,
        start_signal_args=[_event("tag_added", {"tag": "go"})],
        task_timeout=task_timeout,
    )
    return handle, contact


async def _signal_handled(handle: WorkflowHandle[Any, Any]) -> bool:
    """True once a workflow task holding a signal sent after the start one has completed.

    The worker completes a workflow task only after the workflow code has run its jobs, so by
    then the signal handler has run.
    """
    # Event 2 is the start signal that enrolled the contact.
    events = [e.event_type for e in (await handle.fetch_history()).events][2:]
    if EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED not in events:
        return False
    signalled = events.index(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    return EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in events[signalled:]


async def _tag(pool: asyncpg.Pool, contact_id: str, tag: str) -> None:
    """Tags the contact in the store only: the test delivers the event itself."""
    contact = await contacts.get(pool, contact_id)
    assert contact is not None
    async with pool.acquire() as conn, conn.transaction():
        await contacts.add_tags(
            conn, audience_id=contact["audience_id"], contact_id=contact_id, names=[tag]
        )


def _event(type: str, data: dict[str, Any]) -> FlowEvent:
    return FlowEvent(id=uuid.uuid4().hex, type=type, occurred_at=datetime.now(UTC), data=data)


async def test_an_event_heard_while_conditions_are_checked_is_not_missed(
    settings: Settings, client: Client, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    """The tag lands after the check has read the contact, and its event before the answer.

    The hook holds the first check's answer (not tagged) while the test tags the contact and
    signals the event, until the workflow has handled the signal: a local activity that
    outlasts 80% of the workflow task timeout makes the worker complete its task and take a
    new one, and that one carries the signal. A count of heard events taken after the check
    (the defect) already includes this event, so the wait would sleep out its hour.
    """
    task_queue = f"evaluate-{uuid.uuid4().hex[:8]}"
    held: list[str] = []
    handles: list[WorkflowHandle[Any, Any]] = []

    async def hold_the_first_check(input: EvaluateInput, matched: bool) -> None:
        if held or matched:
            return
        held.append("read before the tag")
        await _tag(pool, input.contact_id, "customer")
        await handles[0].signal(EVENT_SIGNAL, _event("tag_added", {"tag": "customer"}))
        await eventually(lambda: _signal_handled(handles[0]), timeout=60)
        held.append("answered after the event was heard")

    hook: AfterEvaluateHook = hold_the_first_check
    steps = [
        {
            "id": "wait",
            "type": "wait_for_trigger",
            "timeout": "1h",
            "conditions": {"conditions": [{"type": "tag", "tag": "customer"}]},
            "matched": [_email("thanks", "Thanks for buying")],
            "timed_out": [_email("nudge", "Still thinking?")],
        }
    ]
    async with (
        open_core(settings, client=client) as core,
        build_worker(core, task_queue=task_queue, after_evaluate=hook),
    ):
        # A short task timeout: the worker takes the signal in within seconds of the hold.
        handle, contact = await _started(
            client, pool, task_queue, steps, task_timeout=timedelta(seconds=2)
        )
        handles.append(handle)
        try:
            result = await asyncio.wait_for(handle.result(), timeout=60)
        except TimeoutError:
            status = await _status(handle)
            await handle.terminate("test over")
            raise AssertionError(
                f"the event heard during the check was missed: {status.details}"
            ) from None
    # A hook that failed would have been retried as a new check, which reads the tag: the
    # race would not have been run.
    assert held == ["read before the tag", "answered after the event was heard"]
    assert result.phase == Phase.COMPLETED
    assert [m.subject for m in mail.to(contact["email"])] == ["Thanks for buying"]


def test_the_interpreter_handles_every_step_type_in_one_exhaustive_match() -> None:
    source = inspect.getsource(contact_flow.ContactFlowWorkflow._run_step)
    tree = ast.parse(textwrap.dedent(source))
    matches = [node for node in ast.walk(tree) if isinstance(node, ast.Match)]
    assert len(matches) == 1, "one match statement dispatches the steps"
    handled = {
        name.id
        for case in matches[0].cases
        for node in ast.walk(case.pattern)
        if isinstance(node, ast.MatchClass)
        for name in [node.cls]
        if isinstance(name, ast.Name)
    }
    assert handled == {model.__name__ for model in STEP_MODELS}
    last = matches[0].cases[-1]
    assert isinstance(last.pattern, ast.MatchAs) and last.pattern.pattern is None
    assert "assert_never" in ast.unparse(last.body[0])


async def test_the_end_of_a_branch_names_the_step_that_follows_it(
    app_client: httpx.AsyncClient, audience_id: str, client: Client, worker: object
) -> None:
    steps = [
        {
            "id": "check",
            "type": "if_else",
            "conditions": {
                "conditions": [{"type": "field", "field": "first_name", "op": "is_set"}]
            },
            "yes": [{"id": "breathe", "type": "delay", "duration": "1h"}],
            "no": [],
        },
        _email("after", "After the branch"),
    ]
    flow_id = (await app_client.post("/v1/flows", json=_definition(audience_id, steps))).json()[
        "id"
    ]
    await app_client.post(f"/v1/flows/{flow_id}/activate")
    contact = await _contact(app_client, audience_id)
    await app_client.post(
        f"/v1/audiences/{audience_id}/contacts/{contact['id']}/tags", json={"tags": ["go"]}
    )
    handle = client.get_workflow_handle(workflow_id(flow_id, contact["id"]))
    await eventually(lambda: _phase_is(handle, Phase.WAITING))
    status = await _status(handle)
    assert status.step_id == "breathe"
    assert status.details.endswith("then `after` (send_email).")
    timeline = await handle.query("timeline", result_type=list[TimelineEntry])
    assert [(e.step_id, e.outcome) for e in timeline] == [("check", "yes"), ("breathe", None)]
    await handle.terminate("test over")


async def test_a_stuck_send_ends_when_the_flow_is_archived_or_gives_up_in_time(
    settings: Settings, client: Client, pool: asyncpg.Pool
) -> None:
    # A mail server that is not there: every attempt fails and is retried.
    dead = settings.model_copy(update={"smtp_port": free_port(), "smtp_pool_size": 0})
    task_queue = f"dead-smtp-{uuid.uuid4().hex[:8]}"
    steps = [_email("hello", "Hello"), {"id": "after", "type": "add_tag", "tag": "after"}]
    async with open_core(dead, client=client) as core, build_worker(core, task_queue=task_queue):
        archived, _ = await _started(client, pool, task_queue, steps)

        async def retrying() -> bool:
            pending = (await archived.describe()).raw_description.pending_activities
            return bool(pending) and pending[0].attempt >= 2

        await eventually(retrying)
        await archived.signal(CONTROL_SIGNAL, FlowControl(action="archived"))
        result = await archived.result()
        assert (result.phase, result.reason) == (Phase.EXITED, "the flow was archived")

        # A send still failing after the run's give-up time fails the step; the journey goes on.
        given_up, contact = await _started(
            client, pool, task_queue, steps, send_give_up_after_seconds=3
        )
        result = await given_up.result()
        timeline = await given_up.query("timeline", result_type=list[TimelineEntry])
    assert result.phase == Phase.COMPLETED
    assert [e.step_id for e in timeline] == ["hello", "after"]
    assert timeline[0].outcome is not None and timeline[0].outcome.startswith("failed")
    assert await contacts.tags(pool, contact["id"]) == ["after"]


async def test_a_long_history_continues_as_new_and_loses_nothing(
    settings: Settings, client: Client, pool: asyncpg.Pool, mail: MailCatcher
) -> None:
    task_queue = f"continue-{uuid.uuid4().hex[:8]}"
    steps = [
        _email("hello", "Hello"),
        {
            "id": "wait",
            "type": "wait_for_trigger",
            "timeout": "1h",
            "conditions": {"conditions": [{"type": "tag", "tag": "customer"}]},
            "matched": [_email("thanks", "Thanks")],
            "timed_out": [_email("nudge", "Nudge")],
        },
    ]
    async with (
        open_core(settings, client=client) as core,
        build_worker(core, task_queue=task_queue),
    ):
        handle, contact = await _started(client, pool, task_queue, steps, max_history_events=200)
        first_run = (await handle.describe()).run_id
        await eventually(lambda: _phase_is(handle, Phase.WAITING))
        # Events the wait hears but that do not meet its conditions, until the run continues.
        for n in range(120):
            await handle.signal(EVENT_SIGNAL, _event("tag_removed", {"tag": f"t{n}"}))
        # The same event id again: a continued run still knows it has seen it.
        repeated = _event("custom_event", {"name": "x"})
        await handle.signal(EVENT_SIGNAL, repeated)

        async def continued() -> bool:
            return (await handle.describe()).run_id != first_run

        await eventually(continued, timeout=60)
        await handle.signal(EVENT_SIGNAL, repeated)
        status = await _status(handle)
        assert (status.phase, status.step_id, status.entry) == (Phase.WAITING, "wait", 1)
        await _tag(pool, contact["id"], "customer")
        await handle.signal(EVENT_SIGNAL, _event("tag_added", {"tag": "customer"}))
        result = await client.get_workflow_handle(handle.id, result_type=RunResult).result()
    assert result.phase == Phase.COMPLETED
    assert result.steps_done == ["hello", "wait", "thanks"]
    assert [m.subject for m in mail.to(contact["email"])] == ["Hello", "Thanks"]

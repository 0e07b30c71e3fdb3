"""Benchmark 3, cost per contact: history events, activities, timers, actions and bytes.

Read from the real histories of contacts that went through the flow, next to the least a raw
Temporal workflow does for the same shape (one timer per delay, one no-op activity per send,
started without a signal or search attributes). History events and billable actions are what
a Temporal Cloud bill scales with; history bytes are what its storage does.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from bench import raw
from bench.config import BenchConfig
from bench.fixtures import create_audience, create_contacts, create_flow, delay_step, send_step, tag
from bench.results import Figure, Recorder
from bench.stack import Suite, unique
from bench.visibility import wait_closed

BENCH = "cost"
RAW_LABEL = (
    "raw Temporal, same shape: a timer per delay, a no-op activity per send, "
    "plain start (no signal, no search attributes)"
)


@dataclass
class Shape:
    """A flow shape: its journeys steps and the equivalent raw steps."""

    name: str
    steps: list[dict[str, Any]]
    raw_steps: list[str]


def shapes(delay: str, delay_seconds: float) -> list[Shape]:
    """The shapes the issue names: send only, delay then send, and ten steps."""
    ten = [
        step for i in range(5) for step in (delay_step(f"wait{i}", delay), send_step(f"send{i}"))
    ]
    return [
        Shape("trigger→send_email", [send_step("hello")], ["noop"]),
        Shape(
            "trigger→delay→send_email",
            [delay_step("wait", delay), send_step("hello")],
            raw.delay_then_noop(delay_seconds),
        ),
        Shape(
            "10 steps (5× delay, send_email)",
            ten,
            [s for _ in range(5) for s in raw.delay_then_noop(delay_seconds)],
        ),
    ]


@dataclass
class Tally:
    """What the histories of some workflows hold, per workflow."""

    events: float
    activities: float
    timers: float
    actions: float
    bytes: float
    by_type: dict[str, float]


def tally(histories: Iterable[list[HistoryEvent]]) -> Tally:
    """Averages counts over histories.

    Billable actions follow Temporal Cloud's published list: a workflow start, each signal,
    each timer, each activity attempt, each search-attribute upsert, each marker (local
    activity / side effect). Signal-with-start counts as a start plus a signal.
    """
    counts: Counter[str] = Counter()
    totals = Counter[str]()
    n = 0
    for events in histories:
        n += 1
        for event in events:
            counts[EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")] += 1
            totals["bytes"] += event.ByteSize()
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                totals["attempts"] += event.activity_task_started_event_attributes.attempt
    if not n:
        raise ValueError("no histories")
    actions = (
        counts["WORKFLOW_EXECUTION_STARTED"]
        + counts["WORKFLOW_EXECUTION_SIGNALED"]
        + counts["TIMER_STARTED"]
        + totals["attempts"]
        + counts["UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"]
        + counts["MARKER_RECORDED"]
    )
    return Tally(
        events=sum(counts.values()) / n,
        activities=counts["ACTIVITY_TASK_SCHEDULED"] / n,
        timers=counts["TIMER_STARTED"] / n,
        actions=actions / n,
        bytes=totals["bytes"] / n,
        by_type={name: c / n for name, c in sorted(counts.items())},
    )


async def histories(client: Client, workflow_ids: list[str]) -> list[list[HistoryEvent]]:
    async def one(workflow_id: str) -> list[HistoryEvent]:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        return list(history.events)

    return list(await asyncio.gather(*(one(w) for w in workflow_ids)))


async def run(suite: Suite, config: BenchConfig, rec: Recorder) -> None:
    """Runs each shape for a few contacts on both sides and compares their histories."""
    delay_seconds = config.cost_delay_seconds
    async with suite.env(BENCH) as env:
        queue = unique("cost")
        await env.start_sink()
        http = await env.start_gateway(task_queue=queue)
        await asyncio.gather(
            env.start_workers("journeys", task_queue=queue, processes=1),
            env.start_workers("raw", task_queue=queue + "-raw", processes=1),
        )
        assert env.client is not None and suite.pool is not None
        client = env.client
        breakdown: list[str] = []
        for shape in shapes(f"{delay_seconds}s", delay_seconds):
            audience = await create_audience(http.next(), f"Cost {shape.name}")
            flow = await create_flow(http.next(), audience, shape.steps, name=shape.name)
            contacts = await create_contacts(suite.pool, audience, config.cost_contacts)
            await asyncio.gather(*(tag(http.next(), audience, c) for c in contacts))
            prefix = unique("raw-cost")
            raw_ids = [f"{prefix}-{i}" for i in range(config.cost_contacts)]
            await asyncio.gather(
                *(
                    client.start_workflow(
                        raw.WORKFLOW_NAME,
                        raw.RawFlowInput(shape.raw_steps),
                        id=w,
                        task_queue=queue + "-raw",
                    )
                    for w in raw_ids
                )
            )
            timeout = config.drain_timeout
            await wait_closed(client, f"FlowId = '{flow}'", len(contacts), timeout=timeout)
            await wait_closed(
                client, f"WorkflowId STARTS_WITH '{prefix}-'", len(raw_ids), timeout=timeout
            )
            ours = tally(await histories(client, [f"flow-{flow}-contact-{c.id}" for c in contacts]))
            theirs = tally(await histories(client, raw_ids))
            params = {"flow": shape.name}
            for name, unit, mine, base in (
                ("history_events_per_contact", "events", ours.events, theirs.events),
                ("activities_per_contact", "activities", ours.activities, theirs.activities),
                ("timers_per_contact", "timers", ours.timers, theirs.timers),
                ("billable_actions_per_contact", "actions (est.)", ours.actions, theirs.actions),
                ("history_bytes_per_contact", "bytes", ours.bytes, theirs.bytes),
            ):
                if base or mine:  # a shape without delays has no timers on either side
                    rec.add(Figure(BENCH, name, mine, unit, base, RAW_LABEL, "lower", params))
            breakdown.append(_breakdown(shape.name, ours.by_type, theirs.by_type))
        rec.extras["cost.breakdown"] = "\n\n".join(breakdown)


def figure_keys(config: BenchConfig) -> list[str]:
    """Keys of every figure this benchmark records with `config` (for the smoke test)."""
    keys = []
    for shape in shapes("1s", 1):
        names = [
            "history_events_per_contact",
            "activities_per_contact",
            "billable_actions_per_contact",
            "history_bytes_per_contact",
        ]
        if any(s.startswith("sleep:") for s in shape.raw_steps):
            names.append("timers_per_contact")
        keys += [f"{BENCH}.{name}[flow={shape.name}]" for name in names]
    return keys


def _breakdown(shape: str, ours: dict[str, float], theirs: dict[str, float]) -> str:
    """A table of history event types per contact, journeys next to raw."""
    lines = [f"{shape}", f"  {'event type':45} {'journeys':>9} {'raw':>6}"]
    for name in sorted(set(ours) | set(theirs)):
        lines.append(f"  {name:45} {ours.get(name, 0):9.1f} {theirs.get(name, 0):6.1f}")
    return "\n".join(lines)

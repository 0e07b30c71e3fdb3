"""Reports: what a flow did per step (JSON, or a Mermaid diagram), and a contact's timeline."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel
from temporalio.client import Client

from api.deps import API_KEY_REQUIRED, PoolDep, TemporalDep
from api.problems import Problem
from api.routes.contacts import _contact
from api.routes.flows import require_flow
from journeys.domain import search
from journeys.domain.flow import FlowDefinition
from journeys.domain.flow_report import FlowReport, StepCounts, mermaid
from journeys.store import reports

router = APIRouter(tags=["reports"], dependencies=[API_KEY_REQUIRED])

ERRORS = {401: {"model": Problem}, 404: {"model": Problem}, 422: {"model": Problem}}


async def _resting_at(temporal: Client, flow_id: str, step_id: str) -> int:
    """Open runs of the flow whose `JourneyStep` is this step (Temporal visibility)."""
    query = (
        f"{search.FLOW_ID.name} = '{flow_id}' AND {search.JOURNEY_STEP.name} = '{step_id}'"
        " AND ExecutionStatus = 'Running'"
    )
    return (await temporal.count_workflows(query)).count


async def flow_report(pool: PoolDep, temporal: Client, flow: dict[str, Any]) -> FlowReport:
    """Counts per step: from `messages`, the events emails caused, enrollments and visibility."""
    definition = FlowDefinition.model_validate(flow["definition"])
    steps = [step for _, step in definition.walk()]
    per_step, entries, resting = await asyncio.gather(
        reports.flow_steps(pool, flow["id"]),
        reports.flow_entries(pool, flow["id"]),
        asyncio.gather(*(_resting_at(temporal, flow["id"], s.id) for s in steps)),
    )
    counts = []
    for step, now in zip(steps, resting, strict=True):
        found = per_step.get(step.id, {})
        counts.append(
            StepCounts(
                step_id=step.id,
                type=step.type,
                now=now,
                passed=found.get("passed") if step.type in ("send_email", "send_sms") else None,
                emails_sent=found.get("email_sent", 0),
                emails_failed=found.get("email_failed", 0),
                opened=found.get("email_opened", 0),
                clicked=found.get("email_clicked", 0),
                unsubscribed=found.get("unsubscribed", 0),
                bounced=found.get("email_bounced", 0),
                sms_sent=found.get("sms_sent", 0),
            )
        )
    return FlowReport(
        flow_id=flow["id"],
        name=definition.name,
        version=flow["version"],
        entered=sum(entries.values()),
        running=entries.get("running", 0),
        completed=entries.get("completed", 0),
        exited=entries.get("exited", 0),
        steps=counts,
    )


@router.get(
    "/flows/{flow_id}/report",
    responses={**ERRORS, 200: {"content": {"text/plain": {}}}},
    response_model=FlowReport,
)
async def get_flow_report(
    flow_id: str,
    pool: PoolDep,
    temporal: TemporalDep,
    format: Literal["json", "mermaid"] = Query(
        "json", description="`mermaid`: the flow as a Mermaid flowchart with the counts on it."
    ),
) -> FlowReport | PlainTextResponse:
    """Per step: contacts there now, passed through, emails sent / opened / clicked /
    unsubscribed / bounced, SMS sent; and entries by outcome."""
    flow = await require_flow(pool, flow_id)
    report = await flow_report(pool, temporal, flow)
    if format == "mermaid":
        definition = FlowDefinition.model_validate(flow["definition"])
        return PlainTextResponse(mermaid(definition, report))
    return report


class TimelineItem(BaseModel):
    kind: Literal["event", "message", "journey"]
    at: datetime
    what: str
    flow_id: str | None
    status: str | None
    data: dict[str, Any]


class Timeline(BaseModel):
    contact_id: str
    items: list[TimelineItem]


@router.get("/audiences/{audience_id}/contacts/{contact}/timeline", responses=ERRORS)
async def contact_timeline(
    audience_id: uuid.UUID,
    contact: str,
    pool: PoolDep,
    limit: int = Query(200, ge=1, le=1000),
) -> Timeline:
    """The contact's events, messages and journeys (flow entries), newest first."""
    row = await _contact(pool, str(audience_id), contact)
    items = await reports.timeline(pool, row["id"], limit=limit)
    return Timeline(contact_id=row["id"], items=[TimelineItem(**item) for item in items])

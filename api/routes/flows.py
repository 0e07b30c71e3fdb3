"""Flows: create, activate, inspect their contact runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel

from api.deps import ApiKeyDep, PoolDep, RegistryDep, TemporalDep
from api.problems import FieldError, Problem, ProblemError
from api.routes.audiences import require_audience
from journeys.domain import search
from journeys.domain.flow import FlowDefinition
from journeys.domain.validation import violations
from journeys.store import flows

router = APIRouter(prefix="/flows", tags=["flows"])

ERRORS = {
    401: {"model": Problem},
    404: {"model": Problem},
    409: {"model": Problem},
    422: {"model": Problem},
}

FlowStatus = Literal["draft", "active", "paused", "archived"]


class FlowPublic(BaseModel):
    id: str
    audience_id: str
    name: str
    status: FlowStatus
    version: int
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    activated_at: datetime | None


def public(row: dict[str, Any]) -> FlowPublic:
    """The flow as the API shows it; the definition in authoring order (jsonb sorts keys)."""
    definition = FlowDefinition.model_validate(row["definition"]).authored()
    return FlowPublic(**{**row, "definition": definition})


class RunPublic(BaseModel):
    """One contact's run through the flow, as Temporal visibility sees it."""

    workflow_id: str
    run_id: str
    contact_id: str | None
    status: str
    phase: str | None
    step: str | None
    started_at: datetime | None
    closed_at: datetime | None


class RunList(BaseModel):
    flow_id: str
    runs: list[RunPublic]


async def require_flow(pool: PoolDep, flow_id: str) -> dict[str, Any]:
    """The flow, or a 404 naming it."""
    row = await flows.get(pool, flow_id)
    if row is None:
        raise ProblemError(404, f"flow {flow_id} does not exist")
    return row


def check_rules(definition: FlowDefinition) -> None:
    """Raises a 422 listing every flow rule the definition breaks."""
    found = violations(definition)
    if found:
        raise ProblemError(
            422,
            f"{found[0].path}: {found[0].message}"
            + (f" (and {len(found) - 1} more)" if len(found) > 1 else ""),
            errors=[FieldError(field=v.path, message=v.message) for v in found],
        )


@router.post("", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_flow(definition: FlowDefinition, pool: PoolDep, _key: ApiKeyDep) -> FlowPublic:
    """Creates a draft flow at version 1. Nothing enrols until it is activated."""
    check_rules(definition)
    await require_audience(pool, definition.audience_id)
    async with pool.acquire() as conn, conn.transaction():
        row = await flows.create(
            conn, audience_id=definition.audience_id, definition=definition.authored()
        )
    return public(row)


@router.get("/{flow_id}", responses=ERRORS)
async def get_flow(flow_id: str, pool: PoolDep, _key: ApiKeyDep) -> FlowPublic:
    """One flow with its current definition."""
    return public(await require_flow(pool, flow_id))


@router.post("/{flow_id}/activate", responses=ERRORS)
async def activate_flow(
    flow_id: str, pool: PoolDep, registry: RegistryDep, _key: ApiKeyDep
) -> FlowPublic:
    """Starts enrolling: only activity from now on triggers the flow."""
    flow = await require_flow(pool, flow_id)
    if flow["status"] == "archived":
        raise ProblemError(409, "an archived flow cannot be activated again")
    if flow["status"] != "active":
        async with pool.acquire() as conn, conn.transaction():
            flow = await flows.set_status(conn, flow_id, "active")
    # This process need not wait for its own NOTIFY: the next request sees the flow.
    await registry.refresh(flow_id)
    return public(flow)


@router.get("/{flow_id}/runs", responses=ERRORS)
async def list_runs(
    flow_id: str,
    pool: PoolDep,
    temporal: TemporalDep,
    _key: ApiKeyDep,
    limit: int = Query(100, ge=1, le=1000),
) -> RunList:
    """The flow's contact runs, newest first, from Temporal visibility (may lag by a second)."""
    await require_flow(pool, flow_id)
    runs = []
    async for wf in temporal.list_workflows(f"{search.FLOW_ID.name} = '{flow_id}'", limit=limit):
        attrs = wf.typed_search_attributes
        runs.append(
            RunPublic(
                workflow_id=wf.id,
                run_id=wf.run_id,
                contact_id=attrs.get(search.CONTACT_ID),
                status=wf.status.name.lower() if wf.status else "unknown",
                phase=attrs.get(search.JOURNEY_PHASE),
                step=attrs.get(search.JOURNEY_STEP),
                started_at=wf.start_time,
                closed_at=wf.close_time,
            )
        )
    return RunList(flow_id=flow_id, runs=runs)

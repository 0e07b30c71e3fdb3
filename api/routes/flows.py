"""Flows: definitions and their versions, lifecycle, validation, contact runs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Body, Depends, Query, Response, status
from pydantic import BaseModel, Field
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from api.deps import API_KEY_REQUIRED, IngestDep, PoolDep, RegistryDep, SettingsDep, TemporalDep
from api.flow_rules import check, rule_violations, schema_violations
from api.problems import FieldError, Problem, ProblemError
from api.routes.audiences import require_audience
from journeys.config import Settings
from journeys.domain import search
from journeys.domain.flow import FlowDefinition
from journeys.domain.journey_ids import journey_ids
from journeys.domain.runs import (
    ARM_WORKFLOW_NAME,
    CONTROL_WORKFLOW_NAME,
    ArmFlowInput,
    FlowControlInput,
    control_workflow_id,
)
from journeys.domain.timers import ARMED_ON_ACTIVATION
from journeys.domain.validation import Violation
from journeys.ingest import Ingest
from journeys.registry import ActiveFlow, FlowRegistry
from journeys.store import arming, audiences, contacts, flows

router = APIRouter(prefix="/flows", tags=["flows"], dependencies=[API_KEY_REQUIRED])
# The flow schema is public (editors fetch it); it is registered before `/{flow_id}`.
schema_router = APIRouter(prefix="/flows", tags=["flows"])

ERRORS = {
    401: {"model": Problem},
    404: {"model": Problem},
    409: {"model": Problem},
    422: {"model": Problem},
}

FlowStatus = Literal["draft", "active", "paused", "archived"]


class ArmingPublic(BaseModel):
    """How far arming the audience's contacts has come."""

    total: int
    armed: int
    skipped: int
    done: bool
    workflow_id: str


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
    archived_at: datetime | None = None
    arming: ArmingPublic | None = Field(
        None,
        description="Progress of arming the audience's existing contacts (date triggers and"
        " purchase lapses), from the flow's last activation.",
    )
    journey_id: int | None = Field(
        None, description="With a flow_api trigger: the Mailchimp-style journey id."
    )
    step_id: int | None = Field(
        None, description="With a flow_api trigger: the Mailchimp-style trigger step id."
    )


class FlowList(BaseModel):
    flows: list[FlowPublic]


class VersionPublic(BaseModel):
    version: int
    definition: dict[str, Any]
    created_at: datetime


class VersionList(BaseModel):
    flow_id: str
    current: int
    versions: list[VersionPublic]


class ValidationReport(BaseModel):
    """Every violation at once; `valid` means the flow can be saved and activated."""

    valid: bool
    violations: list[Violation]


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


class ManualAdd(BaseModel):
    contacts: list[str] = Field(
        min_length=1,
        max_length=500,
        description="Contact ids, email addresses or subscriber hashes.",
    )


class ManualAddResult(BaseModel):
    enrolled: list[dict[str, str | None]]
    not_found: list[str]


def public(row: dict[str, Any]) -> FlowPublic:
    """The flow as the API shows it; the definition in authoring order (jsonb sorts keys)."""
    definition = FlowDefinition.model_validate(row["definition"]).authored()
    ids = journey_ids(row)
    journey_id, step_id = ids if ids else (None, None)
    return FlowPublic(
        **{**row, "definition": definition, "journey_id": journey_id, "step_id": step_id}
    )


async def require_flow(pool: asyncpg.Pool, flow_id: str) -> dict[str, Any]:
    """The flow, or a 404 naming it."""
    row = await flows.get(pool, flow_id)
    if row is None:
        raise ProblemError(404, f"flow {flow_id} does not exist")
    return row


def _name_taken(name: str) -> ProblemError:
    return ProblemError(
        409,
        f"a flow named {name!r} already exists in this audience",
        errors=[FieldError(field="name", message="already used by another flow of the audience")],
    )


# --- definitions --------------------------------------------------------------------------------


@schema_router.get("/schema", response_model=dict[str, Any])
async def flow_schema() -> dict[str, Any]:
    """JSON Schema of a flow definition, for editors and code generators (no key needed)."""
    return FlowDefinition.model_json_schema()


@router.post("/validate", responses=ERRORS)
async def validate_flow(
    pool: PoolDep,
    settings: SettingsDep,
    definition: dict[str, Any] = Body(..., description="A flow definition, valid or not."),
    flow_id: str | None = Query(None, description="The flow this would replace, if any."),
) -> ValidationReport:
    """Checks a definition without saving it and returns every violation at once."""
    parsed, found = schema_violations(definition)
    if parsed is not None:
        found = await rule_violations(pool, settings, parsed, flow_id=flow_id)
        if await audiences.get(pool, parsed.audience_id) is None:
            found.insert(
                0,
                Violation(
                    path="audience_id",
                    code="unknown_audience",
                    message=f"audience {parsed.audience_id} does not exist",
                ),
            )
    return ValidationReport(valid=not found, violations=found)


@router.post("", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_flow(
    definition: FlowDefinition, pool: PoolDep, settings: SettingsDep
) -> FlowPublic:
    """Creates a draft flow at version 1. Nothing enrols until it is activated."""
    await require_audience(pool, definition.audience_id)
    await check(pool, settings, definition)
    try:
        async with pool.acquire() as conn, conn.transaction():
            row = await flows.create(
                conn, audience_id=definition.audience_id, definition=definition.authored()
            )
    except asyncpg.UniqueViolationError:
        raise _name_taken(definition.name) from None
    return public(row)


@router.get("", responses=ERRORS)
async def list_flows(
    pool: PoolDep,
    audience_id: uuid.UUID | None = None,
    status: FlowStatus | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> FlowList:
    """Flows, newest first."""
    rows = await flows.list_flows(
        pool,
        audience_id=str(audience_id) if audience_id else None,
        status=status,
        limit=limit,
        offset=offset,
    )
    return FlowList(flows=[public(r) for r in rows])


@router.get("/{flow_id}", responses=ERRORS)
async def get_flow(flow_id: str, pool: PoolDep) -> FlowPublic:
    """One flow with its current definition (and how far arming its audience has come)."""
    flow = public(await require_flow(pool, flow_id))
    progress = await arming.get(pool, flow_id)
    if progress is not None:
        flow.arming = ArmingPublic(**progress)
    return flow


@router.put("/{flow_id}", responses=ERRORS)
async def update_flow(
    flow_id: str,
    definition: FlowDefinition,
    pool: PoolDep,
    settings: SettingsDep,
    registry: RegistryDep,
) -> FlowPublic:
    """Replaces the definition.

    A flow that has ever been active gets a new version: contacts already in it finish on the
    version they entered with. Triggers can change only while the flow is a draft or paused.
    """
    flow = await require_flow(pool, flow_id)
    if flow["status"] == "archived":
        raise ProblemError(409, "an archived flow cannot be edited")
    if definition.audience_id != flow["audience_id"]:
        raise ProblemError(
            422,
            "audience_id: a flow stays in the audience it was created in",
            errors=[FieldError(field="audience_id", message=f"must be {flow['audience_id']}")],
        )
    current = FlowDefinition.model_validate(flow["definition"])
    if flow["status"] == "active" and definition.triggers != current.triggers:
        raise ProblemError(
            409,
            "triggers can change only while the flow is a draft or paused",
            errors=[FieldError(field="triggers", message="pause the flow to change its triggers")],
        )
    await check(pool, settings, definition, flow_id=flow_id)
    if definition == current:
        return public(flow)
    try:
        async with pool.acquire() as conn, conn.transaction():
            if flow["activated_at"] is None:
                row = await flows.replace_definition(conn, flow_id, definition.authored())
            else:
                row = await flows.add_version(conn, flow_id, definition.authored())
    except asyncpg.UniqueViolationError:
        raise _name_taken(definition.name) from None
    await registry.refresh(flow_id)
    return public(row)


@router.delete("/{flow_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def delete_flow(flow_id: str, pool: PoolDep) -> Response:
    """Deletes a draft. A flow that ran keeps its history: archive it instead."""
    flow = await require_flow(pool, flow_id)
    if flow["status"] != "draft":
        raise ProblemError(
            409, f"only drafts can be deleted; this flow is {flow['status']} (archive it)"
        )
    async with pool.acquire() as conn, conn.transaction():
        await flows.delete(conn, flow_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{flow_id}/versions", responses=ERRORS)
async def list_versions(flow_id: str, pool: PoolDep) -> VersionList:
    """Every version of the flow, oldest first."""
    flow = await require_flow(pool, flow_id)
    rows = await flows.versions(pool, flow_id)
    return VersionList(
        flow_id=flow_id,
        current=flow["version"],
        versions=[
            VersionPublic(
                version=r["version"],
                definition=FlowDefinition.model_validate(r["definition"]).authored(),
                created_at=r["created_at"],
            )
            for r in rows
        ],
    )


# --- lifecycle ----------------------------------------------------------------------------------


async def _arm_audience(
    pool: asyncpg.Pool, temporal: Client, settings: Settings, flow: dict[str, Any]
) -> None:
    """Arms the contacts already in the audience for a date trigger or a purchase lapse."""
    definition = FlowDefinition.model_validate(flow["definition"])
    trigger = next((t for t in definition.triggers if t.type in ARMED_ON_ACTIVATION), None)
    if trigger is None:
        return
    activation = f"{int(flow['activated_at'].timestamp() * 1000)}"
    wf_id = f"flow-{flow['id']}-arm-{activation}"
    await arming.start(pool, flow["id"], wf_id)
    await temporal.start_workflow(
        ARM_WORKFLOW_NAME,
        ArmFlowInput(flow_id=flow["id"], trigger_type=trigger.type, activation=activation),
        id=wf_id,
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"Arming {definition.name}",
    )


@dataclass(frozen=True)
class _Moves:
    """What a lifecycle move needs: the store, the registry, Temporal, the settings."""

    pool: asyncpg.Pool
    registry: FlowRegistry
    temporal: Client
    settings: Settings

    async def move(
        self, flow_id: str, *, allowed_from: set[str], target: str, action: str | None
    ) -> FlowPublic:
        """Moves the flow to `target` and tells its open runs; repeating a done move is harmless."""
        flow = await require_flow(self.pool, flow_id)
        if flow["status"] != target:
            if flow["status"] not in allowed_from:
                raise ProblemError(409, f"a {flow['status']} flow cannot become {target}")
            if target == "active":
                await check(
                    self.pool,
                    self.settings,
                    FlowDefinition.model_validate(flow["definition"]),
                    flow_id=flow_id,
                    for_activation=True,
                )
            async with self.pool.acquire() as conn, conn.transaction():
                flow = await flows.set_status(conn, flow_id, target)
        # This process need not wait for its own NOTIFY: the next request sees the change.
        await self.registry.refresh(flow_id)
        if target == "active" and action is None:
            await _arm_audience(self.pool, self.temporal, self.settings, flow)
        if action is not None:
            await self.temporal.start_workflow(
                CONTROL_WORKFLOW_NAME,
                FlowControlInput(flow_id=flow_id, action=action),
                id=control_workflow_id(flow_id, action, flow["updated_at"]),
                task_queue=self.settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
        return public(flow)


async def _moves(  # a coroutine: FastAPI runs a plain `def` dependency in a thread
    pool: PoolDep, registry: RegistryDep, temporal: TemporalDep, settings: SettingsDep
) -> _Moves:
    return _Moves(pool, registry, temporal, settings)


MovesDep = Annotated[_Moves, Depends(_moves)]


@router.post("/{flow_id}/activate", responses=ERRORS)
async def activate_flow(flow_id: str, moves: MovesDep) -> FlowPublic:
    """Starts enrolling (only activity from now on triggers the flow); resumes a paused flow."""
    flow = await require_flow(moves.pool, flow_id)
    action = "resumed" if flow["status"] == "paused" else None
    return await moves.move(
        flow_id, allowed_from={"draft", "paused"}, target="active", action=action
    )


@router.post("/{flow_id}/pause", responses=ERRORS)
async def pause_flow(flow_id: str, moves: MovesDep) -> FlowPublic:
    """Stops enrolling; contacts in the flow hold before their next step until it resumes."""
    return await moves.move(flow_id, allowed_from={"active"}, target="paused", action="paused")


@router.post("/{flow_id}/resume", responses=ERRORS)
async def resume_flow(flow_id: str, moves: MovesDep) -> FlowPublic:
    """Enrols again; held contacts carry on."""
    return await moves.move(flow_id, allowed_from={"paused"}, target="active", action="resumed")


@router.post("/{flow_id}/archive", responses=ERRORS)
async def archive_flow(flow_id: str, moves: MovesDep) -> FlowPublic:
    """Ends the flow for good: no more enrolments, and contacts in it leave."""
    return await moves.move(
        flow_id, allowed_from={"active", "paused"}, target="archived", action="archived"
    )


# --- contacts in the flow -----------------------------------------------------------------------


async def _enrol_by_hand(
    pool: asyncpg.Pool, ingest: Ingest, flow_id: str, refs: list[str], trigger_type: str
) -> ManualAddResult:
    """Enrols contacts named by the caller through a trigger that addresses one flow."""
    flow = await require_flow(pool, flow_id)
    definition = FlowDefinition.model_validate(flow["definition"])
    if not any(t.type == trigger_type for t in definition.triggers):
        raise ProblemError(409, f"this flow has no {trigger_type} trigger")
    if flow["status"] != "active":
        raise ProblemError(409, f"the flow is {flow['status']}: only active flows enrol contacts")
    active = ActiveFlow.from_row(flow)
    enrolled, missing = [], []
    for ref in dict.fromkeys(refs):
        contact = await contacts.resolve(pool, flow["audience_id"], ref)
        if contact is None:
            missing.append(ref)
            continue
        result = await ingest.to_flow(
            active,
            contact["id"],
            event_type=trigger_type,
            key=f"{trigger_type}:{flow_id}:{contact['id']}:{uuid.uuid4().hex}",
        )
        enrolled.append(
            {
                "contact": ref,
                "workflow_id": result.workflow_id,
                "outcome": result.outcome,
                "reason": result.reason,
            }
        )
    return ManualAddResult(enrolled=enrolled, not_found=missing)


@router.post("/{flow_id}/contacts", responses=ERRORS)
async def add_contacts(
    flow_id: str, body: ManualAdd, pool: PoolDep, ingest: IngestDep
) -> ManualAddResult:
    """Enrols contacts by hand (the `manual_add` trigger)."""
    return await _enrol_by_hand(pool, ingest, flow_id, body.contacts, "manual_add")


class FlowTrigger(BaseModel):
    """One contact, as Mailchimp's journey trigger endpoint takes it."""

    email_address: str = Field(
        min_length=3, max_length=254, description="Email, id or subscriber hash."
    )


@router.post("/{flow_id}/trigger", responses=ERRORS)
async def trigger_flow(
    flow_id: str, body: FlowTrigger, pool: PoolDep, ingest: IngestDep
) -> ManualAddResult:
    """The flow's trigger URL (the `flow_api` trigger): enrols one contact."""
    result = await _enrol_by_hand(pool, ingest, flow_id, [body.email_address], "flow_api")
    if result.not_found:
        raise ProblemError(
            404,
            f"contact {body.email_address!r} is not in the flow's audience",
            errors=[FieldError(field="email_address", message="no such contact in the audience")],
        )
    return result


@router.get("/{flow_id}/runs", responses=ERRORS)
async def list_runs(
    flow_id: str,
    pool: PoolDep,
    temporal: TemporalDep,
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

"""Inputs and outputs of the contact-flow workflow and its activities (one model each)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from journeys.domain.flow import FlowDefinition

WORKFLOW_NAME = "ContactFlowWorkflow"
EVENT_SIGNAL = "event"


class ActivityName(StrEnum):
    """Registered activity names; workflows refer to activities by these, not by import."""

    BEGIN_ENROLLMENT = "begin_enrollment"
    FINISH_ENROLLMENT = "finish_enrollment"
    SEND_EMAIL = "send_email"


class Phase(StrEnum):
    """Where a contact-in-flow run is; also the `JourneyPhase` search attribute."""

    ENTERING = "entering"
    ARMED = "armed"
    RUNNING = "running"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    EXITED = "exited"


def workflow_id(flow_id: str, contact_id: str) -> str:
    """The id of the one workflow that carries `contact_id` through `flow_id`."""
    return f"flow-{flow_id}-contact-{contact_id}"


class FlowEvent(BaseModel):
    """Something that happened to a contact, as delivered to its workflows."""

    id: str = Field(description="Event id; the workflow ignores an id it has seen.")
    type: str
    occurred_at: datetime
    data: dict[str, Any] = {}


class ContactFlowInput(BaseModel):
    """Start input: the flow version is snapshotted here, so edits never reach this run."""

    flow_id: str
    version: int
    definition: FlowDefinition
    contact_id: str
    audience_id: str
    trigger_type: str


class RunStatus(BaseModel):
    """What the `status` query answers."""

    phase: Phase
    step_id: str | None
    details: str
    entry: int | None
    sent: int


class RunResult(BaseModel):
    """How a run ended."""

    phase: Phase
    entry: int | None
    reason: str | None = None
    steps_done: list[str] = []


class BeginEnrollmentInput(BaseModel):
    flow_id: str
    version: int
    contact_id: str
    workflow_id: str
    run_id: str
    trigger_type: str
    event_id: str | None
    reentry_allowed: bool
    reentry_min_interval_seconds: float | None


class BeginEnrollmentResult(BaseModel):
    admitted: bool
    entry: int | None = None
    reason: str | None = None


class FinishEnrollmentInput(BaseModel):
    flow_id: str
    contact_id: str
    entry: int
    status: Phase


class SendEmailInput(BaseModel):
    """One email of one step to one contact; `idempotency_key` makes retries safe."""

    idempotency_key: str
    workflow_id: str
    flow_id: str
    step_id: str
    contact_id: str
    subject: str
    preheader: str | None = None
    html: str | None = None
    text: str | None = None
    from_name: str | None = None
    from_email: str | None = None
    reply_to: str | None = None


class SendResult(BaseModel):
    """Outcome of a send: `sent`, `duplicate` (an earlier attempt sent it), or `skipped`."""

    status: str
    message_id: str | None = None
    reason: str | None = None

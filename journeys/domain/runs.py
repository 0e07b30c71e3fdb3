"""Inputs and outputs of the workflows and their activities (one model each)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from journeys.domain.conditions import ConditionSet
from journeys.domain.flow import FlowDefinition, QuietHours, Tracking
from journeys.domain.steps import (
    AddTag,
    AddToGroup,
    RemoveFromGroup,
    RemoveTag,
    Unsubscribe,
    UpdateField,
    WaitUntil,
    Webhook,
)

WORKFLOW_NAME = "ContactFlowWorkflow"
CONTROL_WORKFLOW_NAME = "FlowControlWorkflow"
EVENT_SIGNAL = "event"
CONTROL_SIGNAL = "flow_control"


class ActivityName(StrEnum):
    """Registered activity names; workflows refer to activities by these, not by import."""

    BEGIN_ENROLLMENT = "begin_enrollment"
    FINISH_ENROLLMENT = "finish_enrollment"
    SEND_EMAIL = "send_email"
    SEND_SMS = "send_sms"
    CALL_WEBHOOK = "call_webhook"
    APPLY_CONTACT_ACTION = "apply_contact_action"
    EVALUATE_CONDITIONS = "evaluate_conditions"
    RESOLVE_WAIT = "resolve_wait"
    LIST_RUNNING = "list_running"


class Phase(StrEnum):
    """Where a contact-in-flow run is; also the `JourneyPhase` search attribute."""

    ENTERING = "entering"
    ARMED = "armed"
    RUNNING = "running"
    WAITING = "waiting"
    PAUSED = "paused"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    EXITED = "exited"


def workflow_id(flow_id: str, contact_id: str) -> str:
    """The id of the one workflow that carries `contact_id` through `flow_id`."""
    return f"flow-{flow_id}-contact-{contact_id}"


def control_workflow_id(flow_id: str, action: str, changed_at: datetime) -> str:
    """Id of the fan-out telling a flow's open runs of one status change (a repeat reuses it)."""
    return f"flow-{flow_id}-{action}-{int(changed_at.timestamp() * 1000)}"


class FlowEvent(BaseModel):
    """Something that happened to a contact, as delivered to its workflows."""

    id: str = Field(description="Event id; the workflow ignores an id it has seen.")
    type: str
    occurred_at: datetime
    data: dict[str, Any] = {}


class FlowControl(BaseModel):
    """Signal: the flow was paused, resumed or archived."""

    action: Literal["paused", "resumed", "archived"]


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
    version: int
    paused: bool = False


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
    starting_filter: ConditionSet | None = None


class BeginEnrollmentResult(BaseModel):
    admitted: bool
    entry: int | None = None
    reason: str | None = None


class FinishEnrollmentInput(BaseModel):
    flow_id: str
    contact_id: str
    entry: int
    status: Phase
    reason: str | None = None


class Delivery(BaseModel):
    """What every send shares: who, from which step, and when it may go out."""

    idempotency_key: str
    workflow_id: str
    flow_id: str
    flow_name: str = ""
    step_id: str
    contact_id: str
    audience_id: str = ""
    transactional: bool = False
    quiet_hours: QuietHours | None = None
    timezone_basis: Literal["contact", "audience"] = "contact"
    event: dict[str, Any] = {}


class SendEmailInput(Delivery):
    """One email of one step to one contact; `idempotency_key` makes retries safe."""

    subject: str
    preheader: str | None = None
    html: str | None = None
    text: str | None = None
    from_name: str | None = None
    from_email: str | None = None
    reply_to: str | None = None
    tracking: Tracking | None = Field(
        None, description="The flow's tracking settings; None reads them from its stored version."
    )


class SendSmsInput(Delivery):
    body: str


class SendResult(BaseModel):
    """Outcome of a send.

    `sent`, `duplicate` (an earlier attempt sent it), `skipped` (consent, no address), or
    `deferred` (quiet hours: try again at `not_before`).
    """

    status: Literal["sent", "duplicate", "skipped", "deferred"]
    message_id: str | None = None
    reason: str | None = None
    not_before: datetime | None = None


class WebhookInput(BaseModel):
    idempotency_key: str
    workflow_id: str
    flow_id: str
    flow_name: str
    contact_id: str
    step: Webhook
    event: dict[str, Any] = {}


class WebhookResult(BaseModel):
    status_code: int


ContactAction = AddTag | RemoveTag | UpdateField | AddToGroup | RemoveFromGroup | Unsubscribe


class ContactActionInput(BaseModel):
    """A change to the contact made by a step; the events it causes are keyed by the step."""

    idempotency_key: str
    workflow_id: str
    flow_id: str
    contact_id: str
    audience_id: str
    action: ContactAction = Field(discriminator="type")
    event: dict[str, Any] = {}


class ContactActionResult(BaseModel):
    changed: bool
    detail: str


class EvaluateInput(BaseModel):
    contact_id: str
    conditions: ConditionSet


class EvaluateResult(BaseModel):
    matched: bool


class ResolveWaitInput(BaseModel):
    contact_id: str
    audience_id: str
    timezone_basis: Literal["contact", "audience"] = "contact"
    rule: WaitUntil


class ResolveWaitResult(BaseModel):
    until: datetime
    zone: str


class FlowControlInput(BaseModel):
    """Fan-out of a lifecycle change to a flow's open runs, one page per continue-as-new."""

    flow_id: str
    action: Literal["paused", "resumed", "archived"]
    after: str = ""
    signalled: int = 0


class ListRunningInput(BaseModel):
    flow_id: str
    after: str
    limit: int


class ListRunningResult(BaseModel):
    workflow_ids: list[str]

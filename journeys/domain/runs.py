"""Inputs and outputs of the workflows and their activities (one model each)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from journeys.domain.conditions import ConditionSet
from journeys.domain.flow import FlowDefinition
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


class RunLimits(BaseModel):
    """Bounds a run works within, from the starting process's settings."""

    send_give_up_after_seconds: float = Field(
        3 * 24 * 3600.0,
        description="A send still failing after this long is given up (the step fails).",
    )
    max_history_events: int = Field(
        10_000, description="A run continues as new past this many history events."
    )


class TimelineEntry(BaseModel):
    """One step a run entered, when, and how it came out of it."""

    step_id: str
    type: str
    entered_at: datetime
    outcome: str | None = None


class RunState(BaseModel):
    """What a run knows; carried over when it continues as new, so nothing is lost."""

    entry: int | None = None
    enrolled_by: FlowEvent | None = None
    seen: list[str] = Field([], description="Recent event ids, so a redelivery is ignored.")
    heard: dict[str, int] = Field({}, description="Events heard since entry, by type.")
    paused: bool = False
    stop: str | None = Field(None, description="Why the contact must leave, once it must.")
    sent: int = 0
    timeline: list[TimelineEntry] = []
    resume_at: str | None = Field(None, description="The step a continued run goes on with.")
    wait_until: datetime | None = Field(
        None, description="The end of the wait the step `resume_at` was in when the run continued."
    )


class ContactFlowInput(BaseModel):
    """Start input: the flow version is snapshotted here, so edits never reach this run."""

    flow_id: str
    version: int
    definition: FlowDefinition
    contact_id: str
    audience_id: str
    trigger_type: str
    limits: RunLimits = RunLimits()
    state: RunState | None = Field(None, description="Set when the run continued as new.")


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
    steps_done: list[str] = Field([], description="Steps entered, in the order they were entered.")


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
    """One send of one step to one contact: a reference, not the message.

    The activity loads the step (templates, sender) and the flow's rules (quiet hours,
    transactional) from the flow version, so histories never carry a message body.
    `idempotency_key` makes retries safe.
    """

    idempotency_key: str
    workflow_id: str
    flow_id: str
    version: int
    step_id: str
    contact_id: str
    audience_id: str
    event: dict[str, Any] = Field({}, description="The enrolling event's data (merge tags).")


class SendEmailInput(Delivery):
    """An email step's send."""


class SendSmsInput(Delivery):
    """An SMS step's send."""


class SendResult(BaseModel):
    """Outcome of a send.

    `sent`, `duplicate` (an earlier attempt sent it), `skipped` (consent, no address),
    `deferred` (quiet hours: try again at `not_before`), or `uncertain` (an earlier attempt was
    interrupted while the server's acceptance was unknown; marketing email is not sent again).
    """

    status: Literal["sent", "duplicate", "skipped", "deferred", "uncertain"]
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

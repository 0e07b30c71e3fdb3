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
from journeys.domain.triggers import Trigger

WORKFLOW_NAME = "ContactFlowWorkflow"
CONTROL_WORKFLOW_NAME = "FlowControlWorkflow"
ARM_WORKFLOW_NAME = "ArmFlowWorkflow"
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
    RESOLVE_FIRE = "resolve_fire"
    CHECK_CART = "check_cart"
    CURRENT_FLOW = "current_flow"
    ARM_PAGE = "arm_page"


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
    missed_fire_grace_seconds: float = Field(
        24 * 3600.0,
        description="A timer trigger that came due while its flow was paused fires on resume if"
        " it is not later than this; an older one waits for its next occurrence.",
    )
    yearly_rearm_spread_seconds: float = Field(
        900.0,
        description="A yearly trigger's run re-arms for next year a random moment between one"
        " minute and this long after its journey, so a cohort's re-arms are not in its firing.",
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
    armed_by: FlowEvent | None = Field(None, description="The event that last (re)armed the timer.")
    arm_changes: int = Field(0, description="Events that moved or took down the armed timer.")
    disarmed: str | None = Field(None, description="Why the armed timer was taken down.")
    last_fired: datetime | None = Field(
        None, description="When a yearly trigger last fired (it re-arms for the next year)."
    )
    archived: bool = False
    wait_until: datetime | None = Field(
        None, description="The end of the wait the step `resume_at` was in when the run continued."
    )


class FireMoment(BaseModel):
    """When an armed timer trigger fires, and that moment in the contact's words."""

    at: datetime
    described: str


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
    fires: FireMoment | None = Field(
        None,
        description=(
            "An armed run's moment, computed by its starter (the activation's arming pass, the"
            " yearly re-arm), which also set `JourneyPhase` to armed: the run's first wait needs"
            " no `resolve_fire` read and no search-attribute update."
        ),
    )
    enter_locally: bool = Field(
        False,
        description=(
            "A run that decides its own entry (an armed run when it fires) does so in a local"
            " activity: no activity task and two workflow tasks fewer. Every starter sets it;"
            " runs started before it existed keep the activity (their histories replay)."
        ),
    )
    last_send_closes_entry: bool = Field(
        False,
        description=(
            "The flow's last step, when it is a send, also records the entry as completed, so"
            " the run ends without a bookkeeping activity of its own. Every starter sets it;"
            " runs started before it existed keep the old ending (their histories replay)."
        ),
    )
    last_action_closes_entry: bool = Field(
        False,
        description=(
            "The same for a last step that changes the contact (a tag, a field, a group): its"
            " transaction records the entry as completed. Set by every starter since it existed."
        ),
    )
    rearm_off_peak: bool = Field(
        False,
        description=(
            "A yearly trigger's run re-arms a random moment after its journey, not at once, and"
            " stays published as armed meanwhile. Set by every starter since it existed (runs"
            " started before re-arm at once: their histories replay)."
        ),
    )


class RunStatus(BaseModel):
    """What the `status` query answers."""

    phase: Phase
    step_id: str | None
    details: str
    entry: int | None
    sent: int
    version: int
    paused: bool = False
    fires_at: datetime | None = Field(None, description="When an armed timer trigger fires.")
    waiting_until: datetime | None = Field(None, description="When the current wait ends.")
    last_fired: datetime | None = Field(None, description="When a yearly trigger last fired.")


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
    closes_entry: int | None = Field(
        None,
        description=(
            "Set on the flow's last step: the entry the send records as completed once it has"
            " an outcome (sent, duplicate, skipped, uncertain; not deferred, not failed)."
        ),
    )


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
    closes_entry: int | None = Field(
        None, description="The flow's last step: also record this entry as completed."
    )


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


class ResolveFireInput(BaseModel):
    """When a date trigger fires for a contact (its date, its zone), after `after` if given."""

    trigger: Trigger = Field(discriminator="type")
    contact_id: str
    audience_id: str
    timezone_basis: Literal["contact", "audience"] = "contact"
    now: datetime = Field(description="The run's clock (`workflow.now()`).")
    after: datetime | None = None


class ResolveFireResult(BaseModel):
    """The fire instant (and in words), or why the trigger will not fire for the contact."""

    at: datetime | None = None
    described: str | None = None
    reason: str | None = None


class CheckCartInput(BaseModel):
    trigger: Trigger = Field(discriminator="type")
    audience_id: str
    cart_id: str


class CheckCartResult(BaseModel):
    """The cart as it is at fire time (for merge tags), or why the journey must not run."""

    cart: dict[str, Any] | None = None
    reason: str | None = None


class NextYear(BaseModel):
    """A yearly run about to re-arm: the moment after `after` is computed with the flow."""

    trigger_type: str
    contact_id: str
    audience_id: str
    after: datetime


class CurrentFlowInput(BaseModel):
    flow_id: str
    next_year: NextYear | None = Field(
        None, description="Also compute the next moment on the current version's trigger."
    )


class CurrentFlowResult(BaseModel):
    """The flow as it is now: a yearly run re-arms on its current version."""

    status: str | None = None
    version: int | None = None
    definition: FlowDefinition | None = None
    fires: FireMoment | None = Field(
        None, description="The next moment, when `next_year` asked and the trigger will fire."
    )


class ArmFlowInput(BaseModel):
    """Arming every eligible contact of a flow's audience, one page per step, resumable."""

    flow_id: str
    trigger_type: str
    activation: str = Field(description="Names this activation; arm events carry it.")
    after: str = ""
    total: int | None = None
    armed: int = 0
    skipped: int = 0


class ArmPageInput(BaseModel):
    flow_id: str
    trigger_type: str
    activation: str
    after: str
    limit: int
    total: int
    armed: int
    skipped: int


class ArmPageResult(BaseModel):
    """What one page did; `total` is the audience's size (counted with the first page)."""

    armed: int
    skipped: int
    last: str | None
    total: int
    stopped: str | None = Field(
        None, description="Why arming stopped (the flow is no longer active)."
    )


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

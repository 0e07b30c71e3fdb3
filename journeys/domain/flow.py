"""The flow definition: triggers, settings and the step tree, as authored in JSON or YAML."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from journeys.domain.conditions import ConditionSet
from journeys.domain.durations import Duration
from journeys.domain.refs import FieldName, Name, TimeOfDay, type_required
from journeys.domain.steps import Step
from journeys.domain.triggers import EventName, Trigger

MAX_STEPS = 100
MAX_WAIT_FOR_TRIGGER = 10
# Each contact's run carries its flow version in its start event (and again when it continues
# as new): a flow stays far under Temporal's 2 MB payload limit, a template far under that.
MAX_TEMPLATE_BYTES = 100 * 1024
MAX_DEFINITION_BYTES = 512 * 1024


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=type_required)


class Reentry(_Settings):
    """Whether a contact that finished the flow may enter it again."""

    allowed: bool = False
    min_interval: Duration | None = None


class TagAddedGoal(_Settings):
    type: Literal["tag_added"] = "tag_added"
    tag: Name


class PurchasedGoal(_Settings):
    type: Literal["purchased"] = "purchased"
    product_id: str | None = Field(None, min_length=1)


class EventGoal(_Settings):
    type: Literal["event"] = "event"
    name: EventName


class JoinedGroupGoal(_Settings):
    type: Literal["joined_group"] = "joined_group"
    group: Name


class FieldChangedGoal(_Settings):
    type: Literal["field_changed"] = "field_changed"
    field: FieldName
    value: str | int | float | bool | None = Field(None, description="Any change if absent.")


class UnsubscribedGoal(_Settings):
    """The contact unsubscribed (from the channel, or from any channel if none is named)."""

    type: Literal["unsubscribed"] = "unsubscribed"
    channel: Literal["email", "sms"] | None = None


ExitGoal = Annotated[
    TagAddedGoal
    | PurchasedGoal
    | EventGoal
    | JoinedGroupGoal
    | FieldChangedGoal
    | UnsubscribedGoal,
    Field(discriminator="type"),
]


class QuietHours(_Settings):
    """Local hours in which nothing is sent; sends wait until the window ends."""

    start: TimeOfDay
    end: TimeOfDay

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours need different start and end times")
        return self


class Sender(_Settings):
    """Default sender of the flow's emails (a step may override it)."""

    from_name: str | None = Field(None, max_length=100)
    from_email: str | None = Field(None, max_length=254)
    reply_to: str | None = Field(None, max_length=254)


class Tracking(_Settings):
    """What the flow's marketing emails track (transactional emails track nothing)."""

    opens: bool = Field(True, description="Add an open pixel.")
    clicks: bool = Field(True, description="Route links through click-tracking redirects.")


class FlowSettings(_Settings):
    """Flow-wide behaviour."""

    reentry: Reentry = Reentry()
    exit_when: list[ExitGoal] = Field([], max_length=10)
    starting_filter: ConditionSet | None = None
    quiet_hours: QuietHours | None = None
    timezone_basis: Literal["contact", "audience"] = "contact"
    sender: Sender = Sender()
    tracking: Tracking = Tracking()


class FlowDefinition(BaseModel):
    """A flow as its author writes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    audience_id: str = Field(min_length=1)
    triggers: list[Trigger] = Field(min_length=1, max_length=3)
    steps: list[Step] = Field(min_length=1)
    settings: FlowSettings = FlowSettings()

    def walk(self) -> Iterator[tuple[str, Step]]:
        """Yields (JSON path, step) for every step of the tree, depth first, in authoring order."""
        yield from walk_steps(self.steps, "steps")

    @property
    def transactional(self) -> bool:
        """A flow whose trigger is transactional (order confirmation …) sends to any contact."""
        return any(t.transactional for t in self.triggers)

    def authored(self) -> dict[str, Any]:
        """The definition as JSON-ready data, without defaults the author left out.

        Keys come in model order, except that `id` and `type` lead every step, trigger and
        condition, as authors write them.
        """
        data: dict[str, Any] = _leading_ids(self.model_dump(mode="json", exclude_unset=True))
        return data


def _leading_ids(value: Any) -> Any:
    if isinstance(value, list):
        return [_leading_ids(item) for item in value]
    if not isinstance(value, dict):
        return value
    first = {k: value[k] for k in ("id", "type") if k in value}
    return first | {k: _leading_ids(v) for k, v in value.items() if k not in first}


def walk_steps(steps: list[Step], path: str) -> Iterator[tuple[str, Step]]:
    """Yields (path, step) for a step list and everything nested in it."""
    for index, step in enumerate(steps):
        here = f"{path}[{index}]"
        yield here, step
        for name, branch in step.branches():
            yield from walk_steps(branch, f"{here}.{name}")


def _union_tags(union: Any) -> set[str]:
    members = get_args(get_args(union)[0])
    return {member.model_fields["type"].default for member in members}


# Every `type` value of a tagged union: pydantic names them in error locations.
TYPE_TAGS: frozenset[str] = frozenset(
    _union_tags(Trigger) | _union_tags(Step) | _union_tags(ExitGoal)
    | _union_tags(get_args(ConditionSet.model_fields["conditions"].annotation)[0])
)  # fmt: skip

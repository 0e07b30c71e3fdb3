"""Step models: the tree of actions and rules a contact walks through."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, TypeAlias, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from journeys.domain.conditions import ConditionSet
from journeys.domain.durations import Duration
from journeys.domain.refs import FieldName, Name, TimeOfDay, type_required

STEP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=type_required)

    # What kind of step this is, for flow rules (not a parameter).
    role: ClassVar[Literal["send", "action", "wait", "branch"]] = "action"

    id: str = Field(
        pattern=STEP_ID.pattern,
        description="Stable id, unique in the flow: letters, digits, `_`, `-`.",
    )

    def branches(self) -> list[tuple[str, list[Step]]]:
        """Named child step lists (empty for steps that do not branch)."""
        return []


# --- Actions ----------------------------------------------------------------------------------


class SendEmail(_Step):
    """Sends one email; subject and bodies are Jinja2 templates over `contact`."""

    type: Literal["send_email"] = "send_email"
    role: ClassVar[Literal["send", "action", "wait", "branch"]] = "send"
    subject: str = Field(min_length=1, max_length=998)
    preheader: str | None = Field(None, max_length=250)
    html: str | None = None
    text: str | None = None
    from_name: str | None = Field(None, max_length=100)
    from_email: str | None = Field(None, max_length=254)
    reply_to: str | None = Field(None, max_length=254)

    @model_validator(mode="after")
    def _has_body(self) -> SendEmail:
        if not (self.html or self.text):
            raise ValueError("a send_email step needs `html` or `text`")
        return self


class SendSms(_Step):
    """Sends one text message; the body is a Jinja2 template over `contact`."""

    type: Literal["send_sms"] = "send_sms"
    role: ClassVar[Literal["send", "action", "wait", "branch"]] = "send"
    body: str = Field(min_length=1, max_length=1600)


class Webhook(_Step):
    """Calls an HTTP endpoint with the contact, signed with the flow's webhook secret."""

    type: Literal["webhook"] = "webhook"
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$", max_length=2048)]
    method: Literal["POST", "PUT", "PATCH", "GET", "DELETE"] = "POST"
    headers: dict[str, str] = {}
    format: Literal["json", "form"] = "json"
    body: dict[str, Any] | None = Field(
        None, description="Template values are rendered; default: the contact and the flow."
    )
    signed: bool = True

    @model_validator(mode="after")
    def _no_body_on_get(self) -> Webhook:
        if self.method in ("GET", "DELETE") and self.body is not None:
            raise ValueError(f"a {self.method} webhook sends no body")
        flat = self.body is None or not any(isinstance(v, (dict, list)) for v in self.body.values())
        if self.format == "form" and not flat:
            raise ValueError("a form body holds flat values only")
        return self


class AddTag(_Step):
    type: Literal["add_tag"] = "add_tag"
    tag: Name


class RemoveTag(_Step):
    type: Literal["remove_tag"] = "remove_tag"
    tag: Name


class UpdateField(_Step):
    """Sets a contact field (standard or custom); the value may use merge tags."""

    type: Literal["update_field"] = "update_field"
    field: FieldName
    value: str | int | float | bool | None


class AddToGroup(_Step):
    type: Literal["add_to_group"] = "add_to_group"
    group: Name


class RemoveFromGroup(_Step):
    type: Literal["remove_from_group"] = "remove_from_group"
    group: Name


class Unsubscribe(_Step):
    """Unsubscribes the contact from email and/or SMS marketing."""

    type: Literal["unsubscribe"] = "unsubscribe"
    channels: list[Literal["email", "sms"]] = Field(["email"], min_length=1, max_length=2)


class Exit(_Step):
    """Ends the contact's journey here."""

    type: Literal["exit"] = "exit"


# --- Rules ------------------------------------------------------------------------------------


class Delay(_Step):
    """Waits a fixed time before the next step."""

    type: Literal["delay"] = "delay"
    role: ClassVar[Literal["send", "action", "wait", "branch"]] = "wait"
    duration: Duration


class WaitUntil(_Step):
    """Waits for a local time of day and/or allowed weekdays, or for a date field ± days."""

    type: Literal["wait_until"] = "wait_until"
    role: ClassVar[Literal["send", "action", "wait", "branch"]] = "wait"
    time_of_day: TimeOfDay | None = None
    days: list[Weekday] | None = Field(None, min_length=1, max_length=7)
    date_field: FieldName | None = None
    offset_days: int = Field(0, ge=-365, le=365)

    @model_validator(mode="after")
    def _something_to_wait_for(self) -> WaitUntil:
        if self.date_field is None and self.time_of_day is None and self.days is None:
            raise ValueError("wait_until needs time_of_day, days, or date_field")
        if self.date_field is not None and self.days is not None:
            raise ValueError("wait for a date_field or for weekdays, not both")
        if self.date_field is None and self.offset_days:
            raise ValueError("offset_days applies to a date_field")
        return self


class WaitForTrigger(_Step):
    """Waits until the conditions hold, or `timeout` passes; each outcome has its branch."""

    type: Literal["wait_for_trigger"] = "wait_for_trigger"
    role: ClassVar[Literal["send", "action", "wait", "branch"]] = "wait"
    conditions: ConditionSet
    timeout: Duration
    matched: list[Step] = []
    timed_out: list[Step] = []

    def branches(self) -> list[tuple[str, list[Step]]]:
        return [("matched", self.matched), ("timed_out", self.timed_out)]


class IfElse(_Step):
    """Goes down `yes` if the conditions hold, else down `no`."""

    type: Literal["if_else"] = "if_else"
    role: ClassVar[Literal["send", "action", "wait", "branch"]] = "branch"
    conditions: ConditionSet
    yes: list[Step] = []
    no: list[Step] = []

    def branches(self) -> list[tuple[str, list[Step]]]:
        return [("yes", self.yes), ("no", self.no)]


class SplitPath(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    weight: int = Field(ge=1, le=99, description="Percent of contacts that take this path.")
    steps: list[Step] = []


class PercentSplit(_Step):
    """Sends each contact down one of 2–5 paths at random, by weight (summing to 100)."""

    type: Literal["percent_split"] = "percent_split"
    role: ClassVar[Literal["send", "action", "wait", "branch"]] = "branch"
    paths: list[SplitPath] = Field(min_length=2, max_length=5)

    @model_validator(mode="after")
    def _weights_sum_to_100(self) -> PercentSplit:
        total = sum(p.weight for p in self.paths)
        if total != 100:
            raise ValueError(f"path weights must sum to 100 (they sum to {total})")
        return self

    def branches(self) -> list[tuple[str, list[Step]]]:
        return [(f"paths[{i}].steps", p.steps) for i, p in enumerate(self.paths)]


# The tagged union of every step model above, written out so a type checker sees each member.
Step: TypeAlias = Annotated[
    SendEmail | SendSms | Webhook | AddTag | RemoveTag | UpdateField | AddToGroup |
    RemoveFromGroup | Unsubscribe | Exit | Delay | WaitUntil | WaitForTrigger | IfElse |
    PercentSplit,
    Field(discriminator="type"),
]  # fmt: skip

# Its members, in order, read back from the union: one list, so the two cannot disagree.
STEP_MODELS: tuple[type[_Step], ...] = get_args(get_args(Step)[0])

STEP_TYPES: frozenset[str] = frozenset(m.model_fields["type"].default for m in STEP_MODELS)

for _model in (WaitForTrigger, IfElse, SplitPath, PercentSplit):
    _model.model_rebuild()

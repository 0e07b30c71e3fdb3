"""Conditions on a contact: used by if/else, wait-for-trigger and a flow's starting filter."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from journeys.domain.refs import EmailRef, FieldName, Name, type_required
from journeys.domain.triggers import EventName


class _Condition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=type_required)


class TagCondition(_Condition):
    """The contact has (or lacks) a tag."""

    type: Literal["tag"] = "tag"
    tag: Name
    has: bool = True


class GroupCondition(_Condition):
    """The contact is (or is not) in an audience group."""

    type: Literal["group"] = "group"
    group: Name
    member: bool = True


FieldOp = Literal[
    "eq",
    "ne",
    "contains",
    "not_contains",
    "starts_with",
    "gt",
    "gte",
    "lt",
    "lte",
    "is_set",
    "is_not_set",
]


class FieldCondition(_Condition):
    """Compares a contact field (standard or custom) with a value."""

    type: Literal["field"] = "field"
    field: FieldName
    op: FieldOp = "eq"
    value: str | int | float | bool | None = None

    @model_validator(mode="after")
    def _value_when_needed(self) -> FieldCondition:
        if self.op in ("is_set", "is_not_set"):
            if self.value is not None:
                raise ValueError(f"`{self.op}` takes no value")
        elif self.value is None:
            raise ValueError(f"`{self.op}` needs a value")
        return self


class EmailStatusCondition(_Condition):
    """The contact's email marketing status."""

    type: Literal["email_status"] = "email_status"
    status: Literal["subscribed", "unsubscribed", "cleaned", "pending", "transactional"]


class SmsStatusCondition(_Condition):
    """The contact's SMS marketing status."""

    type: Literal["sms_status"] = "sms_status"
    status: Literal["subscribed", "unsubscribed", "none"]


class EmailActivityCondition(_Condition):
    """The contact opened / clicked (or did not) one specific email."""

    type: Literal["email_activity"] = "email_activity"
    activity: Literal["opened", "clicked", "not_opened", "not_clicked"]
    email: EmailRef


class PurchasedCondition(_Condition):
    """The contact bought anything, or a given product, ever or within N days."""

    type: Literal["purchased"] = "purchased"
    product_id: str | None = Field(None, min_length=1)
    within_days: int | None = Field(None, ge=1, le=3650)


class EventCondition(_Condition):
    """An event with this name happened to the contact, ever or within N days."""

    type: Literal["event"] = "event"
    name: EventName
    within_days: int | None = Field(None, ge=1, le=3650)


Condition = Annotated[
    TagCondition
    | GroupCondition
    | FieldCondition
    | EmailStatusCondition
    | SmsStatusCondition
    | EmailActivityCondition
    | PurchasedCondition
    | EventCondition,
    Field(discriminator="type"),
]

Match = Literal["all", "any"]


class ConditionSet(BaseModel):
    """Up to five conditions joined by all (and) or any (or)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    match: Match = "all"
    conditions: list[Condition] = Field(min_length=1, max_length=5)


def combine(match: Match, results: list[bool]) -> bool:
    """Joins condition results the way the set says."""
    return all(results) if match == "all" else any(results)

"""Flow parts in a marketer's words, for what an operator reads in the Temporal UI and CLI."""

from __future__ import annotations

from datetime import datetime
from typing import assert_never
from zoneinfo import ZoneInfo

from journeys.domain.conditions import (
    Condition,
    ConditionSet,
    EmailActivityCondition,
    EmailStatusCondition,
    EventCondition,
    FieldCondition,
    GroupCondition,
    PurchasedCondition,
    SmsStatusCondition,
    TagCondition,
)
from journeys.domain.refs import EmailRef
from journeys.domain.steps import Step

_OPS = {
    "eq": "is",
    "ne": "is not",
    "contains": "contains",
    "not_contains": "does not contain",
    "starts_with": "starts with",
    "gt": "is more than",
    "gte": "is at least",
    "lt": "is less than",
    "lte": "is at most",
}


def _email(ref: EmailRef) -> str:
    if ref.campaign_id:
        return f"campaign `{ref.campaign_id}`"
    return f"email `{ref.step_id}`"


def _within(days: int | None) -> str:
    return f" within {days} days" if days else ""


def condition(cond: Condition) -> str:
    """One condition, e.g. "tagged `customer`" or "`plan` is pro"."""
    match cond:
        case TagCondition():
            return f"tagged `{cond.tag}`" if cond.has else f"not tagged `{cond.tag}`"
        case GroupCondition():
            return f"in group `{cond.group}`" if cond.member else f"not in group `{cond.group}`"
        case FieldCondition():
            if cond.op == "is_set":
                return f"`{cond.field}` is set"
            if cond.op == "is_not_set":
                return f"`{cond.field}` is not set"
            return f"`{cond.field}` {_OPS[cond.op]} {cond.value!r}"
        case EmailStatusCondition():
            return f"email status is {cond.status}"
        case SmsStatusCondition():
            return f"SMS status is {cond.status}"
        case EmailActivityCondition():
            verb = (
                cond.activity.replace("not_", "has not ")
                if "not_" in cond.activity
                else (f"has {cond.activity}")
            )
            return f"{verb} {_email(cond.email)}"
        case PurchasedCondition():
            what = f"product `{cond.product_id}`" if cond.product_id else "anything"
            return f"bought {what}{_within(cond.within_days)}"
        case EventCondition():
            return f"event `{cond.name}` happened{_within(cond.within_days)}"
        case _:
            assert_never(cond)


def conditions(conds: ConditionSet) -> str:
    """A condition set, e.g. "tagged `vip` and bought anything within 30 days"."""
    joiner = " and " if conds.match == "all" else " or "
    return joiner.join(condition(c) for c in conds.conditions)


def moment(at: datetime, zone: str | None = None) -> str:
    """An instant in UTC, and in a local zone when one is known.

    E.g. "2027-03-14 09:00 America/New_York (13:00 UTC)" or "2027-03-14 13:00 UTC".
    """
    utc = at.astimezone(ZoneInfo("UTC"))
    if not zone or zone == "UTC":
        return utc.strftime("%Y-%m-%d %H:%M UTC")
    local = at.astimezone(ZoneInfo(zone))
    return f"{local:%Y-%m-%d %H:%M} {zone} ({utc:%H:%M} UTC)"


def then(step: Step | None) -> str:
    """What comes next, e.g. "then `again` (send_email)" or "then the flow ends"."""
    return f"then `{step.id}` ({step.type})" if step is not None else "then the flow ends"


def take(step: Step | None) -> str:
    """The branch a wait takes, e.g. "take `nudge`" or "end the flow"."""
    return f"take `{step.id}`" if step is not None else "end the flow"

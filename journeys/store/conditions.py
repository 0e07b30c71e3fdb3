"""Evaluates flow conditions against a contact's stored state and history."""

from __future__ import annotations

from typing import Any

import asyncpg

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
    combine,
)
from journeys.store import contacts, groups

Conn = asyncpg.Connection | asyncpg.Pool


def compare(op: str, actual: Any, expected: Any) -> bool:
    """A field comparison: numbers compare as numbers, everything else as case-folded text."""
    if op == "is_set":
        return actual not in (None, "")
    if op == "is_not_set":
        return actual in (None, "")
    if actual is None:
        return op == "ne"
    if op in ("gt", "gte", "lt", "lte"):
        try:
            a, b = float(actual), float(expected)
        except (TypeError, ValueError):
            a, b = str(actual), str(expected)  # type: ignore[assignment]
        return {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]
    text, wanted = str(actual).casefold(), str(expected).casefold()
    return {
        "eq": text == wanted,
        "ne": text != wanted,
        "contains": wanted in text,
        "not_contains": wanted not in text,
        "starts_with": text.startswith(wanted),
    }[op]


async def _email_activity(conn: Conn, contact_id: str, condition: EmailActivityCondition) -> bool:
    kind = "email_opened" if condition.activity in ("opened", "not_opened") else "email_clicked"
    ref = condition.email
    if ref.campaign_id:
        where, args = "data->>'campaign_id' = $3", [ref.campaign_id]
    else:
        where, args = "data->>'flow_id' = $3 AND data->>'step_id' = $4", [ref.flow_id, ref.step_id]
    happened = await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM events WHERE contact_id = $1::uuid AND type = $2 AND {where})",
        contact_id,
        kind,
        *args,
    )
    return happened if condition.activity in ("opened", "clicked") else not happened


async def _holds(conn: Conn, contact: dict[str, Any], condition: Condition) -> bool:
    contact_id = contact["id"]
    if isinstance(condition, TagCondition):
        has = condition.tag.casefold() in {
            t.casefold() for t in await contacts.tags(conn, contact_id)
        }
        return has == condition.has
    if isinstance(condition, GroupCondition):
        member = condition.group.casefold() in {
            g.casefold() for g in await groups.of_contact(conn, contact_id)
        }
        return member == condition.member
    if isinstance(condition, FieldCondition):
        custom = contact.get("fields") or {}
        value = (
            contact[condition.field] if condition.field in contact else custom.get(condition.field)
        )
        return compare(condition.op, value, condition.value)
    if isinstance(condition, EmailStatusCondition):
        return contact["status"] == condition.status
    if isinstance(condition, SmsStatusCondition):
        return contact["sms_status"] == condition.status
    if isinstance(condition, EmailActivityCondition):
        return await _email_activity(conn, contact_id, condition)
    if isinstance(condition, PurchasedCondition):
        return await conn.fetchval(
            """
            SELECT EXISTS (SELECT 1 FROM orders WHERE contact_id = $1::uuid
              AND ($2::text IS NULL OR $2 = ANY(product_ids))
              AND ($3::int IS NULL OR placed_at > now() - make_interval(days => $3)))
            """,
            contact_id,
            condition.product_id,
            condition.within_days,
        )
    if isinstance(condition, EventCondition):
        return await conn.fetchval(
            """
            SELECT EXISTS (SELECT 1 FROM events WHERE contact_id = $1::uuid AND type = 'custom_event'
              AND lower(data->>'name') = lower($2)
              AND ($3::int IS NULL OR occurred_at > now() - make_interval(days => $3)))
            """,
            contact_id,
            condition.name,
            condition.within_days,
        )
    raise AssertionError(f"unhandled condition {condition.type}")  # pragma: no cover


async def evaluate(conn: Conn, contact: dict[str, Any], conditions: ConditionSet) -> bool:
    """True if the contact meets the set (all or any of its conditions)."""
    results = []
    for condition in conditions.conditions:
        results.append(await _holds(conn, contact, condition))
        # Short-circuit like the words say: the answer is known, skip the other queries.
        if conditions.match == "any" and results[-1]:
            return True
        if conditions.match == "all" and not results[-1]:
            return False
    return combine(conditions.match, results)

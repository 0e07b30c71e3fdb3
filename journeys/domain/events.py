"""Events as the gateway receives them, which triggers they fire and which exit goals they meet.

Events are facts ("an order was placed"); triggers and goals interpret them. Several triggers
may read the same event type (an order fires both purchase triggers and order confirmation).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from journeys.domain import triggers as t
from journeys.domain.conditions import ConditionSet
from journeys.domain.flow import (
    EventGoal,
    ExitGoal,
    FieldChangedGoal,
    FlowDefinition,
    JoinedGroupGoal,
    PurchasedGoal,
    TagAddedGoal,
    UnsubscribedGoal,
)
from journeys.domain.refs import refers_to, url_matches
from journeys.domain.steps import WaitForTrigger


class IncomingEvent(BaseModel):
    """An event about one contact of one audience, before it is stored."""

    type: str
    audience_id: str
    contact_id: str
    idempotency_key: str = Field(description="Same key, same event: a repeat changes nothing.")
    data: dict[str, Any] = {}
    occurred_at: datetime | None = None


def _same(a: object, b: object) -> bool:
    return str(a).casefold() == str(b).casefold()


def _products(data: dict[str, Any]) -> set[str]:
    return {str(p) for p in data.get("product_ids", [])}


def _optional(expected: object, actual: object) -> bool:
    return expected is None or _same(expected, actual)


# Trigger type → (event type it reads, predicate on trigger and event data).
_Rule = tuple[str, Callable[[Any, dict[str, Any]], bool]]
_RULES: dict[str, _Rule] = {
    "tag_added": ("tag_added", lambda tr, d: _same(tr.tag, d.get("tag", ""))),
    "signed_up_email": (
        "subscribed_email",
        lambda tr, d: tr.include_imported or not d.get("imported"),
    ),
    "sms_keyword": (
        "sms_received",
        lambda tr, d: _same(tr.keyword, str(d.get("body", "")).strip()),
    ),
    "signed_up_sms": ("subscribed_sms", lambda tr, d: tr.include_imported or not d.get("imported")),
    "joined_group": ("joined_group", lambda tr, d: _same(tr.group, d.get("group", ""))),
    "left_group": ("left_group", lambda tr, d: _same(tr.group, d.get("group", ""))),
    "field_changed": (
        "field_changed",
        lambda tr, d: d.get("field") == tr.field and _same(tr.value, d.get("value")),
    ),
    "page_visited": ("page_visited", lambda tr, d: url_matches(tr.url, str(d.get("url", "")))),
    "website_link_clicked": (
        "website_link_clicked",
        lambda tr, d: url_matches(tr.url, str(d.get("url", ""))),
    ),
    "purchased_any_product": ("order_placed", lambda tr, d: True),
    "purchased_specific_product": (
        "order_placed",
        lambda tr, d: bool(set(tr.product_ids) & _products(d)),
    ),
    "shopify_viewed_page": (
        "shopify_page_viewed",
        lambda tr, d: tr.url is None or url_matches(tr.url, str(d.get("url", ""))),
    ),
    "shopify_viewed_product": (
        "shopify_product_viewed",
        lambda tr, d: (
            _optional(tr.product_id, d.get("product_id"))
            and (tr.collection_id is None or tr.collection_id in d.get("collection_ids", []))
        ),
    ),
    "shopify_searched": (
        "shopify_searched",
        lambda tr, d: tr.term is None or tr.term.casefold() in str(d.get("term", "")).casefold(),
    ),
    "shopify_added_to_cart": (
        "cart_product_added",
        lambda tr, d: _optional(tr.product_id, d.get("product_id")),
    ),
    "shopify_checkout_action": ("checkout_action", lambda tr, d: tr.action == d.get("action")),
    "shopify_low_inventory_added_to_cart": (
        "cart_product_added",
        lambda tr, d: (
            bool(d.get("low_inventory")) and _optional(tr.product_id, d.get("product_id"))
        ),
    ),
    "shopify_back_in_stock": (
        "back_in_stock",
        lambda tr, d: _optional(tr.product_id, d.get("product_id")),
    ),
    "order_confirmation": ("order_placed", lambda tr, d: True),
    "cancellation_confirmation": ("order_cancelled", lambda tr, d: True),
    "order_invoice": ("order_paid", lambda tr, d: True),
    "shipping_confirmation": ("order_fulfilled", lambda tr, d: True),
    "refund_confirmation": ("order_refunded", lambda tr, d: True),
    "email_sent": ("email_sent", lambda tr, d: refers_to(tr.email, d)),
    "email_opened": ("email_opened", lambda tr, d: refers_to(tr.email, d)),
    "email_clicked_any_link": ("email_clicked", lambda tr, d: refers_to(tr.email, d)),
    "email_clicked_specific_link": (
        "email_clicked",
        lambda tr, d: refers_to(tr.email, d) and url_matches(tr.url, str(d.get("url", ""))),
    ),
    "survey_responded": (
        "survey_responded",
        lambda tr, d: (
            d.get("survey_id") == tr.survey_id
            and (tr.question is None or tr.question in d.get("answers", {}))
            and (tr.answer is None or _same(tr.answer, d.get("answers", {}).get(tr.question)))
        ),
    ),
    "event_api": ("custom_event", lambda tr, d: _same(tr.event_name, d.get("name", ""))),
    "eventbrite_any_checkin": ("eventbrite_checked_in", lambda tr, d: True),
    "eventbrite_any_ticket_purchase": ("eventbrite_order_placed", lambda tr, d: True),
    "eventbrite_event_purchase": (
        "eventbrite_order_placed",
        lambda tr, d: str(d.get("event_id")) == tr.event_id,
    ),
    "eventbrite_event_checkin": (
        "eventbrite_checked_in",
        lambda tr, d: str(d.get("event_id")) == tr.event_id,
    ),
    "livechat_chat_finished": ("livechat_chat_finished", lambda tr, d: True),
    "zapier_custom_event": ("zapier_event", lambda tr, d: _same(tr.event_name, d.get("name", ""))),
}

# `manual_add` and `flow_api` name their flow: they enrol through `Ingest.to_flow`,
# never by matching. Timer triggers are armed by an event and fire later; these events (re)arm them.
ARMING_EVENTS: dict[str, str] = {
    "abandoned_cart": "cart_updated",
    "abandoned_cart_specific_products": "cart_updated",
    "time_since_last_purchase": "order_placed",
    "campaign_unopened": "email_sent",
    "email_not_clicked": "email_sent",
}


def event_type_for(trigger_type: str) -> str | None:
    """The event type an instant trigger reacts to, or that arms a timer trigger."""
    if trigger_type in _RULES:
        return _RULES[trigger_type][0]
    return ARMING_EVENTS.get(trigger_type)


def fires(trigger: t.Trigger, event: IncomingEvent) -> bool:
    """True if the event enrols a contact through this (instant) trigger."""
    rule = _RULES.get(trigger.type)
    if rule is None:
        return False
    event_type, predicate = rule
    return event.type == event_type and predicate(trigger, event.data)


def meets_goal(goal: ExitGoal, event_type: str, data: dict[str, Any]) -> bool:
    """True if an event reaches a flow's exit goal (pure: runs inside workflows)."""
    if isinstance(goal, TagAddedGoal):
        return event_type == "tag_added" and _same(goal.tag, data.get("tag", ""))
    if isinstance(goal, PurchasedGoal):
        return event_type == "order_placed" and (
            goal.product_id is None or goal.product_id in _products(data)
        )
    if isinstance(goal, EventGoal):
        return event_type == "custom_event" and _same(goal.name, data.get("name", ""))
    if isinstance(goal, JoinedGroupGoal):
        return event_type == "joined_group" and _same(goal.group, data.get("group", ""))
    if isinstance(goal, UnsubscribedGoal):
        return event_type == "unsubscribed" and (
            goal.channel is None or goal.channel == data.get("channel")
        )
    if isinstance(goal, FieldChangedGoal):
        return (
            event_type == "field_changed"
            and data.get("field") == goal.field
            and (goal.value is None or _same(goal.value, data.get("value")))
        )
    return False


# Condition type → the events that can change its answer.
_CONDITION_EVENTS: dict[str, frozenset[str]] = {
    "tag": frozenset({"tag_added", "tag_removed"}),
    "group": frozenset({"joined_group", "left_group"}),
    "field": frozenset({"field_changed"}),
    "email_status": frozenset({"unsubscribed", "subscribed_email"}),
    "sms_status": frozenset({"unsubscribed", "subscribed_sms"}),
    "email_activity": frozenset({"email_opened", "email_clicked"}),
    "purchased": frozenset({"order_placed"}),
    "event": frozenset({"custom_event"}),
}
_GOAL_EVENTS: dict[str, str] = {
    "tag_added": "tag_added",
    "purchased": "order_placed",
    "event": "custom_event",
    "joined_group": "joined_group",
    "field_changed": "field_changed",
    "unsubscribed": "unsubscribed",
}


def condition_events(conditions: ConditionSet) -> frozenset[str]:
    """Event types that may change whether the conditions hold."""
    return frozenset().union(*(_CONDITION_EVENTS[c.type] for c in conditions.conditions))


def interests(definition: FlowDefinition) -> frozenset[str]:
    """Event types a run of this flow reacts to once started (exit goals, wait-for-trigger)."""
    found = {_GOAL_EVENTS[goal.type] for goal in definition.settings.exit_when}
    for _, step in definition.walk():
        if isinstance(step, WaitForTrigger):
            found |= condition_events(step.conditions)
    return frozenset(found)


# Events a backend service may post as they happen elsewhere (store, website, email provider,
# event platforms), with the data keys each needs. Changes to the contact itself (tags, groups,
# fields, consent) have their own routes, which also change the stored contact.
ACTIVITY_EVENTS: dict[str, tuple[str, ...]] = {
    "order_placed": ("order_id",),
    "order_paid": ("order_id",),
    "order_cancelled": ("order_id",),
    "order_fulfilled": ("order_id",),
    "order_refunded": ("order_id",),
    "page_visited": ("url",),
    "website_link_clicked": ("url",),
    "shopify_page_viewed": ("url",),
    "shopify_product_viewed": ("product_id",),
    "shopify_searched": ("term",),
    "cart_product_added": ("product_id",),
    "cart_updated": ("cart_id",),
    "checkout_action": ("action",),
    "back_in_stock": ("product_id",),
    "email_sent": (),
    "email_opened": (),
    "email_clicked": ("url",),
    "survey_responded": ("survey_id",),
    "eventbrite_order_placed": ("event_id",),
    "eventbrite_checked_in": ("event_id",),
    "livechat_chat_finished": (),
    "zapier_event": ("name",),
    "sms_received": ("body",),
}


def activity_problems(event_type: str, data: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, message) for each thing wrong with a posted activity event's data."""
    problems = [
        (f"data.{key}", f"a {event_type} event needs `{key}`")
        for key in ACTIVITY_EVENTS.get(event_type, ())
        if data.get(key) in (None, "")
    ]
    if event_type.startswith("email_") and not (
        data.get("campaign_id") or (data.get("flow_id") and data.get("step_id"))
    ):
        problems.append(
            ("data", "an email event names its campaign_id, or its flow_id and step_id")
        )
    if event_type == "checkout_action" and data.get("action") not in (
        None,
        "",
        "started",
        "payment_submitted",
        "completed",
    ):
        problems.append(("data.action", "action is started, payment_submitted or completed"))
    if "product_ids" in data and not isinstance(data["product_ids"], list):
        problems.append(("data.product_ids", "product_ids is a list"))
    return problems

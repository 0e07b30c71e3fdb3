"""Timer triggers: which events arm, re-arm or disarm a contact, and when an armed run fires.

A contact waiting for a timer trigger is an armed run (`JourneyPhase = 'armed'`) holding one
durable timer. Events about the contact move that timer (a new birthday, another purchase, a
cart updated again) or take it down (the cart was bought, the email was opened). Pure code: the
gateway decides with it whom to arm, the workflow with it what an event does to its timer.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from journeys.domain import triggers as t
from journeys.domain.durations import parse_duration
from journeys.domain.refs import refers_to

Effect = Literal["arm", "disarm"]

DATE_TRIGGERS = frozenset({"specific_date", "signup_date", "birthday", "recurring_date"})
CART_TRIGGERS = frozenset({"abandoned_cart", "abandoned_cart_specific_products"})
EMAIL_TRIGGERS = frozenset({"campaign_unopened", "email_not_clicked"})
TIMER_TRIGGERS = DATE_TRIGGERS | CART_TRIGGERS | EMAIL_TRIGGERS | {"time_since_last_purchase"}
# Date triggers armed for every contact already in the audience when the flow is activated
# (purchase lapses: every contact with an order).
ARMED_ON_ACTIVATION = DATE_TRIGGERS | {"time_since_last_purchase"}

# Event types that may arm, re-arm or disarm a contact, by trigger type (the gateway's index).
TIMER_EVENTS: dict[str, frozenset[str]] = {
    **dict.fromkeys(DATE_TRIGGERS, frozenset({"subscribed_email", "field_changed"})),
    "time_since_last_purchase": frozenset({"order_placed"}),
    **dict.fromkeys(CART_TRIGGERS, frozenset({"cart_updated", "order_placed", "checkout_action"})),
    "campaign_unopened": frozenset({"email_sent", "email_opened"}),
    "email_not_clicked": frozenset({"email_sent", "email_clicked"}),
}


def date_field(trigger: t.Trigger) -> str:
    """The contact field a date trigger reads."""
    if isinstance(trigger, t.Birthday):
        return "birthday"
    if isinstance(trigger, t.SignupDate):
        return "signup_at"
    if isinstance(trigger, (t.SpecificDate, t.RecurringDate)):
        return trigger.field
    raise ValueError(f"{trigger.type} is not a date trigger")


def effect(trigger: t.Trigger, event_type: str, data: dict[str, Any]) -> Effect | None:
    """What an event does to a contact armed (or to be armed) by this timer trigger.

    `arm`: start the timer, or move it (recomputed from the contact and this event); `disarm`:
    the journey must not run (the cart was bought, the email opened). None: nothing.
    """
    kind = trigger.type
    if kind in DATE_TRIGGERS:
        if event_type == "subscribed_email":
            return "arm"
        changed = data.get("field")
        if event_type == "field_changed" and changed in (date_field(trigger), "timezone"):
            return "arm"
        return None
    if kind == "time_since_last_purchase":
        return "arm" if event_type == "order_placed" else None
    if kind in CART_TRIGGERS:
        if event_type == "cart_updated":
            return "arm" if data.get("items") or data.get("product_ids") else "disarm"
        if event_type == "order_placed":
            return "disarm"
        if event_type == "checkout_action" and data.get("action") == "completed":
            return "disarm"
        return None
    if isinstance(trigger, (t.CampaignUnopened, t.EmailNotClicked)):
        if not refers_to(trigger.email, data):
            return None
        if event_type == "email_sent":
            return "arm"
        opened = "email_opened" if kind == "campaign_unopened" else "email_clicked"
        return "disarm" if event_type == opened else None
    return None


def disarm_reason(trigger: t.Trigger, event_type: str) -> str:
    """Why a disarming event ends the armed run, in words."""
    if trigger.type in CART_TRIGGERS:
        return "the cart was emptied" if event_type == "cart_updated" else "the cart was bought"
    if trigger.type == "campaign_unopened":
        return "the contact opened the email"
    return "the contact clicked the email"


def fires_at(trigger: t.Trigger, armed_at: datetime) -> datetime:
    """When an event-armed timer fires: the arming event's time plus the trigger's wait.

    Date triggers are not computed here (they need the contact's date and zone: see
    `journeys.domain.firing`).
    """
    if isinstance(trigger, t.TimeSinceLastPurchase):
        return armed_at + timedelta(days=trigger.days)
    if isinstance(trigger, (t.AbandonedCart, t.AbandonedCartSpecificProducts)):
        return armed_at + parse_duration(trigger.wait)
    if isinstance(trigger, (t.CampaignUnopened, t.EmailNotClicked)):
        return armed_at + parse_duration(trigger.within)
    raise ValueError(f"{trigger.type} fires from the contact's date, not from an event")


def cart_matches(trigger: t.Trigger, product_ids: set[str]) -> bool:
    """Whether a cart holding these products is one the trigger is about."""
    if isinstance(trigger, t.AbandonedCartSpecificProducts):
        if trigger.include_product_ids is not None:
            return bool(product_ids & set(trigger.include_product_ids))
        return not product_ids & set(trigger.exclude_product_ids or [])
    return bool(product_ids)

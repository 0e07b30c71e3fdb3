"""One valid sample of every trigger and every step type, in authoring order.

`{campaign}`, `{flow}` and `{step}` are filled with ids that exist when the test runs.
"""

from __future__ import annotations

import copy
from typing import Any

CAMPAIGN = {"campaign_id": "{campaign}"}
FLOW_STEP = {"flow_id": "{flow}", "step_id": "{step}"}
SEND = {
    "id": "hello",
    "type": "send_email",
    "subject": "Hi {{ contact.first_name }}",
    "html": "<p>Hi</p>",
}

TRIGGERS: dict[str, dict[str, Any]] = {
    "tag_added": {"tag": "vip"},
    "signed_up_email": {"include_imported": True},
    "sms_keyword": {"keyword": "JOIN"},
    "signed_up_sms": {"include_imported": False},
    "joined_group": {"group": "Beta testers"},
    "left_group": {"group": "Beta testers"},
    "field_changed": {"field": "plan", "value": "pro"},
    "page_visited": {"url": "https://shop.example/sale/*"},
    "website_link_clicked": {"url": "https://shop.example/signup"},
    "manual_add": {},
    "specific_date": {"offset_days": -7, "time_of_day": "10:00", "field": "renewal_date"},
    "signup_date": {"offset_days": 0, "time_of_day": "09:00"},
    "birthday": {"offset_days": -3, "time_of_day": "08:30"},
    "recurring_date": {"offset_days": 1, "time_of_day": "09:00", "field": "anniversary"},
    "purchased_any_product": {},
    "purchased_specific_product": {"product_ids": ["sku-1", "sku-2"]},
    "time_since_last_purchase": {"days": 90},
    "shopify_viewed_page": {"url": "https://shop.example/pages/about"},
    "shopify_viewed_product": {"collection_id": "summer"},
    "shopify_searched": {"term": "boots"},
    "shopify_added_to_cart": {"product_id": "sku-1"},
    "shopify_checkout_action": {"action": "payment_submitted"},
    "shopify_low_inventory_added_to_cart": {},
    "shopify_back_in_stock": {"product_id": "sku-9"},
    "abandoned_cart": {"wait": "2h"},
    "abandoned_cart_specific_products": {"wait": "1h", "exclude_product_ids": ["gift-card"]},
    "order_confirmation": {},
    "cancellation_confirmation": {},
    "order_invoice": {},
    "shipping_confirmation": {},
    "refund_confirmation": {},
    "email_sent": {"email": CAMPAIGN},
    "email_opened": {"email": FLOW_STEP},
    "campaign_unopened": {"email": CAMPAIGN, "within": "3d"},
    "email_clicked_any_link": {"email": CAMPAIGN},
    "email_not_clicked": {"email": FLOW_STEP, "within": "P2D"},
    "email_clicked_specific_link": {"email": CAMPAIGN, "url": "https://shop.example/sale"},
    "survey_responded": {
        "survey_id": "nps-2026",
        "question": "How likely are you to recommend us?",
        "answer": "10",
    },
    "flow_api": {},
    "event_api": {"event_name": "trial_started"},
    "eventbrite_any_checkin": {},
    "eventbrite_any_ticket_purchase": {},
    "eventbrite_event_purchase": {"event_id": "777"},
    "eventbrite_event_checkin": {"event_id": "777"},
    "livechat_chat_finished": {},
    "zapier_custom_event": {"event_name": "demo-booked"},
}

CONDITIONS = {
    "match": "any",
    "conditions": [
        {"type": "tag", "tag": "vip", "has": True},
        {"type": "field", "field": "plan", "op": "eq", "value": "pro"},
        {"type": "email_activity", "activity": "opened", "email": CAMPAIGN},
        {"type": "purchased", "within_days": 30},
        {"type": "event", "name": "trial_started", "within_days": 7},
    ],
}

STEPS: dict[str, list[dict[str, Any]]] = {
    "send_email": [
        {
            "id": "mail",
            "type": "send_email",
            "subject": "Hello {{ contact.first_name }}",
            "preheader": "A short note",
            "html": "<p>Hi {{ contact.fields.plan }}</p>",
            "text": "Hi",
            "from_name": "Shop",
            "from_email": "news@shop.example",
            "reply_to": "help@shop.example",
        }
    ],
    "send_sms": [
        {
            "id": "text",
            "type": "send_sms",
            "body": "Hi {{ contact.first_name }}, your code is SAVE10",
        }
    ],
    "webhook": [
        {
            "id": "crm",
            "type": "webhook",
            "url": "https://crm.example/hook",
            "method": "PUT",
            "headers": {"X-Source": "journeys"},
            "format": "json",
            "body": {"email": "{{ contact.email }}", "stage": "lead"},
            "signed": True,
        }
    ],
    "add_tag": [{"id": "tag", "type": "add_tag", "tag": "engaged"}],
    "remove_tag": [{"id": "untag", "type": "remove_tag", "tag": "cold"}],
    "update_field": [
        {"id": "set", "type": "update_field", "field": "lifecycle", "value": "customer"}
    ],
    "add_to_group": [{"id": "join", "type": "add_to_group", "group": "Newsletter"}],
    "remove_from_group": [{"id": "leave", "type": "remove_from_group", "group": "Newsletter"}],
    "unsubscribe": [{"id": "optout", "type": "unsubscribe", "channels": ["email", "sms"]}],
    "exit": [SEND, {"id": "stop", "type": "exit"}],
    "delay": [{"id": "pause", "type": "delay", "duration": "90m"}],
    "wait_until": [
        {"id": "morning", "type": "wait_until", "time_of_day": "09:30", "days": ["mon", "fri"]}
    ],
    "wait_for_trigger": [
        {
            "id": "wait",
            "type": "wait_for_trigger",
            "conditions": CONDITIONS,
            "timeout": "14d",
            "matched": [{"id": "yay", "type": "add_tag", "tag": "converted"}],
            "timed_out": [
                {"id": "nudge", "type": "send_email", "subject": "Still there?", "text": "…"}
            ],
        }
    ],
    "if_else": [
        {
            "id": "branch",
            "type": "if_else",
            "conditions": {
                "match": "all",
                "conditions": [{"type": "email_status", "status": "subscribed"}],
            },
            "yes": [{"id": "y", "type": "send_email", "subject": "Yes", "text": "y"}],
            "no": [{"id": "n", "type": "exit"}],
        }
    ],
    "percent_split": [
        {
            "id": "ab",
            "type": "percent_split",
            "paths": [
                {
                    "weight": 30,
                    "steps": [{"id": "a", "type": "send_email", "subject": "A", "text": "a"}],
                },
                {
                    "weight": 70,
                    "steps": [{"id": "b", "type": "send_email", "subject": "B", "text": "b"}],
                },
            ],
        }
    ],
}


def fill(value: Any, ids: dict[str, str]) -> Any:
    """Replaces `{campaign}`-style placeholders inside strings."""
    if isinstance(value, str):
        for name, real in ids.items():
            value = value.replace("{" + name + "}", real)
        return value
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    return value


def trigger_flow(trigger_type: str, audience_id: str, ids: dict[str, str]) -> dict[str, Any]:
    """A flow using one trigger, with a step every trigger allows."""
    trigger = {"type": trigger_type, **copy.deepcopy(TRIGGERS[trigger_type])}
    return fill(
        {
            "name": f"Trigger {trigger_type}",
            "audience_id": audience_id,
            "triggers": [trigger],
            "steps": [SEND],
        },
        ids,
    )


def step_flow(step_type: str, audience_id: str, ids: dict[str, str]) -> dict[str, Any]:
    """A flow using one step type, triggered by a tag."""
    return fill(
        {
            "name": f"Step {step_type}",
            "audience_id": audience_id,
            "triggers": [{"type": "tag_added", "tag": f"try-{step_type}"}],
            "steps": copy.deepcopy(STEPS[step_type]),
        },
        ids,
    )

import uuid

import pytest
from pydantic import TypeAdapter

from journeys.domain.events import IncomingEvent, event_type_for, fires, meets_goal
from journeys.domain.flow import EventGoal, FieldChangedGoal, PurchasedGoal, TagAddedGoal
from journeys.domain.triggers import TRIGGER_MODELS, TRIGGER_TYPES, Trigger

trigger = TypeAdapter(Trigger).validate_python


def _event(type: str, **data: object) -> IncomingEvent:
    return IncomingEvent(
        type=type, audience_id="a", contact_id="c", idempotency_key=uuid.uuid4().hex, data=data
    )


@pytest.mark.parametrize(
    ("spec", "event", "expected"),
    [
        ({"type": "tag_added", "tag": "VIP"}, _event("tag_added", tag="vip"), True),
        ({"type": "tag_added", "tag": "vip"}, _event("tag_added", tag="vipp"), False),
        ({"type": "sms_keyword", "keyword": "JOIN"}, _event("sms_received", body=" join "), True),
        (
            {"type": "sms_keyword", "keyword": "JOIN"},
            _event("sms_received", body="join now"),
            False,
        ),
        ({"type": "signed_up_email"}, _event("subscribed_email", imported=True), False),
        (
            {"type": "signed_up_email", "include_imported": True},
            _event("subscribed_email", imported=True),
            True,
        ),
        (
            {"type": "field_changed", "field": "plan", "value": "pro"},
            _event("field_changed", field="plan", value="Pro"),
            True,
        ),
        (
            {"type": "page_visited", "url": "https://s.example/sale/*"},
            _event("page_visited", url="https://s.example/sale/boots"),
            True,
        ),
        (
            {"type": "page_visited", "url": "https://s.example/sale"},
            _event("page_visited", url="https://s.example/sale/"),
            True,
        ),
        (
            {"type": "purchased_specific_product", "product_ids": ["a"]},
            _event("order_placed", product_ids=["b", "a"]),
            True,
        ),
        (
            {"type": "purchased_specific_product", "product_ids": ["a"]},
            _event("order_placed", product_ids=["b"]),
            False,
        ),
        ({"type": "order_confirmation"}, _event("order_placed"), True),
        (
            {"type": "shopify_viewed_product", "collection_id": "s"},
            _event("shopify_product_viewed", product_id="p", collection_ids=["s"]),
            True,
        ),
        (
            {"type": "shopify_checkout_action", "action": "completed"},
            _event("checkout_action", action="started"),
            False,
        ),
        (
            {"type": "shopify_low_inventory_added_to_cart"},
            _event("cart_product_added", product_id="p", low_inventory=False),
            False,
        ),
        (
            {"type": "email_opened", "email": {"campaign_id": "c1"}},
            _event("email_opened", campaign_id="c1"),
            True,
        ),
        (
            {"type": "email_opened", "email": {"flow_id": "f", "step_id": "s"}},
            _event("email_opened", flow_id="f", step_id="t"),
            False,
        ),
        (
            {
                "type": "email_clicked_specific_link",
                "email": {"campaign_id": "c"},
                "url": "https://x/*",
            },
            _event("email_clicked", campaign_id="c", url="https://x/y"),
            True,
        ),
        (
            {"type": "survey_responded", "survey_id": "s", "question": "q", "answer": "Yes"},
            _event("survey_responded", survey_id="s", answers={"q": "yes"}),
            True,
        ),
        ({"type": "event_api", "event_name": "trial"}, _event("custom_event", name="Trial"), True),
        (
            {"type": "eventbrite_event_checkin", "event_id": "7"},
            _event("eventbrite_checked_in", event_id=7),
            True,
        ),
        (
            {"type": "manual_add"},
            _event("manual_add"),
            False,
        ),  # addressed to one flow, never matched
        ({"type": "birthday"}, _event("birthday"), False),  # timer triggers are armed, not fired
    ],
)
def test_instant_triggers_fire_on_their_events(
    spec: dict, event: IncomingEvent, expected: bool
) -> None:
    assert fires(trigger(spec), event) is expected


def test_every_event_driven_trigger_names_its_event_type() -> None:
    date_or_addressed = {
        "specific_date",
        "signup_date",
        "birthday",
        "recurring_date",
        "manual_add",
        "flow_api",
    }
    missing = {t for t in TRIGGER_TYPES - date_or_addressed if event_type_for(t) is None}
    assert missing == set()
    assert len(TRIGGER_MODELS) == 46


def test_exit_goals() -> None:
    assert meets_goal(TagAddedGoal(tag="Customer"), "tag_added", {"tag": "customer"})
    assert meets_goal(PurchasedGoal(), "order_placed", {"product_ids": []})
    assert not meets_goal(PurchasedGoal(product_id="x"), "order_placed", {"product_ids": ["y"]})
    assert meets_goal(EventGoal(name="demo-booked"), "custom_event", {"name": "demo-booked"})
    assert meets_goal(
        FieldChangedGoal(field="plan"), "field_changed", {"field": "plan", "value": "x"}
    )
    assert not meets_goal(
        FieldChangedGoal(field="plan", value="pro"),
        "field_changed",
        {"field": "plan", "value": "x"},
    )

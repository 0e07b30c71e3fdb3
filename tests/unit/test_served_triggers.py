"""No silent idling: every trigger a flow may use has something that starts its runs."""

from __future__ import annotations

from journeys.domain.events import event_type_for
from journeys.domain.timers import TIMER_EVENTS, TIMER_TRIGGERS
from journeys.domain.triggers import TRIGGER_MODELS

# Triggers addressed to one flow by the caller (manual add, the flow's trigger URL).
ADDRESSED = {"manual_add", "flow_api"}


def test_every_trigger_is_served_by_an_event_rule_a_timer_or_its_own_route() -> None:
    for model in TRIGGER_MODELS:
        kind = model.model_fields["type"].default
        if kind in ADDRESSED:
            continue
        if model.kind == "timer":
            assert kind in TIMER_TRIGGERS and TIMER_EVENTS[kind], kind
        else:
            assert event_type_for(kind) is not None, f"{kind} has no event that fires it"


def test_the_timer_catalog_fact_and_the_timer_rules_agree() -> None:
    timers = {m.model_fields["type"].default for m in TRIGGER_MODELS if m.kind == "timer"}
    assert timers == TIMER_TRIGGERS

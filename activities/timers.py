"""Reads behind timer triggers: a contact's date moment, a cart at fire time, the current flow."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from temporalio import activity

from journeys.domain import firing, timers
from journeys.domain.flow import FlowDefinition
from journeys.domain.runs import (
    ActivityName,
    CheckCartInput,
    CheckCartResult,
    CurrentFlowInput,
    CurrentFlowResult,
    FireMoment,
    ResolveFireInput,
    ResolveFireResult,
)
from journeys.domain.triggers import Trigger
from journeys.local_time import zone_for
from journeys.store import carts, contacts, flows


def _json(value: Any) -> Any:
    """Cart values as merge tags see them (numbers, not Decimals; ISO times)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    return value


class TimerActivities:
    """Local activities of armed runs (short reads, no side effects)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn(name=ActivityName.RESOLVE_FIRE)
    async def resolve_fire(self, input: ResolveFireInput) -> ResolveFireResult:
        """The next moment a date trigger fires for the contact (after `after`, if given)."""
        contact = await contacts.get(self._pool, input.contact_id)
        if contact is None:
            return ResolveFireResult(reason="the contact no longer exists")
        zone = await zone_for(self._pool, contact, basis=input.timezone_basis)
        fire = contact_moment(input.trigger, contact, zone=zone, now=input.now, after=input.after)
        if isinstance(fire, firing.NoFire):
            return ResolveFireResult(reason=fire.message)
        return ResolveFireResult(at=fire.utc, described=fire.describe())

    @activity.defn(name=ActivityName.CHECK_CART)
    async def check_cart(self, input: CheckCartInput) -> CheckCartResult:
        """The cart as it is now, if it is still abandoned and holds what the trigger asks."""
        cart = await carts.get(self._pool, input.audience_id, input.cart_id)
        if cart is None:
            return CheckCartResult(reason="the cart is unknown")
        if cart.get("completed_at"):
            return CheckCartResult(reason="the cart was bought")
        if cart.get("emptied_at") or not cart.get("items"):
            return CheckCartResult(reason="the cart was emptied")
        if not timers.cart_matches(input.trigger, set(cart.get("product_ids") or [])):
            return CheckCartResult(reason="the cart holds none of the trigger's products")
        return CheckCartResult(
            cart={
                "id": input.cart_id,
                "items": _json(cart.get("items") or []),
                "url": cart.get("url"),
                "total": _json(cart.get("total")),
                "currency": cart.get("currency"),
            }
        )

    @activity.defn(name=ActivityName.CURRENT_FLOW)
    async def current_flow(self, input: CurrentFlowInput) -> CurrentFlowResult:
        """The flow's status and current version (a yearly run re-arms on it).

        With `next_year`, also the trigger's next moment on that version, so the run that
        continues as new starts armed without a read of its own.
        """
        row = await flows.get(self._pool, input.flow_id)
        if row is None:
            return CurrentFlowResult()
        definition = FlowDefinition.model_validate(row["definition"])
        result = CurrentFlowResult(
            status=row["status"], version=row["version"], definition=definition
        )
        ask = input.next_year
        trigger = ask and next((t for t in definition.triggers if t.type == ask.trigger_type), None)
        if ask is None or trigger is None or trigger.type not in timers.DATE_TRIGGERS:
            return result
        contact = await contacts.get(self._pool, ask.contact_id)
        if contact is None:
            return result
        basis = definition.settings.timezone_basis
        zone = await zone_for(self._pool, contact, basis=basis)
        fire = contact_moment(trigger, contact, zone=zone, now=ask.after, after=ask.after)
        if isinstance(fire, firing.FireAt):
            result.fires = FireMoment(at=fire.utc, described=fire.describe())
        return result


def contact_moment(
    trigger: Trigger,
    contact: dict[str, Any],
    *,
    zone: ZoneInfo,
    now: datetime,
    after: datetime | None,
) -> firing.FireAt | firing.NoFire:
    """When a date trigger fires for this contact row: the first moment from `now`, or the
    next one after the fire at `after`.

    One computation for the run's own read (`resolve_fire`), the yearly re-arm and the
    activation's arming pass, which hands the moment to the runs it starts.
    """
    assert isinstance(trigger, firing.DATE_TRIGGER_MODELS[trigger.type])
    name = timers.date_field(trigger)
    value = contact[name] if name in contact else (contact.get("fields") or {}).get(name)
    if after is None:
        return firing.next_fire(trigger, date_value=value, zone=str(zone), now=now)
    return firing.fire_after(trigger, date_value=value, zone=str(zone), fired=after)

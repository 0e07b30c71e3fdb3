"""Event ingest in one place: record → match → dispatch, and the ledgers events feed.

Every entry point — API routes, provider receivers, flow steps (activities) — changes contacts
and records events through this module, so a change is never stored without its events, an
order never without its ledger row, and every stored event is delivered the same way. Routes
only parse, authorise and answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg

from journeys.changes import Pending
from journeys.dispatch import Arming, Dispatcher, DispatchResult, Enrolment
from journeys.domain.events import IncomingEvent
from journeys.domain.runs import FlowEvent
from journeys.domain.timers import DATE_TRIGGERS
from journeys.registry import ActiveFlow
from journeys.store import armed, carts, enrollments, events, orders, rezones

T = TypeVar("T")

# Later than any event: a flow that concerns an event at no time up to this never will (flows
# react only to what happens after their activation).
_EVER = datetime.max.replace(tzinfo=UTC)

# Order events and the status they give the order in the ledger `purchased` conditions read.
ORDER_STATUS = {
    "order_placed": "placed",
    "order_paid": "paid",
    "order_cancelled": "cancelled",
    "order_fulfilled": "fulfilled",
    "order_refunded": "refunded",
}


def feeds_ledgers(event: IncomingEvent) -> bool:
    """Whether storing the event writes more than its own row (orders ledger, carts)."""
    return (
        event.type in ORDER_STATUS
        or event.type == "cart_updated"
        or (event.type == "checkout_action" and bool(event.data.get("cart_id")))
    )


async def store(
    conn: asyncpg.Connection | asyncpg.Pool, event: IncomingEvent, *, settle_if_idle: bool = False
) -> tuple[dict[str, Any], bool]:
    """Stores the event and what it feeds (orders ledger, carts) in the caller's transaction.

    An event that `feeds_ledgers` nothing is one insert, which may run on the pool (and, with
    `settle_if_idle`, mark it delivered: see `journeys.store.events.record`).

    Returns:
        The stored event (the earlier one on a repeated idempotency key) and whether it is new.
    """
    stored, new = await events.record(
        conn,
        idempotency_key=event.idempotency_key,
        audience_id=event.audience_id,
        contact_id=event.contact_id,
        type=event.type,
        data=event.data,
        occurred_at=event.occurred_at,
        settle_if_idle=settle_if_idle,
    )
    if new:
        await feed(conn, event)
    return stored, new


async def _feed_carts(conn: asyncpg.Connection, event: IncomingEvent) -> None:
    """A cart update stores the cart; a completed checkout or an order naming it closes it."""
    data = event.data
    if event.type == "cart_updated" and data.get("cart_id"):
        await carts.record(
            conn,
            audience_id=event.audience_id,
            contact_id=event.contact_id,
            data=data,
            at=event.occurred_at,
        )
    elif data.get("cart_id") and (
        event.type == "order_placed"
        or (event.type == "checkout_action" and data.get("action") == "completed")
    ):
        await carts.complete(
            conn, audience_id=event.audience_id, cart_id=str(data["cart_id"]), at=event.occurred_at
        )


def from_stored(stored: dict[str, Any]) -> IncomingEvent:
    """The event as it was received, rebuilt from its stored row (for re-delivery)."""
    return IncomingEvent(
        type=stored["type"],
        audience_id=stored["audience_id"],
        contact_id=stored["contact_id"],
        idempotency_key=stored["idempotency_key"],
        data=stored["data"],
        occurred_at=stored["occurred_at"],
    )


class Ingest:
    """Records contact changes and events, then delivers them to the flows they concern.

    Args:
        pool: The database pool.
        dispatcher: Starts and signals contact-flow runs. Without one (a worker that has no
            Temporal client to spare), events stay stored and the API's outbox relay delivers
            them.
    """

    def __init__(self, pool: asyncpg.Pool, dispatcher: Dispatcher | None) -> None:
        self.pool = pool
        self.dispatcher = dispatcher

    async def change(
        self,
        apply: Callable[[Any], Awaitable[tuple[T, Pending]]],
        *,
        trigger: bool = True,
        atomic: bool = False,
    ) -> tuple[T, list[DispatchResult]]:
        """Runs one change and stores its events in one transaction, then delivers them.

        Args:
            apply: Makes the change on the connection it is given (see `journeys.changes`) and
                returns its result and the events it stored.
            trigger: False stores the events without triggering anything (Mailchimp's
                `is_syncing`).
            atomic: `apply` writes in one statement (tags and groups, see
                `journeys.changes`): it runs on the pool, without the BEGIN and COMMIT round
                trips of a transaction it does not need.
        """
        if atomic and trigger:
            value, pending = await apply(self.pool)
            return value, await self.deliver(pending)
        async with self.pool.acquire() as conn, conn.transaction():
            value, pending = await apply(conn)
            if not trigger:
                await events.mark_many_dispatched(conn, [stored["id"] for _, stored in pending])
        if not trigger:
            return value, []
        return value, await self.deliver(pending)

    async def event(self, event: IncomingEvent, *, trigger: bool = True) -> DispatchResult:
        """Records one event and delivers it.

        Args:
            event: The event; its idempotency key makes a repeat change nothing.
            trigger: False stores the event without triggering anything (Mailchimp's
                `is_syncing`): it stays in the contact's history and feeds conditions.
        """
        if trigger and not feeds_ledgers(event):
            # One insert is atomic alone: no BEGIN and COMMIT round trips around it. An event
            # no flow could ever concern, of a contact in no flow, is delivered by that insert.
            idle = self.dispatcher is not None and not self.dispatcher.concerns_any(event, _EVER)
            stored, new = await store(self.pool, event, settle_if_idle=idle)
            if new and stored["dispatched_at"] is not None:
                return DispatchResult(event_id=stored["id"], duplicate=False)
            return await self.deliver_one(event, stored)
        async with self.pool.acquire() as conn, conn.transaction():
            stored, new = await store(conn, event)
            if not trigger:
                await events.mark_dispatched(conn, stored["id"])
        if not trigger:
            return DispatchResult(event_id=stored["id"], duplicate=not new)
        return await self.deliver_one(event, stored)

    async def deliver(self, pending: Pending) -> list[DispatchResult]:
        """Delivers events stored by a committed change."""
        return [await self.deliver_one(event, stored) for event, stored in pending]

    async def deliver_one(self, event: IncomingEvent, stored: dict[str, Any]) -> DispatchResult:
        """Delivers one stored event (or leaves it to the outbox relay if there is no dispatcher)."""
        if self.dispatcher is None:
            return DispatchResult(event_id=stored["id"], duplicate=False)
        return await self.dispatcher.deliver(event, stored)

    async def deliver_many(self, pending: Pending) -> list[DispatchResult]:
        """Delivers the events of a bulk change, skipping the work no flow needs: the events
        nobody needs to hear are marked delivered together (`set_aside_idle`), the rest are
        delivered one by one."""
        if self.dispatcher is None:
            return [DispatchResult(event_id=stored["id"], duplicate=False) for _, stored in pending]
        _, busy = await self.set_aside_idle(self.dispatcher, pending)
        return await self.deliver(busy)

    async def set_aside_idle(
        self, dispatcher: Dispatcher, pending: Pending
    ) -> tuple[list[Any], Pending]:
        """Marks delivered, in one statement, the events no run needs to hear.

        A contact with no run in progress none of whose events here concerns a flow (enrols,
        arms or disarms) has nobody to tell. A contact one of whose events concerns a flow
        keeps all its events here, as the later ones may concern the run the first starts.

        Args:
            dispatcher: Tells which events concern a flow.
            pending: The stored events, in order.

        Returns:
            The ids of the events marked delivered, and the events still to deliver, in order.
        """
        busy = await enrollments.contacts_running(
            self.pool, list({event.contact_id for event, _ in pending})
        )
        busy |= {
            event.contact_id
            for event, stored in pending
            if dispatcher.concerns_any(event, stored["occurred_at"])
        }
        idle = [stored["id"] for event, stored in pending if event.contact_id not in busy]
        if idle:
            await events.mark_many_dispatched(self.pool, idle)
        return idle, [(e, s) for e, s in pending if e.contact_id in busy]

    async def to_flow(
        self, flow: ActiveFlow, contact_id: str, *, event_type: str, key: str
    ) -> Enrolment:
        """Records an event addressed to one flow (manual add, flow API) and enrols the contact."""
        event = IncomingEvent(
            type=event_type,
            audience_id=flow.audience_id,
            contact_id=contact_id,
            idempotency_key=key,
            data={"flow_id": flow.id},
        )
        async with self.pool.acquire() as conn:
            stored, _ = await store(conn, event)
        if self.dispatcher is None:
            raise RuntimeError("enrolling into one flow needs a dispatcher")
        return await self.dispatcher.deliver_to(flow, event, stored)

    async def arm_many(
        self, flow: ActiveFlow, trigger_type: str, arms: list[Arming], *, concurrency: int
    ) -> list[Enrolment]:
        """Arms (or re-arms) a page of contacts' runs of a timer trigger with events not
        stored (an activation's arming pass; `Dispatcher.arm_many`)."""
        if self.dispatcher is None:
            raise RuntimeError("arming needs a dispatcher")
        return await self.dispatcher.arm_many(flow, trigger_type, arms, concurrency=concurrency)

    async def audience_rezoned(self, rezone: dict[str, Any]) -> int:
        """Re-arms the armed date-trigger runs that follow the audience's time zone, then marks
        the stored change (`store.rezones`) told.

        For a contact without a zone of its own, the audience's zone changing is its zone
        changing: its runs hear the same `field_changed` (timezone) event a contact's own
        zone change brings, and each recomputes its moment from the zones stored now (the timer
        moves). Runs are only signalled, never started: a run that ended stays ended. The event
        id is the change's, so a change told twice (the relay finishing what a dead process
        began) moves nobody twice.

        Returns:
            How many runs were told (those still open).
        """
        if self.dispatcher is None:
            raise RuntimeError("re-arming needs a dispatcher")
        ids = await armed.following_audience_zone(self.pool, rezone["audience_id"], DATE_TRIGGERS)
        event = FlowEvent(
            id=f"audience_timezone:{rezone['id']}",
            type="field_changed",
            occurred_at=rezone["created_at"],
            data={
                "field": "timezone",
                "value": None,
                "previous": None,
                "audience_timezone": rezone["zone"],
                "previous_audience_timezone": rezone["previous"],
            },
        )
        runs = await self.dispatcher.tell(ids, event)
        await rezones.told(self.pool, rezone["id"], runs=runs)
        return runs

    async def undelivered(self, keys: list[str]) -> Pending:
        """Events stored under these keys by an earlier attempt and not delivered yet.

        A request retried with the same `Idempotency-Key` finishes what the first attempt began.
        """
        pending: Pending = []
        for key in keys:
            stored = await events.by_key(self.pool, key)
            if stored is not None and stored["dispatched_at"] is None:
                pending.append((from_stored({**stored, "idempotency_key": key}), stored))
        return pending

    async def events(
        self, batch: list[IncomingEvent], *, concurrency: int = 10
    ) -> list[DispatchResult]:
        """Records a batch of events in one statement, then delivers the new ones.

        For the `email_sent` events of a campaign page: one round trip stores them all, instead
        of a transaction each. An event no flow enrols, arms or disarms on, of a contact with no
        run in progress, is stored delivered already, in the same statement (the registry
        answers the first part in memory); the rest go through `Dispatcher.deliver` (one
        Temporal call per armed or enrolled contact), up to `concurrency` at a time. An event
        stored by an earlier attempt and not delivered yet is left to the outbox relay, which
        delivers every undelivered event.

        Args:
            batch: The events; their idempotency keys make a repeat change nothing.
            concurrency: Deliveries in flight at once.
        """
        if not batch:
            return []
        given = {event.idempotency_key: event for event in batch}
        dispatcher = self.dispatcher
        # A contact one of whose events concerns a flow keeps all of its events to deliver, as
        # the later ones may concern the run the first starts (as `set_aside_idle` does). The
        # events are not stored yet, so any time counts (as for a single event, `event`).
        concerned = (
            {e.contact_id for e in given.values() if dispatcher.concerns_any(e, _EVER)}
            if dispatcher is not None
            else set()
        )
        async with self.pool.acquire() as conn:
            stored = await events.record_many(
                conn,
                [
                    {
                        "idempotency_key": e.idempotency_key,
                        "audience_id": e.audience_id,
                        "contact_id": e.contact_id,
                        "type": e.type,
                        "data": e.data,
                    }
                    for e in given.values()
                ],
                settle_if_idle=[
                    dispatcher is not None and e.contact_id not in concerned for e in given.values()
                ],
            )
        pending = [(given[s["idempotency_key"]], s) for s in stored]
        if dispatcher is None or not pending:
            return [DispatchResult(event_id=s["id"], duplicate=False) for _, s in pending]
        idle = [s["id"] for _, s in pending if s["dispatched_at"] is not None]
        busy = [(e, s) for e, s in pending if s["dispatched_at"] is None]
        gate = asyncio.Semaphore(concurrency)

        async def one(event: IncomingEvent, s: dict[str, Any]) -> DispatchResult:
            async with gate:
                return await dispatcher.deliver(event, s)

        delivered = await asyncio.gather(*(one(event, s) for event, s in busy))
        return [DispatchResult(event_id=i, duplicate=False) for i in idle] + list(delivered)


async def feed(conn: asyncpg.Connection, event: IncomingEvent) -> None:
    """Feeds the ledgers (orders, carts) from a newly stored event, in the caller's transaction.

    What `store` does after its insert, for events inserted in bulk (`journeys.batch`).
    """
    if event.type in ORDER_STATUS:
        await orders.record(
            conn,
            audience_id=event.audience_id,
            contact_id=event.contact_id,
            data=event.data,
            status=ORDER_STATUS[event.type],
            at=event.occurred_at,
        )
    await _feed_carts(conn, event)

"""A batch of events from a backend service: stored in one transaction, then delivered.

`POST /v1/events:batch` checks every event before this module is called (a bad one refuses
the whole batch), so everything here concerns events already known to be valid. They are
stored together — one insert for the events, then the ledgers (orders, carts) the new ones
feed — and only then handed to Temporal, so a 2xx means every event is durable. Delivery goes
through the same `Ingest.deliver_one` as a single post; a contact's events are delivered in the
batch's order, different contacts concurrently. An event Temporal does not accept now stays
undispatched for the outbox relay, and so do that contact's later events of the batch, which
must not overtake it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from journeys.dispatch import Enrolment
from journeys.domain.events import IncomingEvent
from journeys.ingest import Ingest, feed
from journeys.store import events

log = logging.getLogger(__name__)

MAX_EVENTS = 500
# Contacts delivered at once: enough to overlap Temporal round trips, few enough to leave
# the pool's connections to other requests.
DELIVERY_CONCURRENCY = 8


@dataclass
class Outcome:
    """What happened to one event of the batch.

    Attributes:
        event_id: The stored event (the earlier one for a duplicate).
        duplicate: Its idempotency key was seen before (earlier, or earlier in this batch).
        delivered: Temporal accepted every start and signal it causes; False leaves it to
            the outbox relay.
        enrolments: The flows it enrolled (or tried to enrol) the contact into.
    """

    event_id: str
    duplicate: bool
    delivered: bool = False
    enrolments: list[Enrolment] = field(default_factory=list)


async def store_batch(
    ingest: Ingest, batch: list[IncomingEvent]
) -> list[tuple[dict[str, Any], bool]]:
    """Stores the events and what they feed in one transaction.

    Returns:
        Per event, in order: its stored row and whether this batch stored it (False for a key
        seen before, or seen earlier in the batch).
    """
    rows = [
        {
            "idempotency_key": e.idempotency_key,
            "audience_id": e.audience_id,
            "contact_id": e.contact_id,
            "type": e.type,
            "data": e.data,
            "occurred_at": e.occurred_at,
        }
        for e in batch
    ]
    async with ingest.pool.acquire() as conn, conn.transaction():
        new, earlier = await events.record_batch(conn, rows)
        out: list[tuple[dict[str, Any], bool]] = []
        fed: set[str] = set()
        for event in batch:
            key = event.idempotency_key
            if key in new and key not in fed:
                fed.add(key)
                await feed(conn, event)
                out.append((new[key], True))
            else:
                out.append((new.get(key) or earlier[key], False))
    return out


async def deliver_batch(
    ingest: Ingest,
    batch: list[IncomingEvent],
    stored: list[tuple[dict[str, Any], bool]],
) -> list[Outcome]:
    """Delivers a stored batch; returns each event's outcome, in order.

    Events of contacts with no run in progress, none of whose events here concern a flow, have
    nobody to tell and are marked delivered in one statement (as `Ingest.deliver_many` does
    for imports).
    """
    outcomes = [Outcome(event_id=row["id"], duplicate=not new) for row, new in stored]
    # Each stored event is delivered once, at its first place in the batch; a repeat later in
    # the batch shares that outcome.
    first: dict[str, int] = {}
    todo: list[int] = []
    for i, (row, _) in enumerate(stored):
        if row["id"] in first:
            continue
        first[row["id"]] = i
        if row["dispatched_at"] is not None:
            outcomes[i].delivered = True
        else:
            todo.append(i)
    if ingest.dispatcher is None:
        return outcomes
    # A contact is busy if a run of it is under way, or if one of its events here starts one:
    # its later events in the batch may concern that run, so they are delivered after it.
    idle, _ = await ingest.set_aside_idle(
        ingest.dispatcher, [(batch[i], stored[i][0]) for i in todo]
    )
    marked = set(idle)
    for i in todo:
        if stored[i][0]["id"] in marked:
            outcomes[i].delivered = True
    by_contact: dict[str, list[int]] = defaultdict(list)
    for i in todo:
        if not outcomes[i].delivered:
            by_contact[batch[i].contact_id].append(i)
    gate = asyncio.Semaphore(DELIVERY_CONCURRENCY)

    async def one_contact(indexes: list[int]) -> None:
        async with gate:
            for i in indexes:
                try:
                    result = await ingest.deliver_one(batch[i], stored[i][0])
                except Exception as exc:  # noqa: BLE001 - the relay retries; the batch is stored
                    log.warning(
                        "batch: event %s not delivered now, left to the outbox relay: %s",
                        stored[i][0]["id"],
                        exc,
                    )
                    return  # the contact's later events wait too, so none overtakes this one
                outcomes[i].delivered = True
                outcomes[i].enrolments = result.enrolments

    await asyncio.gather(*(one_contact(indexes) for indexes in by_contact.values()))
    for i, (row, _) in enumerate(stored):
        if first[row["id"]] != i:
            outcomes[i].delivered = outcomes[first[row["id"]]].delivered
    return outcomes

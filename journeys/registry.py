"""The gateway's in-memory registry of active flows, kept fresh by Postgres LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

import asyncpg
from pydantic_core import to_json

from journeys.domain.events import IncomingEvent, event_type_for, fires, interests
from journeys.domain.flow import FlowDefinition
from journeys.domain.timers import TIMER_EVENTS, Effect, effect
from journeys.domain.triggers import Trigger
from journeys.store import flows
from journeys.versions import FlowVersions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActiveFlow:
    """An active flow at its current version."""

    id: str
    audience_id: str
    version: int
    definition: FlowDefinition
    activated_at: datetime
    interests: frozenset[str] = frozenset()

    @cached_property
    def definition_json(self) -> bytes:
        """The definition as the runs' start input carries it, serialised once per version
        (it is the bulk of every start's payload; see `journeys.dispatch.start_input`)."""
        return to_json(self.definition)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ActiveFlow:
        definition = FlowDefinition.model_validate(row["definition"])
        return cls(
            id=row["id"],
            audience_id=row["audience_id"],
            version=row["version"],
            definition=definition,
            activated_at=row["activated_at"],
            interests=interests(definition),
        )


class FlowRegistry:
    """Active flows indexed by (audience, event type), so matching an event costs no query."""

    def __init__(self, pool: asyncpg.Pool, dsn: str) -> None:
        self._pool = pool
        self._dsn = dsn
        self._flows: dict[str, ActiveFlow] = {}
        self._index: dict[tuple[str, str], list[tuple[ActiveFlow, Trigger]]] = {}
        self._timer_index: dict[tuple[str, str], list[tuple[ActiveFlow, Trigger]]] = {}
        self._listener: asyncpg.Connection | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._refreshing = asyncio.Lock()
        self.versions = FlowVersions(pool)

    async def start(self) -> None:
        """Listens for changes first, then loads, so no change between the two is missed."""
        await self._listen()
        await self.reload()

    async def close(self) -> None:
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        if self._listener is not None:
            await self._listener.close()

    async def reload(self) -> None:
        """Reloads every active flow."""
        async with self._refreshing:
            rows = await flows.list_active(self._pool)
            self._flows = {row["id"]: ActiveFlow.from_row(row) for row in rows}
            self._reindex()

    async def refresh(self, flow_id: str) -> None:
        """Reloads one flow after it changed (also called directly by the route that changed it).

        Refreshes run one at a time: a late NOTIFY's read must not land after, and undo, a
        newer read of the same flow.
        """
        async with self._refreshing:
            row = await flows.get(self._pool, flow_id)
            if row and row["status"] == "active":
                self._flows[flow_id] = ActiveFlow.from_row(row)
            else:
                self._flows.pop(flow_id, None)
            self._reindex()

    def holds(self, flow_id: str) -> bool:
        """Whether the flow is active as far as this registry knows."""
        return flow_id in self._flows

    def timers(
        self, event: IncomingEvent, occurred_at: datetime
    ) -> list[tuple[ActiveFlow, Trigger, Effect]]:
        """The active flows of the event's audience whose timer triggers the event arms or
        disarms, with what it does (see `journeys.domain.timers.effect`)."""
        found = []
        for flow, trigger in self._timer_index.get((event.audience_id, event.type), []):
            if flow.activated_at <= occurred_at:
                what = effect(trigger, event.type, event.data)
                if what is not None:
                    found.append((flow, trigger, what))
        return found

    def matching(
        self, event: IncomingEvent, occurred_at: datetime
    ) -> list[tuple[ActiveFlow, Trigger]]:
        """The active flows of the event's audience that the event enrols into.

        A flow reacts only to what happened after it was activated.
        """
        candidates = self._index.get((event.audience_id, event.type), [])
        return [
            (flow, trigger)
            for flow, trigger in candidates
            if flow.activated_at <= occurred_at and fires(trigger, event)
        ]

    async def cares(self, flow_id: str, version: int, event_type: str) -> bool:
        """Whether open runs of this flow version react to this event type.

        A run follows the version it entered with, so it is judged by that version's exit
        goals and waits, never by the current one's.
        """
        active = self._flows.get(flow_id)
        if active is not None and active.version == version:
            return event_type in active.interests
        try:
            return event_type in await self.versions.interests(flow_id, version)
        except LookupError:
            return False

    def _reindex(self) -> None:
        index: dict[tuple[str, str], list[tuple[ActiveFlow, Trigger]]] = defaultdict(list)
        timers: dict[tuple[str, str], list[tuple[ActiveFlow, Trigger]]] = defaultdict(list)
        for flow in self._flows.values():
            for trigger in flow.definition.triggers:
                for event_type in TIMER_EVENTS.get(trigger.type, ()):
                    timers[(flow.audience_id, event_type)].append((flow, trigger))
                event_type = event_type_for(trigger.type)
                if event_type is not None and trigger.type not in TIMER_EVENTS:
                    index[(flow.audience_id, event_type)].append((flow, trigger))
        self._index, self._timer_index = dict(index), dict(timers)

    async def _listen(self) -> None:
        self._listener = await asyncpg.connect(self._dsn)
        await self._listener.add_listener(flows.CHANNEL, self._on_notify)
        self._listener.add_termination_listener(self._on_lost)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._spawn(self.refresh(payload))

    def _on_lost(self, _conn: object) -> None:
        if not self._closing:
            self._spawn(self._reconnect())

    async def _reconnect(self) -> None:
        # Changes made while disconnected were not heard: reload everything once back.
        delay = 0.5
        while not self._closing:
            try:
                await self.start()
                log.info("flow registry listening again")
                return
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("flow registry cannot reach Postgres (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

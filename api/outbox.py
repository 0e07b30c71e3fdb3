"""Re-delivers events that were stored but not handed to Temporal.

A request stores its events in the same transaction as the change that caused them, then
delivers them. If delivery fails (Temporal unreachable, process killed), the event stays
undispatched and this relay delivers it later, so no enrolment is lost.
"""

from __future__ import annotations

import asyncio
import logging

from journeys.ingest import Ingest, from_stored
from journeys.store import events

log = logging.getLogger(__name__)


class OutboxRelay:
    """Periodically delivers undispatched events older than `min_age` seconds."""

    def __init__(
        self,
        ingest: Ingest,
        *,
        interval: float = 5.0,
        min_age: float = 10.0,
    ) -> None:
        self._ingest = ingest
        self._interval = interval
        self._min_age = min_age
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def run_once(self, *, limit: int = 200) -> int:
        """Delivers one batch; returns how many events it delivered."""
        delivered = 0
        for stored in await events.undispatched(
            self._ingest.pool, min_age_seconds=self._min_age, limit=limit
        ):
            await self._ingest.deliver_one(from_stored(stored), stored)
            delivered += 1
        return delivered

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)  # the relay's period, not a synchronisation
            try:
                count = await self.run_once()
                if count:
                    log.info("outbox relay delivered %d event(s)", count)
            except Exception as exc:  # noqa: BLE001 - keep relaying after a failed round
                log.warning("outbox relay round failed: %s", exc)

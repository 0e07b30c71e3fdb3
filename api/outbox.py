"""Re-delivers events that were stored but not handed to Temporal.

A request stores its events in the same transaction as the change that caused them, then
delivers them. If delivery fails (Temporal unreachable, process killed), the event stays
undispatched and this relay delivers it later, so no enrolment is lost.

Each event is tried on its own: a transient failure backs that event off (exponentially, up to
a bound) and a permanent one — Temporal refuses the payload as too large or invalid — sets it
aside as a dead letter with its reason, so one bad event never holds back the others.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CollectorRegistry, Counter, Gauge
from temporalio.exceptions import TemporalError
from temporalio.service import RPCError, RPCStatusCode

from journeys.ingest import Ingest, from_stored
from journeys.store import enrollments, events, rezones

log = logging.getLogger(__name__)

# Temporal answers these when the request itself is wrong: sending it again cannot succeed.
_PERMANENT_STATUSES = {
    RPCStatusCode.INVALID_ARGUMENT,
    RPCStatusCode.OUT_OF_RANGE,
    RPCStatusCode.UNIMPLEMENTED,
}
# gRPC says RESOURCE_EXHAUSTED both for "too big" (permanent) and for rate limits (transient).
_TOO_LARGE_MARKERS = ("size exceeds", "larger than max", "too large", "exceeds limit")
_MAX_ERROR_TEXT = 500


def permanent_reason(exc: BaseException) -> str | None:
    """Why a delivery failure can never succeed, or None if trying again may help.

    Args:
        exc: What delivering the event raised.
    """
    if isinstance(exc, RPCError):
        text = f"Temporal refused the event ({exc.status.name}): {exc.message}"
        if exc.status in _PERMANENT_STATUSES or any(
            marker in exc.message.lower() for marker in _TOO_LARGE_MARKERS
        ):
            return text[:_MAX_ERROR_TEXT]
        return None
    if isinstance(exc, (ValueError, TypeError)) and not isinstance(exc, TemporalError):
        # The stored row cannot be rebuilt into an event or serialised into a payload.
        return f"the event cannot be delivered: {type(exc).__name__}: {exc}"[:_MAX_ERROR_TEXT]
    return None


class OutboxMetrics:
    """What the relay exposes at `/metrics`."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        registry = registry or CollectorRegistry()
        self.dead_letters = Gauge(
            "journeys_outbox_dead_letters",
            "Events set aside because they can never be delivered (see /v1/admin/dead-letters).",
            registry=registry,
        )
        self.dead_lettered = Counter(
            "journeys_outbox_dead_lettered",
            "Events this process dead-lettered.",
            registry=registry,
        )
        self.failures = Counter(
            "journeys_outbox_delivery_failures",
            "Delivery attempts of the outbox relay that failed, by kind.",
            ["kind"],
            registry=registry,
        )
        self.delivered = Counter(
            "journeys_outbox_delivered",
            "Events the outbox relay delivered late.",
            registry=registry,
        )


class OutboxRelay:
    """Periodically delivers undispatched events older than `min_age` seconds.

    Args:
        ingest: Delivers the events.
        interval: Seconds between two rounds.
        min_age: Events younger than this are left to the request that stored them.
        max_attempts: Failed attempts after which an event is dead-lettered.
        backoff_max: Longest wait, in seconds, between two attempts of one event.
        registry: Prometheus registry of the app's `/metrics`, if it serves one.
    """

    def __init__(
        self,
        ingest: Ingest,
        *,
        interval: float = 5.0,
        min_age: float = 10.0,
        max_attempts: int = 20,
        backoff_max: float = 600.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._ingest = ingest
        self._interval = interval
        self._min_age = min_age
        self._max_attempts = max_attempts
        self._backoff_max = backoff_max
        self.metrics = OutboxMetrics(registry)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def run_once(self, *, limit: int = 200) -> int:
        """Delivers one batch; returns how many events it delivered.

        A failing event is backed off or dead-lettered and the round goes on with the next.
        """
        pool = self._ingest.pool
        delivered = 0
        for stored in await events.undispatched(pool, min_age_seconds=self._min_age, limit=limit):
            try:
                await self._ingest.deliver_one(from_stored(stored), stored)
            except Exception as exc:  # noqa: BLE001 - classified below, never aborts the round
                await self._failed(stored, exc)
                continue
            delivered += 1
            self.metrics.delivered.inc()
        self.metrics.dead_letters.set(await events.count_dead_letters(pool))
        return delivered

    async def tell_rezones(self, *, limit: int = 50) -> int:
        """Tells armed runs of audience time-zone changes a request stored and did not finish
        telling (`Ingest.audience_rezoned`); returns how many changes it finished."""
        pool = self._ingest.pool
        finished = 0
        for rezone in await rezones.untold(pool, min_age_seconds=self._min_age, limit=limit):
            try:
                await self._ingest.audience_rezoned(rezone)
            except Exception as exc:  # noqa: BLE001 - backed off below, never aborts the round
                attempts = rezone["attempts"] + 1
                give_up = attempts >= self._max_attempts
                self.metrics.failures.labels("permanent" if give_up else "transient").inc()
                await rezones.failed(
                    pool,
                    rezone["id"],
                    delay_seconds=self._backoff(attempts),
                    error=str(exc)[:_MAX_ERROR_TEXT],
                    give_up=give_up,
                )
                log.log(
                    logging.ERROR if give_up else logging.WARNING,
                    "outbox: time-zone change %s of audience %s failed (attempt %d%s): %s",
                    rezone["id"],
                    rezone["audience_id"],
                    attempts,
                    ", given up" if give_up else "",
                    exc,
                )
                continue
            finished += 1
        return finished

    def _backoff(self, attempts: int) -> float:
        """Seconds before the next try after `attempts` failed ones: doubling, bounded."""
        return min(self._interval * 2 ** (attempts - 1), self._backoff_max)

    async def _failed(self, stored: dict, exc: Exception) -> None:
        pool = self._ingest.pool
        refused = permanent_reason(exc)
        reason = refused
        attempts = stored.get("dispatch_attempts", 0) + 1
        if reason is None and attempts >= self._max_attempts:
            reason = f"gave up after {attempts} failed attempts; last: {exc}"[:_MAX_ERROR_TEXT]
        if reason is not None:
            self.metrics.failures.labels("permanent").inc()
            self.metrics.dead_lettered.inc()
            if refused is not None:
                # Temporal refused the start: the entry recorded for it has no run, ever.
                await enrollments.withdraw_refused(pool, stored["id"])
            await events.dead_letter(pool, stored["id"], reason)
            log.error("outbox: event %s dead-lettered: %s", stored["id"], reason)
            return
        self.metrics.failures.labels("transient").inc()
        delay = self._backoff(attempts)
        await events.retry_later(
            pool, stored["id"], delay_seconds=delay, error=str(exc)[:_MAX_ERROR_TEXT]
        )
        log.warning(
            "outbox: event %s failed (attempt %d), next try in %.0fs: %s",
            stored["id"],
            attempts,
            delay,
            exc,
        )

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)  # the relay's period, not a synchronisation
            try:
                count = await self.run_once()
                if count:
                    log.info("outbox relay delivered %d event(s)", count)
                count = await self.tell_rezones()
                if count:
                    log.info("outbox relay told %d audience time-zone change(s)", count)
            except Exception as exc:  # noqa: BLE001 - keep relaying after a failed round
                # Only the database failing gets here (each event's failure is handled above).
                log.warning("outbox relay round failed: %s", exc)

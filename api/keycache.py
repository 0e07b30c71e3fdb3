"""The API's cache of valid keys, emptied of a key the moment it is revoked anywhere.

A burst of requests with one key costs one query; `journeys apikey revoke` (any process, any
host) announces the key's hash on a Postgres channel, and every API process listening drops it
at once. If the listening connection is lost, notifications may have been missed: the whole
cache is dropped and the connection re-opened.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from journeys.store import apikeys

log = logging.getLogger(__name__)


class KeyCache:
    """Key hash → (key name, expiry on the monotonic clock).

    Args:
        dsn: Database to listen on.
        ttl: Seconds a verified key is trusted without asking the database again.
    """

    def __init__(self, dsn: str, *, ttl: float = 30.0) -> None:
        self._dsn = dsn
        self._ttl = ttl
        self._entries: dict[str, tuple[str, float]] = {}
        # Bumped by every revocation heard: a key verified before a revocation and cached after
        # it would otherwise outlive the revocation by a whole TTL.
        self._generation = 0
        self._listener: asyncpg.Connection | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._closing = False

    def get(self, digest: str) -> str | None:
        """The name of the key with this hash, if it was verified recently and not revoked."""
        hit = self._entries.get(digest)
        if hit is None or hit[1] <= time.monotonic():
            return None
        return hit[0]

    def generation(self) -> int:
        """Take before asking the database; hand to `put` with the answer."""
        return self._generation

    def put(self, digest: str, name: str, generation: int) -> None:
        """Remembers a key the database said is valid when `generation` was current.

        Nothing is cached if a revocation was heard since, or while not listening: a key
        cached then could outlive its revocation.
        """
        listening = self._listener is not None and not self._listener.is_closed()
        if listening and generation == self._generation:
            self._entries[digest] = (name, time.monotonic() + self._ttl)

    def drop(self, digest: str) -> None:
        self._entries.pop(digest, None)

    async def start(self) -> None:
        """Listens for revocations (before anything is cached)."""
        self._listener = await asyncpg.connect(self._dsn)
        await self._listener.add_listener(apikeys.CHANNEL, self._on_notify)
        self._listener.add_termination_listener(self._on_lost)

    async def close(self) -> None:
        self._closing = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        if self._listener is not None:
            await self._listener.close()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._generation += 1
        self.drop(payload)

    def _on_lost(self, _conn: object) -> None:
        self._generation += 1
        self._entries.clear()
        if not self._closing:
            self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = 0.5
        while not self._closing:
            try:
                await self.start()
                log.info("API key cache listening again")
                return
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("API key cache cannot listen (%s); retrying", exc)
                await asyncio.sleep(delay)  # back-off before the next connection attempt
                delay = min(delay * 2, 10)

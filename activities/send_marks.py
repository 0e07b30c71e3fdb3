"""Group commit of the send ledger's marks for the lanes of one campaign page.

Every email is marked `sending` before its DATA phase and `sent` once the server took it, as
`journeys.store.messages` describes; only the round trips are shared. While one statement is
in flight, the marks the other lanes ask for gather, and the next statement writes them all:
with ten lanes, a few statements a round instead of twenty, over one connection held for the
page (no pool acquire and connection reset per mark).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from journeys.store import messages


class LedgerMarks:
    """The `sending` and `sent` marks of one page, written together.

    A lane awaits `sending` (its DATA phase must not start before the mark is stored) and
    hands in `sent` without waiting; `flush` waits until every mark handed in so far is
    stored, and raises if a statement failed (its `sent` marks then stay `sending`, which a
    retry records `uncertain`, never resends).
    """

    @classmethod
    @asynccontextmanager
    async def held(cls, pool: asyncpg.Pool) -> AsyncIterator[LedgerMarks]:
        """The marks of a page, written over one pooled connection held for the page.

        Its statements are planned at every execution: a plan cached while the ledger was
        small scans the whole table (cheapest then), and keeps scanning it, a page after
        another, as the ledger grows; a fresh plan looks the keys up in their index. The pool
        does not reset connections (`journeys.store.pool`), so the setting is undone before
        the connection goes back, or the connection is closed instead.
        """
        async with pool.acquire() as conn:
            await conn.execute("SET plan_cache_mode = force_custom_plan")
            try:
                yield cls(conn)
            finally:
                try:
                    await conn.execute("RESET plan_cache_mode")
                except BaseException:
                    conn.terminate()  # never back in the pool with the setting
                    raise

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.connection = conn  # the page's connection (read-only to callers)
        self._conn = conn
        self._sending: dict[str, asyncio.Future[bool]] = {}
        self._sent: list[str] = []
        self._writer: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    async def sending(self, key: str) -> bool:
        """Marks the email `sending`; False if its row was no longer `pending`.

        Raises:
            Exception: the statement failed (the email must not be handed over).
        """
        if self._error is not None:
            raise self._error
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._sending[key] = future
        self._kick()
        return await future

    def sent(self, key: str) -> None:
        """Marks the email `sent` with the next statement."""
        self._sent.append(key)
        self._kick()

    async def flush(self) -> None:
        """Waits until every mark handed in so far is stored.

        Raises:
            Exception: a statement failed.
        """
        while self._writer is not None:
            await asyncio.shield(self._writer)
        if self._error is not None:
            raise self._error

    def _kick(self) -> None:
        if self._writer is None and self._error is None:
            self._writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        try:
            while (self._sending or self._sent) and self._error is None:
                sending, self._sending = self._sending, {}
                sent, self._sent = self._sent, []
                try:
                    taken = await messages.mark_many(self._conn, sent=sent, sending=list(sending))
                except BaseException as exc:  # cancelled too: nothing after it may be sent
                    self._error = exc
                    for future in sending.values():
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    return  # `flush` and the next `sending` raise it
                for key, future in sending.items():
                    if not future.done():  # its lane may have been cancelled meanwhile
                        future.set_result(key in taken)
        finally:
            self._writer = None
            # Marks a failed statement left behind never go out: fail their lanes too.
            for future in self._sending.values():
                if not future.done() and self._error is not None:
                    future.set_exception(self._error)

"""Heartbeats for activities that must be retried soon after their worker dies."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from temporalio import activity


@contextlib.asynccontextmanager
async def heartbeating() -> AsyncIterator[None]:
    """Heartbeats while the block runs, if the activity was given a heartbeat timeout.

    Temporal learns that a worker died only when a heartbeat is missed; without one it waits
    for the whole start-to-close timeout before retrying. The beat runs on its own task so a
    slow step of the block (an SMTP server taking its time) does not count as a dead worker.
    Outside an activity (a test calling the method directly) it does nothing.
    """
    timeout = activity.info().heartbeat_timeout if activity.in_activity() else None
    if not timeout:
        yield
        return
    # The SDK forwards at most one heartbeat per 0.8 x timeout to the server; beating three
    # times per timeout keeps one in every throttle window.
    every = timeout.total_seconds() / 3

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(every)  # the heartbeat period, not a synchronisation

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

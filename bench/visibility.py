"""Reading what Temporal recorded: counts and close times from visibility, and histories."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from temporalio.client import Client, WorkflowExecutionStatus


async def wait_for(
    check: Callable[[], object], *, timeout: float, what: str, interval: float = 0.25
) -> None:
    """Polls `check` (sync or async, truthy = done) until it holds or `timeout` passes.

    Raises:
        TimeoutError: naming `what`.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f}s")
        await asyncio.sleep(interval)  # poll interval


async def count(client: Client, query: str) -> int:
    """Workflows matching a visibility query."""
    return (await client.count_workflows(query)).count


async def wait_closed(client: Client, query: str, expected: int, *, timeout: float) -> None:
    """Waits until `expected` workflows matching `query` have closed."""

    async def closed() -> bool:
        return await count(client, f"{query} AND ExecutionStatus != 'Running'") >= expected

    await wait_for(closed, timeout=timeout, what=f"{expected} closed workflows for {query!r}")


async def close_times(client: Client, query: str) -> dict[str, float]:
    """Workflow id → close time (epoch seconds) of the completed workflows matching `query`."""
    times: dict[str, float] = {}
    async for wf in client.list_workflows(f"{query} AND ExecutionStatus = 'Completed'"):
        if wf.status == WorkflowExecutionStatus.COMPLETED and wf.close_time is not None:
            times[wf.id] = wf.close_time.timestamp()
    return times

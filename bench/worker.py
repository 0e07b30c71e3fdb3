"""A worker process for a benchmark: the real contact-flow worker, or the raw baseline's.

Run as `python -m bench.worker --kind journeys|raw --task-queue Q`, configured by the same
`JOURNEYS_*` environment as `journeys worker` (Temporal address, Postgres, SMTP, tuning). Both
kinds take their `Worker` tuning from `workers.worker.worker_tuning`, so a comparison between
them differs only in what the workflows do. Prints `READY` once polling; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from contextlib import AsyncExitStack

from temporalio.client import Client
from temporalio.worker import Worker

from bench.procs import signal_ready
from bench.raw import RawFlowWorkflow, raw_noop
from journeys.config import Settings
from journeys.wiring import open_core
from workers.worker import build_worker, email_sender, worker_tuning


async def _build(kind: str, task_queue: str, settings: Settings, stack: AsyncExitStack) -> Worker:
    if kind == "raw":
        client = await Client.connect(
            settings.effective_temporal_address, namespace=settings.temporal_namespace
        )
        return Worker(
            client,
            task_queue=task_queue,
            workflows=[RawFlowWorkflow],
            activities=[raw_noop],
            **worker_tuning(settings),
        )
    core = await stack.enter_async_context(open_core(settings))
    email = email_sender(settings)
    stack.push_async_callback(email.aclose)
    return build_worker(core, task_queue=task_queue, email=email)


async def run(kind: str, task_queue: str) -> None:
    """Polls `task_queue` until SIGTERM/SIGINT, then shuts the worker down cleanly."""
    settings = Settings()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncExitStack() as stack:
        worker = await _build(kind, task_queue, settings, stack)
        async with worker:
            signal_ready()
            await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", choices=["journeys", "raw"], required=True)
    parser.add_argument("--task-queue", required=True)
    args = parser.parse_args()
    asyncio.run(run(args.kind, args.task_queue))


if __name__ == "__main__":
    main()

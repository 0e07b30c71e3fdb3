"""The gateway for a benchmark: `create_app` under uvicorn on a real port, in its own process.

Run as `python -m bench.gateway`, configured by `JOURNEYS_*` (API port, Postgres, Temporal,
task queue) like `journeys api`, and with the event loop and HTTP parser uvicorn picks for
`journeys api` (uvloop and httptools when installed). Prints `READY` once uvicorn listens;
stops on SIGTERM after uvicorn's graceful shutdown (the lifespan closes pool and registry).
"""

from __future__ import annotations

import asyncio

import uvicorn
from uvicorn._compat import asyncio_run

from api.app import create_app
from bench.procs import signal_ready
from journeys.config import Settings


async def _serve(server: uvicorn.Server) -> None:
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped during start-up")
        await asyncio.sleep(0.02)  # poll until uvicorn listens
    signal_ready()
    await task


def main() -> None:
    settings = Settings()
    config = uvicorn.Config(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level="warning",
        access_log=False,  # an access line per request would be measured too
        lifespan="on",
        # Longer than the load generator keeps idle connections (2 s): a request never races
        # the server closing the connection it was sent on (an httpx ReadError).
        timeout_keep_alive=30,
    )
    # What uvicorn.run does, so the loop is the one `journeys api` gets.
    asyncio_run(_serve(uvicorn.Server(config)), loop_factory=config.get_loop_factory())


if __name__ == "__main__":
    main()

"""The real API on a loopback port, for clients that need a socket (Mailchimp's, the CLI).

Import the fixture into a test module: `from tests.live_server import live_api  # noqa: F401`.
Blocking clients must run in a thread (`asyncio.to_thread`): the server shares the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import uvicorn

from api.app import create_app
from journeys.config import Settings
from journeys.embedded.process import free_port
from tests.helpers import eventually


@pytest.fixture(scope="module")
async def live_api(settings: Settings) -> AsyncIterator[str]:
    """Base URL (`http://127.0.0.1:PORT`) of the app served by uvicorn on this loop."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
    )
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started or task.done(), timeout=30)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task

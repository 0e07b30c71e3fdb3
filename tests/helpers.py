"""Test helpers: polling with a deadline instead of sleeping; a loopback-only resolver; runs."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
import httpx
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from journeys.config import Settings
from journeys.domain.runs import SendEmailInput, workflow_id
from journeys.embedded.process import find_binary
from journeys.embedded.temporal import register_search_attributes
from journeys.store import flows

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T] | T], *, timeout: float = 20.0, interval: float = 0.1
) -> T:
    """Polls `check` until it returns a truthy value, and returns that value.

    Raises:
        AssertionError: the deadline passed; the message shows the last value or error.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
            if asyncio.iscoroutine(value) or isinstance(value, Awaitable):
                value = await value  # type: ignore[misc]
            if value:
                return value  # type: ignore[return-value]
            last = value
        except AssertionError as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last: {last!r}")
        await asyncio.sleep(interval)  # poll


def flow_body(audience_id: str, *, tag: str = "vip", delay: str = "2d", **extra: object) -> dict:
    """The welcome flow of the README: email, delay, email."""
    return {
        "name": extra.pop("name", f"Welcome {tag}"),
        "audience_id": audience_id,
        "triggers": extra.pop("triggers", [{"type": "tag_added", "tag": tag}]),
        "steps": extra.pop("steps", None)
        or [
            {
                "id": "hello",
                "type": "send_email",
                "subject": "Welcome {{ contact.first_name }}",
                "html": "<p>Hi {{ contact.first_name }}</p>",
            },
            {"id": "pause", "type": "delay", "duration": delay},
            {"id": "again", "type": "send_email", "subject": "Still there?", "html": "<p>...</p>"},
        ],
        **extra,
    }


class HostsResolver:
    """Name resolution for tests, like an /etc/hosts that never asks a DNS server.

    `localhost` goes to the system resolver (answered from /etc/hosts); other names answer
    from `table`, which tests fill and change (a DNS rebinding is a changed entry). Unknown
    names fail as NXDOMAIN would, so no test sends a query off this machine. Every lookup is
    recorded in `asked`.
    """

    def __init__(self) -> None:
        self.table: dict[str, list[str]] = {}
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        name = host.lower().rstrip(".")
        if name == "localhost":
            infos = await asyncio.get_running_loop().getaddrinfo(
                name, port, type=socket.SOCK_STREAM
            )
            return [str(info[4][0]) for info in infos]
        if name in self.table:
            return list(self.table[name])
        raise socket.gaierror(socket.EAI_NONAME, f"{host} is not in the test hosts table")


async def in_flow(client: Client, flow_id: str, contact_id: str) -> bool:
    """Whether the contact's run of the flow exists in Temporal (the gateway awaited its start)."""
    try:
        await client.get_workflow_handle(workflow_id(flow_id, contact_id)).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


@asynccontextmanager
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping test server with the project's search attributes."""
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=find_binary("temporal-test-server"),
    ) as environment:
        await register_search_attributes(environment.client, "default")
        yield environment


async def stored_send(
    pool: asyncpg.Pool, contact: dict[str, Any], body: dict[str, Any], step_id: str = "hello"
) -> SendEmailInput:
    """A send of one step of the flow `body`, stored as version 1 (sends load it by reference)."""
    async with pool.acquire() as conn, conn.transaction():
        flow = await flows.create(conn, audience_id=contact["audience_id"], definition=body)
    return SendEmailInput(
        idempotency_key=uuid.uuid4().hex,
        workflow_id="wf",
        flow_id=flow["id"],
        version=1,
        step_id=step_id,
        contact_id=contact["id"],
        audience_id=contact["audience_id"],
    )


@asynccontextmanager
async def api_client(
    settings: Settings, api_key: str, *, timeout: float = 5.0
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app (real lifespan, pool, Temporal client) over an in-process transport.

    Args:
        settings: The app's settings.
        api_key: Sent as the bearer token of every request.
        timeout: Seconds a request may take (5: httpx's default).
    """
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://journeys.test",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
        ) as http:
            yield http

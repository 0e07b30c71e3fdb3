"""Test helpers: polling with a deadline instead of sleeping; a loopback-only resolver."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

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

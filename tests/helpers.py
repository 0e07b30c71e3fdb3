"""Test helpers: polling with a deadline instead of sleeping."""

from __future__ import annotations

import asyncio
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

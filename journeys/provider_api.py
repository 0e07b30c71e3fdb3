"""Calls back to a provider's API (Eventbrite, LiveChat) from a webhook receiver.

Webhook bodies only name what happened (`api_url`, a chat id); the receiver fetches the
details with the audience's token. URLs come from the request, so only the configured API
base is ever called: anything else is refused before a connection is made.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import httpx


class ProviderCallError(Exception):
    """The provider could not be asked, or refused; `status` is what the receiver answers."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


def within(url: str, base: str) -> bool:
    """True if `url` is under `base`: same scheme, host and port, and path below base's path."""
    u, b = urlsplit(url), urlsplit(base)
    if u.scheme not in ("http", "https") or u.username or u.password:
        return False
    prefix = b.path if b.path.endswith("/") else b.path + "/"
    return (
        (u.scheme, u.hostname, u.port) == (b.scheme, b.hostname, b.port)
        and (u.path + "/").startswith(prefix)
        and ".." not in u.path.split("/")
    )


async def call_json(
    url: str,
    *,
    base: str,
    token: str,
    timeout: float,
    attempts: int,
    json: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """GETs (or POSTs `json` to) a provider URL with a bearer token; returns the JSON object.

    Network errors, 429 and 5xx are retried, at most `attempts` times in all, with a short
    growing pause; other statuses are final.

    Raises:
        ProviderCallError: the URL is outside `base` (422), or the provider failed (502).
    """
    if not within(url, base):
        raise ProviderCallError(f"{url!r} is not under the configured API {base!r}", status=422)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    last = "no attempt"
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(min(0.2 * 2**attempt, 2.0))  # back off between attempts
            try:
                if json is None:
                    response = await client.get(url, headers=headers)
                else:
                    response = await client.post(url, headers=headers, json=json)
            except httpx.HTTPError as exc:
                last = f"unreachable: {exc.__class__.__name__}"
                continue
            if response.status_code == 429 or response.status_code >= 500:
                last = f"answered {response.status_code}"
                continue
            if response.status_code >= 400:
                raise ProviderCallError(f"the provider answered {response.status_code}", status=502)
            try:
                body = response.json()
            except ValueError as exc:
                raise ProviderCallError("the provider answered no JSON", status=502) from exc
            if not isinstance(body, dict):
                raise ProviderCallError("the provider answered no JSON object", status=502)
            return body
    raise ProviderCallError(f"the provider failed {attempts} times ({last})", status=502)

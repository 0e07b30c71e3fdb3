"""SMS providers: a Twilio-compatible REST provider and a development outbox."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Protocol
from urllib.parse import urlencode

import httpx

from journeys.channels.email import PermanentSendError, TransientSendError, UncertainSendError


class SmsProvider(Protocol):
    """Sends one text message; returns the provider's message id."""

    async def send(self, *, to: str, body: str, idempotency_key: str) -> str: ...


class OutboxSmsProvider:
    """Development provider: appends each message to `outbox.jsonl` instead of sending it."""

    def __init__(self, folder: Path) -> None:
        self._path = folder / "outbox.jsonl"
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = asyncio.Lock()

    async def send(self, *, to: str, body: str, idempotency_key: str) -> str:
        record = {"to": to, "body": body, "key": idempotency_key, "at": time.time()}
        async with self._lock:
            with self._path.open("a") as out:
                out.write(json.dumps(record) + "\n")
        return f"outbox-{idempotency_key}"

    def messages(self) -> list[dict[str, object]]:
        """What was 'sent', oldest first."""
        if not self._path.exists():
            return []
        return [json.loads(line) for line in self._path.read_text().splitlines() if line]


class TwilioSmsProvider:
    """Twilio's Messages API (or any server speaking it, e.g. a regional proxy)."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str,
        base_url: str = "https://api.twilio.com",
        timeout: float = 15.0,
        status_callback: str | None = None,
    ) -> None:
        self._url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self._auth = (account_sid, auth_token)
        self._from = from_number
        self._timeout = timeout
        # Twilio posts delivery statuses there; the key says which of our messages it is.
        self._status_callback = status_callback

    async def send(self, *, to: str, body: str, idempotency_key: str) -> str:
        """Posts the message.

        Raises:
            PermanentSendError: Twilio refused it (4xx other than rate limiting).
            UncertainSendError: the request left, but no answer came back.
            TransientSendError: no connection, 429 or 5xx.
        """
        data = {"To": to, "From": self._from, "Body": body}
        if self._status_callback:
            data["StatusCallback"] = (
                f"{self._status_callback}?{urlencode({'key': idempotency_key})}"
            )
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.post(
                    self._url,
                    data=data,
                    auth=self._auth,
                    headers={"I-Twilio-Idempotency-Token": idempotency_key[:64]},
                )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # nothing left this machine
            raise TransientSendError(f"SMS provider unreachable: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise UncertainSendError(f"SMS provider did not answer: {exc!r}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientSendError(f"SMS provider answered {response.status_code}")
        if response.status_code >= 400:
            raise PermanentSendError(f"SMS refused ({response.status_code}): {response.text[:300]}")
        return str(response.json().get("sid", ""))

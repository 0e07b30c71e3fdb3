"""Outbound webhooks: a flow step calls the user's endpoint, signed so it can trust the call."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import asyncpg
import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from journeys.domain.runs import ActivityName, WebhookInput, WebhookResult
from journeys.domain.templating import contact_context, render
from journeys.store import contacts

SIGNATURE_HEADER = "X-Journeys-Signature"


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """`t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">`: replay-resistant, like Stripe's scheme."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: bytes, header: str, body: bytes, *, tolerance: float = 300) -> bool:
    """Checks a signature header in constant time (for receivers, and for our tests)."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    timestamp, given = parts.get("t", ""), parts.get("v1", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)


def _render_values(value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, dict):
        return {k: _render_values(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_values(v, context) for v in value]
    return value


class WebhookActivities:
    """Calls webhook steps' endpoints."""

    def __init__(self, pool: asyncpg.Pool, *, secret: bytes, timeout: float = 15.0) -> None:
        self._pool = pool
        self._secret = secret
        self._timeout = timeout

    @activity.defn(name=ActivityName.CALL_WEBHOOK)
    async def call_webhook(self, input: WebhookInput) -> WebhookResult:
        """Sends the request. 2xx succeeds; 4xx (but 408/429) fails for good; the rest is retried.

        The `Idempotency-Key` header lets receivers drop the repeats a retry may cause.
        """
        step = input.step
        contact = await contacts.get(self._pool, input.contact_id) or {"id": input.contact_id}
        context = contact_context(
            contact, event=input.event, flow={"id": input.flow_id, "name": input.flow_name}
        )
        headers = {"Idempotency-Key": input.idempotency_key, "User-Agent": "temporal-journeys"}
        headers |= {name: render(value, context) for name, value in step.headers.items()}
        payload = (
            _render_values(step.body, context)
            if step.body is not None
            else {
                "flow": {"id": input.flow_id, "name": input.flow_name, "step_id": step.id},
                "contact": context["contact"],
                "event": input.event,
            }
        )
        content: bytes = b""
        if step.method not in ("GET", "DELETE"):
            if step.format == "json":
                content = json.dumps(payload, default=str).encode()
                headers["Content-Type"] = "application/json"
            else:
                content = str(httpx.QueryParams({k: str(v) for k, v in payload.items()})).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
        if step.signed:
            headers[SIGNATURE_HEADER] = sign(self._secret, str(int(time.time())), content)
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.request(
                    step.method, step.url, content=content or None, headers=headers
                )
        except httpx.HTTPError as exc:
            raise ApplicationError(
                f"webhook unreachable: {exc}", type="WebhookUnreachable"
            ) from exc
        code = response.status_code
        if 200 <= code < 300:
            return WebhookResult(status_code=code)
        if 400 <= code < 500 and code not in (408, 429):
            raise ApplicationError(
                f"webhook refused with {code}", type="WebhookRejected", non_retryable=True
            )
        raise ApplicationError(f"webhook answered {code}", type="WebhookFailed")

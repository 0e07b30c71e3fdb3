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

from journeys.channels.email import header_value
from journeys.channels.netguard import GuardedTransport, NetGuard, TargetRefused
from journeys.domain.runs import ActivityName, WebhookInput, WebhookResult
from journeys.domain.templating import contact_context
from journeys.rendering import FieldRefused, render_fields
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


def _templates(value: Any, path: str) -> dict[str, tuple[str, bool]]:
    """The body's template strings by path (`body.email`, `body.items[0]`)."""
    if isinstance(value, str):
        return {path: (value, False)}
    if isinstance(value, dict):
        children = [(f"{path}.{key}", item) for key, item in value.items()]
    elif isinstance(value, list):
        children = [(f"{path}[{index}]", item) for index, item in enumerate(value)]
    else:
        return {}
    found: dict[str, tuple[str, bool]] = {}
    for child_path, item in children:
        found |= _templates(item, child_path)
    return found


def _fill(value: Any, path: str, rendered: dict[str, str]) -> Any:
    if isinstance(value, str):
        return rendered[path]
    if isinstance(value, dict):
        return {k: _fill(v, f"{path}.{k}", rendered) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, f"{path}[{i}]", rendered) for i, v in enumerate(value)]
    return value


def _refused(kind: str, message: str) -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


class WebhookActivities:
    """Calls webhook steps' endpoints, only at addresses the guard allows.

    Args:
        pool: The database pool.
        secret: Signs the requests.
        guard: Which targets may be called (`JOURNEYS_WEBHOOK_ALLOWED_HOSTS`).
        timeout: Seconds a request may take.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        secret: bytes,
        guard: NetGuard | None = None,
        timeout: float = 15.0,
    ) -> None:
        self._pool = pool
        self._secret = secret
        self._guard = guard or NetGuard()
        self._timeout = timeout

    @activity.defn(name=ActivityName.CALL_WEBHOOK)
    async def call_webhook(self, input: WebhookInput) -> WebhookResult:
        """Sends the request. 2xx succeeds; 4xx (but 408/429) fails for good; the rest is retried.

        A refused target, a template that cannot render and a redirect fail for good, before
        or without following anything. The `Idempotency-Key` header lets receivers drop the
        repeats a retry may cause.
        """
        step = input.step
        contact = await contacts.get(self._pool, input.contact_id) or {"id": input.contact_id}
        context = contact_context(
            contact, event=input.event, flow={"id": input.flow_id, "name": input.flow_name}
        )
        templates = {f"headers.{k}": (v, False) for k, v in step.headers.items()}
        if step.body is not None:
            templates |= _templates(step.body, "body")
        try:
            rendered = await render_fields(templates, context)
        except FieldRefused as exc:
            raise _refused("WebhookTemplateRefused", f"template refused: {exc}") from exc
        headers = {"Idempotency-Key": input.idempotency_key, "User-Agent": "temporal-journeys"}
        headers |= {k: header_value(rendered[f"headers.{k}"]) for k in step.headers}
        payload = (
            _fill(step.body, "body", rendered)
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
            async with httpx.AsyncClient(
                transport=GuardedTransport(self._guard),
                timeout=self._timeout,
                follow_redirects=False,
                trust_env=False,
            ) as client:
                response = await client.request(
                    step.method, step.url, content=content or None, headers=headers
                )
        except TargetRefused as exc:
            raise _refused("WebhookRefused", f"webhook target refused: {exc}") from exc
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, UnicodeError) as exc:
            raise _refused("WebhookRefused", f"webhook request invalid: {exc}") from exc
        except httpx.HTTPError as exc:
            raise ApplicationError(
                f"webhook unreachable: {exc}", type="WebhookUnreachable"
            ) from exc
        code = response.status_code
        if 200 <= code < 300:
            return WebhookResult(status_code=code)
        if 300 <= code < 400:
            # Redirects are not followed: the next hop could be an internal address.
            raise _refused("WebhookRejected", f"webhook redirected with {code}; not followed")
        if 400 <= code < 500 and code not in (408, 429):
            raise _refused("WebhookRejected", f"webhook refused with {code}")
        raise ApplicationError(f"webhook answered {code}", type="WebhookFailed")

"""What every provider receiver shares: size-limited bodies, 401s, contacts by email, answers.

Receivers authenticate before they store anything, so a bad signature leaves no trace; each
event a delivery causes is keyed by the provider's delivery id, so a replay enrols no one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from functools import partial
from typing import Any

import asyncpg
from fastapi import Request
from pydantic import BaseModel

from api.problems import Problem, ProblemError
from api.routes.contacts import EnrolmentPublic
from journeys import changes
from journeys.config import Settings
from journeys.dispatch import DispatchResult
from journeys.domain.events import IncomingEvent
from journeys.ingest import Ingest
from journeys.provider_api import ProviderCallError, call_json
from journeys.store import contacts, integrations

# The answers of a receiver that fetches a delivery's details from the provider's API.
FETCHING_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem},
    413: {"model": Problem},
    422: {"model": Problem},
    502: {"model": Problem},
}


class WebhookAccepted(BaseModel):
    """A delivery was verified and handled."""

    duplicate: bool = False
    events: int = 0
    enrolments: list[EnrolmentPublic] = []


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 once it passes `limit` bytes (never read in full first)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ProblemError(413, f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProblemError(413, f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def unauthorized(detail: str) -> ProblemError:
    return ProblemError(401, detail)


def same_secret(given: str | bytes, expected: str | bytes) -> bool:
    """Constant-time comparison of two secrets or signatures."""
    a = given.encode() if isinstance(given, str) else given
    b = expected.encode() if isinstance(expected, str) else expected
    return hmac.compare_digest(a, b)


def hmac_sha256(secret: str, body: bytes) -> bytes:
    return hmac.new(secret.encode(), body, hashlib.sha256).digest()


async def integration(pool: asyncpg.Pool, audience_id: str, provider: str) -> dict[str, Any]:
    """The audience's settings for the provider; 401 if there are none (nothing to verify with)."""
    found = await integrations.get(pool, audience_id, provider) if _uuid(audience_id) else None
    if found is None or not found["secret"]:
        raise unauthorized(f"{provider} is not configured for this audience")
    return found


def _uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 422 naming what is wrong."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProblemError(422, f"body: not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise ProblemError(422, "body: a JSON object is expected")
    return value


async def contact_for(
    ingest: Ingest,
    *,
    audience_id: str,
    email: str,
    key: str,
    fields: dict[str, Any] | None = None,
    status_if_new: str = "transactional",
) -> tuple[dict[str, Any], list[DispatchResult]]:
    """The audience's contact with this email, created if new (with `status_if_new`).

    An existing contact keeps its consent: a store or ticketing system saying nothing about
    marketing must not subscribe or unsubscribe anyone.
    """
    found = await contacts.resolve(ingest.pool, audience_id, email)
    if found is not None:
        return found, []
    given = {"email": email, "status": status_if_new, **(fields or {})}
    (row, _), results = await ingest.change(
        partial(changes.upsert, audience_id=audience_id, given=given, key=key)
    )
    return row, results


async def fetch_details(
    settings: Settings,
    url: str,
    *,
    base: str,
    token: str,
    field: str,
    json: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What the provider's API (under `base`) says about a delivery.

    Raises:
        ProblemError: the URL is outside `base` (422) or the provider failed (502); the
            detail names `field`, the part of the delivery that led to the call.
    """
    try:
        return await call_json(
            url,
            base=base,
            token=token,
            timeout=settings.provider_fetch_timeout_seconds,
            attempts=settings.provider_fetch_attempts,
            json=json,
        )
    except ProviderCallError as exc:
        raise ProblemError(exc.status, f"{field}: {exc}") from exc


async def emit_for_email(
    ingest: Ingest,
    *,
    audience_id: str,
    email: str,
    key: str,
    type: str,
    data: dict[str, Any],
    fields: dict[str, Any] | None = None,
) -> WebhookAccepted:
    """One event about the contact with this email, created first if new (see `contact_for`)."""
    contact, created = await contact_for(
        ingest, audience_id=audience_id, email=email, key=key, fields=fields
    )
    event = IncomingEvent(
        type=type,
        audience_id=audience_id,
        contact_id=contact["id"],
        idempotency_key=key,
        data=data,
    )
    return await emit(ingest, [event], created=created)


async def emit(
    ingest: Ingest, events: list[IncomingEvent], *, created: list[DispatchResult] | None = None
) -> WebhookAccepted:
    """Records and delivers the events one delivery caused; duplicate if all were seen before.

    Args:
        created: What creating the delivery's contacts did; its enrolments are listed first.
    """
    results = [await ingest.event(event) for event in events]
    done = accepted(results, duplicate=bool(results) and all(r.duplicate for r in results))
    done.enrolments = accepted(created or []).enrolments + done.enrolments
    return done


def accepted(results: list[DispatchResult], *, duplicate: bool = False) -> WebhookAccepted:
    return WebhookAccepted(
        duplicate=duplicate,
        events=sum(not r.duplicate for r in results),
        enrolments=[EnrolmentPublic.of(e) for r in results for e in r.enrolments],
    )

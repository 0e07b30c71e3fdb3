"""Twilio: inbound SMS (keywords, STOP/START/HELP) and delivery status callbacks.

Twilio signs each request: `X-Twilio-Signature` = base64(HMAC-SHA1(auth token, the URL it
called + every POST parameter name and value, sorted by name)). The URL is the one Twilio was
given, i.e. `JOURNEYS_PUBLIC_URL` + path (behind a proxy the Host we see is not it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request, Response, status

from api.deps import IngestDep, PoolDep, RegistryDep, SettingsDep
from api.problems import Problem, ProblemError
from api.webhooks import read_body, same_secret, unauthorized
from journeys import changes
from journeys.config import Settings
from journeys.domain.events import IncomingEvent
from journeys.ingest import Ingest
from journeys.store import contacts, messages

router = APIRouter(prefix="/twilio", tags=["twilio"])
ERRORS = {401: {"model": Problem}, 413: {"model": Problem}, 422: {"model": Problem}}

# What carriers (CTIA) and Twilio's defaults treat as opt-out, opt-in and help requests.
STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
)
START_WORDS = frozenset({"START", "YES", "UNSTOP", "OPTIN"})
HELP_WORDS = frozenset({"HELP", "INFO"})


def signature(token: str, url: str, params: list[tuple[str, str]]) -> str:
    """Twilio's request signature of a POST to `url` with these form parameters."""
    payload = url
    names = sorted({name for name, _ in params})
    for name in names:
        for value in sorted(v for n, v in params if n == name):
            payload += name + value
    digest = hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


async def _verified_form(request: Request, settings: Settings) -> dict[str, str]:
    """The form parameters of a request Twilio signed; 401 otherwise."""
    body = await read_body(request, settings.webhook_max_body_bytes)
    if settings.twilio_auth_token is None:
        raise unauthorized("Twilio is not configured (JOURNEYS_TWILIO_AUTH_TOKEN)")
    given = request.headers.get("x-twilio-signature")
    if not given:
        raise unauthorized("X-Twilio-Signature is missing")
    try:
        params = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise unauthorized("the body is not a form Twilio signed") from None
    url = settings.effective_public_url + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    expected = signature(settings.twilio_auth_token.get_secret_value(), url, params)
    if not same_secret(given, expected):
        raise unauthorized("X-Twilio-Signature does not match")
    return dict(params)


def twiml(text: str | None) -> Response:
    """A TwiML answer: one reply message, or nothing."""
    inner = f"<Message>{escape(text)}</Message>" if text else ""
    return Response(
        f'<?xml version="1.0" encoding="UTF-8"?><Response>{inner}</Response>',
        media_type="application/xml",
    )


@router.post("/{audience_id}/sms", response_class=Response, responses=ERRORS)
async def inbound_sms(
    audience_id: uuid.UUID,
    request: Request,
    pool: PoolDep,
    ingest: IngestDep,
    registry: RegistryDep,
    settings: SettingsDep,
) -> Response:
    """An inbound text to the audience's number: STOP/START/HELP change or explain consent;
    anything else is an `sms_received` event (`sms_keyword` triggers), and a keyword a flow
    listens for opts the sender in (`signed_up_sms`) unless they had texted STOP."""
    form = await _verified_form(request, settings)
    sid, sender, text = form.get("MessageSid"), form.get("From"), form.get("Body", "")
    if not sid or not sender:
        raise ProblemError(422, "MessageSid and From are required")
    aid = str(audience_id)
    contact = await contacts.by_phone(pool, aid, sender)
    word = text.strip().upper()
    if word in STOP_WORDS:
        if contact:
            await _consent(ingest, contact, subscribed=False, key=sid)
        return twiml(
            "You are unsubscribed and will receive no more messages. Reply START to resubscribe."
        )
    if word in START_WORDS:
        if contact:
            await _consent(ingest, contact, subscribed=True, key=sid)
        return twiml("You are subscribed again. Reply HELP for help, STOP to unsubscribe.")
    if word in HELP_WORDS:
        return twiml("Reply STOP to unsubscribe, START to subscribe again.")
    if contact is None:
        return twiml(None)  # an unknown number: no contact to enrol
    event = IncomingEvent(
        type="sms_received",
        audience_id=aid,
        contact_id=contact["id"],
        idempotency_key=f"twilio:{sid}:sms_received",
        data={"body": text, "from": sender, "to": form.get("To"), "message_sid": sid},
    )
    keyword = registry.matching(event, datetime.now(UTC))
    if keyword and contact["sms_status"] == "none":
        await _consent(ingest, contact, subscribed=True, key=sid)
    await ingest.event(event)
    return twiml(None)


async def _consent(ingest: Ingest, contact: dict[str, Any], *, subscribed: bool, key: str) -> None:
    await ingest.change(
        partial(
            changes.set_sms_consent, contact=contact, subscribed=subscribed, key=f"twilio:{key}"
        )
    )


@router.post("/status", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def status_callback(request: Request, pool: PoolDep, settings: SettingsDep) -> Response:
    """Twilio's delivery status of a message we sent (`?key=` names it, as we gave it)."""
    form = await _verified_form(request, settings)
    key = request.query_params.get("key")
    state = form.get("MessageStatus") or form.get("SmsStatus")
    if not key or not state:
        raise ProblemError(422, "query.key and MessageStatus are required")
    found = await messages.record_delivery(
        pool,
        idempotency_key=key,
        status=state,
        provider_id=form.get("MessageSid"),
        error=form.get("ErrorCode") or None,
    )
    if not found:
        raise ProblemError(404, f"no message has the key {key!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)

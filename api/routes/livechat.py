"""LiveChat webhooks: a finished chat (`chat_deactivated`) enrols the customer who chatted.

LiveChat puts its `secret_key` in every body; it is compared in constant time with the
audience's. The webhook names only the chat, so the customer's email comes from the Agent
Chat API (`get_chat`) with the audience's token, under `JOURNEYS_LIVECHAT_API_URL`.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from api.deps import IngestDep, PoolDep, SettingsDep
from api.problems import Problem, ProblemError
from api.webhooks import (
    WebhookAccepted,
    accepted,
    contact_for,
    emit,
    integration,
    json_object,
    read_body,
    same_secret,
    unauthorized,
)
from journeys.domain.events import IncomingEvent
from journeys.provider_api import ProviderCallError, call_json

router = APIRouter(prefix="/livechat", tags=["livechat"])
ERRORS = {
    401: {"model": Problem},
    413: {"model": Problem},
    422: {"model": Problem},
    502: {"model": Problem},
}


@router.post("/{audience_id}/webhooks", responses=ERRORS)
async def livechat_webhook(
    audience_id: uuid.UUID,
    request: Request,
    pool: PoolDep,
    ingest: IngestDep,
    settings: SettingsDep,
) -> WebhookAccepted:
    """Receives a LiveChat webhook; only `chat_deactivated` causes an event."""
    body = await read_body(request, settings.webhook_max_body_bytes)
    aid = str(audience_id)
    found = await integration(pool, aid, "livechat")
    payload = json_object(body)
    given = payload.get("secret_key")
    if not isinstance(given, str) or not given:
        raise unauthorized("secret_key is missing")
    if not same_secret(given, found["secret"]):
        raise unauthorized("secret_key is not this audience's")
    if payload.get("action") != "chat_deactivated":
        return WebhookAccepted()
    chat = payload.get("payload")
    if not isinstance(chat, dict):
        chat = {}
    chat_id, thread_id = chat.get("chat_id"), chat.get("thread_id")
    if not chat_id or not thread_id:
        raise ProblemError(422, "payload.chat_id and payload.thread_id are required")
    try:
        details = await call_json(
            settings.livechat_api_url.rstrip("/") + "/agent/action/get_chat",
            base=settings.livechat_api_url,
            token=str(found["config"].get("api_token", "")),
            timeout=settings.provider_fetch_timeout_seconds,
            attempts=settings.provider_fetch_attempts,
            json={"chat_id": chat_id, "thread_id": thread_id},
        )
    except ProviderCallError as exc:
        raise ProblemError(exc.status, f"get_chat: {exc}") from exc
    customer = next(
        (
            u
            for u in details.get("users") or []
            if isinstance(u, dict) and u.get("type") == "customer"
        ),
        None,
    )
    if not customer or not customer.get("email"):
        return WebhookAccepted()  # an anonymous visitor: nobody to write to
    key = f"livechat:{aid}:{chat_id}:{thread_id}"
    contact, results = await contact_for(ingest, audience_id=aid, email=customer["email"], key=key)
    event = IncomingEvent(
        type="livechat_chat_finished",
        audience_id=aid,
        contact_id=contact["id"],
        idempotency_key=key,
        data={"chat_id": chat_id, "thread_id": thread_id},
    )
    done = await emit(ingest, [event])
    done.enrolments = accepted(results).enrolments + done.enrolments
    return done

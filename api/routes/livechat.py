"""LiveChat webhooks: a finished chat (`chat_deactivated`) enrols the customer who chatted.

LiveChat puts its `secret_key` in every body; it is compared in constant time with the
audience's. The webhook names only the chat, so the customer's email comes from the Agent
Chat API (`get_chat`) with the audience's token, under `JOURNEYS_LIVECHAT_API_URL`.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from api.deps import IngestDep, PoolDep, SettingsDep
from api.problems import ProblemError
from api.webhooks import (
    FETCHING_ERRORS,
    WebhookAccepted,
    emit_for_email,
    fetch_details,
    integration,
    json_object,
    read_body,
    same_secret,
    unauthorized,
)

router = APIRouter(prefix="/livechat", tags=["livechat"])


@router.post("/{audience_id}/webhooks", responses=FETCHING_ERRORS)
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
    details = await fetch_details(
        settings,
        settings.livechat_api_url.rstrip("/") + "/agent/action/get_chat",
        base=settings.livechat_api_url,
        token=str(found["config"].get("api_token", "")),
        field="get_chat",
        json={"chat_id": chat_id, "thread_id": thread_id},
    )
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
    return await emit_for_email(
        ingest,
        audience_id=aid,
        email=customer["email"],
        key=f"livechat:{aid}:{chat_id}:{thread_id}",
        type="livechat_chat_finished",
        data={"chat_id": chat_id, "thread_id": thread_id},
    )

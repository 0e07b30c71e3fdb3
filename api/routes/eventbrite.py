"""Eventbrite webhooks: ticket orders and check-ins.

Eventbrite signs nothing: its webhook is a URL carrying a token we issued (stored hashed).
The body only names what happened (`config.action`, `api_url`); the details are fetched from
`api_url` with the audience's private token, and only under `JOURNEYS_EVENTBRITE_API_URL`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.deps import IngestDep, PoolDep, SettingsDep
from api.problems import ProblemError
from api.webhooks import (
    FETCHING_ERRORS,
    WebhookAccepted,
    emit_for_email,
    fetch_details,
    json_object,
    read_body,
    unauthorized,
)
from journeys.store import integrations

router = APIRouter(prefix="/eventbrite", tags=["eventbrite"])

# Webhook action → our event type.
ACTIONS = {
    "order.placed": "eventbrite_order_placed",
    "attendee.checked_in": "eventbrite_checked_in",
}


def _buyer(action: str, resource: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """Email and name of the order's buyer or the attendee who checked in."""
    who = resource.get("profile") if action == "attendee.checked_in" else resource
    who = who or {}
    fields = {k: who[k] for k in ("first_name", "last_name") if who.get(k)}
    return who.get("email"), fields


@router.post("/hooks/{token}", responses=FETCHING_ERRORS)
async def eventbrite_webhook(
    token: str, request: Request, pool: PoolDep, ingest: IngestDep, settings: SettingsDep
) -> WebhookAccepted:
    """Receives an Eventbrite webhook; `action: test` (the dashboard's ping) is answered 200."""
    body = await read_body(request, settings.webhook_max_body_bytes)
    found = await integrations.by_token(pool, "eventbrite", token)
    if found is None:
        raise unauthorized("this Eventbrite hook URL is not valid")
    payload = json_object(body)
    config = payload.get("config")
    if not isinstance(config, dict):
        config = {}
    action, api_url = config.get("action"), payload.get("api_url")
    if action == "test" or action not in ACTIONS:
        return WebhookAccepted()  # the ping, or an action no trigger reads
    if not isinstance(api_url, str) or not api_url:
        raise ProblemError(422, "api_url: the resource URL is missing")
    resource = await fetch_details(
        settings, api_url, base=settings.eventbrite_api_url, token=found["secret"], field="api_url"
    )
    email, fields = _buyer(action, resource)
    if not email or resource.get("event_id") is None:
        raise ProblemError(502, "api_url: the Eventbrite resource has no email or event_id")
    aid = found["audience_id"]
    return await emit_for_email(
        ingest,
        audience_id=aid,
        email=email,
        key=f"eventbrite:{aid}:{action}:{api_url}",
        fields=fields,
        type=ACTIONS[action],
        data={
            "event_id": str(resource["event_id"]),
            "order_id": str(resource.get("order_id") or resource.get("id")),
            "attendee_id": str(resource["id"]) if action == "attendee.checked_in" else None,
        },
    )

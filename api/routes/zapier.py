"""Zapier custom events: a Zap's "Webhooks by Zapier" POST to a per-audience secret URL."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, Field, ValidationError

from api.deps import IngestDep, PoolDep, SettingsDep
from api.problems import Problem, ProblemError, validation_errors
from api.webhooks import WebhookAccepted, emit, json_object, read_body, unauthorized
from journeys.domain.events import IncomingEvent
from journeys.store import contacts, integrations

router = APIRouter(prefix="/zapier", tags=["zapier"])
ERRORS = {401: {"model": Problem}, 413: {"model": Problem}, 422: {"model": Problem}}


class ZapierEvent(BaseModel):
    """What the Zap sends (JSON or form fields)."""

    email: str = Field(min_length=3, max_length=254)
    event: str = Field(pattern=r"^[A-Za-z0-9_-]{2,30}$", description="The event's name.")
    id: str | None = Field(
        None, max_length=200, description="The Zap run's id: a repeat is ignored."
    )
    properties: dict[str, Any] = {}


@router.post("/hooks/{token}", responses=ERRORS)
async def zapier_hook(
    token: str,
    request: Request,
    pool: PoolDep,
    ingest: IngestDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> WebhookAccepted:
    """Records a `zapier_event` for the named contact (`zapier_custom_event` triggers)."""
    body = await read_body(request, settings.webhook_max_body_bytes)
    found = await integrations.by_token(pool, "zapier", token)
    if found is None:
        raise unauthorized("this Zapier hook URL is not valid")
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raw: dict[str, Any] = dict(parse_qsl(body.decode(errors="replace")))
        if "event_name" in raw:
            raw.setdefault("event", raw.pop("event_name"))
    else:
        raw = json_object(body)
        if "event_name" in raw:
            raw.setdefault("event", raw.pop("event_name"))
    try:
        given = ZapierEvent.model_validate(raw)
    except ValidationError as exc:
        errors = validation_errors(list(exc.errors()), frozenset())  # type: ignore[arg-type]
        raise ProblemError(422, f"{errors[0].field}: {errors[0].message}", errors=errors) from exc
    aid = found["audience_id"]
    contact = await contacts.resolve(pool, aid, given.email)
    if contact is None:
        raise ProblemError(422, f"email: no contact {given.email!r} in this audience")
    delivery = idempotency_key or given.id or uuid.uuid4().hex
    event = IncomingEvent(
        type="zapier_event",
        audience_id=aid,
        contact_id=contact["id"],
        idempotency_key=f"zapier:{aid}:{delivery}",
        data={"name": given.event, "properties": given.properties},
    )
    return await emit(ingest, [event])

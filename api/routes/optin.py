"""Double opt-in: the confirmation link a pending contact follows (no API key: a signed token)."""

from __future__ import annotations

import html
import uuid
from functools import partial

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from api.deps import IngestDep, SettingsDep
from api.problems import FieldError, Problem, ProblemError
from journeys import changes, optin
from journeys.store import audiences, contacts

router = APIRouter(prefix="/optin", tags=["contacts"])

_PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
    "<body><h1>{title}</h1><p>{text}</p></body></html>"
)


@router.get(
    "/confirm",
    response_class=HTMLResponse,
    responses={400: {"model": Problem}, 404: {"model": Problem}},
)
async def confirm(
    ingest: IngestDep,
    settings: SettingsDep,
    token: str = Query(min_length=10, max_length=1000),
) -> HTMLResponse:
    """Confirms a pending subscription: the contact becomes `subscribed`, which fires
    `signed_up_email`. Following the link again changes nothing."""
    try:
        ids = optin.read_token(settings, token)
    except ValueError as err:
        raise ProblemError(
            400, str(err), errors=[FieldError(field="query.token", message=str(err))]
        ) from err
    contact = await contacts.get(ingest.pool, ids["contact_id"])
    if contact is None or contact["audience_id"] != ids["audience_id"]:
        raise ProblemError(404, "this subscription no longer exists")
    confirmed, _ = await ingest.change(
        partial(changes.confirm_subscription, contact=contact, key=uuid.uuid4().hex)
    )
    audience = await audiences.get(ingest.pool, contact["audience_id"])
    name = html.escape(str(audience["name"]) if audience else "the list")
    if confirmed or contact["status"] == "subscribed":
        title, text = "Subscription confirmed", f"You are now subscribed to {name}."
    else:
        title, text = "Nothing to confirm", f"This address is not waiting to join {name}."
    return HTMLResponse(_PAGE.format(title=title, text=text))

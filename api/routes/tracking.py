"""What contacts' mail clients and mailbox providers call: open pixel, click redirect, unsubscribe.

No API key here: each URL carries a signed token naming one message (see
`journeys.channels.tracking`). A token that does not verify, or names no message, gets 404 and
records nothing. A click redirects only to the link of that message the token names.
"""

from __future__ import annotations

import html
import uuid
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from api.deps import IngestDep, PoolDep, SettingsDep
from api.problems import ProblemError
from journeys import changes
from journeys.channels.tracking import PIXEL_GIF, TokenKind, verify
from journeys.domain.events import IncomingEvent
from journeys.ingest import Ingest
from journeys.store import contacts, messages

router = APIRouter(tags=["tracking"], include_in_schema=True)

_NO_STORE = {"Cache-Control": "no-store, max-age=0"}


async def _message(
    pool: PoolDep, settings: SettingsDep, token: str, kind: TokenKind
) -> tuple[dict[str, Any], int]:
    """The message the token names and the link index it carries.

    Raises:
        ProblemError: 404 if the token is forged, edited, of another kind or names nothing.
    """
    verified = verify(settings.tracking_signing_key(), token)
    if verified is None or verified.kind != kind:
        raise ProblemError(404, "no such link")
    found = await messages.by_ref(pool, verified.ref)
    if found is None:
        raise ProblemError(404, "no such link")
    return found, verified.link


def _email_ref(message: dict[str, Any]) -> dict[str, Any]:
    if message["campaign_id"]:
        return {"campaign_id": message["campaign_id"]}
    return {"flow_id": message["flow_id"], "step_id": message["step_id"]}


async def _record(ingest: Ingest, message: dict[str, Any], type: str, **data: Any) -> None:
    if message["contact_id"] is None or message["audience_id"] is None:
        return  # the contact was deleted: nobody to record it for
    await ingest.event(
        IncomingEvent(
            type=type,
            audience_id=message["audience_id"],
            contact_id=message["contact_id"],
            # Every hit is one event: a second open is a second open.
            idempotency_key=f"{type}:{message['ref']}:{uuid.uuid4().hex}",
            data={**_email_ref(message), **data},
        )
    )


@router.get(
    "/t/o/{token}.gif",
    summary="Open pixel: records `email_opened`",
    response_class=Response,
    responses={200: {"content": {"image/gif": {}}}, 404: {"description": "Unknown token"}},
)
async def opened(token: str, pool: PoolDep, settings: SettingsDep, ingest: IngestDep) -> Response:
    message, _ = await _message(pool, settings, token, TokenKind.OPEN)
    await _record(ingest, message, "email_opened")
    return Response(PIXEL_GIF, media_type="image/gif", headers=_NO_STORE)


@router.get(
    "/t/c/{token}",
    summary="Click redirect: records `email_clicked` and redirects to the message's link",
    response_class=RedirectResponse,
    status_code=302,
    responses={404: {"description": "Unknown token or link"}},
)
async def clicked(
    token: str, pool: PoolDep, settings: SettingsDep, ingest: IngestDep
) -> RedirectResponse:
    message, link = await _message(pool, settings, token, TokenKind.CLICK)
    links: list[str] = message["links"] or []
    if link >= len(links):
        raise ProblemError(404, "no such link")
    url = links[link]
    await _record(ingest, message, "email_clicked", url=url)
    return RedirectResponse(url, status_code=302, headers=_NO_STORE)


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}</title></head>"
        '<body style="font-family:sans-serif;max-width:32em;margin:3em auto">'
        f"<h1>{html.escape(title)}</h1>{body}</body></html>",
        headers=_NO_STORE,
    )


@router.get(
    "/u/{token}",
    summary="Unsubscribe confirmation page",
    response_class=HTMLResponse,
    responses={404: {"description": "Unknown token"}},
)
async def unsubscribe_page(token: str, pool: PoolDep, settings: SettingsDep) -> HTMLResponse:
    # A GET changes nothing: link scanners and previews open links without asking anyone.
    message, _ = await _message(pool, settings, token, TokenKind.UNSUBSCRIBE)
    contact = await contacts.get(pool, message["contact_id"]) if message["contact_id"] else None
    if contact is None:
        raise ProblemError(404, "no such link")
    if contact["status"] != "subscribed":
        return _page("You are unsubscribed", "<p>You will get no more of these emails.</p>")
    return _page(
        "Unsubscribe?",
        f"<p>Stop marketing email to {html.escape(contact['email'])}?</p>"
        '<form method="post"><button type="submit">Unsubscribe</button></form>',
    )


@router.post(
    "/u/{token}",
    summary="Unsubscribe (the form, or RFC 8058 one-click `List-Unsubscribe=One-Click`)",
    response_class=HTMLResponse,
    responses={404: {"description": "Unknown token"}},
)
async def unsubscribe(
    token: str, pool: PoolDep, settings: SettingsDep, ingest: IngestDep
) -> HTMLResponse:
    message, _ = await _message(pool, settings, token, TokenKind.UNSUBSCRIBE)
    contact = await contacts.get(pool, message["contact_id"]) if message["contact_id"] else None
    if contact is None:
        raise ProblemError(404, "no such link")
    await ingest.change(
        lambda conn: changes.unsubscribe(
            conn,
            contact=contact,
            channels=["email"],
            key=f"link:{message['ref']}",
            cause=_email_ref(message),
        )
    )
    return _page("You are unsubscribed", "<p>You will get no more of these emails.</p>")

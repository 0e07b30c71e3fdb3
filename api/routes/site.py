"""Site tracking: the `/t/site.js` snippet and `/t/collect`, which also takes Shopify
storefront (Web Pixels) customer events.

The site key in the snippet is public, like any analytics key: it only says which audience a
page belongs to. A browser is tied to a contact by an identify call, by a signed contact
token (`jt=`) carried on an email click-through, or by the Shopify customer's email; until
then its page views enrol no one. Nothing here creates a contact.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response, status

from api.deps import IngestDep, PoolDep, SettingsDep
from api.problems import Problem, ProblemError
from api.webhooks import emit, json_object, read_body, unauthorized
from journeys import shopify
from journeys.contact_token import verify_contact
from journeys.domain.events import IncomingEvent
from journeys.ingest import Ingest
from journeys.store import contacts, integrations, visitors

router = APIRouter(prefix="/t", tags=["site tracking"])
ERRORS = {401: {"model": Problem}, 413: {"model": Problem}, 422: {"model": Problem}}
_LIMIT = 64 * 1024  # a page event is small; anything bigger is not ours
_CORS = {"Access-Control-Allow-Origin": "*"}

SNIPPET = """(function () {
  var s = document.currentScript, key = s.getAttribute("data-site-key");
  var url = s.src.replace(/\\/t\\/site\\.js.*$/, "/t/collect");
  var vid = localStorage.getItem("jrn_vid");
  if (!vid) { vid = Math.random().toString(36).slice(2) + Date.now().toString(36); localStorage.setItem("jrn_vid", vid); }
  function send(body) {
    body.site_key = key; body.visitor_id = vid; body.id = Math.random().toString(36).slice(2);
    var data = JSON.stringify(body);  /* text/plain: no CORS preflight */
    if (navigator.sendBeacon) { navigator.sendBeacon(url, data); }
    else { fetch(url, {method: "POST", body: data, keepalive: true, mode: "no-cors"}); }
  }
  var token = new URLSearchParams(location.search).get("jt");
  send({type: "page", url: location.href, token: token || undefined});
  document.addEventListener("click", function (e) {
    var a = e.target.closest && e.target.closest("a[href]");
    if (a) { send({type: "link", url: a.href}); }
  }, true);
  window.journeys = {identify: function (email) { send({type: "identify", email: email}); }};
})();
"""


@router.get("/site.js", response_class=Response)
async def site_js() -> Response:
    """The tracking snippet: `<script src=".../t/site.js" data-site-key="KEY" async></script>`."""
    return Response(
        SNIPPET,
        media_type="application/javascript",
        headers={"Cache-Control": "public, max-age=3600", **_CORS},
    )


def _text(body: dict[str, Any], name: str, limit: int = 2000) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ProblemError(422, f"{name}: a string of at most {limit} characters is expected")
    return value


@router.post("/collect", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def collect(
    request: Request, pool: PoolDep, ingest: IngestDep, settings: SettingsDep
) -> Response:
    """One page view, link click, identify call, or Shopify customer event (`event`)."""
    body = json_object(await read_body(request, _LIMIT))
    key = _text(body, "site_key", 200)
    site = await integrations.by_token(pool, "site", key) if key else None
    if site is None:
        raise unauthorized("site_key is missing or not valid")
    aid = site["audience_id"]
    if isinstance(body.get("event"), dict):
        await _shopify_event(ingest, aid, body["event"], body.get("customer"))
        return Response(status_code=status.HTTP_204_NO_CONTENT, headers=_CORS)
    visitor = _text(body, "visitor_id", 200)
    kind = body.get("type")
    if not visitor or kind not in ("page", "link", "identify"):
        raise ProblemError(422, "visitor_id and type (page, link or identify) are required")
    contact_id = None
    if kind == "identify":
        found = await contacts.resolve(pool, aid, _text(body, "email", 254) or "")
        contact_id = found["id"] if found else None
    elif (token := _text(body, "token", 200)) is not None:
        named = verify_contact(token, settings.secret_key.get_secret_value())
        found = await contacts.get(pool, named) if named else None
        contact_id = found["id"] if found and found["audience_id"] == aid else None
    if contact_id:
        await visitors.tie(pool, audience_id=aid, visitor_id=visitor, contact_id=contact_id)
    else:
        contact_id = await visitors.contact_of(pool, aid, visitor)
    url = _text(body, "url")
    if kind != "identify" and contact_id and url:
        event = IncomingEvent(
            type="page_visited" if kind == "page" else "website_link_clicked",
            audience_id=aid,
            contact_id=contact_id,
            idempotency_key=f"site:{aid}:{visitor}:{_text(body, 'id', 100) or uuid.uuid4().hex}",
            data={"url": url},
        )
        await emit(ingest, [event])
    return Response(status_code=status.HTTP_204_NO_CONTENT, headers=_CORS)


def _storefront(
    name: str, data: dict[str, Any], context: dict[str, Any]
) -> tuple[str, dict[str, Any]] | None:
    """A Web Pixels standard event as (our event type, data), or None if no trigger reads it."""
    if name == "page_viewed":
        href = ((context.get("document") or {}).get("location") or {}).get("href")
        return ("shopify_page_viewed", {"url": href}) if href else None
    if name == "product_viewed":
        product = ((data.get("productVariant") or {}).get("product") or {}).get("id")
        return (
            ("shopify_product_viewed", {"product_id": shopify.plain_id(product)})
            if product
            else None
        )
    if name == "collection_viewed":
        collection = (data.get("collection") or {}).get("id")
        return (
            ("shopify_product_viewed", {"collection_ids": [shopify.plain_id(collection)]})
            if collection
            else None
        )
    if name == "search_submitted":
        term = (data.get("searchResult") or {}).get("query")
        return ("shopify_searched", {"term": term}) if term else None
    if name == "product_added_to_cart":
        merchandise = (data.get("cartLine") or {}).get("merchandise") or {}
        product = (merchandise.get("product") or {}).get("id")
        return (
            ("cart_product_added", {"product_id": shopify.plain_id(product)}) if product else None
        )
    if name in shopify.CHECKOUT_ACTIONS:
        checkout = data.get("checkout") or {}
        return (
            "checkout_action",
            {"action": shopify.CHECKOUT_ACTIONS[name], "checkout_id": checkout.get("token")},
        )
    return None


async def _shopify_event(ingest: Ingest, aid: str, event: dict[str, Any], customer: object) -> None:
    name, data = event.get("name"), event.get("data") or {}
    context, client_id = event.get("context") or {}, event.get("clientId")
    if not isinstance(name, str) or not isinstance(data, dict) or not isinstance(context, dict):
        raise ProblemError(422, "event: a Shopify customer event has a name and data")
    mapped = _storefront(name, data, context)
    email = (customer or {}).get("email") if isinstance(customer, dict) else None
    email = email or (data.get("checkout") or {}).get("email")
    pool = ingest.pool
    delivery = str(event.get("id") or uuid.uuid4().hex)
    contact_id = None
    if isinstance(email, str) and "@" in email:
        # Resolve only: the pixel runs in browsers with a public key, so it names customers the
        # signed webhooks (orders, checkouts) or the API created, and never creates one.
        found = await contacts.resolve(pool, aid, email.strip())
        contact_id = found["id"] if found else None
    if contact_id and client_id:
        await visitors.tie(pool, audience_id=aid, visitor_id=str(client_id), contact_id=contact_id)
    elif client_id:
        contact_id = await visitors.contact_of(pool, aid, str(client_id))
    if mapped is None or contact_id is None:
        return
    type_, fields = mapped
    if type_ == "cart_product_added":
        store = await integrations.get(pool, aid, "shopify")
        threshold = int(((store or {}).get("config") or {}).get("low_inventory_threshold", 5))
        fields["low_inventory"] = await shopify.is_low(
            pool, audience_id=aid, product_id=fields["product_id"], threshold=threshold
        )
    await emit(
        ingest,
        [
            IncomingEvent(
                type=type_,
                audience_id=aid,
                contact_id=contact_id,
                idempotency_key=f"pixel:{aid}:{delivery}",
                data=fields,
            )
        ],
    )

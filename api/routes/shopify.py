"""Shopify webhooks: orders, refunds, fulfillments, checkouts, carts, products and stock.

Each delivery is verified (`X-Shopify-Hmac-Sha256`, base64 HMAC-SHA256 of the raw body with
the app secret) before anything is read or stored, and its events are keyed by Shopify's
event id, so a redelivery changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Any

from fastapi import APIRouter, Request, status

from api.deps import IngestDep, PoolDep, SettingsDep
from api.problems import Problem, ProblemError
from api.webhooks import (
    WebhookAccepted,
    contact_for,
    emit,
    hmac_sha256,
    integration,
    json_object,
    read_body,
    same_secret,
    unauthorized,
)
from journeys import shopify
from journeys.dispatch import DispatchResult
from journeys.domain.events import IncomingEvent
from journeys.ingest import Ingest
from journeys.store import carts, inventory, orders

router = APIRouter(prefix="/shopify", tags=["shopify"])
ERRORS = {401: {"model": Problem}, 413: {"model": Problem}, 422: {"model": Problem}}


def _verify(secret: str, body: bytes, header: str | None) -> None:
    if not header:
        raise unauthorized("X-Shopify-Hmac-Sha256 is missing")
    try:
        given = base64.b64decode(header, validate=True)
    except (binascii.Error, ValueError):
        raise unauthorized("X-Shopify-Hmac-Sha256 is not base64") from None
    if not same_secret(given, hmac_sha256(secret, body)):
        raise unauthorized("X-Shopify-Hmac-Sha256 does not match the body")


class _Delivery:
    """One verified delivery: its audience, id and the events it causes."""

    def __init__(self, ingest: Ingest, audience_id: str, delivery: str, threshold: int) -> None:
        self.ingest = ingest
        self.audience_id = audience_id
        self.delivery = delivery
        self.threshold = threshold
        self.events: list[IncomingEvent] = []
        self.results: list[DispatchResult] = []

    def add(self, type: str, contact_id: str, data: dict[str, Any], *, part: str = "") -> None:
        self.events.append(
            IncomingEvent(
                type=type,
                audience_id=self.audience_id,
                contact_id=contact_id,
                idempotency_key=f"shopify:{self.audience_id}:{self.delivery}:{type}{part}",
                data=data,
            )
        )

    async def contact(self, payload: dict[str, Any]) -> str | None:
        email = shopify.customer_email(payload)
        if email is None:
            return None
        row, results = await contact_for(
            self.ingest,
            audience_id=self.audience_id,
            email=email,
            key=f"shopify:{self.delivery}",
            **shopify.customer_fields(payload),
        )
        self.results += results
        return str(row["id"])

    async def cart_added(self, contact_id: str, cart_id: str, items: list[dict[str, Any]]) -> None:
        """One `cart_product_added` per product new to the cart, flagged when stock is low."""
        pool = self.ingest.pool
        for product in await shopify.added_products(
            pool, audience_id=self.audience_id, cart_id=cart_id, items=items
        ):
            low = await shopify.is_low(
                pool, audience_id=self.audience_id, product_id=product, threshold=self.threshold
            )
            self.add(
                "cart_product_added",
                contact_id,
                {"product_id": product, "cart_id": cart_id, "low_inventory": low},
                part=f":{product}",
            )


async def _orders(d: _Delivery, topic: str, payload: dict[str, Any]) -> None:
    data = shopify.order_data(topic, payload)
    contact_id = await orders.contact_of(d.ingest.pool, d.audience_id, data["order_id"])
    if contact_id is None:
        contact_id = await d.contact(payload)
    if contact_id is not None:
        d.add(shopify.ORDER_TOPICS[topic], contact_id, data)


async def _checkout(d: _Delivery, topic: str, payload: dict[str, Any]) -> None:
    cart = shopify.checkout_cart(payload)  # first: a malformed body must not create a contact
    contact_id = await d.contact(payload)
    if contact_id is None:
        return  # an anonymous checkout: nobody to write to yet
    await d.cart_added(contact_id, cart["cart_id"], cart["items"])
    d.add("cart_updated", contact_id, cart)
    if topic == "checkouts/create":
        d.add("checkout_action", contact_id, {"action": "started", **_ids(cart)}, part=":started")
    if payload.get("completed_at"):
        d.add("checkout_action", contact_id, {"action": "completed", **_ids(cart)}, part=":done")


def _ids(cart: dict[str, Any]) -> dict[str, Any]:
    return {"cart_id": cart["cart_id"], "checkout_id": cart["checkout_id"]}


async def _cart(d: _Delivery, payload: dict[str, Any]) -> None:
    """Carts carry no customer: known carts (a checkout or pixel named their buyer) feed
    events; others are stored until someone claims them."""
    cart_id = str(payload.get("token") or payload["id"])
    items = shopify.line_items(payload)
    pool = d.ingest.pool
    known = await carts.get(pool, d.audience_id, cart_id)
    data = {"cart_id": cart_id, "items": items}
    if known and known["contact_id"]:
        await d.cart_added(known["contact_id"], cart_id, items)
        d.add("cart_updated", known["contact_id"], data)
    else:
        await carts.record(pool, audience_id=d.audience_id, contact_id=None, data=data, at=None)


async def _stock(d: _Delivery, topic: str, payload: dict[str, Any]) -> None:
    """Stock levels; a product going from low to above the threshold is back in stock for the
    contacts holding it in an open cart."""
    async with d.ingest.pool.acquire() as conn, conn.transaction():
        changed: dict[str, int | None] = {}
        if topic == "products/update":
            product = shopify.plain_id(payload["id"])
            changed[product] = await inventory.available_for(conn, d.audience_id, product)
            for variant in payload.get("variants") or []:
                if variant.get("inventory_item_id") is None:
                    continue
                await inventory.link(
                    conn,
                    audience_id=d.audience_id,
                    inventory_item_id=str(variant["inventory_item_id"]),
                    product_id=product,
                    available=variant.get("inventory_quantity"),
                )
        else:
            item = str(payload["inventory_item_id"])
            owner = await inventory.product_of(conn, d.audience_id, item)
            if owner is None or payload.get("available") is None:
                return  # products/update has not told us whose stock this is
            changed[owner] = await inventory.available_for(conn, d.audience_id, owner)
            await inventory.set_level(
                conn,
                audience_id=d.audience_id,
                inventory_item_id=item,
                location_id=str(payload.get("location_id")),
                available=int(payload["available"]),
            )
        for product, before in changed.items():
            after = await inventory.available_for(conn, d.audience_id, product)
            if not shopify.restocked(before, after, d.threshold):
                continue
            for contact_id in await carts.holders(
                conn, audience_id=d.audience_id, product_id=product
            ):
                d.add(
                    "back_in_stock",
                    contact_id,
                    {"product_id": product, "available": after},
                    part=f":{contact_id}",
                )


@router.post("/{audience_id}/webhooks", status_code=status.HTTP_200_OK, responses=ERRORS)
async def shopify_webhook(
    audience_id: str,
    request: Request,
    pool: PoolDep,
    ingest: IngestDep,
    settings: SettingsDep,
) -> WebhookAccepted:
    """Receives one Shopify webhook (any of `shopify.TOPICS`) and enrols whom it concerns."""
    body = await read_body(request, settings.webhook_max_body_bytes)
    found = await integration(pool, audience_id, "shopify")
    _verify(found["secret"], body, request.headers.get("x-shopify-hmac-sha256"))
    topic = request.headers.get("x-shopify-topic", "")
    delivery = request.headers.get("x-shopify-event-id") or request.headers.get(
        "x-shopify-webhook-id"
    )
    if not delivery:
        raise ProblemError(422, "header.X-Shopify-Webhook-Id: the delivery id is missing")
    if topic not in shopify.TOPICS:
        raise ProblemError(422, f"header.X-Shopify-Topic: {topic!r} is not a topic we take")
    payload = json_object(body)
    d = _Delivery(
        ingest,
        str(uuid.UUID(audience_id)),
        delivery,
        int(found["config"].get("low_inventory_threshold", 5)),
    )
    try:
        if topic in shopify.ORDER_TOPICS:
            await _orders(d, topic, payload)
        elif topic in shopify.CHECKOUT_TOPICS:
            await _checkout(d, topic, payload)
        elif topic in shopify.CART_TOPICS:
            await _cart(d, payload)
        else:
            await _stock(d, topic, payload)
    except (KeyError, TypeError, ValueError) as exc:
        raise ProblemError(422, f"body: not a {topic} payload ({exc!r})") from exc
    return await emit(ingest, d.events, created=d.results)

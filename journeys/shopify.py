"""Shopify's shapes turned into our events: orders, checkouts, carts, storefront events, stock.

Pure mapping plus the stock rules (low inventory, back in stock); the receivers in
`api/routes/shopify.py` and `api/routes/site.py` verify, find the contact and record.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from journeys.store import carts, inventory

# Order webhook topics and the event each one is.
ORDER_TOPICS = {
    "orders/create": "order_placed",
    "orders/paid": "order_paid",
    "orders/cancelled": "order_cancelled",
    "orders/fulfilled": "order_fulfilled",
    "fulfillments/create": "order_fulfilled",
    "refunds/create": "order_refunded",
}
CHECKOUT_TOPICS = frozenset({"checkouts/create", "checkouts/update"})
CART_TOPICS = frozenset({"carts/create", "carts/update"})
STOCK_TOPICS = frozenset({"products/update", "inventory_levels/update"})
TOPICS = frozenset(ORDER_TOPICS) | CHECKOUT_TOPICS | CART_TOPICS | STOCK_TOPICS

# Storefront (Web Pixels) checkout events and the `shopify_checkout_action` action each is.
CHECKOUT_ACTIONS = {
    "checkout_started": "started",
    "payment_info_submitted": "payment_submitted",
    "checkout_completed": "completed",
}


def plain_id(value: object) -> str:
    """`gid://shopify/Product/123` or 123 → "123": ids as triggers name them."""
    text = str(value)
    return text.rsplit("/", 1)[-1] if text.startswith("gid://") else text


def customer_email(payload: dict[str, Any]) -> str | None:
    """The buyer's email in an order or checkout."""
    customer = payload.get("customer") or {}
    for value in (payload.get("email"), payload.get("contact_email"), customer.get("email")):
        if isinstance(value, str) and "@" in value:
            return value.strip()
    return None


def customer_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """Name (and consent for a new contact) from the order's customer."""
    customer = payload.get("customer") or {}
    fields = {k: customer[k] for k in ("first_name", "last_name") if customer.get(k)}
    consent = (customer.get("email_marketing_consent") or {}).get("state")
    subscribed = consent == "subscribed" or payload.get("buyer_accepts_marketing") is True
    return {"fields": fields, "status_if_new": "subscribed" if subscribed else "transactional"}


def line_items(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "product_id": plain_id(item["product_id"]),
            "quantity": int(item.get("quantity") or 1),
            "price": item.get("price"),
        }
        for item in payload.get("line_items") or []
        if isinstance(item, dict) and item.get("product_id") is not None
    ]


def order_data(topic: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Data of an order event; refunds and fulfillments name their order by `order_id`."""
    if topic in ("refunds/create", "fulfillments/create"):
        data: dict[str, Any] = {
            "order_id": str(payload["order_id"]),
            plain_key(topic): str(payload["id"]),
        }
        refunded = [
            plain_id((line.get("line_item") or {}).get("product_id"))
            for line in payload.get("refund_line_items") or []
            if (line.get("line_item") or {}).get("product_id") is not None
        ]
        data["product_ids"] = refunded or [i["product_id"] for i in line_items(payload)]
        return data
    items = line_items(payload)
    return {
        "order_id": str(payload["id"]),
        "order_name": payload.get("name"),
        "product_ids": list(dict.fromkeys(i["product_id"] for i in items)),
        "items": items,
        "total": payload.get("total_price"),
        "currency": payload.get("currency"),
        "cart_id": payload.get("cart_token"),
        "checkout_id": payload.get("checkout_token"),
    }


def plain_key(topic: str) -> str:
    return "refund_id" if topic.startswith("refunds") else "fulfillment_id"


def checkout_cart(payload: dict[str, Any]) -> dict[str, Any]:
    """The cart a checkout carries (keyed by its cart token, so the order closes it)."""
    return {
        "cart_id": str(payload.get("cart_token") or payload.get("token") or payload["id"]),
        "checkout_id": str(payload.get("token") or payload["id"]),
        "items": line_items(payload),
        "url": payload.get("abandoned_checkout_url"),
        "total": payload.get("total_price"),
        "currency": payload.get("currency"),
    }


async def is_low(
    conn: asyncpg.Connection | asyncpg.Pool, *, audience_id: str, product_id: str, threshold: int
) -> bool:
    """Whether the product's known stock is at or below the store's threshold."""
    available = await inventory.available_for(conn, audience_id, product_id)
    return available is not None and available <= threshold


async def added_products(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    audience_id: str,
    cart_id: str,
    items: list[dict[str, Any]],
) -> list[str]:
    """Products in `items` that the stored cart did not hold yet."""
    before = await carts.get(conn, audience_id, cart_id)
    had = set(before["product_ids"]) if before else set()
    return [p for p in dict.fromkeys(i["product_id"] for i in items) if p not in had]


def restocked(before: int | None, after: int | None, threshold: int) -> bool:
    """Back in stock: the stock was at or below the threshold and now is above it."""
    return before is not None and after is not None and before <= threshold < after

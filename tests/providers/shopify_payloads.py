"""Shopify's own shapes (webhook bodies and Web Pixels events), trimmed to what matters here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from typing import Any

PRODUCT = 632910392
OTHER_PRODUCT = 921728736
INVENTORY_ITEM = 39072856
OTHER_INVENTORY_ITEM = 457924702


def headers(secret: str, body: bytes, topic: str, event_id: str | None = None) -> dict[str, str]:
    """The headers Shopify sends, signed as Shopify signs."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
        "X-Shopify-Shop-Domain": "journeys-test.myshopify.com",
        "X-Shopify-API-Version": "2025-10",
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
        "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
    }


def body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def customer(email: str, *, subscribed: bool = False) -> dict[str, Any]:
    return {
        "id": 115310627314723954,
        "email": email,
        "first_name": "John",
        "last_name": "Smith",
        "email_marketing_consent": {
            "state": "subscribed" if subscribed else "not_subscribed",
            "opt_in_level": "single_opt_in",
            "consent_updated_at": None,
        },
    }


def line_item(product_id: int = PRODUCT) -> dict[str, Any]:
    return {
        "id": 866550311766439020,
        "product_id": product_id,
        "variant_id": 808950810,
        "quantity": 1,
        "price": "199.00",
        "title": "IPod Nano - 8GB",
        "sku": "IPOD2008PINK",
    }


def order(
    email: str, *, order_id: int = 820982911946154508, product_id: int = PRODUCT
) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "name": "#9999",
        "email": email,
        "contact_email": email,
        "created_at": now,
        "updated_at": now,
        "currency": "USD",
        "total_price": "199.00",
        "financial_status": "paid",
        "cart_token": "c1-7a2abe82733a34e84aa472d57fb5c3c1",
        "checkout_token": "bd5a8aa1ecd019dd3520ff791ee3a24c",
        "buyer_accepts_marketing": False,
        "customer": customer(email),
        "line_items": [line_item(product_id)],
    }


def refund(order_id: int = 820982911946154508) -> dict[str, Any]:
    return {
        "id": 929361462,
        "order_id": order_id,
        "created_at": datetime.now(UTC).isoformat(),
        "note": "Things were damaged",
        "refund_line_items": [
            {
                "id": 1058498302,
                "line_item_id": 866550311766439020,
                "quantity": 1,
                "line_item": line_item(),
            }
        ],
        "transactions": [{"id": 389404469, "kind": "refund", "amount": "199.00"}],
    }


def fulfillment(order_id: int = 820982911946154508) -> dict[str, Any]:
    return {
        "id": 123456,
        "order_id": order_id,
        "status": "success",
        "created_at": datetime.now(UTC).isoformat(),
        "tracking_company": "UPS",
        "tracking_number": "1Z2345",
        "line_items": [line_item()],
    }


def checkout(email: str, *, product_id: int = PRODUCT, completed: bool = False) -> dict[str, Any]:
    return {
        "id": 450789469,
        "token": "2a1ace52255252df566af0faaedfbfa7",
        "cart_token": "68778783ad298f1c80c3bafcddeea02f",
        "email": email,
        "created_at": datetime.now(UTC).isoformat(),
        "updated_at": datetime.now(UTC).isoformat(),
        "completed_at": datetime.now(UTC).isoformat() if completed else None,
        "currency": "USD",
        "total_price": "398.00",
        "abandoned_checkout_url": "https://journeys-test.myshopify.com/548380009/checkouts/2a1ace52255252df566af0faaedfbfa7/recover?key=a1b2",
        "customer": customer(email),
        "line_items": [{**line_item(product_id), "quantity": 2}],
    }


def product(product_id: int, inventory_item: int, quantity: int) -> dict[str, Any]:
    return {
        "id": product_id,
        "title": "IPod Nano - 8GB",
        "admin_graphql_api_id": f"gid://shopify/Product/{product_id}",
        "variants": [
            {
                "id": 808950810,
                "product_id": product_id,
                "inventory_item_id": inventory_item,
                "inventory_quantity": quantity,
                "price": "199.00",
            }
        ],
    }


def inventory_level(
    inventory_item: int, available: int, location: int = 24826418
) -> dict[str, Any]:
    return {
        "inventory_item_id": inventory_item,
        "location_id": location,
        "available": available,
        "updated_at": datetime.now(UTC).isoformat(),
        "admin_graphql_api_id": f"gid://shopify/InventoryLevel/{location}?inventory_item_id={inventory_item}",
    }


def pixel_event(
    name: str,
    data: dict[str, Any],
    *,
    client_id: str,
    href: str = "https://journeys-test.myshopify.com/",
) -> dict[str, Any]:
    """A Web Pixels standard event as `analytics.subscribe` hands it to a custom pixel."""
    return {
        "id": f"sh-{uuid.uuid4()}",
        "clientId": client_id,
        "name": name,
        "type": "standard",
        "seq": 3,
        "timestamp": datetime.now(UTC).isoformat(),
        "context": {
            "document": {
                "location": {"href": href, "pathname": "/"},
                "title": "Shop",
                "referrer": "",
            },
            "navigator": {"language": "en-US", "userAgent": "Mozilla/5.0"},
        },
        "data": data,
    }


def product_variant(product_id: int) -> dict[str, Any]:
    return {
        "id": "808950810",
        "price": {"amount": 199.0, "currencyCode": "USD"},
        "product": {
            "id": str(product_id),
            "title": "IPod Nano - 8GB",
            "vendor": "Apple",
            "type": "Audio",
            "url": f"/products/ipod-nano-{product_id}",
        },
        "sku": "IPOD2008PINK",
        "title": "Pink",
    }


def cart_line(product_id: int) -> dict[str, Any]:
    return {
        "cost": {"totalAmount": {"amount": 199.0, "currencyCode": "USD"}},
        "merchandise": product_variant(product_id),
        "quantity": 1,
    }

"""Queries on `carts`: what contacts put in their carts, for abandoned-cart and stock triggers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool

_COLUMNS = (
    "id::text, audience_id::text, contact_id::text, external_id, items, product_ids, url,"
    " currency, total, updated_at, completed_at, emptied_at"
)


def _items(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Line items as stored: product id, quantity and unit price; from `items` or `product_ids`."""
    if isinstance(data.get("items"), list):
        return [
            {
                "product_id": str(item.get("product_id")),
                "quantity": int(item.get("quantity") or 1),
                "price": None if item.get("price") is None else str(item["price"]),
            }
            for item in data["items"]
            if isinstance(item, dict) and item.get("product_id") not in (None, "")
        ]
    return [
        {"product_id": str(p), "quantity": 1, "price": None} for p in data.get("product_ids", [])
    ]


async def record(
    conn: Conn,
    *,
    audience_id: str,
    contact_id: str | None,
    data: dict[str, Any],
    at: datetime | None,
) -> dict[str, Any]:
    """Stores the cart a `cart_updated` event describes (its full current content).

    An empty cart is marked emptied; a cart that fills again is open again. A completed cart
    stays completed.
    """
    items = _items(data)
    row = await conn.fetchrow(
        f"""
        INSERT INTO carts (audience_id, contact_id, external_id, items, product_ids, url,
                           currency, total, updated_at, emptied_at)
        VALUES ($1::uuid, $2::uuid, $3, $4::jsonb, $5::text[], $6, $7, $8::numeric,
                COALESCE($9, now()), CASE WHEN $10 THEN COALESCE($9, now()) END)
        ON CONFLICT (audience_id, external_id) DO UPDATE SET
            contact_id = COALESCE(EXCLUDED.contact_id, carts.contact_id),
            items = EXCLUDED.items, product_ids = EXCLUDED.product_ids,
            url = COALESCE(EXCLUDED.url, carts.url),
            currency = COALESCE(EXCLUDED.currency, carts.currency),
            total = COALESCE(EXCLUDED.total, carts.total),
            updated_at = EXCLUDED.updated_at, emptied_at = EXCLUDED.emptied_at
        RETURNING {_COLUMNS}
        """,
        audience_id,
        contact_id,
        str(data["cart_id"]),
        items,
        list(dict.fromkeys(i["product_id"] for i in items)),
        data.get("url"),
        data.get("currency"),
        None if data.get("total") is None else str(data["total"]),
        at,
        not items,
    )
    return dict(row)


async def complete(conn: Conn, *, audience_id: str, cart_id: str, at: datetime | None) -> None:
    """Marks the cart checked out (an order or a completed checkout names it)."""
    await conn.execute(
        "UPDATE carts SET completed_at = COALESCE($3, now())"
        " WHERE audience_id = $1::uuid AND external_id = $2 AND completed_at IS NULL",
        audience_id,
        cart_id,
        at,
    )


async def get(conn: Conn, audience_id: str, cart_id: str) -> dict[str, Any] | None:
    """One cart by its external id, or None."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM carts WHERE audience_id = $1::uuid AND external_id = $2",
        audience_id,
        cart_id,
    )
    return dict(row) if row else None


async def holders(conn: Conn, *, audience_id: str, product_id: str) -> list[str]:
    """Contacts with this product in an open cart (not checked out, not emptied)."""
    rows = await conn.fetch(
        """
        SELECT DISTINCT contact_id::text FROM carts
        WHERE audience_id = $1::uuid AND $2 = ANY(product_ids) AND contact_id IS NOT NULL
          AND completed_at IS NULL AND emptied_at IS NULL
        """,
        audience_id,
        product_id,
    )
    return [r["contact_id"] for r in rows]

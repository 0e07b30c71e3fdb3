"""Queries on `inventory_items`: stock per Shopify inventory item, summed per product."""

from __future__ import annotations

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool


async def link(
    conn: Conn, *, audience_id: str, inventory_item_id: str, product_id: str, available: int | None
) -> None:
    """Records which product an inventory item (a variant) belongs to, and its stock if known."""
    await conn.execute(
        """
        INSERT INTO inventory_items (audience_id, inventory_item_id, product_id, available)
        VALUES ($1::uuid, $2, $3, $4)
        ON CONFLICT (audience_id, inventory_item_id) DO UPDATE SET
            product_id = EXCLUDED.product_id,
            available = COALESCE(EXCLUDED.available, inventory_items.available),
            updated_at = now()
        """,
        audience_id,
        inventory_item_id,
        product_id,
        available,
    )


async def product_of(conn: Conn, audience_id: str, inventory_item_id: str) -> str | None:
    """The product an inventory item belongs to, if `products/update` told us."""
    return await conn.fetchval(
        "SELECT product_id FROM inventory_items"
        " WHERE audience_id = $1::uuid AND inventory_item_id = $2",
        audience_id,
        inventory_item_id,
    )


async def set_level(
    conn: asyncpg.Connection,
    *,
    audience_id: str,
    inventory_item_id: str,
    location_id: str,
    available: int,
) -> None:
    """Sets an inventory item's stock at one location; its stock is the sum over locations."""
    await conn.execute(
        """
        UPDATE inventory_items SET
            levels = levels || jsonb_build_object($3::text, $4::int),
            available = (SELECT sum(value::int) FROM jsonb_each_text(
                             levels || jsonb_build_object($3::text, $4::int))),
            updated_at = now()
        WHERE audience_id = $1::uuid AND inventory_item_id = $2
        """,
        audience_id,
        inventory_item_id,
        location_id,
        available,
    )


async def available_for(conn: Conn, audience_id: str, product_id: str) -> int | None:
    """A product's stock over its variants, or None if no level was ever reported."""
    return await conn.fetchval(
        "SELECT sum(available)::int FROM inventory_items"
        " WHERE audience_id = $1::uuid AND product_id = $2 AND available IS NOT NULL",
        audience_id,
        product_id,
    )

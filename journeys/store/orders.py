"""Queries on `orders`: purchases that `purchased` conditions and goals look at."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool


async def record(
    conn: Conn,
    *,
    audience_id: str,
    contact_id: str,
    data: dict[str, Any],
    status: str,
    at: datetime | None,
) -> None:
    """Stores or updates the order an order event is about."""
    await conn.execute(
        """
        INSERT INTO orders (audience_id, contact_id, external_id, status, currency, total, product_ids, placed_at)
        VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6::numeric, $7::text[], COALESCE($8, now()))
        ON CONFLICT (audience_id, external_id) DO UPDATE SET status = EXCLUDED.status
        """,
        audience_id,
        contact_id,
        str(data["order_id"]),
        status,
        data.get("currency"),
        str(data["total"]) if data.get("total") is not None else None,
        [str(p) for p in data.get("product_ids", [])],
        at,
    )


async def contact_of(conn: Conn, audience_id: str, external_id: str) -> str | None:
    """The contact who placed the order with this external id, or None."""
    return await conn.fetchval(
        "SELECT contact_id::text FROM orders WHERE audience_id = $1::uuid AND external_id = $2",
        audience_id,
        external_id,
    )


async def last_placed(conn: Conn, contact_ids: list[str]) -> dict[str, datetime]:
    """When each of these contacts last placed an order (contacts without orders are left out)."""
    rows = await conn.fetch(
        "SELECT contact_id::text, max(placed_at) AS at FROM orders"
        " WHERE contact_id = ANY($1::uuid[]) GROUP BY contact_id",
        contact_ids,
    )
    return {r["contact_id"]: r["at"] for r in rows}

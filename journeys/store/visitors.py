"""Queries on `site_visitors`: browsers tied to contacts by identify calls or signed links."""

from __future__ import annotations

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool


async def tie(conn: Conn, *, audience_id: str, visitor_id: str, contact_id: str) -> None:
    """Ties the browser to the contact (a later identify wins)."""
    await conn.execute(
        """
        INSERT INTO site_visitors (audience_id, visitor_id, contact_id) VALUES ($1::uuid, $2, $3::uuid)
        ON CONFLICT (audience_id, visitor_id) DO UPDATE SET
            contact_id = EXCLUDED.contact_id, seen_at = now()
        """,
        audience_id,
        visitor_id,
        contact_id,
    )


async def contact_of(conn: Conn, audience_id: str, visitor_id: str) -> str | None:
    """The contact a browser was tied to, or None."""
    return await conn.fetchval(
        "SELECT contact_id::text FROM site_visitors WHERE audience_id = $1::uuid AND visitor_id = $2",
        audience_id,
        visitor_id,
    )

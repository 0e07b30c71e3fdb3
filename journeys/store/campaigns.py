"""Queries on `campaigns` (one-off sends that flows can refer to)."""

from __future__ import annotations

from typing import Any

import asyncpg

from journeys.store.ids import is_uuid

Conn = asyncpg.Connection | asyncpg.Pool


async def create(conn: Conn, *, audience_id: str, name: str, subject: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        "INSERT INTO campaigns (audience_id, name, subject) VALUES ($1::uuid, $2, $3)"
        " RETURNING id::text, audience_id::text, name, subject, status, created_at, sent_at",
        audience_id,
        name,
        subject,
    )
    return dict(row)


async def get(conn: Conn, campaign_id: str) -> dict[str, Any] | None:
    if not is_uuid(campaign_id):
        return None
    row = await conn.fetchrow(
        "SELECT id::text, audience_id::text, name, subject, status, created_at, sent_at"
        " FROM campaigns WHERE id = $1::uuid",
        campaign_id,
    )
    return dict(row) if row else None


async def existing(conn: Conn, campaign_ids: list[str]) -> frozenset[str]:
    """Which of these campaign ids exist."""
    ids = [c for c in campaign_ids if is_uuid(c)]
    if not ids:
        return frozenset()
    rows = await conn.fetch("SELECT id::text FROM campaigns WHERE id = ANY($1::uuid[])", ids)
    return frozenset(r["id"] for r in rows)

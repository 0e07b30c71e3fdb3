"""Audience groups (Mailchimp's interests): a contact's memberships, kept by `memberships`."""

from __future__ import annotations

import asyncpg

from journeys.store import memberships

Conn = asyncpg.Connection | asyncpg.Pool


async def of_contact(conn: Conn, contact_id: str) -> list[str]:
    """The contact's groups, alphabetically."""
    return await memberships.of_contact(conn, memberships.GROUPS, contact_id)

"""The time zone a contact's local-time rules use (contact's own, else its audience's)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg

from journeys.store import audiences


async def zone_for(
    pool: asyncpg.Pool, contact: dict[str, Any], *, basis: str = "contact"
) -> ZoneInfo:
    """The contact's zone if it has one and the flow asks for it, else the audience's, else UTC."""
    audience = await audiences.get(pool, contact["audience_id"])
    return pick_zone(contact, audience["timezone"] if audience else None, basis=basis)


def pick_zone(contact: dict[str, Any], audience_zone: str | None, *, basis: str) -> ZoneInfo:
    """`zone_for` when the audience's zone is already known (a page of one audience's contacts)."""
    names = []
    if basis == "contact" and contact.get("timezone"):
        names.append(contact["timezone"])
    if audience_zone:
        names.append(audience_zone)
    for name in names:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")

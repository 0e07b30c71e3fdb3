"""Events as the gateway receives them, and which triggers they fire."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from journeys.domain.triggers import TagAdded, Trigger


class IncomingEvent(BaseModel):
    """An event about one contact of one audience, before it is stored."""

    type: str
    audience_id: str
    contact_id: str
    idempotency_key: str = Field(description="Same key, same event: a repeat changes nothing.")
    data: dict[str, Any] = {}
    occurred_at: datetime | None = None


def fires(trigger: Trigger, event: IncomingEvent) -> bool:
    """True if the event enrols a contact through this trigger."""
    if trigger.type != event.type:
        return False
    if isinstance(trigger, TagAdded):
        return str(event.data.get("tag", "")).casefold() == trigger.tag.casefold()
    return True

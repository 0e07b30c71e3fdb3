"""Id helpers: user-supplied ids are checked before they reach a `::uuid` cast."""

from __future__ import annotations

import uuid


def is_uuid(value: str) -> bool:
    """True if `value` parses as a UUID (so a query can cast it without failing)."""
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True

"""Id helpers: user-supplied ids are checked before they reach a `::uuid` cast."""

from __future__ import annotations

import re

# Only the canonical spelling: Python's uuid.UUID also takes `{…}`, `urn:uuid:…` and bare hex,
# which Postgres does not all take, and an id has one spelling in URLs anyway.
_CANONICAL = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


def is_uuid(value: str) -> bool:
    """True if `value` is a UUID in canonical form (so a query can cast it without failing)."""
    return isinstance(value, str) and _CANONICAL.fullmatch(value) is not None

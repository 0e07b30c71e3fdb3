"""IANA time-zone names, checked where they enter (API, CLI)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def check_timezone(name: str) -> str:
    """Returns the name if it is a known IANA zone.

    Raises:
        ValueError: the zone is unknown.
    """
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name like Europe/Paris)"
        ) from exc
    return name

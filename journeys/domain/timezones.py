"""IANA time-zone names, checked where they enter (API, CLI)."""

from __future__ import annotations

from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


@cache
def known_timezones() -> list[str]:
    """Every IANA zone name of the installed database, sorted (what the API accepts)."""
    return sorted(available_timezones())


def check_timezone(name: str) -> str:
    """Returns the name if it is a known IANA zone.

    Raises:
        ValueError: the zone is unknown.
    """
    # Only listed names: ZoneInfo also opens files like `posixrules` that are not zones.
    if name not in known_timezones():
        raise ValueError(f"unknown time zone {name!r} (use an IANA name like Europe/Paris)")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name like Europe/Paris)"
        ) from exc
    return name

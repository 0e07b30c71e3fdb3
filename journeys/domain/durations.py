"""Durations as flow authors write them: `90s`, `30m`, `2h`, `3d`, `1w`, or ISO 8601 `P3DT4H`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Ten years: longer than any wait a marketing flow means, and far inside what timedelta and
# Temporal timers hold (a larger number is a typo, not a plan).
MAX_SECONDS = 3650 * 86400
MAX_TEXT = "3650d (ten years)"
_SHORT = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_ISO = re.compile(
    r"^P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$"
)


def parse_duration(text: str) -> timedelta:
    """Parses a flow duration.

    Args:
        text: `<n><unit>` with unit one of s, m, h, d, w, or an ISO 8601 duration
            without years or months (their length varies), e.g. `P3D`, `PT90M`.

    Returns:
        The duration.

    Raises:
        ValueError: the text is neither form, the duration is zero or longer than ten years.
    """
    match = _SHORT.match(text)
    if match:
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
    else:
        iso = _ISO.match(text.strip().upper())
        if not iso or text.strip().upper() in ("P", "PT") or text.strip().upper().endswith("T"):
            raise ValueError(
                f"invalid duration {text!r}: use e.g. 90s, 30m, 2h, 3d, 1w or ISO 8601 like P3D"
            )
        parts = {k: int(v) for k, v in iso.groupdict().items() if v}
        seconds = (
            parts.get("w", 0) * 604800
            + parts.get("d", 0) * 86400
            + parts.get("h", 0) * 3600
            + parts.get("m", 0) * 60
            + parts.get("s", 0)
        )
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: must be longer than zero")
    if seconds > MAX_SECONDS:
        raise ValueError(f"invalid duration {text!r}: must be at most {MAX_TEXT}")
    return timedelta(seconds=seconds)


def _check(text: str) -> str:
    parse_duration(text)
    return text


# Kept as the author's text so a flow exports exactly as it was written.
Duration = Annotated[
    str,
    AfterValidator(_check),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(\d+[smhdw]|P(\d+W)?(\d+D)?(T(\d+H)?(\d+M)?(\d+S)?)?)$",
            "examples": ["90s", "30m", "2h", "3d", "1w", "P3D"],
        }
    ),
]

"""Text that may be stored and sent: no NUL, no control characters where they do harm.

Postgres cannot store NUL in `text` or `jsonb`, and control characters in a name, a tag or an
address end up in email headers and logs. Single-line values (names, tags, addresses) refuse
every control character, including line breaks and the Unicode line/paragraph separators;
free-form JSON values (event properties, custom fields) may hold tab and line breaks.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Annotated, Any

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, Field

_LINE_SEPARATORS = {"\u2028", "\u2029"}
_MULTILINE_ALLOWED = {"\t", "\n", "\r"}


def control_character(value: str, *, multiline: bool = False) -> str | None:
    """The first forbidden character of `value`, spelled `U+XXXX`, or None.

    Args:
        value: The text.
        multiline: Allow tab, CR and LF (free-form text).
    """
    for char in value:
        if multiline and char in _MULTILINE_ALLOWED:
            continue
        if char in _LINE_SEPARATORS or unicodedata.category(char) == "Cc":
            return f"U+{ord(char):04X}"
    return None


def _single_line(value: str) -> str:
    bad = control_character(value)
    if bad:
        raise ValueError(f"control character {bad} is not allowed")
    return value


def json_problem(value: Any, path: str = "") -> tuple[str, str] | None:
    """The first string (key or value) in a JSON value holding a forbidden character.

    Returns:
        (path inside the value, e.g. `items[2].name`, message), or None.
    """
    if isinstance(value, str):
        bad = control_character(value, multiline=True)
        return (path, f"control character {bad} is not allowed") if bad else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            bad = control_character(str(key))
            if bad:
                return (inner, f"control character {bad} is not allowed in a key")
            found = json_problem(item, inner)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = json_problem(item, f"{path}[{index}]")
            if found:
                return found
    return None


def _clean_json(value: Any) -> Any:
    found = json_problem(value)
    if found:
        where, message = found
        raise ValueError(f"{where}: {message}" if where else message)
    return value


def json_size(value: Any) -> int:
    """Bytes of the value as compact JSON (what is stored and what Temporal carries)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode())


# The same rule as a JSON Schema pattern, so clients and generated tests know it.
SINGLE_LINE_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$"

SingleLine = Annotated[
    str, AfterValidator(_single_line), Field(json_schema_extra={"pattern": SINGLE_LINE_PATTERN})
]
"""A one-line string: no control characters, no line breaks."""

CleanJson = AfterValidator(_clean_json)
"""Validator for JSON values (any depth): no NUL or other control characters but tab/CR/LF."""

MULTILINE_PATTERN = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u2028\u2029]*$"

JSON_VALUE_SCHEMA: dict[str, Any] = {
    "description": "Any JSON value; strings hold no control characters but tab, CR and LF.",
    "anyOf": [
        {"type": "string", "pattern": MULTILINE_PATTERN},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
        {
            "type": "object",
            "propertyNames": {"pattern": SINGLE_LINE_PATTERN},
            "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
        },
    ],
}
"""`JsonValue` of the OpenAPI document: what `CleanJson` accepts, as JSON Schema."""

JSON_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "propertyNames": {"pattern": SINGLE_LINE_PATTERN},
    "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
}


def single_mailbox(value: str) -> str:
    """The address, stripped, if it is exactly one mailbox; else ValueError.

    A comma list, a display name or a quoted local part could add recipients to a send.
    `.test` domains (RFC 2606) are accepted so staging data can use them; deliverability is
    not checked (no DNS lookups on the request path).
    """
    try:
        validate_email(value.strip(), check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        raise ValueError(f"not a single email address: {exc}") from None
    return value.strip()


EmailAddress = Annotated[
    str, AfterValidator(single_mailbox), Field(json_schema_extra={"format": "email"})
]
"""One mailbox, validated by `email-validator` (use it for every address a client gives)."""

"""Merge fields: Mailchimp's named contact values (`FNAME`, `BIRTHDAY`, custom ones).

Each audience has the built-in fields below plus the ones it defines. A definition says how a
value is checked and converted before it is stored, so a `field_changed` trigger, a condition
or a template always sees one form (a birthday as `MM-DD`, a phone in E.164, a number as a
number). Built-ins live in the contact's columns; custom fields in `contacts.fields[TAG]`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from journeys.domain.phones import to_e164

FieldType = Literal["text", "number", "date", "birthday", "phone", "url", "dropdown"]
FIELD_TYPES: tuple[str, ...] = ("text", "number", "date", "birthday", "phone", "url", "dropdown")
TAG_PATTERN = r"^[A-Z][A-Z0-9_]{0,9}$"
TEXT_MAX = 255


@dataclass(frozen=True)
class MergeField:
    """One merge field of an audience."""

    tag: str
    name: str
    type: str
    required: bool = False
    choices: tuple[str, ...] = field(default_factory=tuple)


# Every audience has these; they map to the contact's own columns.
BUILTIN: dict[str, MergeField] = {
    "FNAME": MergeField("FNAME", "First Name", "text"),
    "LNAME": MergeField("LNAME", "Last Name", "text"),
    "BIRTHDAY": MergeField("BIRTHDAY", "Birthday", "birthday"),
    "PHONE": MergeField("PHONE", "Phone Number", "phone"),
}
COLUMN = {"FNAME": "first_name", "LNAME": "last_name", "BIRTHDAY": "birthday", "PHONE": "phone"}

_BIRTHDAY = re.compile(r"^(0[1-9]|1[0-2])[/-](0[1-9]|[12]\d|3[01])$")
_URL = re.compile(r"^https?://[^\s/]+\S*$")


def convert(definition: MergeField, value: Any, *, phone_region: str | None = None) -> Any:
    """The value in the stored form of its field's type.

    Raises:
        ValueError: the value does not fit the type; the message says what was expected.
    """
    kind = definition.type
    if kind == "number":
        if isinstance(value, bool):
            raise ValueError("must be a number")
        if isinstance(value, int | float):
            return value
        try:
            number = float(str(value).strip())
        except ValueError:
            raise ValueError("must be a number") from None
        return int(number) if number.is_integer() else number
    if not isinstance(value, str):
        raise ValueError("must be a string")
    text = value.strip()
    if kind == "text":
        if len(text) > TEXT_MAX:
            raise ValueError(f"must be at most {TEXT_MAX} characters")
        return text
    if kind == "birthday":
        match = _BIRTHDAY.match(text)
        if not match:
            raise ValueError("must be a birthday as MM/DD")
        month, day = match.groups()
        if (day == "31" and month in ("02", "04", "06", "09", "11")) or (month, day) == (
            "02",
            "30",
        ):
            raise ValueError(f"{text} is not a day of the year")
        return f"{month}-{day}"
    if kind == "date":
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            raise ValueError("must be a date as YYYY-MM-DD") from None
    if kind == "phone":
        return to_e164(text, region=phone_region)
    if kind == "url":
        if not _URL.match(text):
            raise ValueError("must be an http(s) URL")
        return text
    if kind == "dropdown":
        if text not in definition.choices:
            raise ValueError(f"must be one of {', '.join(definition.choices)}")
        return text
    raise ValueError(f"unknown merge field type {kind}")


def to_contact(
    values: dict[str, Any],
    defined: dict[str, MergeField],
    *,
    creating: bool,
    phone_region: str | None = None,
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Merge-field values as contact changes (`first_name`, …, `fields`).

    An empty string or null leaves a value as it is. Unknown tags are errors: a value that
    would be silently dropped is a bug in the caller's mapping.

    Args:
        values: `{TAG: value}` as the caller sent them.
        defined: The audience's merge fields, built-ins included.
        creating: The contact is new, so required fields must be present.
        phone_region: Country for phone numbers written without their country code.

    Returns:
        The contact changes, and the errors as (tag, message).
    """
    given: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    errors: list[tuple[str, str]] = []
    for tag, value in values.items():
        definition = defined.get(tag.upper())
        if definition is None:
            errors.append((tag, f"{tag} is not a merge field of this audience"))
            continue
        if value is None or value == "":
            continue
        try:
            converted = convert(definition, value, phone_region=phone_region)
        except ValueError as err:
            errors.append((tag, str(err)))
            continue
        if definition.tag in COLUMN:
            given[COLUMN[definition.tag]] = converted
        else:
            custom[definition.tag] = converted
    if creating:
        present = {t.upper() for t, v in values.items() if v not in (None, "")}
        errors += [
            (d.tag, f"{d.tag} is required")
            for d in defined.values()
            if d.required and d.tag not in present
        ]
    if custom:
        given["fields"] = custom
    return given, errors


def from_contact(contact: dict[str, Any], defined: dict[str, MergeField]) -> dict[str, Any]:
    """The contact's values by merge tag, as Mailchimp shows them (`BIRTHDAY` as MM/DD)."""
    fields = contact.get("fields") or {}
    out: dict[str, Any] = {}
    for tag in defined:
        if tag in COLUMN:
            value = contact.get(COLUMN[tag])
            if tag == "BIRTHDAY" and value:
                value = value[-5:].replace("-", "/")
            out[tag] = value if value is not None else ""
        else:
            out[tag] = fields.get(tag, "")
    return out

"""Phone numbers in one form, E.164 (`+33612345678`), whatever way they were typed."""

from __future__ import annotations

import phonenumbers


def to_e164(raw: str, *, region: str | None = None) -> str:
    """Normalises a phone number to E.164.

    Args:
        raw: The number as given: `+33 6 12 34 56 78`, `(202) 555-0101`, `0033…`.
        region: ISO country code (`FR`, `US`) for numbers written without their country
            code; without one such numbers are refused, since guessing would text a stranger.

    Raises:
        ValueError: the text is not a phone number, or has the wrong length for its country.
    """
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as err:
        if err.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            raise ValueError(
                f"{raw!r} has no country code: write it as +<country code><number>"
            ) from err
        raise ValueError(f"{raw!r} is not a phone number") from err
    # "Possible" checks the length for the country; "valid" would also refuse numbers in
    # ranges not yet allocated, which change faster than any library release.
    if not phonenumbers.is_possible_number(number):
        raise ValueError(f"{raw!r} has the wrong number of digits for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

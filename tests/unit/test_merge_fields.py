"""Merge-field conversion, E.164 phone numbers and double opt-in tokens (pure code)."""

from __future__ import annotations

import pytest

from journeys import optin
from journeys.config import Settings
from journeys.domain.merge_fields import BUILTIN, MergeField, convert, from_contact, to_contact
from journeys.domain.phones import to_e164

DEFINED = {
    **BUILTIN,
    "SCORE": MergeField("SCORE", "Score", "number"),
    "PLAN": MergeField("PLAN", "Plan", "dropdown", required=True, choices=("free", "pro")),
    "RENEWAL": MergeField("RENEWAL", "Renewal", "date"),
    "SITE": MergeField("SITE", "Site", "url"),
}


@pytest.mark.parametrize(
    ("tag", "value", "stored"),
    [
        ("SCORE", "12", 12),
        ("SCORE", " 2.5 ", 2.5),
        ("SCORE", 7, 7),
        ("BIRTHDAY", "02/29", "02-29"),
        ("BIRTHDAY", "12-31", "12-31"),
        ("PHONE", "+1 (202) 555-0101", "+12025550101"),
        ("RENEWAL", "2027-01-31", "2027-01-31"),
        ("SITE", "https://example.com/a?b=1", "https://example.com/a?b=1"),
        ("PLAN", "pro", "pro"),
    ],
)
def test_values_are_stored_in_their_type_s_form(tag: str, value: object, stored: object) -> None:
    assert convert(DEFINED[tag], value) == stored


@pytest.mark.parametrize(
    ("tag", "value", "message"),
    [
        ("SCORE", "lots", "must be a number"),
        ("SCORE", True, "must be a number"),
        ("BIRTHDAY", "1990-02-01", "must be a birthday as MM/DD"),
        ("BIRTHDAY", "04/31", "04/31 is not a day of the year"),
        ("BIRTHDAY", "02/30", "02/30 is not a day of the year"),
        ("PHONE", "0612345678", "'0612345678' has no country code"),
        ("RENEWAL", "31/01/2027", "must be a date as YYYY-MM-DD"),
        ("SITE", "javascript:alert(1)", "must be an http(s) URL"),
        ("PLAN", "gold", "must be one of free, pro"),
        ("FNAME", "x" * 256, "must be at most 255 characters"),
    ],
)
def test_values_that_do_not_fit_are_refused_with_a_reason(
    tag: str, value: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        convert(DEFINED[tag], value)


def test_to_contact_maps_builtins_to_columns_and_reports_every_problem() -> None:
    given, errors = to_contact(
        {"FNAME": "Ada", "BIRTHDAY": "12/10", "PLAN": "pro", "SCORE": "", "fname_typo": 1},
        DEFINED,
        creating=True,
    )
    assert given == {"first_name": "Ada", "birthday": "12-10", "fields": {"PLAN": "pro"}}
    assert errors == [("fname_typo", "fname_typo is not a merge field of this audience")]
    _, missing = to_contact({"FNAME": "Ada"}, DEFINED, creating=True)
    assert missing == [("PLAN", "PLAN is required")]
    assert to_contact({"FNAME": "Ada"}, DEFINED, creating=False)[1] == []


def test_from_contact_shows_mailchimp_forms() -> None:
    contact = {
        "first_name": "Ada",
        "last_name": None,
        "birthday": "1815-12-10",
        "phone": "+442079460958",
        "fields": {"PLAN": "pro"},
    }
    shown = from_contact(contact, DEFINED)
    assert shown["BIRTHDAY"] == "12/10"
    assert (shown["LNAME"], shown["PLAN"], shown["SCORE"]) == ("", "pro", "")


def test_phone_region_reads_national_numbers() -> None:
    assert to_e164("06 12 34 56 78", region="FR") == "+33612345678"
    with pytest.raises(ValueError, match="wrong number of digits"):
        to_e164("+33 6 12", region="FR")


def test_optin_tokens_are_signed_and_expire() -> None:
    settings = Settings(secret_key="one-secret-for-tests")
    token = optin.make_token(settings, contact_id="c1", audience_id="a1", now=1_000)
    assert optin.read_token(settings, token, now=2_000) == {"contact_id": "c1", "audience_id": "a1"}
    other = Settings(secret_key="another-secret")
    with pytest.raises(ValueError, match="not valid"):
        optin.read_token(other, token, now=2_000)
    signature = token.partition(".")[2]
    forged = optin.make_token(settings, contact_id="c2", audience_id="a1", now=1_000)
    with pytest.raises(ValueError, match="not valid"):
        optin.read_token(settings, f"{forged.partition('.')[0]}.{signature}", now=2_000)
    with pytest.raises(ValueError, match="expired"):
        optin.read_token(settings, token, now=1_000 + optin.TOKEN_LIFETIME_SECONDS + 1)
    with pytest.raises(ValueError, match="not valid"):
        optin.read_token(settings, "@@@.@@@", now=2_000)

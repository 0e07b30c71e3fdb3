"""What text the API accepts: one-line values, free JSON, single mailboxes."""

from __future__ import annotations

import pytest

from journeys.domain.text import control_character, json_problem, json_size, single_mailbox


@pytest.mark.parametrize(
    "char", ["\x00", "\x07", "\n", "\r", "\t", "\x1b", "\x7f", "\x85", "\u2028"]
)
def test_one_line_values_refuse_every_control_character(char: str) -> None:
    assert control_character(f"Ann{char}Lee") == f"U+{ord(char):04X}"


def test_free_text_keeps_tabs_and_line_breaks_but_not_nul() -> None:
    assert control_character("a\tb\r\nc", multiline=True) is None
    assert control_character("a\x00b", multiline=True) == "U+0000"
    assert control_character("Zoë 🎉 café", multiline=False) is None


def test_json_problem_names_the_path_of_the_bad_string() -> None:
    value = {"a": [1, {"b": "ok"}, {"c": "x\x01"}], "d": None}
    assert json_problem(value) == ("a[2].c", "control character U+0001 is not allowed")
    assert json_problem({"k\n": 1}) == ("k\n", "control character U+000A is not allowed in a key")
    assert json_problem({"note": "two\nlines", "n": 3.5, "t": True}) is None


def test_json_size_counts_utf8_bytes_of_compact_json() -> None:
    assert json_size({"a": "é"}) == len('{"a":"é"}'.encode())


@pytest.mark.parametrize(
    "address",
    ["x,victim@evil.example", "a@b.example, c@d.example", "Ann <a@b.example>", '"a,b"@c.example'],
)
def test_an_address_is_one_mailbox(address: str) -> None:
    with pytest.raises(ValueError, match="not a single email address"):
        single_mailbox(address)


def test_plain_addresses_pass_unchanged() -> None:
    assert single_mailbox(" Ann.Lee+news@Shop.example ") == "Ann.Lee+news@Shop.example"
    assert single_mailbox("flows@journeys.test") == "flows@journeys.test"

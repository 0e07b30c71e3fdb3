"""Finding 4: what can never be sent is refused for good, and headers stay on one line."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from journeys.channels.email import (
    PermanentSendError,
    build_message,
    check_recipient,
    check_size,
    format_sender,
    header_value,
    parse_recipient,
)


def test_line_breaks_of_every_kind_become_spaces_in_headers() -> None:
    assert header_value("Hi Ann\r\nBcc: x@evil.example") == "Hi Ann Bcc: x@evil.example"
    assert header_value("a\u2028b\u2029c\x85d\x0be\x0cf") == "a b c d e f"
    assert header_value("nul\x00 and bell\x07") == "nul and bell"


def test_built_messages_carry_one_line_subject_sender_and_reply_to() -> None:
    message = build_message(
        sender=format_sender("Shop\r\nBcc: a@evil.example", "shop@journeys.test"),
        to="ada@example.com",
        subject="Hello\nBcc: b@evil.example",
        html="<p>Hi</p>",
        text=None,
        message_id="<1@journeys.test>",
        reply_to="help@journeys.test\u2028",
    )
    assert message["Subject"] == "Hello Bcc: b@evil.example"
    assert message["From"] == '"Shop Bcc: a@evil.example" <shop@journeys.test>'
    assert message["Reply-To"] == "help@journeys.test"
    assert message["Bcc"] is None


@pytest.mark.parametrize(
    "address", ["x,victim@evil.example", "Ada <ada@example.com>", "a b@example.com", "", "ada"]
)
def test_anything_but_one_mailbox_is_refused_for_good(address: str) -> None:
    with pytest.raises(PermanentSendError, match="invalid recipient"):
        check_recipient(address)


@pytest.mark.parametrize(
    "address",
    [
        "ada@example.com",
        "a+b_c-d@x-y.example.co",
        "A.B.C@sub.example.com",
        "a@x",
        "a..b@example.com",
        ".a@example.com",
        "a.@example.com",
        "a@x..com",
        "a@x.com.",
        "a@[1.2.3.4]",
        '"a b"@example.com',
        "ada@exämple.com",
        "ädä@example.com",
        "a@b@example.com",
        "ada@example.com\n",
        "ada@example.com ",
    ],
)
def test_the_quick_recipient_check_agrees_with_the_full_parse(address: str) -> None:
    def verdict(check: Callable[[str], None]) -> str:
        try:
            check(address)
        except PermanentSendError:
            return "refused"
        return "accepted"

    assert verdict(check_recipient) == verdict(parse_recipient)


def test_an_oversized_message_is_refused_for_good() -> None:
    message = build_message(
        sender="shop@journeys.test",
        to="ada@example.com",
        subject="Big",
        html=None,
        text="x" * 5000,
        message_id="<2@journeys.test>",
    )
    check_size(message, limit=50_000)
    with pytest.raises(PermanentSendError, match="more than 1000"):
        check_size(message, limit=1000)

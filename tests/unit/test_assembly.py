"""The email assembly helper: what a recipient receives equals what the `email` package would
build for them, though the MIME skeleton is serialised once per template."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest
from aiosmtplib.email import flatten_message

from journeys.channels.assembly import Engagement, assemble
from journeys.channels.email import PermanentSendError, build_message
from journeys.channels.tracking import TrackingConfig, engage

TRACKING = TrackingConfig(key=b"k" * 32, base_url="https://mail.shop.test")
HTML = (
    '<p>Hi {name} = you</p><p><a href="https://shop.example.com/spring?a=1&amp;b=2">Shop</a></p>'
    "<p>" + "a long line of words " * 12 + "</p>\n<p>.a line starting with a dot</p>"
)


def _parsed(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _parts(message: EmailMessage) -> list[tuple[str, str]]:
    # Quoted-printable content decodes with the CRLF line ends of the wire.
    return [
        (part.get_content_type(), part.get_content().replace("\r\n", "\n"))
        for part in message.walk()
        if not part.is_multipart()
    ]


@pytest.mark.parametrize("name", ["Ann", "Zoë 日本", "O'Brien <x>"])
@pytest.mark.parametrize("marketing", [True, False])
def test_each_recipient_gets_what_the_email_package_builds(name: str, marketing: bool) -> None:
    for n in range(3):  # the skeleton is built for the first recipient and reused after
        tracker = TRACKING.tracker(f"{n:032x}")
        html = HTML.format(name=name)
        common = {
            "sender": "Spring Shop Ünï <news@shop.test>",
            "to": f"r{n}@example.com",
            "subject": f"Spring for {name}, a subject long enough to be folded over two lines",
            "message_id": f"<m{n}@shop.test>",
            "reply_to": "help@shop.test",
            "preheader": f"Just for {name}",
        }
        built = assemble(
            **common,
            html=html,
            text=None,
            headers={"X-Journeys-Campaign": "c1"},
            engagement=Engagement(tracker=tracker, opens=True, clicks=True, has_unsubscribe=False)
            if marketing
            else None,
        )
        headers = {"X-Journeys-Campaign": "c1"}
        text, links = None, []
        if marketing:
            html, text, links = engage(  # type: ignore[assignment]
                html=html,
                text=None,
                tracker=tracker,
                opens=True,
                clicks=True,
                has_unsubscribe=False,
            )
            headers["List-Unsubscribe"] = f"<{tracker.unsubscribe_url()}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        expected = _parsed(
            flatten_message(build_message(**common, html=html, text=text, headers=headers))
        )
        got = _parsed(built.data)
        assert built.data.isascii() and b"\r\n" in built.data
        assert max(len(line) for line in built.data.split(b"\r\n")) <= 998
        for header in (
            "From",
            "To",
            "Subject",
            "Message-ID",
            "Reply-To",
            "X-Journeys-Campaign",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
        ):
            # (The `email` package writes a long List-Unsubscribe as encoded words, which
            # RFC 2369 does not allow; the helper writes the URL as it is.)
            assert str(got[header] or "").strip() == str(expected[header] or "").strip(), header
        assert _parts(got) == _parts(expected)
        assert (built.links, built.recipient, built.envelope_from) == (
            links,
            common["to"],
            "news@shop.test",
        )
        if marketing:
            assert got["List-Unsubscribe"] == f"<{tracker.unsubscribe_url()}>"


def test_a_text_only_email_and_the_refusals() -> None:
    built = assemble(
        sender="news@shop.test",
        to="a@example.com",
        subject="Plain",
        html=None,
        text="Hello\nthere",
        message_id="<p@shop.test>",
    )
    got = _parsed(built.data)
    assert _parts(got) == [("text/plain", "Hello\nthere\n")]
    with pytest.raises(PermanentSendError):
        assemble(
            sender="news@shop.test",
            to="a@example.com, b@example.com",
            subject="x",
            html=None,
            text="x",
            message_id="<q@shop.test>",
        )
    with pytest.raises(PermanentSendError, match="bytes"):
        assemble(
            sender="news@shop.test",
            to="a@example.com",
            subject="x",
            html=None,
            text="x" * 5000,
            message_id="<r@shop.test>",
            limit=2000,
        )

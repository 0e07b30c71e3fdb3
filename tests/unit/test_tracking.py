"""Tracking tokens and the rewriting of marketing email."""

from __future__ import annotations

import base64
import hashlib
import hmac

from journeys.channels.tracking import (
    Token,
    TokenKind,
    TrackingConfig,
    engage,
    message_ref,
    sign,
    verify,
)

KEY = b"k" * 32
REF = message_ref("flow-1-contact-2:1:hello")
TRACKER = TrackingConfig(key=KEY, base_url="https://t.example.com/").tracker(REF)


def test_token_tags_are_hmac_sha256_of_context_and_payload() -> None:
    # Computed here from scratch: `verify` shares `sign`'s code, so a round trip alone would
    # not notice a changed tag (the keyed HMAC state `sign` copies must stay the same MAC).
    for key in (KEY, b"other key"):
        raw = base64.urlsafe_b64decode(sign(key, TokenKind.CLICK, REF, 7) + "==")
        payload, tag = raw[:19], raw[19:]
        expected = hmac.new(key, b"journeys.tracking.v1|" + payload, hashlib.sha256).digest()
        assert tag == expected[:16]


def test_tokens_round_trip_and_any_edit_or_other_key_fails() -> None:
    token = sign(KEY, TokenKind.CLICK, REF, 3)
    assert verify(KEY, token) == Token(kind=TokenKind.CLICK, ref=REF, link=3)
    assert verify(b"x" * 32, token) is None
    for i in range(len(token)):
        edited = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
        assert verify(KEY, edited) is None, i
    assert verify(KEY, token + "AA") is None
    assert verify(KEY, "not base64 !") is None


def test_links_become_click_urls_naming_their_index_and_the_pixel_ends_the_body() -> None:
    html = (
        '<html><body><a href="https://a.example.com/?x=1&amp;y=2">A</a>'
        "<a class=b href='https://b.example.com'>B</a><a href=\"mailto:x@example.com\">m</a>"
        '<a href="#top">top</a><a href="https://a.example.com/?x=1&amp;y=2">A again</a>'
        "</body></html>"
    )
    out_html, out_text, links = engage(
        html=html, text=None, tracker=TRACKER, opens=True, clicks=True, has_unsubscribe=True
    )
    assert links == ["https://a.example.com/?x=1&y=2", "https://b.example.com"]
    assert out_html is not None and out_text is not None
    assert out_html.count(TRACKER.click_url(0)) == 2
    assert f"href='{TRACKER.click_url(1)}'" in out_html
    assert 'href="mailto:x@example.com"' in out_html and 'href="#top"' in out_html
    assert out_html.endswith(
        f'<img src="{TRACKER.open_url()}" width="1" height="1" alt=""'
        ' style="display:block;border:0;width:1px;height:1px"></body></html>'
    )
    assert TRACKER.open_url().startswith("https://t.example.com/t/o/")
    assert "Unsubscribe" not in out_html


def test_footer_added_when_the_template_has_no_unsubscribe_link_and_never_rewritten() -> None:
    out_html, out_text, links = engage(
        html=None,
        text="See https://shop.example.com/new, now.",
        tracker=TRACKER,
        opens=True,
        clicks=True,
        has_unsubscribe=False,
    )
    assert out_html is None
    assert links == ["https://shop.example.com/new"]
    assert out_text == (
        f"See {TRACKER.click_url(0)}, now.\n\nUnsubscribe: {TRACKER.unsubscribe_url()}\n"
    )


def test_tracking_off_leaves_links_and_adds_no_pixel() -> None:
    html = '<p><a href="https://a.example.com">A</a></p>'
    out_html, _, links = engage(
        html=html, text=None, tracker=TRACKER, opens=False, clicks=False, has_unsubscribe=True
    )
    assert (out_html, links) == (html, [])

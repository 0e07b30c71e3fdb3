"""Tracking and unsubscribe tokens, and the rewriting that puts them into marketing email.

A token names one message (its `ref`, 16 bytes of the hash of its idempotency key), what it is
for (an open pixel, a click on link N of the message, an unsubscribe) and carries an
HMAC-SHA256 tag under a key derived from `JOURNEYS_SECRET_KEY`
(`Settings.tracking_signing_key`). Links themselves are not in the
token: the message's links are stored with it in `messages`, so a click redirects only to a URL
that was in that message, whatever anyone puts in a URL.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import html as html_lib
import re
from dataclasses import dataclass
from enum import StrEnum

from journeys.channels.email import html_to_text

_TAG_BYTES = 16
_REF_BYTES = 16
_PAYLOAD_BYTES = 1 + _REF_BYTES + 2
_CONTEXT = b"journeys.tracking.v1|"
MAX_LINKS = 500


class TokenKind(StrEnum):
    """What a token is for; the first byte of its payload."""

    OPEN = "o"
    CLICK = "c"
    UNSUBSCRIBE = "u"


@dataclass(frozen=True)
class Token:
    """A verified token."""

    kind: TokenKind
    ref: str
    link: int = 0


def message_ref(idempotency_key: str) -> str:
    """The message's name in its tokens (hex), derived from the send's idempotency key."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[: _REF_BYTES * 2]


@functools.lru_cache(maxsize=8)
def _keyed(key: bytes) -> hmac.HMAC:
    # The HMAC state after the key and the context: copying it spares the two hash blocks of
    # the key's set-up on every token (a campaign signs several per recipient).
    return hmac.new(key, _CONTEXT, hashlib.sha256)


def _tag(key: bytes, payload: bytes) -> bytes:
    mac = _keyed(key).copy()
    mac.update(payload)
    return mac.digest()[:_TAG_BYTES]


@functools.lru_cache(maxsize=1024)  # one email asks for its unsubscribe token several times
def sign(key: bytes, kind: TokenKind, ref: str, link: int = 0) -> str:
    """A URL-safe token for this message (and link)."""
    payload = kind.value.encode() + bytes.fromhex(ref) + link.to_bytes(2, "big")
    raw = payload + _tag(key, payload)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def verify(key: bytes, token: str) -> Token | None:
    """The token's content if its tag is right (compared in constant time), else None."""
    if len(token) > 64:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != _PAYLOAD_BYTES + _TAG_BYTES:
        return None
    # One spelling per token: unused trailing bits must not make a second valid URL.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != token:
        return None
    payload, tag = raw[:_PAYLOAD_BYTES], raw[_PAYLOAD_BYTES:]
    if not hmac.compare_digest(tag, _tag(key, payload)):
        return None
    try:
        kind = TokenKind(chr(payload[0]))
    except ValueError:
        return None
    return Token(
        kind=kind,
        ref=payload[1 : 1 + _REF_BYTES].hex(),
        link=int.from_bytes(payload[1 + _REF_BYTES :], "big"),
    )


@dataclass(frozen=True, kw_only=True)
class Tracker:
    """Builds the gateway URLs of one message.

    Args:
        key: The tracking key (`Settings.tracking_signing_key`).
        base_url: The gateway as contacts reach it (`JOURNEYS_PUBLIC_URL`), without a trailing /.
        ref: The message's ref.
    """

    key: bytes
    base_url: str
    ref: str

    def open_url(self) -> str:
        return f"{self.base_url}/t/o/{sign(self.key, TokenKind.OPEN, self.ref)}.gif"

    def click_url(self, link: int) -> str:
        return f"{self.base_url}/t/c/{sign(self.key, TokenKind.CLICK, self.ref, link)}"

    def unsubscribe_url(self) -> str:
        return f"{self.base_url}/u/{sign(self.key, TokenKind.UNSUBSCRIBE, self.ref)}"


_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_TEXT_URL = re.compile(r"""https?://[^\s<>"'()\[\]]+""")
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


def _trackable(url: str, tracker: Tracker) -> bool:
    # Only web links: mailto:, tel: and anchors stay as written; our own links are not tracked.
    return url.lower().startswith(("http://", "https://")) and not url.startswith(
        tracker.base_url + "/"
    )


class _Links:
    """The message's distinct links, in order of first appearance."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def index(self, url: str) -> int | None:
        if url in self.urls:
            return self.urls.index(url)
        if len(self.urls) >= MAX_LINKS:
            return None
        self.urls.append(url)
        return len(self.urls) - 1


def rewrite_links(
    *, html: str | None, text: str | None, tracker: Tracker
) -> tuple[str | None, str | None, list[str]]:
    """Points every web link of the HTML (href) and text (bare URLs) parts at the click URL.

    Returns:
        The rewritten HTML and text and the original URLs; link N of a click token is `urls[N]`.
    """
    links = _Links()

    def href(match: re.Match[str]) -> str:
        url = html_lib.unescape(match.group(3).strip())
        index = links.index(url) if _trackable(url, tracker) else None
        if index is None:
            return match.group(0)
        quote = match.group(2)
        return f"{match.group(1)}{quote}{tracker.click_url(index)}{quote}"

    def bare(match: re.Match[str]) -> str:
        url = match.group(0).rstrip(".,;:!?")
        index = links.index(url) if _trackable(url, tracker) else None
        if index is None:
            return match.group(0)
        return tracker.click_url(index) + match.group(0)[len(url) :]

    new_html = _HREF.sub(href, html) if html is not None else None
    new_text = _TEXT_URL.sub(bare, text) if text is not None else None
    return new_html, new_text, links.urls


def _before_body_end(html: str, snippet: str) -> str:
    ends = list(_BODY_END.finditer(html))
    if not ends:
        return html + snippet
    at = ends[-1].start()
    return html[:at] + snippet + html[at:]


def add_open_pixel(html: str, tracker: Tracker) -> str:
    """Appends the 1×1 open pixel at the end of the body."""
    pixel = (
        f'<img src="{tracker.open_url()}" width="1" height="1" alt=""'
        ' style="display:block;border:0;width:1px;height:1px">'
    )
    return _before_body_end(html, pixel)


def add_unsubscribe_footer(
    *, html: str | None, text: str | None, url: str
) -> tuple[str | None, str | None]:
    """Adds an unsubscribe line to each part (for templates that do not place one themselves)."""
    if html is not None:
        html = _before_body_end(
            html,
            '<p style="font-size:12px;color:#666">'
            f'<a href="{html_lib.escape(url)}">Unsubscribe</a> from these emails.</p>',
        )
    if text is not None:
        text = f"{text}\n\nUnsubscribe: {url}\n"
    return html, text


# A transparent 1×1 GIF, the smallest image every mail client shows.
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


@dataclass(frozen=True, kw_only=True)
class TrackingConfig:
    """Where tracking links point and what signs them.

    Args:
        key: `Settings.tracking_signing_key()`.
        base_url: `Settings.effective_public_url`.
    """

    key: bytes
    base_url: str

    def tracker(self, ref: str) -> Tracker:
        """The URL builder of one message."""
        return Tracker(key=self.key, base_url=self.base_url.rstrip("/"), ref=ref)


def engage(
    *,
    html: str | None,
    text: str | None,
    tracker: Tracker,
    opens: bool,
    clicks: bool,
    has_unsubscribe: bool,
) -> tuple[str | None, str | None, list[str]]:
    """Makes a rendered marketing email trackable and unsubscribable.

    Args:
        html: The rendered HTML part, if any.
        text: The rendered text part; None derives it from the HTML here, so the unsubscribe
            line and tracked links are in both parts.
        tracker: The message's URL builder.
        opens: Add the open pixel.
        clicks: Rewrite links to click redirects.
        has_unsubscribe: The template placed `{{ unsubscribe_url }}` itself (no footer then).

    Returns:
        (html, text, the original URLs of the click links).
    """
    if text is None and html is not None:
        text = html_to_text(html)
    if not has_unsubscribe:
        html, text = add_unsubscribe_footer(html=html, text=text, url=tracker.unsubscribe_url())
    links: list[str] = []
    if clicks:
        html, text, links = rewrite_links(html=html, text=text, tracker=tracker)
    if opens and html is not None:
        html = add_open_pixel(html, tracker)
    return html, text, links

"""Assembling an email, in one place for flow steps and campaigns.

A marketing email gets tracked links, an open pixel, an unsubscribe line and the one-click
unsubscribe headers (RFC 2369, RFC 8058); a transactional one gets none of it. Then the MIME
message is built, and that is most of the CPU of a send: the `email` package builds and
serialises a tree of objects per message. Every recipient of one template gets the same tree
but for a few headers and the bodies, so the tree is serialised once per template (a
*skeleton*, cached) and each recipient's message is that skeleton with their headers and
quoted-printable bodies put in: bytes joined, not objects built.
"""

from __future__ import annotations

import binascii
import re
from collections import OrderedDict
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.policy import SMTP
from io import BytesIO

from journeys.channels.email import (
    MAX_MESSAGE_BYTES,
    OutgoingEmail,
    PermanentSendError,
    check_recipient,
    envelope_address,
    header_value,
    html_to_text,
    with_preheader,
)
from journeys.channels.tracking import Tracker, engage

# Stand-ins for each recipient's bodies in a skeleton. Quoted-printable leaves them as they
# are, and no quoted-printable body can contain them (an `=` there is always `=XX` or a soft
# line break), nor the MIME boundary (`===…`).
_TEXT = b"@@journeys-text-part@@"
_HTML = b"@@journeys-html-part@@"
_SKELETONS = 256  # templates kept (least recently used dropped)


@dataclass(frozen=True, kw_only=True)
class Engagement:
    """What makes an email marketing: tracking and unsubscribe.

    Args:
        tracker: The message's URL builder.
        opens: Add the open pixel.
        clicks: Rewrite links to click redirects.
        has_unsubscribe: The template places `{{ unsubscribe_url }}` itself (no footer then).
    """

    tracker: Tracker
    opens: bool
    clicks: bool
    has_unsubscribe: bool

    @classmethod
    def of(
        cls, tracker: Tracker, *, opens: bool, clicks: bool, templates: tuple[str | None, ...]
    ) -> Engagement:
        """The engagement of an email written from these templates (before rendering): an
        unsubscribe line is added unless one of them places `{{ unsubscribe_url }}`."""
        placed = any("unsubscribe_url" in (t or "") for t in templates)
        return cls(tracker=tracker, opens=opens, clicks=clicks, has_unsubscribe=placed)


@dataclass(frozen=True)
class _Skeleton:
    """A serialised message without its recipient's headers and bodies: bytes, and the names
    of the slots between them (`text`, `html`, and `cte:text`, `cte:html` for the
    Content-Transfer-Encoding header of each part)."""

    pieces: list[bytes | str]


_cache: OrderedDict[tuple[object, ...], _Skeleton] = OrderedDict()
_QP = b"Content-Transfer-Encoding: quoted-printable\r\n"
_SLOTS = re.compile(b"(" + re.escape(_QP) + b"|" + _TEXT + b"\r\n|" + _HTML + b"\r\n)")


def _skeleton(
    *, sender: str, reply_to: str | None, headers: tuple[tuple[str, str], ...], html: bool
) -> _Skeleton:
    key = (sender, reply_to, headers, html)
    found = _cache.get(key)
    if found is not None:
        _cache.move_to_end(key)
        return found
    msg = EmailMessage()
    msg["From"] = header_value(sender)
    if reply_to:
        msg["Reply-To"] = header_value(reply_to)
    for name, value in headers:
        msg[name] = header_value(value)
    msg.set_content(_TEXT.decode(), cte="quoted-printable")
    if html:
        msg.add_alternative(_HTML.decode(), subtype="html", cte="quoted-printable")
    out = BytesIO()
    BytesGenerator(out, policy=SMTP).flatten(msg)
    pieces: list[bytes | str] = []
    parts = iter(["text", "html"])
    for at, piece in enumerate(_SLOTS.split(out.getvalue())):
        if at % 2 == 0:
            pieces.append(piece)
        elif piece == _QP:
            # Each part's encoding header comes before its content.
            pieces.append(f"cte:{next(parts)}")
        else:
            pieces.append("text" if piece.startswith(_TEXT) else "html")
    made = _Skeleton(pieces)
    _cache[key] = made
    if len(_cache) > _SKELETONS:
        _cache.popitem(last=False)
    return made


def _encoded(text: str) -> tuple[bytes, bytes]:
    """A part's Content-Transfer-Encoding header and content (CRLF line ends).

    ASCII with short lines goes as it is (`7bit`), as the `email` package would send it;
    anything else quoted-printable, which every server takes (no 8BITMIME needed).
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()
    if text.isascii() and max((len(line) for line in lines), default=0) <= 78:
        return b"Content-Transfer-Encoding: 7bit\r\n", "\r\n".join(lines).encode() + b"\r\n"
    body = binascii.b2a_qp("\n".join(lines).encode() + b"\n", istext=True)
    return _QP, body.replace(b"\n", b"\r\n")


def _header(name: str, value: str) -> bytes:
    """One header line; folded and encoded (RFC 2047) by the `email` package when needed."""
    line = f"{name}: {value}\r\n"
    if len(line) <= 80 and value.isascii():
        return line.encode()
    return SMTP.header_factory(name, value).fold(policy=SMTP).encode()


def assemble(
    *,
    sender: str,
    to: str,
    subject: str,
    html: str | None,
    text: str | None,
    message_id: str,
    reply_to: str | None = None,
    preheader: str | None = None,
    headers: dict[str, str] | None = None,
    engagement: Engagement | None = None,
    limit: int = MAX_MESSAGE_BYTES,
) -> OutgoingEmail:
    """Builds one recipient's message from rendered parts.

    Args:
        sender: The `From` header (`Name <address>`); its address is the envelope sender.
        to: The recipient (one plain mailbox).
        subject: The rendered subject (put on one line here).
        html: The rendered HTML part, if any.
        text: The rendered text part; None derives it from the HTML.
        message_id: The `Message-ID`.
        reply_to: The `Reply-To` header, if any.
        preheader: The hidden first line most clients show next to the subject (HTML only).
        headers: Headers every recipient of the template shares (`X-Journeys-…`).
        engagement: Make the email marketing (tracked, unsubscribable); None for transactional.
        limit: The largest message accepted, in bytes.

    Raises:
        PermanentSendError: the recipient is not one valid mailbox, or the message is larger
            than `limit`.
    """
    check_recipient(to)
    shared = dict(headers or {})
    own = {"To": to, "Subject": header_value(subject), "Message-ID": message_id}
    links: list[str] = []
    if engagement is not None:
        html, text, links = engage(
            html=html,
            text=text,
            tracker=engagement.tracker,
            opens=engagement.opens,
            clicks=engagement.clicks,
            has_unsubscribe=engagement.has_unsubscribe,
        )
        # RFC 8058: mailbox providers POST `List-Unsubscribe=One-Click` to this URL. The URL
        # is written as is: encoded words (what the `email` package makes of a long one)
        # are not allowed in this header (RFC 2369).
        own["List-Unsubscribe"] = f"<{engagement.tracker.unsubscribe_url()}>"
        shared["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    skeleton = _skeleton(
        sender=sender,
        reply_to=reply_to,
        headers=tuple(shared.items()),
        html=html is not None,
    )
    head = [
        _header("To", own["To"]),
        _header("Subject", own["Subject"]),
        _header("Message-ID", own["Message-ID"]),
    ]
    if "List-Unsubscribe" in own:
        head.append(f"List-Unsubscribe: {own['List-Unsubscribe']}\r\n".encode())
    plain = text if text is not None else html_to_text(html or "")
    if html is not None:
        html = with_preheader(html, preheader)
    slots: dict[str, bytes] = {}
    for name, content in (("text", plain), ("html", html)):
        if content is not None:
            slots[f"cte:{name}"], slots[name] = _encoded(content)
    parts = head + [p if isinstance(p, bytes) else slots[p] for p in skeleton.pieces]
    data = b"".join(parts)
    if len(data) > limit:
        raise PermanentSendError(f"the message is {len(data)} bytes, more than {limit}")
    return OutgoingEmail(
        envelope_from=envelope_address(sender),
        recipient=to,
        data=data,
        subject=own["Subject"],
        message_id=message_id,
        links=links,
    )

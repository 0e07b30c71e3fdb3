"""Email over SMTP: building MIME messages and handing them to the server."""

from __future__ import annotations

import functools
import hashlib
import html as html_lib
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formataddr, parseaddr
from typing import TYPE_CHECKING, Any

import aiosmtplib

if TYPE_CHECKING:
    from journeys.config import Settings


class PermanentSendError(Exception):
    """The server refused the message for good (5xx): retrying cannot help.

    Attributes:
        bounce: The refusal was about the recipient or the message (RCPT or DATA), so it is a
            hard bounce; a refused sender or login says nothing about the contact.
    """

    def __init__(self, message: str, *, bounce: bool = False) -> None:
        super().__init__(message)
        self.bounce = bounce


class TransientSendError(Exception):
    """The server or network failed for now (4xx, timeout): a retry may succeed.

    Attributes:
        bounce: The recipient's server deferred this recipient or message (4xx on RCPT or
            DATA): a soft bounce. Network errors and busy servers are not.
    """

    def __init__(self, message: str, *, bounce: bool = False) -> None:
        super().__init__(message)
        self.bounce = bounce


class UncertainSendError(TransientSendError):
    """The connection failed after the message was handed over, before the server's answer.

    The server may have accepted the message (SMTP's one window where that cannot be known,
    RFC 1047): a retry may deliver it twice.
    """


# Called once the server agreed to the envelope, just before the message content goes out.
Handover = Callable[[], Awaitable[None]]


class _SMTP(aiosmtplib.SMTP):
    """aiosmtplib's client, telling the caller when the DATA phase starts.

    Everything before DATA (connect, MAIL, RCPT) either fails without the server having the
    message or is refused with a code; from DATA on, a lost connection leaves acceptance unknown.
    """

    handover: Handover | None = None

    async def data(self, message: str | bytes, /, **kwargs: Any) -> aiosmtplib.SMTPResponse:
        if self.handover is not None:
            await self.handover()
        return await super().data(message, **kwargs)


@dataclass(frozen=True, kw_only=True)
class OutgoingEmail:
    """One recipient's message as it goes on the wire (see `journeys.channels.assembly`).

    Attributes:
        envelope_from: The SMTP `MAIL FROM` address.
        recipient: The SMTP `RCPT TO` address (the `To` header).
        data: The message (CRLF line ends, 7-bit).
        subject: The subject as sent (on one line).
        message_id: The `Message-ID`.
        links: The original URLs of the click links; link N of a click token is `links[N]`.
    """

    envelope_from: str
    recipient: str
    data: bytes
    subject: str
    message_id: str
    links: list[str]


@dataclass(frozen=True, kw_only=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        """The SMTP connection settings of `JOURNEYS_SMTP_*`."""
        password = settings.smtp_password
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=password.get_secret_value() if password else None,
            starttls=settings.smtp_starttls,
            timeout=settings.smtp_timeout_seconds,
        )


def message_id_for(idempotency_key: str, from_address: str) -> str:
    """A Message-ID derived from the send's key, so every retry carries the same one."""
    domain = envelope_address(from_address).rpartition("@")[2] or "localhost"
    return f"<{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}@{domain}>"


@functools.lru_cache(maxsize=256)
def envelope_address(sender: str) -> str:
    """The address of a `Name <address>` header (the envelope sender); cached, as a campaign
    asks it for every recipient of the same sender."""
    return parseaddr(sender)[1]


_TAG = re.compile(r"<[^>]+>")
_BLOCK = re.compile(r"</(p|div|h[1-6]|li|tr)>|<br\s*/?>", re.IGNORECASE)


def html_to_text(source: str) -> str:
    """A readable plain-text part for clients that do not show HTML."""
    text = _BLOCK.sub("\n", source)
    text = html_lib.unescape(_TAG.sub("", text))
    lines = [line.strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line).strip()


# What ends a line somewhere: CR, LF and what `str.splitlines` (and so the email package and
# many clients) also breaks on, such as U+2028/U+2029. None of it may reach a header.
_LINE_BREAKS = re.compile("[\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029]+")
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f]")
MAX_MESSAGE_BYTES = 10 * 1024 * 1024


def header_value(value: str) -> str:
    """A header value on one line: line breaks become a space, other controls go.

    A merge tag such as `{{ contact.first_name }}` in a subject carries whatever the contact
    typed; a newline there would fail every send (or, elsewhere, inject headers).
    """
    return _CONTROLS.sub("", _LINE_BREAKS.sub(" ", value)).strip()


# Dot-atoms of common characters on both sides: addresses the full parse below always accepts
# as they are (tests/unit/test_recipient_check.py checks that), so it is skipped for them.
_PLAIN_MAILBOX = re.compile(
    r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*", re.ASCII
)


def check_recipient(address: str) -> None:
    """Refuses anything but one plain mailbox (`a@b.example`), for good.

    Raises:
        PermanentSendError: empty, several addresses, a display name, or not parseable.
    """
    if _PLAIN_MAILBOX.fullmatch(address):
        return  # the parse costs more than the rest of assembling a campaign email
    parse_recipient(address)


def parse_recipient(address: str) -> None:
    """`check_recipient` by the `email` package's full parse, for any address.

    Raises:
        PermanentSendError: empty, several addresses, a display name, or not parseable.
    """
    if header_value(address) != address or not address:
        raise PermanentSendError(f"invalid recipient address {address!r}")
    try:
        parsed = Address(addr_spec=address)
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise PermanentSendError(f"invalid recipient address {address!r}: {exc}") from exc
    if parsed.addr_spec != address or not parsed.domain or not parsed.username:
        raise PermanentSendError(f"invalid recipient address {address!r}")


def check_size(message: EmailMessage, limit: int = MAX_MESSAGE_BYTES) -> None:
    """Refuses, for good, a message larger than `limit` bytes (servers refuse them anyway).

    Raises:
        PermanentSendError: the message is too large.
    """
    size = len(message.as_bytes())
    if size > limit:
        raise PermanentSendError(f"the message is {size} bytes, more than {limit}")


def build_message(
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
) -> EmailMessage:
    """Builds a text (+ HTML alternative) message.

    The preheader is the hidden first line most clients show next to the subject. Header
    values are put on one line (`header_value`).

    Raises:
        PermanentSendError: the recipient is not one valid mailbox.
    """
    check_recipient(to)
    msg = EmailMessage()
    msg["From"] = header_value(sender)
    msg["To"] = to
    msg["Subject"] = header_value(subject)
    msg["Message-ID"] = message_id
    if reply_to:
        msg["Reply-To"] = header_value(reply_to)
    for name, value in (headers or {}).items():
        msg[name] = header_value(value)
    plain = text if text is not None else html_to_text(html or "")
    msg.set_content(plain)
    if html is not None:
        msg.add_alternative(with_preheader(html, preheader), subtype="html")
    return msg


def with_preheader(html: str, preheader: str | None) -> str:
    """The HTML with the preheader, hidden, in front (the line clients show by the subject)."""
    if not preheader:
        return html
    hidden = (
        f'<div style="display:none;max-height:0;overflow:hidden">{html_lib.escape(preheader)}</div>'
    )
    return hidden + html


@functools.lru_cache(maxsize=256)  # pure, and asked again for every recipient of a campaign
def resolve_sender(name: str | None, address: str | None, default_from: str) -> str:
    """The `From` of a send: its own name and address, each falling back to the default's."""
    default_name, default_address = parseaddr(default_from)
    return format_sender(name or default_name or None, address or default_address)


def format_sender(name: str | None, address: str) -> str:
    """`Name <address>`, or the address alone."""
    return formataddr((header_value(name), address)) if name else address


class EmailSender:
    """Sends messages to one SMTP server, reusing a few open connections.

    Opening a connection costs a TCP handshake, the greeting, EHLO (and STARTTLS and AUTH
    when configured) and QUIT: several round trips and most of the CPU of a small send, on
    both sides. So up to `pool_size` connections stay open and are reused; one that saw an
    error, or was idle longer than `max_idle` seconds (servers drop idle clients), is closed
    instead. `pool_size=0` opens one connection per message.
    """

    def __init__(self, config: SmtpConfig, *, pool_size: int = 10, max_idle: float = 30.0) -> None:
        self._config = config
        self._pool_size = pool_size
        self._max_idle = max_idle
        self._idle: list[tuple[_SMTP, float]] = []

    @property
    def pool_size(self) -> int:
        """How many connections stay open for reuse (0: one per message)."""
        return self._pool_size

    async def send(
        self, message: EmailMessage | OutgoingEmail, *, on_handover: Handover | None = None
    ) -> None:
        """Hands the message to the server.

        Args:
            message: A message object, or one already serialised (`OutgoingEmail`).
            on_handover: Awaited after the server agreed to the envelope and before the DATA
                command; if it raises, nothing is handed over and the exception propagates.

        Raises:
            PermanentSendError: every recipient or the message was refused with a 5xx.
            UncertainSendError: the connection failed once the message was being handed over.
            TransientSendError: anything else a retry may fix.
        """
        client = self._take_idle()
        handed_over = False

        async def handover() -> None:
            nonlocal handed_over
            if on_handover is not None:
                await on_handover()
            handed_over = True

        try:
            if client is None:
                client = await self._connect()
            client.handover = handover
            if isinstance(message, OutgoingEmail):
                await client.sendmail(message.envelope_from, [message.recipient], message.data)
            else:
                await client.send_message(message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            self._discard(client)
            codes = [r.code for r in exc.recipients]
            if all(500 <= c < 600 for c in codes):
                raise PermanentSendError(str(exc), bounce=True) from exc
            raise TransientSendError(str(exc), bounce=True) from exc
        except aiosmtplib.SMTPResponseException as exc:
            self._discard(client)
            about_message = isinstance(exc, aiosmtplib.SMTPDataError)
            if 500 <= exc.code < 600:
                raise PermanentSendError(f"{exc.code} {exc.message}", bounce=about_message) from exc
            raise TransientSendError(f"{exc.code} {exc.message}", bounce=about_message) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self._discard(client)
            if handed_over:
                raise UncertainSendError(f"connection lost during DATA: {exc!r}") from exc
            raise TransientSendError(str(exc)) from exc
        except BaseException:  # cancelled mid-conversation: the connection is in no known state
            self._discard(client)
            raise
        client.handover = None
        await self._give_back(client)

    async def aclose(self) -> None:
        """Closes the idle connections (politely, with QUIT)."""
        idle, self._idle = self._idle, []
        for client, _ in idle:
            await self._quit(client)

    async def _connect(self) -> _SMTP:
        cfg = self._config
        client = _SMTP(
            hostname=cfg.host, port=cfg.port, timeout=cfg.timeout, start_tls=cfg.starttls
        )
        await client.connect()
        if cfg.username and cfg.password:
            await client.login(cfg.username, cfg.password)
        return client

    def _take_idle(self) -> _SMTP | None:
        now = time.monotonic()
        while self._idle:
            client, since = self._idle.pop()
            if client.is_connected and now - since < self._max_idle:
                return client
            self._discard(client)
        return None

    async def _give_back(self, client: _SMTP) -> None:
        if len(self._idle) < self._pool_size and client.is_connected:
            self._idle.append((client, time.monotonic()))
        else:
            await self._quit(client)

    @staticmethod
    async def _quit(client: aiosmtplib.SMTP) -> None:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()

    @staticmethod
    def _discard(client: aiosmtplib.SMTP | None) -> None:
        if client is not None:
            client.close()

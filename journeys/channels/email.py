"""Email over SMTP: building MIME messages and handing them to the server."""

from __future__ import annotations

import hashlib
import html as html_lib
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, parseaddr

import aiosmtplib


class PermanentSendError(Exception):
    """The server refused the message for good (5xx): retrying cannot help."""


class TransientSendError(Exception):
    """The server or network failed for now (4xx, timeout): a retry may succeed."""


@dataclass(frozen=True, kw_only=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 30.0


def message_id_for(idempotency_key: str, from_address: str) -> str:
    """A Message-ID derived from the send's key, so every retry carries the same one."""
    domain = parseaddr(from_address)[1].rpartition("@")[2] or "localhost"
    return f"<{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}@{domain}>"


_TAG = re.compile(r"<[^>]+>")
_BLOCK = re.compile(r"</(p|div|h[1-6]|li|tr)>|<br\s*/?>", re.IGNORECASE)


def html_to_text(source: str) -> str:
    """A readable plain-text part for clients that do not show HTML."""
    text = _BLOCK.sub("\n", source)
    text = html_lib.unescape(_TAG.sub("", text))
    lines = [line.strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line).strip()


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

    The preheader is the hidden first line most clients show next to the subject.
    """
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    if reply_to:
        msg["Reply-To"] = reply_to
    for name, value in (headers or {}).items():
        msg[name] = value
    plain = text if text is not None else html_to_text(html or "")
    msg.set_content(plain)
    if html is not None:
        if preheader:
            hidden = (
                '<div style="display:none;max-height:0;overflow:hidden">'
                f"{html_lib.escape(preheader)}</div>"
            )
            html = hidden + html
        msg.add_alternative(html, subtype="html")
    return msg


def format_sender(name: str | None, address: str) -> str:
    """`Name <address>`, or the address alone."""
    return formataddr((name, address)) if name else address


class EmailSender:
    """Sends messages to one SMTP server."""

    def __init__(self, config: SmtpConfig) -> None:
        self._config = config

    async def send(self, message: EmailMessage) -> None:
        """Hands the message to the server.

        Raises:
            PermanentSendError: every recipient or the message was refused with a 5xx.
            TransientSendError: anything a retry may fix.
        """
        cfg = self._config
        try:
            await aiosmtplib.send(
                message,
                hostname=cfg.host,
                port=cfg.port,
                username=cfg.username,
                password=cfg.password,
                start_tls=cfg.starttls,
                timeout=cfg.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            if all(500 <= c < 600 for c in codes):
                raise PermanentSendError(str(exc)) from exc
            raise TransientSendError(str(exc)) from exc
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600:
                raise PermanentSendError(f"{exc.code} {exc.message}") from exc
            raise TransientSendError(f"{exc.code} {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise TransientSendError(str(exc)) from exc

"""A local SMTP server that accepts every message and keeps it as an `.eml` file."""

from __future__ import annotations

import email
import email.policy
import itertools
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class CaughtMail:
    """One accepted message."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    received_at: float
    path: Path | None

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def body(self, subtype: str = "plain") -> str:
        part = self.message.get_body(preferencelist=(subtype,))
        return part.get_content() if part is not None else ""


class CatchingHandler:
    """The aiosmtpd handler that keeps every message (subclass it to refuse some)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.messages: list[CaughtMail] = []
        self._seq = itertools.count(1)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        path = None
        if self.folder is not None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            path = self.folder / f"{stamp}-{next(self._seq):06d}.eml"
            path.write_bytes(raw)
        self.messages.append(
            CaughtMail(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                message=message,  # type: ignore[arg-type]
                received_at=time.time(),
                path=path,
            )
        )
        return "250 Message accepted for delivery"


class MailCatcher:
    """SMTP on `host:port` in a background thread; messages in memory and, if given, on disk.

    Args:
        folder: Where to write one `.eml` per message; None keeps them in memory only.
        handler: The SMTP handler (tests pass one that refuses some recipients).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int,
        folder: Path | None = None,
        handler: CatchingHandler | None = None,
    ) -> None:
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        self._handler = handler or CatchingHandler(folder)
        self._controller = Controller(self._handler, hostname=host, port=port, ready_timeout=10)
        self.host, self.port = host, port

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    @property
    def messages(self) -> list[CaughtMail]:
        return list(self._handler.messages)

    def to(self, address: str) -> list[CaughtMail]:
        """Messages for one recipient, in arrival order."""
        return [m for m in self._handler.messages if address in m.rcpt_tos]

    def __enter__(self) -> MailCatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

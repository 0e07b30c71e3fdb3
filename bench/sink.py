"""An SMTP sink in its own process that records when it accepted each message, for whom.

Run as `python -m bench.sink --port P --out FILE`. Every accepted message appends one line
`<epoch seconds>\t<recipient>\t<Message-ID>` per recipient to FILE, before the sink answers 250
to DATA: that is what "the email left" means for latency and lateness, and the Message-ID lets
the crash test (`bench.chaos`) tell a second copy of one email from the next email.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
from pathlib import Path
from typing import IO

from aiosmtpd.smtp import SMTP, Envelope, Session

from bench.procs import signal_ready, wall

_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)


def message_id(content: bytes) -> str:
    """The Message-ID header of a raw message, or "" without one."""
    headers = content.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    found = _MESSAGE_ID.search(headers)
    return found.group(1).decode("ascii", "replace") if found else ""


class _Recorder:
    def __init__(self, out: IO[str]) -> None:
        self._out = out

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        accepted = wall()
        raw = envelope.original_content or envelope.content or b""
        mid = message_id(raw if isinstance(raw, bytes) else raw.encode())
        # One write per message; line buffering hands it to the OS at once for the reader.
        self._out.write("".join(f"{accepted:.6f}\t{rcpt}\t{mid}\n" for rcpt in envelope.rcpt_tos))
        return "250 Message accepted for delivery"


async def serve(host: str, port: int, out_path: Path) -> None:
    """Serves SMTP until SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with open(out_path, "a", buffering=1) as out:
        recorder = _Recorder(out)
        server = await loop.create_server(
            lambda: SMTP(recorder, hostname="bench-sink", ident="bench-sink"), host, port
        )
        signal_ready()
        await stop.wait()
        server.close()
        await server.wait_closed()


class SinkLog:
    """Reads what a sink recorded, incrementally."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = ""
        self.accepted: dict[str, float] = {}

    def refresh(self) -> int:
        """Reads new lines; returns how many recipients were accepted so far."""
        if not self.path.exists():
            return 0
        with open(self.path, encoding="utf-8") as f:
            f.seek(self._offset)
            chunk = f.read()
            self._offset = f.tell()
        lines = (self._partial + chunk).split("\n")
        self._partial = lines.pop()  # an incomplete last line waits for the next read
        for line in lines:
            stamp, rcpt = line.split("\t")[:2]
            # The first acceptance counts: a retried send must not look faster.
            self.accepted.setdefault(rcpt, float(stamp))
        return len(self.accepted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.out))


if __name__ == "__main__":
    main()

"""Helpers for the child processes the embedded services run as."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path


def free_port() -> int:
    """A TCP port nothing listens on right now (for tests and benchmarks)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    """True if something accepts TCP connections on host:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def find_binary(name: str) -> str:
    """A console binary shipped by a pip package: beside this Python first, then on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found; install the project (make dev) first")
    return found


async def wait_until(
    check: Callable[[], Awaitable[bool]],
    *,
    timeout: float,
    what: str,
    process: asyncio.subprocess.Process | None = None,
    log: Path | None = None,
) -> None:
    """Polls `check` until it is true.

    Raises:
        RuntimeError: the process died or the deadline passed; the message ends with the log.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.returncode is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}{_tail(log)}")
        if await check():
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout:.0f}s{_tail(log)}")
        await asyncio.sleep(0.1)  # poll interval


async def terminate(
    process: asyncio.subprocess.Process, *, sig: int = signal.SIGTERM, grace: float = 20
) -> None:
    """Stops a child politely, then by force after `grace` seconds."""
    if process.returncode is not None:
        return
    try:
        process.send_signal(sig)
        await asyncio.wait_for(process.wait(), grace)
    except ProcessLookupError:
        return
    except TimeoutError:
        process.kill()
        await process.wait()


def _tail(log: Path | None, lines: int = 30) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return "\n--- " + str(log) + " ---\n" + "\n".join(text)


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def dies_with_parent(args: list[str], *, sig: str = "TERM") -> list[str]:
    """Wraps a command so the kernel signals it when this process dies, even by SIGKILL.

    Embedded servers run in their own session (Ctrl-C is ours to handle), so without this a
    killed `journeys dev` or test run would leave them behind. Uses util-linux `setpriv` where
    there is one; elsewhere the command runs as given.
    """
    setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    return [setpriv, f"--pdeathsig={sig}", "--", *args] if setpriv else args

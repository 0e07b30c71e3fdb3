"""Child processes of a benchmark: started in their own session, measured, always stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

from journeys.embedded.process import terminate

READY = "READY"


class Child:
    """One child process that prints `READY` on stdout once it serves.

    Args:
        name: Short name for logs and reports (`gateway`, `worker-1`, ...).
        args: Command line.
        env: Full environment of the child.
        log: File that receives the child's stderr.
    """

    def __init__(
        self, name: str, args: Sequence[str], *, env: Mapping[str, str], log: Path
    ) -> None:
        self.name = name
        self.args = list(args)
        self.env = dict(env)
        self.log = log
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was not started"
        return self.process.pid

    async def start(self, *, timeout: float = 60) -> None:
        """Starts the child and waits for its `READY` line.

        Raises:
            RuntimeError: it exited or stayed silent; the message ends with its log.
        """
        with open(self.log, "ab") as err:
            self.process = await asyncio.create_subprocess_exec(
                *self.args,
                env=self.env,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                start_new_session=True,  # a Ctrl-C in the terminal reaches the driver only
            )
        assert self.process.stdout is not None
        try:
            while True:
                line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
                if not line:
                    raise RuntimeError(f"{self.name} exited with {await self.process.wait()}")
                if line.decode().strip() == READY:
                    return
        except (RuntimeError, TimeoutError) as exc:
            await self.stop()
            tail = self.log.read_text(errors="replace").splitlines()[-40:]
            raise RuntimeError(f"{self.name} did not start: {exc!r}\n" + "\n".join(tail)) from exc

    async def stop(self, *, grace: float = 30) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds; returns the exit code."""
        if self.process is None:
            return None
        await terminate(self.process, sig=signal.SIGTERM, grace=grace)
        return self.process.returncode

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def rss_bytes(self) -> int:
        """Resident memory of the process and its children."""
        return sum(p.memory_info().rss for p in _tree(self.pid))

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the process and its live children."""
        return cpu_seconds(self.pid)


def python_child(name: str, module: str, *args: str, env: Mapping[str, str], log: Path) -> Child:
    """A child running `python -m module args` with this interpreter."""
    return Child(name, [sys.executable, "-m", module, *args], env=env, log=log)


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(pid: int, *, children: bool = True) -> float:
    """User + system CPU seconds of a process and (by default) its live children."""
    total = 0.0
    procs = _tree(pid) if children else _tree(pid)[:1]
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def leftover_children() -> list[str]:
    """Descriptions of this process's children still alive (empty = everything stopped)."""
    found = []
    for proc in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                found.append(f"{proc.pid} {' '.join(proc.cmdline()[:4])}")
        except psutil.NoSuchProcess:
            continue
    return found


def signal_ready() -> None:
    """Tells the parent (see `Child.start`) that this process serves."""
    print(READY, flush=True)


def wall() -> float:
    """Wall-clock seconds since the epoch: comparable across the processes of this machine."""
    return time.time()

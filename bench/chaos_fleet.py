"""Worker processes kept alive as a process manager would keep them, and killed on purpose."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from activities.faults import AFTER_SMTP_ACCEPTANCE
from bench.procs import Child
from bench.visibility import wait_for


class Fleet:
    """Restarts every worker that dies (like systemd's `Restart=always`) and kills them on demand.

    Args:
        workers: Started worker processes, run with `JOURNEYS_CHAOS_KILL_FILE=kill_base`.
        kill_base: The fault hook's file prefix (see `activities.faults`).
    """

    def __init__(self, workers: list[Child], *, kill_base: Path) -> None:
        self.workers = workers
        self.kill_base = kill_base
        self.deaths: list[float] = []  # monotonic time each death was seen
        self._up = {child.name: True for child in workers}
        self._stopping = False
        self._tasks = [asyncio.create_task(self._supervise(child)) for child in workers]

    async def _supervise(self, child: Child) -> None:
        while True:
            assert child.process is not None
            await child.process.wait()
            if self._stopping:
                return
            self.deaths.append(time.monotonic())
            self._up[child.name] = False
            await child.start(timeout=90)
            self._up[child.name] = True

    def check(self) -> None:
        """Raises the error of a worker that could not be restarted."""
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise RuntimeError("a worker could not be restarted") from task.exception()

    def all_up(self) -> bool:
        self.check()
        return all(self._up.values())

    async def wait_all_up(self, *, timeout: float) -> None:
        await wait_for(self.all_up, timeout=timeout, what="every worker running")

    async def kill(self, child: Child, *, timeout: float) -> float:
        """SIGKILLs one worker; returns when its death was seen (monotonic time)."""
        before = len(self.deaths)
        os.kill(child.pid, signal.SIGKILL)
        await wait_for(lambda: len(self.deaths) > before, timeout=timeout, what="the kill")
        return self.deaths[before]

    async def kill_mid_send(self, *, timeout: float) -> float | None:
        """Arms the fault hook: the next worker whose send the SMTP sink accepted dies before
        recording it. Returns when that death was seen, or None (disarmed) if no send came by.
        """
        before = len(self.deaths)
        armed = Path(f"{self.kill_base}.{AFTER_SMTP_ACCEPTANCE}")
        armed.touch()
        try:
            await wait_for(lambda: len(self.deaths) > before, timeout=timeout, what="a send")
        except TimeoutError:
            armed.unlink(missing_ok=True)
            if len(self.deaths) == before:  # it could have fired as the wait ended
                return None
        return self.deaths[before]

    async def close(self) -> None:
        """Stops restarting and stops every worker."""
        self._stopping = True
        # Cancel first: a restart cut short leaves its new process in `child.process`, which
        # `stop` then ends.
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(child.stop() for child in self.workers))

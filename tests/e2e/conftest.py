"""`journeys dev` as users run it: a subprocess with its own home and ports."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from journeys.embedded.process import find_binary, free_port, port_open


class DevStack:
    """Starts and stops `journeys dev` on free ports, keeping data in `home`."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.ports = {
            name: free_port()
            for name in (
                "API_PORT",
                "TEMPORAL_PORT",
                "TEMPORAL_UI_PORT",
                "SMTP_PORT",
                "POSTGRES_PORT",
            )
        }
        self.env = {
            **os.environ,
            "JOURNEYS_HOME": str(home),
            **{f"JOURNEYS_{k}": str(v) for k, v in self.ports.items()},
        }
        for name in ("JOURNEYS_DATABASE_URL", "JOURNEYS_TEMPORAL_ADDRESS"):
            self.env.pop(name, None)
        self.process: asyncio.subprocess.Process | None = None
        self.output: list[str] = []

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['API_PORT']}"

    @property
    def key(self) -> str:
        return (self.home / "dev-api-key").read_text().strip()

    async def start(self, timeout: float = 120) -> None:
        self.process = await asyncio.create_subprocess_exec(
            find_binary("journeys"),
            "dev",
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert self.process.stdout is not None

        async def until_ready() -> None:
            while True:
                line = await self.process.stdout.readline()  # type: ignore[union-attr]
                if not line:
                    raise AssertionError("journeys dev exited:\n" + "".join(self.output))
                self.output.append(line.decode(errors="replace"))
                if b"Press Ctrl-C to stop." in line:
                    return

        await asyncio.wait_for(until_ready(), timeout)
        self._drain = asyncio.create_task(self._keep_reading())

    async def _keep_reading(self) -> None:
        assert self.process and self.process.stdout
        async for line in self.process.stdout:
            self.output.append(line.decode(errors="replace"))

    async def stop(self, timeout: float = 60) -> int:
        """Ctrl-C, as a user would; returns the exit code."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError as err:
                self.process.kill()
                await self.process.wait()
                raise AssertionError(
                    "journeys dev did not stop on Ctrl-C:\n" + "".join(self.output)
                ) from err
        await self._drain
        return self.process.returncode

    def ports_still_open(self) -> list[str]:
        """Names of ports something still listens on (empty = everything stopped)."""
        return [name for name, port in self.ports.items() if port_open("127.0.0.1", port)]


@pytest.fixture
async def dev_stack(tmp_path: Path) -> AsyncIterator[DevStack]:
    stack = DevStack(tmp_path / "home")
    yield stack
    if stack.process is not None and stack.process.returncode is None:
        await stack.stop()


@pytest.fixture(scope="module")
async def module_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevStack]:
    """A stack that lives for the whole module, so a slow timer can run beside other tests."""
    stack = DevStack(tmp_path_factory.mktemp("module") / "home")
    yield stack
    if stack.process is not None and stack.process.returncode is None:
        await stack.stop()

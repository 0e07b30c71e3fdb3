"""`journeys dev`: the whole stack in one process tree, data kept under JOURNEYS_HOME."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import asyncpg
import uvicorn

from journeys.config import Settings
from journeys.embedded.mailcatcher import MailCatcher
from journeys.embedded.postgres import EmbeddedPostgres
from journeys.embedded.temporal import DevTemporalServer
from journeys.store import apikeys
from journeys.store.migrate import migrate
from journeys.wiring import open_core

log = logging.getLogger("journeys.dev")


class _Server(uvicorn.Server):
    # The dev stack owns SIGINT/SIGTERM and stops every part itself.
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def, override]
        yield


async def ensure_dev_api_key(dsn: str, home: Path) -> tuple[str, bool]:
    """The key in `home/dev-api-key`, created on first start.

    Returns:
        The key and whether it was created now.
    """
    path = home / "dev-api-key"
    if path.exists():
        return path.read_text().strip(), False
    conn = await asyncpg.connect(dsn)
    try:
        key = await apikeys.create(conn, "dev")
    finally:
        await conn.close()
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key, True


async def run_dev(settings: Settings) -> None:
    """Starts every part, prints where to find them, and runs until SIGINT/SIGTERM."""
    from api.app import create_app
    from workers.worker import build_worker

    if settings.sms_provider == "none":
        # Locally, texts go to an outbox file, so SMS flows can be tried without a provider.
        settings = settings.model_copy(update={"sms_provider": "outbox"})
    home = settings.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async with AsyncExitStack() as stack:
        if settings.database_url is None:
            postgres = EmbeddedPostgres(home / "postgres", port=settings.postgres_port)
            await postgres.start()
            stack.push_async_callback(postgres.stop)
            log.info("postgres ready on port %s", settings.postgres_port)
        if settings.temporal_address is None:
            temporal = DevTemporalServer(
                db_file=home / "temporal.db",
                port=settings.temporal_port,
                ui_port=settings.temporal_ui_port,
                namespace=settings.temporal_namespace,
                log_file=home / "temporal.log",
            )
            await temporal.start()
            stack.push_async_callback(temporal.stop)
            log.info("temporal ready on %s", temporal.address)

        dsn = settings.effective_database_url
        applied = await migrate(dsn)
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        key, created = await ensure_dev_api_key(dsn, home)

        catcher = MailCatcher(
            host=settings.smtp_host, port=settings.smtp_port, folder=home / "mail"
        )
        catcher.start()
        stack.callback(catcher.stop)

        core = await stack.enter_async_context(open_core(settings))
        await stack.enter_async_context(build_worker(core))

        server = _Server(
            uvicorn.Config(
                create_app(settings),
                host=settings.api_host,
                port=settings.api_port,
                log_level="warning",
                lifespan="on",
            )
        )
        api_task = asyncio.create_task(server.serve())

        async def _stop_api() -> None:
            server.should_exit = True
            await api_task

        stack.push_async_callback(_stop_api)
        while not server.started:
            if api_task.done():
                api_task.result()
                raise RuntimeError("the API stopped during start-up")
            await asyncio.sleep(0.05)  # poll until uvicorn is listening

        _banner(settings, key, created)
        await stop.wait()
        print("\nStopping…", file=sys.stderr, flush=True)


def _banner(settings: Settings, key: str, created: bool) -> None:
    api = f"http://{settings.api_host}:{settings.api_port}"
    lines = [
        "",
        "temporal-journeys is running",
        f"  API          {api}",
        f"  API docs     {api}/docs   (OpenAPI: {api}/openapi.json)",
    ]
    if settings.temporal_address is None:
        lines.append(f"  Temporal UI  http://127.0.0.1:{settings.temporal_ui_port}")
    else:
        lines.append(f"  Temporal     {settings.temporal_address}")
    outbox = (
        f"  → {settings.home / 'sms' / 'outbox.jsonl'}" if settings.sms_provider == "outbox" else ""
    )
    lines += [
        f"  Mail catcher smtp://{settings.smtp_host}:{settings.smtp_port}  → {settings.home / 'mail'}",
        f"  SMS          {settings.sms_provider}{outbox}",
        f"  API key      {key}"
        + ("   (new; saved in " if created else "   (from ")
        + f"{settings.home / 'dev-api-key'})",
        "",
        "Press Ctrl-C to stop.",
    ]
    print("\n".join(lines), flush=True)

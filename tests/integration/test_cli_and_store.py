"""Production commands and the migration runner."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import asyncpg
import httpx

from journeys.config import Settings
from journeys.embedded.process import find_binary
from journeys.store.migrate import migrate, migration_files


def _journeys(settings: Settings, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JOURNEYS_DATABASE_URL": settings.effective_database_url}
    return subprocess.run(
        [find_binary("journeys"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,
    )


async def test_migrations_are_idempotent_and_safe_in_parallel(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    results = await asyncio.gather(*(migrate(settings.effective_database_url) for _ in range(3)))
    assert results == [[], [], []]
    applied = [
        r["name"] for r in await pool.fetch("SELECT name FROM schema_migrations ORDER BY name")
    ]
    assert applied == [name for name, _ in migration_files()]


async def test_migrate_command_reports_nothing_to_do(settings: Settings) -> None:
    result = await asyncio.to_thread(_journeys, settings, "migrate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "applied 0 migration(s)"


async def test_apikey_create_prints_only_a_working_key(
    settings: Settings, pool: asyncpg.Pool, app_client: httpx.AsyncClient
) -> None:
    result = await asyncio.to_thread(_journeys, settings, "apikey", "create", "ci-bot")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("jrn_")
    stored = await pool.fetchrow("SELECT key_hash, prefix FROM api_keys WHERE name = 'ci-bot'")
    assert stored["key_hash"] != lines[0] and lines[0] not in stored["key_hash"]
    response = await app_client.post(
        "/v1/audiences",
        json={"name": "via new key"},
        headers={"Authorization": f"Bearer {lines[0]}"},
    )
    assert response.status_code == 201


async def test_flow_apply_prints_id_and_reports_problems(
    settings: Settings,
    app_client: httpx.AsyncClient,
    audience_id: str,
    api_key: str,
    tmp_path: Path,
) -> None:
    # The CLI talks HTTP; serve the same app on a real port for it.
    import uvicorn

    from api.app import create_app
    from journeys.embedded.process import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.05)  # poll until listening
        good = tmp_path / "good.yaml"
        good.write_text(
            f'name: From file\naudience_id: "{audience_id}"\n'
            "triggers: [{type: tag_added, tag: t}]\n"
            "steps: [{id: a, type: send_email, subject: Hi, text: hello}]\n"
        )
        bad = tmp_path / "bad.yaml"
        bad.write_text(good.read_text().replace("send_email", "send_fax"))
        common = ("--api-url", f"http://127.0.0.1:{port}", "--api-key", api_key)
        ok = await asyncio.to_thread(_journeys, settings, "flow", "apply", "-f", str(good), *common)
        assert ok.returncode == 0, ok.stderr
        flow_id = ok.stdout.strip()
        assert (await app_client.get(f"/v1/flows/{flow_id}")).json()["name"] == "From file"
        exported = await asyncio.to_thread(_journeys, settings, "flow", "export", flow_id, *common)
        assert "name: From file" in exported.stdout
        # Applying the file again (edited) updates the flow of that name instead of adding one.
        good.write_text(good.read_text().replace("subject: Hi", "subject: Hello again"))
        again = await asyncio.to_thread(
            _journeys, settings, "flow", "apply", "-f", str(good), "--activate", *common
        )
        assert again.stdout.strip() == flow_id, again.stderr
        flow = (await app_client.get(f"/v1/flows/{flow_id}")).json()
        assert (flow["status"], flow["definition"]["steps"][0]["subject"]) == (
            "active",
            "Hello again",
        )
        failed = await asyncio.to_thread(
            _journeys, settings, "flow", "apply", "-f", str(bad), *common
        )
        assert failed.returncode == 1
        assert "steps[0].type" in failed.stderr
    finally:
        server.should_exit = True
        await task

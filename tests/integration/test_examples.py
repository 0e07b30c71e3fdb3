"""Every flow in examples/flows/ validates, through the API and through `journeys flow validate`."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from api.app import create_app
from journeys import flowfile
from journeys.config import Settings
from journeys.embedded.process import find_binary, free_port

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "flows").glob("*.yaml"))


def test_the_library_has_the_promised_examples() -> None:
    assert {p.stem for p in EXAMPLES} >= {
        "welcome-series",
        "abandoned-cart",
        "birthday",
        "win-back",
        "unopened-resend",
        "order-confirmation",
        "sms-keyword-optin",
        "eventbrite-followup",
    }


@pytest.fixture(scope="module")
async def env(app_client: httpx.AsyncClient) -> dict[str, str]:
    audience = (await app_client.post("/v1/audiences", json={"name": "Examples"})).json()["id"]
    campaign = (
        await app_client.post(
            "/v1/campaigns", json={"audience_id": audience, "name": "Autumn", "subject": "Autumn"}
        )
    ).json()["id"]
    return {"AUDIENCE_ID": audience, "CAMPAIGN_ID": campaign, "EVENTBRITE_EVENT_ID": "512345678"}


@pytest.fixture(scope="module")
async def api_url(settings: Settings) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)  # poll until listening
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
async def test_example_is_valid(
    app_client: httpx.AsyncClient, env: dict[str, str], path: Path
) -> None:
    text = path.read_text()
    for name, value in env.items():
        text = text.replace("${" + name + "}", value)
    report = (await app_client.post("/v1/flows/validate", json=flowfile.load(text))).json()
    assert report == {"valid": True, "violations": []}


async def test_cli_validate_expands_variables_and_reports(
    env: dict[str, str], api_url: str, api_key: str, tmp_path: Path
) -> None:
    run_env = {**os.environ, **env, "JOURNEYS_API_URL": api_url, "JOURNEYS_API_KEY": api_key}

    def validate(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [find_binary("journeys"), "flow", "validate", "-f", str(path)],
            env=run_env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    welcome = next(p for p in EXAMPLES if p.stem == "welcome-series")
    good = await asyncio.to_thread(validate, welcome)
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.strip().endswith(": valid")
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        welcome.read_text()
        .replace("duration: 2d", "duration: 2 days")
        .replace("days: [mon, tue,", "days: [mon, tuesday,")
    )
    bad = await asyncio.to_thread(validate, broken)
    assert bad.returncode == 1
    assert "steps[1].duration: invalid duration" in bad.stdout
    assert "steps[4].days[1]: Input should be 'mon'" in bad.stdout

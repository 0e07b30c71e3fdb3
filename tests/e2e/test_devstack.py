"""`journeys dev` end to end: the README tour as written, and timers that survive a restart."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import DevStack
from tests.helpers import eventually

ROOT = Path(__file__).resolve().parents[2]


def tour_script() -> str:
    """The shell blocks of the README's tour, minus the one that starts the stack."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## A five-minute tour", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    assert blocks and "make dev" in blocks[0], "the tour should start with `make dev`"
    return "\n".join(blocks[1:])


def _eml_subjects(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return [
        re.search(r"^Subject: (.*)$", p.read_text(), re.MULTILINE).group(1)  # type: ignore[union-attr]
        for p in sorted(folder.glob("*.eml"))
    ]


@pytest.mark.e2e
async def test_readme_tour_works_as_written(dev_stack: DevStack, tmp_path: Path) -> None:
    for tool in ("curl", "jq", "bash"):
        assert shutil.which(tool), f"the tour needs {tool}"
    await dev_stack.start()
    workdir = tmp_path / "clone"
    workdir.mkdir()
    (workdir / ".venv").symlink_to(Path(sys.executable).parent.parent)
    (workdir / ".journeys").symlink_to(dev_stack.home)
    script = tour_script().replace("http://127.0.0.1:8000", dev_stack.api)
    result = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=workdir,
        env=dev_stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    subjects = await eventually(lambda: _eml_subjects(dev_stack.home / "mail"), timeout=30)
    assert subjects == ["Welcome Ada"]
    flow_id = re.search(r'"flow_id": "([0-9a-f-]{36})"', result.stdout)
    assert flow_id, result.stdout

    async with httpx.AsyncClient(
        base_url=dev_stack.api, headers={"Authorization": f"Bearer {dev_stack.key}"}
    ) as http:

        async def waiting() -> dict | None:
            runs = (await http.get(f"/v1/flows/{flow_id.group(1)}/runs")).json()["runs"]
            return runs[0] if runs and runs[0]["step"] == "pause" else None

        run = await eventually(waiting, timeout=30)
    assert (run["status"], run["phase"]) == ("running", "waiting")
    assert await dev_stack.stop() == 0
    assert dev_stack.ports_still_open() == []


@pytest.mark.e2e
async def test_waiting_timer_fires_after_restart(dev_stack: DevStack) -> None:
    await dev_stack.start()
    headers = {"Authorization": f"Bearer {dev_stack.key}"}
    async with httpx.AsyncClient(base_url=dev_stack.api, headers=headers) as http:
        audience = (await http.post("/v1/audiences", json={"name": "Restart"})).json()["id"]
        await http.post(
            f"/v1/audiences/{audience}/contacts",
            json={"email": "rex@example.com", "first_name": "Rex"},
        )
        flow = (
            await http.post(
                "/v1/flows",
                json={
                    "name": "Short wait",
                    "audience_id": audience,
                    "triggers": [{"type": "tag_added", "tag": "go"}],
                    "steps": [
                        {"id": "one", "type": "send_email", "subject": "First", "text": "1"},
                        {"id": "wait", "type": "delay", "duration": "8s"},
                        {"id": "two", "type": "send_email", "subject": "Second", "text": "2"},
                    ],
                },
            )
        ).json()["id"]
        await http.post(f"/v1/flows/{flow}/activate")
        await http.post(
            f"/v1/audiences/{audience}/contacts/rex@example.com/tags", json={"tags": ["go"]}
        )
    mail = dev_stack.home / "mail"
    assert await eventually(lambda: _eml_subjects(mail), timeout=30) == ["First"]

    assert await dev_stack.stop() == 0
    assert dev_stack.ports_still_open() == []
    assert _eml_subjects(mail) == ["First"]
    restarted = time.time()
    await dev_stack.start()

    assert await eventually(lambda: len(_eml_subjects(mail)) == 2, timeout=60)
    assert _eml_subjects(mail) == ["First", "Second"]
    second = sorted(mail.glob("*.eml"))[-1]
    assert second.stat().st_mtime >= restarted
    # The data survived too: the same key still works and the flow is still active.
    async with httpx.AsyncClient(base_url=dev_stack.api, headers=headers) as http:
        assert (await http.get(f"/v1/flows/{flow}")).json()["status"] == "active"
    assert await dev_stack.stop() == 0

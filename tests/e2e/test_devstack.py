"""`journeys dev` end to end: the README tour as written, timers that survive a restart, and a
`specific_date` flow that sends at its moment.

The date flow's moment has minute granularity, so waiting for it takes one to two minutes: it is
applied on the tour's stack before the tour and checked by the module's last test, so the wait
runs beside the other tests instead of after them.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import DevStack
from tests.helpers import eventually

ROOT = Path(__file__).resolve().parents[2]
DATE_SUBJECT = "Your day has come"
# The moment is the first whole minute at least this far ahead: arming it must be done by then.
DATE_LEAD = timedelta(seconds=75)


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


async def _schedule_date_email(stack: DevStack) -> datetime:
    """Applies a `specific_date` flow whose contact's moment is a minute or two ahead.

    Returns:
        The moment (UTC; the audience's zone is UTC).
    """
    moment = (datetime.now(UTC) + DATE_LEAD).replace(second=0, microsecond=0) + timedelta(minutes=1)
    headers = {"Authorization": f"Bearer {stack.key}"}
    async with httpx.AsyncClient(base_url=stack.api, headers=headers) as http:
        audience = (
            await http.post("/v1/audiences", json={"name": "Dates", "timezone": "UTC"})
        ).json()["id"]
        response = await http.post(
            f"/v1/audiences/{audience}/contacts",
            json={"email": "dana@example.com", "fields": {"due": f"{moment:%Y-%m-%d}"}},
        )
        assert response.status_code in (200, 201), response.text
        response = await http.post(
            "/v1/flows",
            json={
                "name": "On the day",
                "audience_id": audience,
                "triggers": [
                    {"type": "specific_date", "field": "due", "time_of_day": f"{moment:%H:%M}"}
                ],
                "steps": [
                    {"id": "day", "type": "send_email", "subject": DATE_SUBJECT, "text": "."}
                ],
            },
        )
        assert response.status_code == 201, response.text
        flow = response.json()["id"]
        response = await http.post(f"/v1/flows/{flow}/activate")
        assert response.status_code == 200, response.text
    return moment


@pytest.fixture(scope="module")
async def date_moment(module_stack: DevStack) -> datetime:
    """The module's stack, started, with the date flow applied (see `_schedule_date_email`)."""
    await module_stack.start()
    return await _schedule_date_email(module_stack)


@pytest.mark.e2e
async def test_readme_tour_works_as_written(
    module_stack: DevStack, date_moment: datetime, tmp_path: Path
) -> None:
    dev_stack = module_stack  # started by `date_moment`, stopped by the module's last test
    for tool in ("curl", "jq", "bash"):
        assert shutil.which(tool), f"the tour needs {tool}"
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

    def tour_subjects() -> list[str]:  # the date flow's email may come in the same folder
        return [s for s in _eml_subjects(dev_stack.home / "mail") if s != DATE_SUBJECT]

    subjects = await eventually(tour_subjects, timeout=30)
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


@pytest.mark.e2e
async def test_a_specific_date_flow_sends_at_its_moment(
    module_stack: DevStack, date_moment: datetime
) -> None:
    """Last in the module: its one-to-two-minute wait overlapped the tests before it."""
    mail = module_stack.home / "mail"

    def date_email() -> Path | None:
        found = [p for p in sorted(mail.glob("*.eml")) if DATE_SUBJECT in p.read_text()]
        return found[0] if found else None

    wait = (date_moment - datetime.now(UTC)).total_seconds()
    sent = await eventually(date_email, timeout=max(wait, 0) + 60, interval=0.5)
    # When the mail catcher wrote it: not before the moment, and within seconds of it.
    arrived = datetime.fromtimestamp(sent.stat().st_mtime, UTC)
    assert date_moment <= arrived < date_moment + timedelta(seconds=30), (date_moment, arrived)
    assert [p for p in mail.glob("*.eml") if DATE_SUBJECT in p.read_text()] == [sent]
    # The tour's stack stops on Ctrl-C like any `journeys dev`.
    assert await module_stack.stop() == 0
    assert module_stack.ports_still_open() == []

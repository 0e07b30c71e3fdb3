"""`journeys flow activate` and `journeys flow apply --activate`: the arming progress bar, through
the CLI against the real API on a loopback port and the session's worker."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import subprocess
import uuid
from pathlib import Path

import asyncpg
import httpx
from temporalio.worker import Worker

from journeys.config import Settings
from journeys.embedded.process import find_binary
from journeys.security import subscriber_hash
from tests.live_server import live_api  # noqa: F401

WITH_BIRTHDAY, WITHOUT = 40, 4
LINE = re.compile(r"^\[#* *\] +\d+%  (\d+) armed, (\d+) skipped of (\d+)$")
TOTALS = f"armed {WITH_BIRTHDAY}, skipped {WITHOUT} of {WITH_BIRTHDAY + WITHOUT} contact(s)"


def _journeys(
    settings: Settings, api: str, key: str, *args: str, stderr: int | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "JOURNEYS_DATABASE_URL": settings.effective_database_url,
        "JOURNEYS_API_URL": api,
        "JOURNEYS_API_KEY": key,
    }
    return subprocess.run(
        [find_binary("journeys"), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if stderr is None else stderr,
        text=True,
        timeout=120,
    )


async def _audience(http: httpx.AsyncClient, pool: asyncpg.Pool) -> str:
    audience = (await http.post("/v1/audiences", json={"name": "CLI birthdays"})).json()["id"]
    batch = uuid.uuid4().hex[:6]
    records = [
        (
            uuid.UUID(audience),
            f"c{i}-{batch}@example.com",
            subscriber_hash(f"c{i}-{batch}@example.com"),
            "06-30" if i < WITH_BIRTHDAY else None,
        )
        for i in range(WITH_BIRTHDAY + WITHOUT)
    ]
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            "contacts",
            columns=["audience_id", "email", "subscriber_hash", "birthday"],
            records=records,
        )
    return audience


def _flow_yaml(name: str, audience: str) -> str:
    return (
        f"name: {name}\naudience_id: '{audience}'\n"
        "triggers: [{type: birthday, time_of_day: '09:00'}]\n"
        "steps: [{id: hello, type: send_email, subject: Happy birthday, text: hi}]\n"
    )


def _progress_lines(stderr: str) -> list[tuple[int, int, int]]:
    """The plain-text progress lines (not a TTY): one per change, counts never going back."""
    lines = stderr.splitlines()
    assert lines and lines[-1] == TOTALS, stderr
    counts = []
    for line in lines[:-1]:
        match = LINE.match(line)
        assert match, f"not a progress line: {line!r}\n{stderr}"
        counts.append((int(match[1]), int(match[2]), int(match[3])))
    assert counts == sorted(counts) and len(set(counts)) == len(counts), stderr
    return counts


async def test_flow_apply_activate_and_flow_activate_show_the_arming_progress(
    live_api: str,  # noqa: F811
    settings: Settings,
    api_key: str,
    pool: asyncpg.Pool,
    worker: Worker,
    tmp_path: Path,
) -> None:
    async with httpx.AsyncClient(
        base_url=live_api, headers={"Authorization": f"Bearer {api_key}"}
    ) as http:
        audience = await _audience(http, pool)
        first = tmp_path / "birthday.yaml"
        first.write_text(_flow_yaml("CLI birthday", audience))
        applied = await asyncio.to_thread(
            _journeys, settings, live_api, api_key, "flow", "apply", "-f", str(first), "--activate"
        )
        assert applied.returncode == 0, applied.stderr
        flow = applied.stdout.strip()
        assert _progress_lines(applied.stderr)[-1] == (WITH_BIRTHDAY, WITHOUT, 44)
        arming = (await http.get(f"/v1/flows/{flow}")).json()["arming"]
        assert (arming["armed"], arming["skipped"], arming["done"]) == (40, 4, True)

        # By name, without waiting: only the id, no progress.
        second = (
            await http.post(
                "/v1/flows",
                json={
                    "name": "CLI birthday two",
                    "audience_id": audience,
                    "triggers": [{"type": "birthday"}],
                    "steps": [{"id": "hello", "type": "send_email", "subject": "Hi", "text": "."}],
                },
            )
        ).json()["id"]
        quick = await asyncio.to_thread(
            _journeys,
            settings,
            live_api,
            api_key,
            "flow",
            "activate",
            "CLI birthday two",
            "--audience",
            audience,
            "--no-wait",
        )
        assert (quick.returncode, quick.stdout.strip(), quick.stderr) == (0, second, "")
        assert (await http.get(f"/v1/flows/{second}")).json()["status"] == "active"

        # By id, on a terminal: the bar is redrawn in place, then the totals.
        leader, follower = pty.openpty()
        try:
            # Read while the command runs: a terminal nobody reads fills up and blocks its writer.
            reading = asyncio.create_task(asyncio.to_thread(_read_all, leader))
            waited = await asyncio.to_thread(
                _journeys,
                settings,
                live_api,
                api_key,
                "flow",
                "activate",
                second,
                stderr=follower,
            )
            os.close(follower)
            follower = -1
            drawn = await reading
        finally:
            os.close(leader)
            if follower != -1:
                os.close(follower)
        assert (waited.returncode, waited.stdout.strip()) == (0, second), drawn
        assert "\r[" in drawn and drawn.rstrip().endswith(TOTALS), repr(drawn)

        for flow_id in (flow, second):
            await http.post(f"/v1/flows/{flow_id}/archive")


def _read_all(fd: int) -> str:
    """What was written to a pty whose other end is closed."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other end is closed and everything was read
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")

"""Flow reports and contact timelines agree with what the SMTP server and tracking saw."""

from __future__ import annotations

import asyncio
import re
import uuid
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn

from api.app import create_app
from journeys.cli import main
from journeys.config import Settings
from journeys.embedded.mailcatcher import CaughtMail, MailCatcher
from journeys.embedded.process import free_port
from tests.helpers import eventually

HTML = '<p>Hi</p><a href="https://example.com/offer">Offer</a>'


def _token_path(mail: CaughtMail, kind: str) -> str:
    found = re.search(rf'"(https?://[^"]*/{kind}/[^"]+)"', mail.body("html"))
    assert found, mail.body("html")
    return urlsplit(found.group(1)).path


async def test_report_counts_equal_smtp_and_tracking_and_render_as_table_and_mermaid(
    app_client: httpx.AsyncClient,
    audience_id: str,
    mail: MailCatcher,
    settings: Settings,
    api_key: str,
    capsys: pytest.CaptureFixture[str],
    worker: object,
) -> None:
    name = f"Report {uuid.uuid4().hex[:6]}"
    body = {
        "name": name,
        "audience_id": audience_id,
        "triggers": [{"type": "tag_added", "tag": "rep"}],
        "steps": [
            {"id": "first", "type": "send_email", "subject": "First", "html": HTML},
            {"id": "pause", "type": "delay", "duration": "2d"},
            {"id": "second", "type": "send_email", "subject": "Second", "text": "again"},
        ],
    }
    flow_id = (await app_client.post("/v1/flows", json=body)).json()["id"]
    assert (await app_client.post(f"/v1/flows/{flow_id}/activate")).status_code == 200
    people = []
    for who in ("ann", "bob", "cat"):
        response = await app_client.post(
            f"/v1/audiences/{audience_id}/contacts",
            json={"email": f"{who}-{uuid.uuid4().hex[:6]}@example.com"},
        )
        people.append(response.json())
        await app_client.post(
            f"/v1/audiences/{audience_id}/contacts/{people[-1]['id']}/tags", json={"tags": ["rep"]}
        )
    received = [(await eventually(lambda p=p: mail.to(p["email"])))[0] for p in people]
    ann, bob, cat = received
    for _ in range(2):  # two clicks, one contact
        await app_client.get(_token_path(ann, "t/c"), follow_redirects=False)
    await app_client.get(_token_path(bob, "t/o"))
    await app_client.post(_token_path(cat, "u"), content=b"List-Unsubscribe=One-Click")

    async def report() -> dict:
        found = (await app_client.get(f"/v1/flows/{flow_id}/report")).json()
        return found if found["steps"][1]["now"] == 3 else {}

    found = await eventually(report)
    smtp = [m for m in mail.messages if m.message["X-Journeys-Flow"] == flow_id]
    first, pause, second = found["steps"]
    assert first["emails_sent"] == first["passed"] == len(smtp) == 3
    assert (first["opened"], first["clicked"], first["unsubscribed"], first["bounced"]) == (
        1,
        1,
        1,
        0,
    )
    assert (pause["now"], pause["passed"], second["emails_sent"]) == (3, None, 0)
    assert (found["entered"], found["running"]) == (3, 3)

    graph = await app_client.get(f"/v1/flows/{flow_id}/report", params={"format": "mermaid"})
    assert graph.text.splitlines()[:2] == ["flowchart TD", '  start(["tag_added<br/>entered 3"])']
    assert (
        '  s0["<b>first</b><br/>send_email<br/>now 0 · sent 3 · opened 1 · clicked 1 · unsub 1"]'
        in graph.text
    )
    assert "  start --> s0\n  s0 --> s1\n  s1 --> s2\n  s2 --> done\n" in graph.text

    timeline = await app_client.get(
        f"/v1/audiences/{audience_id}/contacts/{people[2]['id']}/timeline"
    )
    items = timeline.json()["items"]
    assert [i["what"] for i in items if i["kind"] == "event"][:2] == ["unsubscribed", "email_sent"]
    assert [(i["kind"], i["status"]) for i in items if i["kind"] != "event"] == [
        ("message", "sent"),
        ("journey", "running"),
    ]
    stamps = [i["at"] for i in items]
    assert stamps == sorted(stamps, reverse=True)

    # The CLI prints the same numbers, found by the flow's name.
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started)
        common = ["--api-url", f"http://127.0.0.1:{port}", "--api-key", api_key]
        capsys.readouterr()
        code = await asyncio.to_thread(main, ["flow", "report", name, *common])
        table = capsys.readouterr().out
        assert code == 0
        assert re.search(r"^first\s+send_email\s+0\s+3\s+3\s+0\s+1\s+1\s+1\s+0\s+0$", table, re.M)
        assert re.search(r"^pause\s+delay\s+3\s+-\s+0", table, re.M)
        code = await asyncio.to_thread(main, ["flow", "graph", flow_id, *common])
        assert code == 0 and capsys.readouterr().out == graph.text
    finally:
        server.should_exit = True
        await task

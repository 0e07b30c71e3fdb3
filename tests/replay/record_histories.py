"""Records real histories of every step type and every example flow into `histories/`.

Not collected by `make test` (its name does not start with `test_`): `make replay-record` runs
it on the real worker, embedded Postgres and Temporal dev server. Record again only when the
workflow changes in a way that is meant to break old histories (it never should for runs in
production: see docs/operations.md, "Changing the workflow"); `test_replay.py` replays them.
A new shape of run is recorded beside the old histories under a new `REPLAY_RECORD_PREFIX`
(`entry-`: runs whose entry the gateway decided); an existing file is never written over.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowHandle

from journeys.domain.runs import Phase, RunStatus, workflow_id
from journeys.embedded.process import free_port
from tests.flow_samples import STEPS, step_flow
from tests.helpers import eventually
from tests.integration.test_examples_enrol import CASES, start_example

HISTORIES = Path(__file__).parent / "histories"
# Histories stand for contacts already waiting, so a new recording never replaces one: a new
# shape of run is recorded under a new prefix (`REPLAY_RECORD_PREFIX=entry- make replay-record`).
PREFIX = os.environ.get("REPLAY_RECORD_PREFIX", "")
_MOVING = {Phase.ENTERING, Phase.RUNNING}


async def _at_rest(handle: WorkflowHandle[Any, Any]) -> bool:
    try:
        status = await handle.query("status", result_type=RunStatus)
    except Exception:  # noqa: BLE001 - not started yet
        return False
    return status.phase not in _MOVING


async def _save(client: Client, name: str, wf_id: str) -> None:
    handle = client.get_workflow_handle(wf_id)
    await eventually(lambda: _at_rest(handle), timeout=60)
    history = await handle.fetch_history()
    path = HISTORIES / f"{PREFIX}{name}.json"
    assert not path.exists(), f"{path.name} exists: record under a new REPLAY_RECORD_PREFIX"
    path.write_text(history.to_json())


class _Accept(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()

    do_PUT = do_POST = _answer

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def hook() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", free_port()), _Accept)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


@pytest.mark.parametrize("step_type", sorted(STEPS))
async def test_record_step(
    app_client: httpx.AsyncClient, client: Client, worker: object, hook: int, step_type: str
) -> None:
    audience = (await app_client.post("/v1/audiences", json={"name": step_type})).json()["id"]
    campaign = (
        await app_client.post(
            "/v1/campaigns", json={"audience_id": audience, "name": "C", "subject": "C"}
        )
    ).json()["id"]
    body = step_flow(step_type, audience, {"campaign": campaign, "flow": "", "step": ""})
    for step in body["steps"]:
        if step["type"] == "webhook":  # a loopback listener (allowed in the test settings)
            step["url"] = f"http://127.0.0.1:{hook}/hook"
    created = await app_client.post("/v1/flows", json=body)
    assert created.status_code == 201, created.text
    flow_id = created.json()["id"]
    await app_client.post(f"/v1/flows/{flow_id}/activate")
    email = f"rec-{uuid.uuid4().hex[:8]}@example.com"
    contact = (
        await app_client.post(
            f"/v1/audiences/{audience}/contacts",
            json={
                "email": email,
                "first_name": "Rec",
                "phone": "+15550143",
                "sms_status": "subscribed",
            },
        )
    ).json()
    await app_client.post(
        f"/v1/audiences/{audience}/contacts/{contact['id']}/tags",
        json={"tags": [f"try-{step_type}"]},
    )
    await _save(client, f"step-{step_type}", workflow_id(flow_id, contact["id"]))


@pytest.mark.parametrize("example", sorted(CASES))
async def test_record_example(
    app_client: httpx.AsyncClient, client: Client, worker: object, example: str
) -> None:
    flow_id, contact_id = await start_example(app_client, example)
    await _save(client, f"example-{example}", workflow_id(flow_id, contact_id))

"""A gateway configured for the providers, and a loopback server standing in for their APIs.

The second app shares the session's Postgres, Temporal and worker task queue; only its
provider settings differ (Twilio token, public URL as Twilio sees it, Eventbrite and LiveChat
API bases on loopback).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from journeys.config import Settings
from journeys.embedded.process import free_port
from tests.helpers import api_client

TWILIO_TOKEN = "12345678901234567890123456789012"
PUBLIC_URL = "https://hooks.journeys.example/base"


@dataclass
class ProviderApi:
    """Loopback stand-in for Eventbrite's and LiveChat's APIs: serves `routes`, logs calls."""

    port: int
    routes: dict[tuple[str, str], Callable[[dict[str, Any] | None], tuple[int, Any]]] = field(
        default_factory=dict
    )
    calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def provider_api() -> Iterator[ProviderApi]:
    api = ProviderApi(port=free_port())

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            form = self.headers.get("content-type", "").startswith("application/x-www-form")
            body = dict(parse_qsl(raw.decode())) if form else (json.loads(raw) if raw else None)
            api.calls.append(
                {
                    "method": method,
                    "path": self.path,
                    "auth": self.headers.get("authorization"),
                    "body": body,
                }
            )
            route = api.routes.get((method, self.path))
            code, payload = route(body) if route else (404, {"error": "NOT_FOUND"})
            raw = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", api.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield api
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def hook_settings(settings: Settings, provider_api: ProviderApi) -> Settings:
    return settings.model_copy(
        update={
            "twilio_auth_token": SecretStr(TWILIO_TOKEN),
            "public_url": PUBLIC_URL,
            "eventbrite_api_url": f"{provider_api.base}/v3/",
            "livechat_api_url": f"{provider_api.base}/v3.5/",
            "provider_fetch_attempts": 3,
            "webhook_max_body_bytes": 64 * 1024,
        }
    )


@pytest.fixture(scope="session")
async def hooks(hook_settings: Settings, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway as providers reach it (API key set, for the setup calls only)."""
    async with api_client(hook_settings, api_key) as http:
        yield http


@pytest.fixture
async def audience(hooks: httpx.AsyncClient) -> str:
    response = await hooks.post("/v1/audiences", json={"name": "Shop", "timezone": "UTC"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


SEND = {"id": "hello", "type": "send_email", "subject": "Hi", "html": "<p>Hi</p>"}


async def active_flow(
    hooks: httpx.AsyncClient,
    audience: str,
    trigger: dict[str, Any],
    *,
    steps: list[dict[str, Any]] | None = None,
) -> str:
    """Creates and activates a one-trigger flow; returns its id."""
    body = {
        "name": f"{trigger['type']} {uuid.uuid4().hex[:6]}",
        "audience_id": audience,
        "triggers": [trigger],
        "steps": steps or [SEND],
    }
    created = await hooks.post("/v1/flows", json=body)
    assert created.status_code == 201, created.text
    flow_id = str(created.json()["id"])
    activated = await hooks.post(f"/v1/flows/{flow_id}/activate")
    assert activated.status_code == 200, activated.text
    return flow_id


def started(answer: httpx.Response, flow_id: str) -> bool:
    """Whether the receiver's answer says it enrolled someone into the flow."""
    assert answer.status_code in (200, 202), answer.text
    return any(
        e["flow_id"] == flow_id and e["outcome"] == "started" for e in answer.json()["enrolments"]
    )


async def contact(
    hooks: httpx.AsyncClient, audience: str, email: str, **fields: Any
) -> dict[str, Any]:
    response = await hooks.post(
        f"/v1/audiences/{audience}/contacts", json={"email": email, **fields}
    )
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


async def contact_id(pool: asyncpg.Pool, audience: str, email: str) -> str | None:
    return await pool.fetchval(
        "SELECT id::text FROM contacts WHERE audience_id = $1::uuid AND email = $2", audience, email
    )

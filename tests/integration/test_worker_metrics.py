"""`journeys worker` serves the Temporal SDK's metrics in Prometheus format."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

import httpx
import pytest

from journeys.config import Settings
from journeys.embedded.process import find_binary, free_port
from journeys.settings_doc import env_name
from tests.helpers import eventually


@pytest.fixture
def worker_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    env.update(
        {
            "JOURNEYS_DATABASE_URL": settings.effective_database_url,
            "JOURNEYS_TEMPORAL_ADDRESS": settings.effective_temporal_address,
            # Its own queue: this process must not take work meant for the tests' worker.
            "JOURNEYS_TASK_QUEUE": f"metrics-{uuid.uuid4().hex[:8]}",
            "JOURNEYS_SMTP_PORT": str(settings.smtp_port),
            "JOURNEYS_WORKER_METRICS_PORT": str(free_port()),
            "JOURNEYS_LOG_LEVEL": "WARNING",
        }
    )
    assert {k for k in env if k.startswith("JOURNEYS_")} <= {
        env_name(name) for name in Settings.model_fields
    }
    return env


async def _metrics(port: str) -> str:
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            response = await http.get(f"http://127.0.0.1:{port}/metrics")
    except httpx.TransportError:
        return ""
    return response.text if response.status_code == 200 else ""


async def test_worker_serves_sdk_metrics_and_stops_cleanly(worker_env: dict[str, str]) -> None:
    port, queue = worker_env["JOURNEYS_WORKER_METRICS_PORT"], worker_env["JOURNEYS_TASK_QUEUE"]
    process = await asyncio.create_subprocess_exec(
        find_binary("journeys"),
        "worker",
        env=worker_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        # Pollers report once they have polled; wait for the worker's own queue and its pollers
        # to show up (the start counter carries the queue before the first poll does).
        text = await eventually(
            lambda: _until(_metrics(port), f'task_queue="{queue}"', "temporal_num_pollers"),
            timeout=30,
        )
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    # Core SDK metrics: polls (long requests), poller counts, task slots.
    assert {
        "temporal_long_request",
        "temporal_num_pollers",
        "temporal_worker_task_slots_available",
    } <= names, sorted(names)
    assert 'namespace="default"' in text
    # SIGTERM drains the worker and exits 0, without a crash at interpreter exit.
    assert process.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr and b"Fatal Python error" not in stderr


async def _until(fetch: object, *needles: str) -> str:
    text = await fetch  # type: ignore[misc]
    return text if all(needle in text for needle in needles) else ""


def test_metrics_off_when_the_port_is_zero() -> None:
    from workers.worker import metrics_runtime

    assert metrics_runtime(Settings(worker_metrics_port=0)) is None


def test_a_taken_metrics_port_is_explained() -> None:
    import socket

    from workers.worker import metrics_runtime

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match="JOURNEYS_WORKER_METRICS_PORT"):
            metrics_runtime(Settings(worker_metrics_port=port))

"""The Temporal client every process uses: same address, namespace and data converter."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

from journeys.config import Settings


async def connect_client(settings: Settings, *, runtime: Runtime | None = None) -> Client:
    """Connects to the configured Temporal frontend with the pydantic converter."""
    return await Client.connect(
        settings.effective_temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        runtime=runtime,
    )

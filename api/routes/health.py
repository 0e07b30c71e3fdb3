"""Liveness and readiness for orchestrators and load balancers (no API key).

`/healthz` answers as long as the process serves HTTP: restart the container when it fails.
`/readyz` also checks Postgres and Temporal: take the replica out of the load balancer while
it fails, but do not restart it, since restarting does not bring a database back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import timedelta
from typing import Literal

import asyncpg
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from api.deps import PoolDep, SettingsDep, TemporalDep
from api.problems import MEDIA_TYPE, Problem

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])

OK = "ok"


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"
    checks: dict[str, str]


class NotReady(Problem):
    """The problem document of a failed readiness check; `checks` says which dependency."""

    checks: dict[str, str]


@router.get("/healthz")
async def healthz() -> Health:
    """The process is up and serving HTTP."""
    return Health()


async def check_postgres(pool: asyncpg.Pool) -> None:
    """One round trip on a pooled connection."""
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")


async def check_temporal(client: Client, namespace: str, timeout: float) -> None:
    """The frontend answers and knows our namespace (a missing namespace fails every start)."""
    await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=namespace), timeout=timedelta(seconds=timeout)
    )


async def run_check(name: str, check: Awaitable[None], timeout: float) -> str:
    """`ok`, or why the check failed; never takes much longer than `timeout`."""
    try:
        await asyncio.wait_for(check, timeout)
    except TimeoutError:
        reason = f"no answer within {timeout:g}s"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", with its reason
        message = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        reason = type(exc).__name__ + (f": {message}" if message else "")
    else:
        return OK
    log.warning("readiness: %s failed: %s", name, reason)
    return reason


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": NotReady, "content": {MEDIA_TYPE: {}}, "description": "Not ready"}},
)
async def readyz(
    pool: PoolDep, temporal: TemporalDep, settings: SettingsDep
) -> Readiness | JSONResponse:
    """Postgres and Temporal answer, each within `JOURNEYS_READINESS_TIMEOUT_SECONDS`."""
    timeout = settings.readiness_timeout_seconds
    names = ("postgres", "temporal")
    results = await asyncio.gather(
        run_check("postgres", check_postgres(pool), timeout),
        run_check(
            "temporal", check_temporal(temporal, settings.temporal_namespace, timeout), timeout
        ),
    )
    checks = dict(zip(names, results, strict=True))
    failing = [f"{name}: {result}" for name, result in checks.items() if result != OK]
    if not failing:
        return Readiness(checks=checks)
    problem = NotReady(
        title="Service Unavailable",
        status=503,
        detail="not ready: " + "; ".join(failing),
        instance="/readyz",
        checks=checks,
    )
    # Retry-After: load balancers and clients should try this replica again shortly.
    return JSONResponse(
        problem.model_dump(mode="json"),
        status_code=503,
        media_type=MEDIA_TYPE,
        headers={"Retry-After": "5"},
    )

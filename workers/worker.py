"""Builds and runs the worker that executes contact flows."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

import asyncpg
from temporalio.client import Client
from temporalio.worker import Worker

from activities.delivery import AfterSendHook, DeliveryActivities
from activities.enrollment import EnrollmentActivities
from journeys.channels.email import EmailSender, SmtpConfig
from journeys.config import Settings
from journeys.embedded.process import find_binary, terminate
from journeys.store.pool import create_pool
from journeys.temporal import connect_client
from workflows.contact_flow import ContactFlowWorkflow

log = logging.getLogger(__name__)

WORKFLOWS = [ContactFlowWorkflow]


def smtp_config(settings: Settings) -> SmtpConfig:
    """The SMTP connection settings."""
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        starttls=settings.smtp_starttls,
        timeout=settings.smtp_timeout_seconds,
    )


def email_sender(settings: Settings) -> EmailSender:
    """The SMTP sender, keeping `smtp_pool_size` connections open for reuse."""
    return EmailSender(smtp_config(settings), pool_size=settings.smtp_pool_size)


def activities_for(
    settings: Settings,
    pool: asyncpg.Pool,
    *,
    after_send: AfterSendHook | None = None,
    email: EmailSender | None = None,
) -> list[object]:
    """Every activity, bound to its dependencies (`email`: a sender the caller will close)."""
    delivery = DeliveryActivities(
        pool,
        email or email_sender(settings),
        default_from=settings.mail_from,
        after_send=after_send,
    )
    enrollment = EnrollmentActivities(pool)
    return [
        enrollment.begin_enrollment,
        enrollment.finish_enrollment,
        delivery.send_email,
    ]


def worker_tuning(settings: Settings) -> dict[str, Any]:
    """The `Worker` keyword arguments that tune it, from settings.

    Shared with the benchmarks' raw-Temporal baseline worker, so both run with the same tuning.
    """
    return {
        "max_cached_workflows": settings.worker_max_cached_workflows,
        "max_concurrent_activities": settings.worker_max_concurrent_activities,
        "max_concurrent_workflow_tasks": settings.worker_max_concurrent_workflow_tasks,
        "max_concurrent_workflow_task_polls": settings.worker_workflow_task_pollers,
        "max_concurrent_activity_task_polls": settings.worker_activity_task_pollers,
    }


def build_worker(
    client: Client,
    settings: Settings,
    pool: asyncpg.Pool,
    *,
    task_queue: str | None = None,
    after_send: AfterSendHook | None = None,
    email: EmailSender | None = None,
) -> Worker:
    """A worker for the contact-flow task queue, tuned from settings."""
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=WORKFLOWS,
        activities=activities_for(settings, pool, after_send=after_send, email=email),
        **worker_tuning(settings),
    )


async def _start_extra_processes(settings: Settings) -> list[asyncio.subprocess.Process]:
    # One Python process is bound by one GIL; more processes use more cores. Each extra one
    # is a plain `journeys worker` reading the same environment, told to start no others.
    env = {**os.environ, "JOURNEYS_WORKER_PROCESSES": "1"}
    return [
        await asyncio.create_subprocess_exec(find_binary("journeys"), "worker", env=env)
        for _ in range(settings.worker_processes - 1)
    ]


async def run_worker(settings: Settings) -> None:
    """Runs a worker until SIGINT/SIGTERM, then drains it and closes the pool.

    With `worker_processes` > 1 it also runs that many minus one `journeys worker` children
    and stops them when it stops.
    """
    client = await connect_client(settings)
    pool = await create_pool(
        settings.effective_database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    extra = await _start_extra_processes(settings)
    email = email_sender(settings)
    try:
        async with build_worker(client, settings, pool, email=email):
            log.info(
                "worker polling task queue %s (%d process(es))",
                settings.task_queue,
                settings.worker_processes,
            )
            await stop.wait()
    finally:
        await asyncio.gather(*(terminate(process) for process in extra))
        await email.aclose()
        await pool.close()

"""Builds and runs the worker that executes contact flows."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from datetime import timedelta
from typing import Any

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.arming import ArmingActivities
from activities.campaigns import CampaignActivities
from activities.contacts import AfterEvaluateHook, ContactActivities
from activities.delivery import AfterSendHook, DeliveryActivities
from activities.enrollment import EnrollmentActivities
from activities.timers import TimerActivities
from activities.webhooks import WebhookActivities
from journeys.channels.email import EmailSender, SmtpConfig
from journeys.channels.netguard import NetGuard
from journeys.channels.sms import OutboxSmsProvider, SmsProvider, TwilioSmsProvider
from journeys.channels.tracking import TrackingConfig
from journeys.config import Settings
from journeys.embedded.process import find_binary, terminate
from journeys.wiring import Core, open_core
from workflows.arm_flow import ArmFlowWorkflow
from workflows.campaign_send import CampaignSendWorkflow
from workflows.contact_flow import ContactFlowWorkflow
from workflows.flow_control import FlowControlWorkflow

log = logging.getLogger(__name__)

WORKFLOWS = [ContactFlowWorkflow, FlowControlWorkflow, ArmFlowWorkflow, CampaignSendWorkflow]


def email_sender(settings: Settings) -> EmailSender:
    """The SMTP sender, keeping `smtp_pool_size` connections open for reuse."""
    return EmailSender(SmtpConfig.from_settings(settings), pool_size=settings.smtp_pool_size)


def tracking_config(settings: Settings) -> TrackingConfig:
    """Where tracking and unsubscribe links point, and their signing key."""
    return TrackingConfig(
        key=settings.tracking_signing_key(), base_url=settings.effective_public_url
    )


def sms_provider(settings: Settings) -> SmsProvider | None:
    """The configured SMS provider, or None if SMS is off."""
    if settings.sms_provider == "outbox":
        return OutboxSmsProvider(settings.home / "sms")
    if settings.sms_provider == "twilio":
        if not (
            settings.twilio_account_sid
            and settings.twilio_auth_token
            and settings.twilio_from_number
        ):
            raise ValueError(
                "JOURNEYS_SMS_PROVIDER=twilio needs the TWILIO account SID, token and number"
            )
        return TwilioSmsProvider(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token.get_secret_value(),
            from_number=settings.twilio_from_number,
            base_url=settings.twilio_api_url,
            # Only a public URL can be reached by Twilio's status callbacks.
            status_callback=(
                f"{settings.effective_public_url}/v1/twilio/status" if settings.public_url else None
            ),
        )
    return None


def activities_for(
    core: Core,
    *,
    after_send: AfterSendHook | None = None,
    after_evaluate: AfterEvaluateHook | None = None,
    email: EmailSender | None = None,
) -> list[object]:
    """Every activity, bound to its dependencies (`email`: a sender the caller will close)."""
    settings, pool = core.settings, core.pool
    email = email or email_sender(settings)
    # Flow emails and campaign emails are sent, tracked and bounced the same way.
    sending: dict[str, Any] = {
        "default_from": settings.mail_from,
        "ingest": core.ingest,
        "tracking": tracking_config(settings),
        "soft_bounce_limit": settings.soft_bounce_limit,
    }
    delivery = DeliveryActivities(
        pool, email, **sending, sms=sms_provider(settings), after_send=after_send
    )
    campaigns = CampaignActivities(pool, email, **sending)
    enrollment = EnrollmentActivities(pool)
    contacts = ContactActivities(pool, core.ingest, after_evaluate=after_evaluate)
    timers = TimerActivities(pool)
    arming = ArmingActivities(core)
    webhooks = WebhookActivities(
        pool,
        secret=settings.webhook_signing_key(),
        guard=NetGuard(settings.webhook_allowlist),
    )
    return [
        enrollment.begin_enrollment,
        enrollment.finish_enrollment,
        enrollment.list_running,
        delivery.send_email,
        delivery.send_sms,
        contacts.apply_contact_action,
        contacts.evaluate_conditions,
        contacts.resolve_wait,
        webhooks.call_webhook,
        timers.resolve_fire,
        timers.check_cart,
        timers.current_flow,
        arming.arm_page,
        campaigns.send_campaign_page,
        campaigns.finish_campaign,
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
        # A deploy's SIGTERM lets an email being sent finish; a cancelled one is retried.
        "graceful_shutdown_timeout": timedelta(seconds=settings.worker_graceful_shutdown_seconds),
    }


def workflow_runner(settings: Settings) -> WorkflowRunner:
    """How the worker runs workflow code: in the SDK's sandbox, or not (the default).

    The sandbox re-imports the workflow module into a fresh namespace for every new run and
    proxies what it calls: measured (`python -m bench.sandbox`) at about 3× the worker CPU of an
    unsandboxed run. Workflow modules hold no mutable global state, so production runs without
    it; the replay tests (every step type and example flow) and the test suite's worker run
    sandboxed, so a non-deterministic call still fails a test before it ships.
    """
    if settings.worker_workflow_sandbox:
        return SandboxedWorkflowRunner()
    return UnsandboxedWorkflowRunner()


def build_worker(
    core: Core,
    *,
    task_queue: str | None = None,
    after_send: AfterSendHook | None = None,
    after_evaluate: AfterEvaluateHook | None = None,
    email: EmailSender | None = None,
) -> Worker:
    """A worker for the contact-flow task queue, tuned from settings.

    Args:
        core: The process's pool, client and ingest (steps that change a contact start
            other flows through it).
        email: A shared SMTP sender the caller closes; default: one of the worker's own.
    """
    return Worker(
        core.client,
        task_queue=task_queue or core.settings.task_queue,
        workflows=WORKFLOWS,
        workflow_runner=workflow_runner(core.settings),
        activities=activities_for(
            core, after_send=after_send, after_evaluate=after_evaluate, email=email
        ),
        **worker_tuning(core.settings),
    )


def metrics_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime serving the SDK's metrics at `/metrics`, or None when turned off.

    The metrics come from the SDK core (polls, task latencies, slots, sticky cache), so every
    client and worker created with this runtime reports into the same endpoint.

    Raises:
        RuntimeError: the address is taken or invalid; the message says which setting to change.
    """
    if not settings.worker_metrics_port:
        return None
    address = f"{settings.worker_metrics_host}:{settings.worker_metrics_port}"
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
    except ValueError as exc:
        raise RuntimeError(
            f"cannot serve worker metrics on {address}: {exc}. Set JOURNEYS_WORKER_METRICS_PORT"
            " to a free port (each worker on one host needs its own), or to 0 to turn them off"
        ) from exc


async def _start_extra_processes(settings: Settings) -> list[asyncio.subprocess.Process]:
    # One Python process is bound by one GIL; more processes use more cores. Each extra one
    # is a plain `journeys worker` reading the same environment, told to start no others and
    # to serve its metrics on the next port.
    processes = []
    for index in range(1, settings.worker_processes):
        env = {**os.environ, "JOURNEYS_WORKER_PROCESSES": "1"}
        if settings.worker_metrics_port:
            env["JOURNEYS_WORKER_METRICS_PORT"] = str(settings.worker_metrics_port + index)
        processes.append(
            await asyncio.create_subprocess_exec(find_binary("journeys"), "worker", env=env)
        )
    return processes


async def run_worker(settings: Settings) -> None:
    """Runs a worker until SIGINT/SIGTERM, then drains it and closes the pool.

    With `worker_processes` > 1 it also runs that many minus one `journeys worker` children
    and stops them when it stops.
    """
    runtime = metrics_runtime(settings)
    if runtime is not None:
        log.info(
            "worker metrics on http://%s:%s/metrics",
            settings.worker_metrics_host,
            settings.worker_metrics_port,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    extra = await _start_extra_processes(settings)
    email = email_sender(settings)
    try:
        async with open_core(settings, runtime=runtime) as core, build_worker(core, email=email):
            log.info(
                "worker polling task queue %s (%d process(es))",
                settings.task_queue,
                settings.worker_processes,
            )
            await stop.wait()
    finally:
        await asyncio.gather(*(terminate(process) for process in extra))
        await email.aclose()

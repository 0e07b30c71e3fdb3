"""Settings for every journeys process, read from `JOURNEYS_*` environment variables."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from journeys.domain.runs import RunLimits

DEV_SECRET = "dev-only-secret-change-me"
_HOST_NAME = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?"
)


class Settings(BaseSettings):
    """Configuration of the API, the worker and the embedded development stack.

    Unset `database_url` / `temporal_address` mean "use the embedded service that
    `journeys dev` starts on the configured port".
    """

    # env_ignore_empty: `JOURNEYS_X=` (what compose passes for an unset `${X:-}`) means
    # "not set", never an empty SMTP login or DSN.
    model_config = SettingsConfigDict(env_prefix="JOURNEYS_", extra="ignore", env_ignore_empty=True)

    env: Literal["development", "production"] = Field(
        "development", description="`production` refuses development secrets."
    )
    home: Path = Field(
        Path(".journeys"),
        description="Data directory of `journeys dev`: Postgres, Temporal SQLite, caught mail.",
    )

    database_url: str | None = Field(
        None, description="Postgres DSN; unset = the embedded Postgres of `journeys dev`."
    )
    postgres_port: int = Field(55432, description="Port of the embedded Postgres.")
    db_pool_min: int = Field(1, description="Minimum connections in each process's pool.")
    db_pool_max: int = Field(10, description="Maximum connections in each process's pool.")

    temporal_address: str | None = Field(
        None, description="Temporal frontend host:port; unset = the embedded dev server."
    )
    temporal_namespace: str = Field("default", description="Temporal namespace.")
    temporal_port: int = Field(7233, description="gRPC port of the embedded Temporal dev server.")
    temporal_ui_port: int = Field(8233, description="Web UI port of the embedded Temporal server.")
    temporal_ui_url: str | None = Field(
        None,
        description="Base URL of the Temporal UI for links to runs; unset = the embedded one"
        " (http://127.0.0.1:JOURNEYS_TEMPORAL_UI_PORT).",
    )
    task_queue: str = Field("journeys", description="Task queue of the contact-flow workers.")

    api_host: str = Field("127.0.0.1", description="Interface the API listens on.")
    api_port: int = Field(8000, description="Port the API listens on.")
    public_url: str | None = Field(
        None, description="Base URL of the API as contacts see it (tracking links)."
    )

    smtp_host: str = Field("127.0.0.1", description="SMTP server for outgoing email.")
    smtp_port: int = Field(1025, description="SMTP port (also the port of the dev mail catcher).")
    smtp_username: str | None = Field(None, description="SMTP login, if the server wants one.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS.")
    smtp_timeout_seconds: float = Field(30.0, description="SMTP connect/command timeout.")
    smtp_pool_size: int = Field(
        10,
        ge=0,
        description="SMTP connections each worker keeps open for reuse (0: one per message).",
    )
    mail_from: str = Field(
        "Journeys <journeys@localhost>", description="Default From header of flow emails."
    )

    secret_key: SecretStr = Field(
        SecretStr(DEV_SECRET), description="Key that signs tracking and unsubscribe tokens."
    )

    worker_max_cached_workflows: int = Field(
        10_000, description="Workflows each worker keeps in its sticky cache."
    )
    worker_max_concurrent_activities: int = Field(
        200, description="Activities one worker runs at once."
    )
    worker_max_concurrent_workflow_tasks: int = Field(
        200, description="Workflow tasks one worker runs at once."
    )
    worker_workflow_task_pollers: int = Field(
        5, ge=1, description="Concurrent workflow-task long polls per worker (SDK default 5)."
    )
    worker_activity_task_pollers: int = Field(
        5, ge=1, description="Concurrent activity-task long polls per worker (SDK default 5)."
    )
    worker_processes: int = Field(
        1,
        ge=1,
        description="Processes `journeys worker` runs; each has its own GIL and sticky cache.",
    )

    sms_provider: Literal["none", "outbox", "twilio"] = Field(
        "none", description="How SMS is sent: `outbox` writes to JOURNEYS_HOME/sms (development)."
    )
    twilio_account_sid: str | None = Field(None, description="Twilio account SID (SMS provider).")
    twilio_auth_token: SecretStr | None = Field(None, description="Twilio auth token.")
    twilio_from_number: str | None = Field(None, description="Sending number or messaging service.")
    twilio_api_url: str = Field("https://api.twilio.com", description="Twilio API base URL.")
    webhook_secret: SecretStr | None = Field(
        None, description="Signs webhook-step requests; unset = derived from JOURNEYS_SECRET_KEY."
    )
    worker_graceful_shutdown_seconds: float = Field(
        30.0, description="On SIGTERM, time running activities get to finish before cancellation."
    )

    # Operations: logging, health and metrics.
    log_level: str = Field("INFO", description="Log level of `journeys` processes.")
    worker_metrics_host: str = Field(
        "127.0.0.1", description="IP address the worker's Prometheus endpoint binds to."
    )
    worker_metrics_port: int = Field(
        9464, description="Port of the worker's Prometheus endpoint `/metrics`; 0 turns it off."
    )
    api_metrics: bool = Field(
        True, description="Serve request metrics at `/metrics` on the API port (no API key)."
    )
    readiness_timeout_seconds: float = Field(
        2.0, description="Time each `/readyz` dependency check may take before it fails."
    )
    send_give_up_after_seconds: float = Field(
        3 * 24 * 3600.0,
        gt=0,
        description="A send still failing after this long is given up: the step fails and the"
        " journey goes on.",
    )
    run_history_limit: int = Field(
        10_000,
        ge=200,
        le=50_000,
        description="History events after which a contact's run continues as new (state carried).",
    )
    missed_fire_grace_seconds: float = Field(
        24 * 3600.0,
        ge=0,
        description="A timer trigger that came due while its flow was paused fires on resume if"
        " it is not later than this; an older one waits for its next occurrence (or is skipped).",
    )
    yearly_rearm_spread_seconds: float = Field(
        900.0,
        ge=60,
        le=24 * 3600,
        description="A yearly trigger's run re-arms for next year between one minute and this"
        " long after its journey (at random), not inside the burst of journeys firing with it.",
    )

    # Provider receivers (Shopify, Twilio, Eventbrite, LiveChat, Zapier, surveys, site tracking).
    webhook_max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest body a provider receiver accepts (413 above)."
    )
    eventbrite_api_url: str = Field(
        "https://www.eventbriteapi.com/v3/",
        description="Eventbrite API base; webhook `api_url`s outside it are refused, never fetched.",
    )
    livechat_api_url: str = Field(
        "https://api.livechatinc.com/v3.5/",
        description="LiveChat Agent Chat API base the receiver fetches finished chats from.",
    )
    provider_fetch_timeout_seconds: float = Field(
        10.0, gt=0, description="Timeout of each call a receiver makes back to its provider."
    )
    provider_fetch_attempts: int = Field(
        3, ge=1, le=10, description="Attempts per call back to a provider (network, 429, 5xx)."
    )

    # Sandbox: where webhook steps may send requests.
    webhook_allowed_hosts: str = Field(
        "",
        description="Comma-separated host names, IP addresses or CIDR ranges that webhook steps"
        " may call although internal (loopback, private, link-local, …); all others are refused.",
    )

    @field_validator("webhook_allowed_hosts")
    @classmethod
    def _allowlist_entries(cls, value: str) -> str:
        # A typo such as `10.0.0.0/33` must not silently become a host name nobody uses.
        for entry in (e.strip() for e in value.split(",")):
            if not entry:
                continue
            try:
                ipaddress.ip_network(entry.strip("[]"), strict=False)
            except ValueError:
                if not _HOST_NAME.fullmatch(entry):
                    raise ValueError(
                        f"{entry!r} is neither a host name, an IP address nor a CIDR range"
                    ) from None
        return value

    # Input limits and the outbox (issue 11): what the API refuses before it stores anything.
    max_request_body_bytes: int = Field(
        1_048_576,
        ge=1024,
        description="Largest request body the API reads; a larger one gets 413 before parsing.",
    )
    max_event_data_bytes: int = Field(
        262_144,
        ge=1024,
        le=1_048_576,
        description="Largest event `properties`/`data` (JSON bytes); well under Temporal's 2 MB.",
    )
    max_contact_fields_bytes: int = Field(
        65_536, ge=1024, description="Largest custom `fields` object of a contact (JSON bytes)."
    )
    outbox_max_attempts: int = Field(
        20,
        ge=1,
        description="Failed deliveries of one event before the outbox relay dead-letters it.",
    )
    outbox_backoff_max_seconds: float = Field(
        600.0, gt=0, description="Longest wait between two delivery attempts of one event."
    )

    # Audience management and the Mailchimp API (imports, merge fields, double opt-in).
    phone_default_region: str | None = Field(
        None,
        pattern=r"^[A-Z]{2}$",
        description="Country (ISO code, e.g. `FR`) of phone numbers given without +country code;"
        " unset = such numbers are refused.",
    )

    # Email engagement: tracking, unsubscribe, bounces, campaigns.
    soft_bounce_limit: int = Field(
        5,
        ge=1,
        description="Soft bounces in a row (4xx refusals, no delivery between) that clean a contact.",
    )
    campaign_rate: float = Field(
        100.0, gt=0, description="Campaign emails per second, unless the campaign sets its own."
    )
    campaign_batch_size: int = Field(
        200, ge=1, le=5000, description="Recipients per page of a campaign send (one activity)."
    )

    # Performance (issue 13).
    worker_workflow_sandbox: bool = Field(
        False,
        description="Run workflows in the SDK's sandbox (about 3× the worker CPU per new run);"
        " off, determinism is checked by the replay tests and the test suite, which run"
        " sandboxed.",
    )

    @model_validator(mode="after")
    def _no_dev_secret_in_production(self) -> Settings:
        if self.env == "production" and self.secret_key.get_secret_value() == DEV_SECRET:
            raise ValueError("JOURNEYS_SECRET_KEY must be set to a real secret in production")
        return self

    @cached_property
    def effective_database_url(self) -> str:
        """The DSN to connect to: the configured one, else the embedded server's."""
        return self.database_url or (
            f"postgresql://postgres@127.0.0.1:{self.postgres_port}/journeys"
        )

    @cached_property
    def effective_temporal_address(self) -> str:
        """The Temporal frontend to connect to: the configured one, else the dev server's."""
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"

    @property
    def sms_configured(self) -> bool:
        """Flows that text contacts can be activated."""
        return self.sms_provider != "none"

    @property
    def effective_temporal_ui_url(self) -> str:
        """Where operators open the Temporal UI."""
        return (self.temporal_ui_url or f"http://127.0.0.1:{self.temporal_ui_port}").rstrip("/")

    def run_limits(self) -> RunLimits:
        """The bounds every contact run is started with."""
        return RunLimits(
            send_give_up_after_seconds=self.send_give_up_after_seconds,
            max_history_events=self.run_history_limit,
            missed_fire_grace_seconds=self.missed_fire_grace_seconds,
            yearly_rearm_spread_seconds=self.yearly_rearm_spread_seconds,
        )

    @property
    def webhook_allowlist(self) -> list[str]:
        """`webhook_allowed_hosts` as a list of entries."""
        return [e.strip() for e in self.webhook_allowed_hosts.split(",") if e.strip()]

    def webhook_signing_key(self) -> bytes:
        """The key of webhook-step signatures."""
        if self.webhook_secret is not None:
            return self.webhook_secret.get_secret_value().encode()
        return hashlib.sha256(b"webhooks:" + self.secret_key.get_secret_value().encode()).digest()

    def tracking_signing_key(self) -> bytes:
        """The key of open, click and unsubscribe tokens (derived from JOURNEYS_SECRET_KEY)."""
        return hashlib.sha256(b"tracking:" + self.secret_key.get_secret_value().encode()).digest()

    @property
    def effective_public_url(self) -> str:
        """Base URL used in links that contacts follow."""
        return (self.public_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")

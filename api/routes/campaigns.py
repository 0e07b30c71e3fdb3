"""Campaigns: one email to a segment of an audience, sent now or at a time, with a report."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any, Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, Field
from temporalio.client import WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from api.deps import API_KEY_REQUIRED, PoolDep, SettingsDep, TemporalDep
from api.problems import FieldError, Problem, ProblemError
from api.routes.audiences import require_audience
from journeys.channels.email import (
    EmailSender,
    PermanentSendError,
    SmtpConfig,
    TransientSendError,
    build_message,
    format_sender,
    message_id_for,
)
from journeys.config import Settings
from journeys.domain.campaigns import (
    CAMPAIGN_CONTROL_SIGNAL,
    CAMPAIGN_WORKFLOW_NAME,
    CampaignContent,
    CampaignControl,
    CampaignProgress,
    CampaignSendInput,
    campaign_workflow_id,
)
from journeys.domain.templating import contact_context, merge_tag_errors, render
from journeys.domain.text import SingleLine
from journeys.store import campaigns, contacts

router = APIRouter(prefix="/campaigns", tags=["campaigns"], dependencies=[API_KEY_REQUIRED])

ERRORS = {
    401: {"model": Problem},
    404: {"model": Problem},
    409: {"model": Problem},
    422: {"model": Problem},
}


class CampaignCreate(CampaignContent):
    """A campaign: its audience, name, subject and content (all but the first three optional)."""

    audience_id: str
    name: SingleLine = Field(min_length=1, max_length=100)
    subject: SingleLine = Field(min_length=1, max_length=998)


class CampaignUpdate(CampaignContent):
    """A draft's new name, subject and content (replaces them)."""

    name: str = Field(min_length=1, max_length=100)
    subject: str = Field(min_length=1, max_length=998)


class CampaignCounts(BaseModel):
    """Progress and outcome, from the message ledger and the tracking events."""

    recipients: int = Field(description="Contacts the send took (consent and segment).")
    sent: int
    failed: int
    uncertain: int = Field(
        description="Handed to the server by an attempt that died before its answer: most"
        " likely delivered, never sent again."
    )
    bounced: int
    hard_bounces: int
    soft_bounces: int
    opens: int
    unique_opens: int
    clicks: int
    unique_clicks: int
    unsubscribes: int
    complaints: int


class CampaignPublic(BaseModel):
    id: str
    audience_id: str
    name: str
    subject: str
    status: str
    content: CampaignContent
    send_at: datetime | None
    created_at: datetime
    sent_at: datetime | None
    progress: CampaignCounts | None = Field(
        None, description="Once the send has begun: what it did so far."
    )


def _template_problems(subject: str, content: CampaignContent) -> list[FieldError]:
    fields = {"subject": subject, **{k: getattr(content, k) for k in ("preheader", "html", "text")}}
    return [
        FieldError(field=name, message=message)
        for name, source in fields.items()
        if source
        for message in merge_tag_errors(source)
    ]


def _refuse(problems: list[FieldError]) -> None:
    if problems:
        raise ProblemError(422, f"{problems[0].field}: {problems[0].message}", errors=problems)


def _content(body: CampaignContent) -> dict[str, Any]:
    return CampaignContent.model_validate(
        body.model_dump(include=set(CampaignContent.model_fields))
    ).model_dump(mode="json", exclude_none=True)


async def _public(pool: PoolDep, row: dict[str, Any]) -> CampaignPublic:
    progress = None
    if row["status"] != "draft":
        progress = CampaignCounts(**await campaigns.report(pool, row["id"]))
    return CampaignPublic(
        **{**row, "content": CampaignContent.model_validate(row["content"])}, progress=progress
    )


async def _require(pool: PoolDep, campaign_id: str) -> dict[str, Any]:
    row = await campaigns.get(pool, campaign_id)
    if row is None:
        raise ProblemError(404, f"campaign {campaign_id} does not exist")
    return row


@router.post("", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_campaign(body: CampaignCreate, pool: PoolDep) -> CampaignPublic:
    """Creates a draft campaign. Flows can refer to it (opens, clicks) from now on."""
    await require_audience(pool, body.audience_id)
    _refuse(_template_problems(body.subject, body))
    row = await campaigns.create(
        pool,
        audience_id=body.audience_id,
        name=body.name,
        subject=body.subject,
        content=_content(body),
    )
    return await _public(pool, row)


@router.put("/{campaign_id}", responses=ERRORS)
async def update_campaign(campaign_id: str, body: CampaignUpdate, pool: PoolDep) -> CampaignPublic:
    """Replaces a draft's name, subject and content (409 once it is scheduled or sent)."""
    current = await _require(pool, campaign_id)
    _refuse(_template_problems(body.subject, body))
    row = await campaigns.update(
        pool, campaign_id, name=body.name, subject=body.subject, content=_content(body)
    )
    if row is None:
        raise ProblemError(409, f"a {current['status']} campaign cannot be edited")
    return await _public(pool, row)


@router.get("/{campaign_id}", responses=ERRORS)
async def get_campaign(campaign_id: str, pool: PoolDep) -> CampaignPublic:
    """The campaign, with its progress once sending has begun."""
    return await _public(pool, await _require(pool, campaign_id))


@router.get("/{campaign_id}/report", responses=ERRORS)
async def campaign_report(campaign_id: str, pool: PoolDep) -> CampaignCounts:
    """Recipients, sent, failed, bounced, opens and clicks (total and unique), unsubscribes."""
    await _require(pool, campaign_id)
    return CampaignCounts(**await campaigns.report(pool, campaign_id))


class TestSend(BaseModel):
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")


class TestSent(BaseModel):
    email: str
    message_id: str


def _sender(settings: Settings) -> EmailSender:
    return EmailSender(
        SmtpConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=(
                settings.smtp_password.get_secret_value() if settings.smtp_password else None
            ),
            starttls=settings.smtp_starttls,
            timeout=settings.smtp_timeout_seconds,
        ),
        pool_size=0,
    )


@router.post("/{campaign_id}/test", responses=ERRORS)
async def send_test(
    campaign_id: str, body: TestSend, pool: PoolDep, settings: SettingsDep
) -> TestSent:
    """Sends the campaign once to one address, subject marked `[Test]`.

    Merge tags use the contact of the audience with that address, if there is one. A test
    email is not tracked, carries no unsubscribe link and is not in the report.
    """
    row = await _require(pool, campaign_id)
    content = CampaignContent.model_validate(row["content"])
    if not (content.html or content.text):
        raise ProblemError(
            422, "the campaign has no content", errors=[FieldError(field="html", message="empty")]
        )
    contact = await contacts.resolve(pool, row["audience_id"], body.email) or {"email": body.email}
    context = contact_context(contact)
    default_name, default_address = parseaddr(settings.mail_from)
    sender = format_sender(
        content.from_name or default_name or None, content.from_email or default_address
    )
    message_id = message_id_for(f"test:{campaign_id}:{datetime.now(UTC).isoformat()}", sender)
    message = build_message(
        sender=sender,
        to=body.email,
        subject="[Test] " + render(row["subject"], context),
        html=render(content.html, context, html=True) if content.html else None,
        text=render(content.text, context) if content.text else None,
        preheader=render(content.preheader, context) if content.preheader else None,
        reply_to=content.reply_to,
        message_id=message_id,
    )
    email = _sender(settings)
    try:
        await email.send(message)
    except (PermanentSendError, TransientSendError) as exc:
        raise ProblemError(502, f"the mail server did not take the test email: {exc}") from exc
    finally:
        await email.aclose()
    return TestSent(email=body.email, message_id=message_id)


class SendRequest(BaseModel):
    send_at: datetime | None = Field(
        None, description="When to send (with a time zone); now if absent or past."
    )


@router.post("/{campaign_id}/send", status_code=status.HTTP_202_ACCEPTED, responses=ERRORS)
async def send_campaign(
    campaign_id: str,
    pool: PoolDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    body: SendRequest | None = None,
) -> CampaignPublic:
    """Sends the campaign now or at `send_at` (a durable timer): a workflow pages through the
    audience at the campaign's rate, one email per recipient, even across worker restarts."""
    row = await _require(pool, campaign_id)
    content = CampaignContent.model_validate(row["content"])
    if not (content.html or content.text):
        raise ProblemError(
            422,
            "a campaign needs html or text before it is sent",
            errors=[FieldError(field="html", message="html or text is required")],
        )
    send_at = body.send_at if body else None
    if send_at is not None and send_at.tzinfo is None:
        raise ProblemError(
            422,
            "send_at needs a time zone",
            errors=[FieldError(field="send_at", message="give a time zone, e.g. Z")],
        )
    later = send_at is not None and send_at > datetime.now(UTC)
    moved = await campaigns.set_status(
        pool,
        campaign_id,
        "scheduled" if later else "sending",
        only_from=("draft",),
        send_at=send_at if later else datetime.now(UTC),
    )
    if moved is None:
        raise ProblemError(409, f"a {row['status']} campaign cannot be sent again")
    try:
        await temporal.start_workflow(
            CAMPAIGN_WORKFLOW_NAME,
            CampaignSendInput(
                campaign_id=campaign_id,
                send_at=send_at if later else None,
                batch_size=settings.campaign_batch_size,
                rate_per_second=content.rate_per_second or settings.campaign_rate,
            ),
            id=campaign_workflow_id(campaign_id),
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
    except RPCError as exc:
        await campaigns.set_status(pool, campaign_id, "draft", only_from=("scheduled", "sending"))
        raise ProblemError(503, f"the send could not be started: {exc}") from exc
    return await _public(pool, moved)


_CONTROL: dict[str, tuple[tuple[str, ...], str | None]] = {
    # action: (statuses it applies to, the status it gives; None leaves it to the workflow)
    "pause": (("scheduled", "sending"), "paused"),
    "resume": (("paused",), "sending"),
    "cancel": (("scheduled", "sending", "paused"), None),
}


async def _control(
    pool: PoolDep,
    temporal: TemporalDep,
    campaign_id: str,
    action: Literal["pause", "resume", "cancel"],
) -> CampaignPublic:
    row = await _require(pool, campaign_id)
    allowed, target = _CONTROL[action]
    if row["status"] not in allowed:
        raise ProblemError(409, f"a {row['status']} campaign cannot {action}")
    handle: WorkflowHandle[Any, CampaignProgress] = temporal.get_workflow_handle(
        campaign_workflow_id(campaign_id)
    )
    try:
        await handle.signal(CAMPAIGN_CONTROL_SIGNAL, CampaignControl(action=action))
    except RPCError as exc:
        raise ProblemError(409, f"the send is no longer running: {exc.message}") from exc
    if target is not None:
        row = await campaigns.set_status(pool, campaign_id, target, only_from=allowed) or row
    return await _public(pool, row)


@router.post("/{campaign_id}/pause", responses=ERRORS)
async def pause_campaign(campaign_id: str, pool: PoolDep, temporal: TemporalDep) -> CampaignPublic:
    """Stops the send after the page in flight; `resume` goes on where it stopped."""
    return await _control(pool, temporal, campaign_id, "pause")


@router.post("/{campaign_id}/resume", responses=ERRORS)
async def resume_campaign(campaign_id: str, pool: PoolDep, temporal: TemporalDep) -> CampaignPublic:
    """Goes on sending a paused campaign."""
    return await _control(pool, temporal, campaign_id, "resume")


@router.post("/{campaign_id}/cancel", responses=ERRORS)
async def cancel_campaign(campaign_id: str, pool: PoolDep, temporal: TemporalDep) -> CampaignPublic:
    """Ends the send after the page in flight (status `cancelled` once it has stopped)."""
    return await _control(pool, temporal, campaign_id, "cancel")

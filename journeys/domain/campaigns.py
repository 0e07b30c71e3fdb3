"""Campaigns: one email to a segment of an audience, sent by a durable fan-out workflow."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from journeys.domain.conditions import ConditionSet
from journeys.domain.flow import Tracking

CAMPAIGN_WORKFLOW_NAME = "CampaignSendWorkflow"
CAMPAIGN_CONTROL_SIGNAL = "campaign_control"
SEND_CAMPAIGN_PAGE = "send_campaign_page"
FINISH_CAMPAIGN = "finish_campaign"


def campaign_workflow_id(campaign_id: str) -> str:
    """The one send workflow of a campaign."""
    return f"campaign-{campaign_id}"


def campaign_message_key(campaign_id: str, contact_id: str) -> str:
    """The campaign-scoped idempotency key of one recipient's email: one per contact, ever."""
    return f"campaign:{campaign_id}:{contact_id}"


class CampaignContent(BaseModel):
    """What a campaign sends and to whom, beyond its name and subject."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preheader: str | None = Field(None, max_length=250)
    html: str | None = Field(None, max_length=500_000)
    text: str | None = Field(None, max_length=500_000)
    from_name: str | None = Field(None, max_length=100)
    from_email: str | None = Field(None, max_length=254)
    reply_to: str | None = Field(None, max_length=254)
    segment: ConditionSet | None = Field(
        None, description="Narrows the audience (tags, groups, fields, activity); all if absent."
    )
    tracking: Tracking = Tracking()
    rate_per_second: float | None = Field(
        None, gt=0, le=10_000, description="Emails per second; JOURNEYS_CAMPAIGN_RATE if absent."
    )


class CampaignProgress(BaseModel):
    """Counts so far (carried across continue-as-new)."""

    recipients: int = 0
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    # Handed over by an attempt that died before the server's answer; not sent again.
    uncertain: int = 0


class CampaignSendInput(BaseModel):
    """Start (and continue-as-new) input of the send workflow."""

    campaign_id: str
    send_at: datetime | None = None
    after: str = ""
    batch_size: int = 200
    rate_per_second: float = 100.0
    paused: bool = False
    progress: CampaignProgress = CampaignProgress()


class CampaignControl(BaseModel):
    """Signal: pause, resume or cancel the send."""

    action: str = Field(pattern="^(pause|resume|cancel)$")


class CampaignPageInput(BaseModel):
    """One page of the audience: contacts after `after`, by id."""

    campaign_id: str
    after: str
    limit: int
    rate_per_second: float


class CampaignPageResult(BaseModel):
    last_id: str | None
    scanned: int
    progress: CampaignProgress


class FinishCampaignInput(BaseModel):
    campaign_id: str
    status: str

"""Campaigns: one-off emails that flow triggers and conditions can refer to."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from api.deps import ApiKeyDep, PoolDep
from api.problems import Problem, ProblemError
from api.routes.audiences import require_audience
from journeys.domain.text import SingleLine
from journeys.store import campaigns

router = APIRouter(prefix="/campaigns", tags=["campaigns"])

ERRORS = {401: {"model": Problem}, 404: {"model": Problem}, 422: {"model": Problem}}


class CampaignCreate(BaseModel):
    audience_id: str
    name: SingleLine = Field(min_length=1, max_length=100)
    subject: SingleLine = Field(min_length=1, max_length=998)


class CampaignPublic(BaseModel):
    id: str
    audience_id: str
    name: str
    subject: str
    status: str
    created_at: datetime
    sent_at: datetime | None


@router.post("", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_campaign(body: CampaignCreate, pool: PoolDep, _key: ApiKeyDep) -> CampaignPublic:
    """Registers a campaign (a draft), so flows can react to its opens and clicks."""
    await require_audience(pool, body.audience_id)
    return CampaignPublic(
        **await campaigns.create(
            pool, audience_id=body.audience_id, name=body.name, subject=body.subject
        )
    )


@router.get("/{campaign_id}", responses=ERRORS)
async def get_campaign(campaign_id: str, pool: PoolDep, _key: ApiKeyDep) -> CampaignPublic:
    row = await campaigns.get(pool, campaign_id)
    if row is None:
        raise ProblemError(404, f"campaign {campaign_id} does not exist")
    return CampaignPublic(**row)

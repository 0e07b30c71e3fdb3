"""Operator views: what the system set aside and why."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import API_KEY_REQUIRED, PoolDep
from api.problems import Problem
from journeys.store import events

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[API_KEY_REQUIRED])

ERRORS = {401: {"model": Problem}, 422: {"model": Problem}}
MAX_OFFSET = 1_000_000


class DeadLetter(BaseModel):
    """An event the outbox relay could never deliver (its data is left out: it may be huge)."""

    id: str
    idempotency_key: str
    audience_id: str | None
    contact_id: str | None
    type: str
    occurred_at: datetime
    received_at: datetime
    dead_lettered_at: datetime
    reason: str = Field(description="Why it cannot be delivered, e.g. Temporal's refusal.")
    attempts: int
    data_bytes: int = Field(description="Size of the event's data as stored.")


class DeadLetterList(BaseModel):
    total: int
    dead_letters: list[DeadLetter]


@router.get("/dead-letters", responses=ERRORS)
async def list_dead_letters(
    pool: PoolDep,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> DeadLetterList:
    """Dead-lettered events, newest first, with the reason each was set aside."""
    rows = await events.dead_letters(pool, limit=limit, offset=offset)
    return DeadLetterList(
        total=await events.count_dead_letters(pool),
        dead_letters=[DeadLetter(**row) for row in rows],
    )

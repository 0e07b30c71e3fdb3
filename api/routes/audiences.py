"""Audiences: the lists contacts belong to."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from api.deps import API_KEY_REQUIRED, IngestDep, PoolDep
from api.problems import Problem, ProblemError
from journeys.domain.text import SingleLine
from journeys.domain.timezones import check_timezone, known_timezones
from journeys.store import audiences, rezones

router = APIRouter(prefix="/audiences", tags=["audiences"], dependencies=[API_KEY_REQUIRED])

TimeZone = Annotated[
    str,
    AfterValidator(check_timezone),
    Field(json_schema_extra={"enum": known_timezones()}),
]


class AudienceCreate(BaseModel):
    name: SingleLine = Field(min_length=1, max_length=100)
    timezone: TimeZone = "UTC"


class AudiencePublic(BaseModel):
    id: str
    name: str
    timezone: str
    created_at: datetime


ERRORS = {401: {"model": Problem}, 404: {"model": Problem}, 422: {"model": Problem}}


@router.post("", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_audience(body: AudienceCreate, pool: PoolDep) -> AudiencePublic:
    """Creates an audience; its time zone is the default for contacts without one."""
    return AudiencePublic(**await audiences.create(pool, name=body.name, timezone=body.timezone))


class AudienceList(BaseModel):
    audiences: list[AudiencePublic]


@router.get("", responses={401: {"model": Problem}, 422: {"model": Problem}})
async def list_audiences(pool: PoolDep, limit: int = Query(100, ge=1, le=1000)) -> AudienceList:
    """Audiences, oldest first."""
    rows = await audiences.list_all(pool, limit=limit)
    return AudienceList(audiences=[AudiencePublic(**row) for row in rows])


@router.get("/{audience_id}", responses=ERRORS)
async def get_audience(audience_id: UUID, pool: PoolDep) -> AudiencePublic:
    """One audience."""
    row = await audiences.get(pool, str(audience_id))
    if row is None:
        raise ProblemError(404, f"audience {audience_id} does not exist")
    return AudiencePublic(**row)


class AudienceUpdate(BaseModel):
    """The fields to change; a field left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    # Optional but never null: typed without None (so the schema offers no null); the default
    # None is never validated and means "left out".
    name: SingleLine = Field(None, min_length=1, max_length=100)  # type: ignore[assignment]
    timezone: TimeZone = Field(  # type: ignore[assignment]
        None,
        description="IANA zone. Armed date-trigger runs of contacts without a zone of their own"
        " move to the new local instant.",
    )

    @field_validator("name", "timezone", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may be left out, but not null")
        return value


class AudienceUpdated(AudiencePublic):
    rearmed: int = Field(
        description="Armed runs told to move their timer to the new time zone (0 if the zone"
        " did not change)."
    )


@router.patch("/{audience_id}", responses=ERRORS)
async def update_audience(
    audience_id: UUID, body: AudienceUpdate, pool: PoolDep, ingest: IngestDep
) -> AudienceUpdated:
    """Renames the audience or changes its time zone.

    A new zone re-arms, before the answer, the armed runs of date triggers (`birthday`,
    `specific_date`, ...) whose contact has no zone of its own: each timer moves to the same
    local time in the new zone. The change is stored with the zone, so if the answer never
    comes, the outbox relay finishes telling the runs.
    """
    async with pool.acquire() as conn, conn.transaction():
        # The row locked, so two changes of zone are recorded in the order they were made.
        before = await audiences.get(conn, str(audience_id), for_update=True)
        after = await audiences.update(
            conn, str(audience_id), name=body.name, timezone=body.timezone
        )
        if before is None or after is None:  # deleted meanwhile
            raise ProblemError(404, f"audience {audience_id} does not exist")
        rezone = None
        if after["timezone"] != before["timezone"]:
            # Stored with the zone: if this process dies before every run heard of it, the
            # outbox relay tells them.
            rezone = await rezones.record(
                conn, audience_id=after["id"], zone=after["timezone"], previous=before["timezone"]
            )
    rearmed = await ingest.audience_rezoned(rezone) if rezone is not None else 0
    return AudienceUpdated(**after, rearmed=rearmed)


async def require_audience(pool: PoolDep, audience_id: str) -> dict[str, object]:
    """The audience, or a 404 naming it."""
    row = await audiences.get(pool, audience_id)
    if row is None:
        raise ProblemError(404, f"audience {audience_id} does not exist")
    return row

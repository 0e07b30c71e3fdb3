"""`POST /v1/events:batch`: many activity events in one request, for backend services."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from api.deps import API_KEY_REQUIRED, IngestDep, PoolDep, SettingsDep
from api.problems import FieldError, Problem, ProblemError
from api.routes.contacts import ActivityEvent, EnrolmentPublic
from journeys import batch
from journeys.domain.events import IncomingEvent, activity_problems
from journeys.domain.text import json_size
from journeys.store import audiences, contacts

router = APIRouter(tags=["events"], dependencies=[API_KEY_REQUIRED])

ERRORS = {401: {"model": Problem}, 413: {"model": Problem}, 422: {"model": Problem}}


class BatchEvent(ActivityEvent):
    """An activity event as `POST /v1/audiences/{id}/contacts/{contact}/activity` takes it, with
    the audience, the contact and the idempotency key that post carries in its path and header."""

    audience_id: uuid.UUID
    contact: str = Field(
        min_length=1, max_length=254, description="The contact's id, email or subscriber hash."
    )
    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Same key (per contact and type), same event: a repeat is a duplicate. Shared"
        " with the single post's `Idempotency-Key` header.",
    )


class EventBatch(BaseModel):
    events: list[BatchEvent] = Field(min_length=1, max_length=batch.MAX_EVENTS)


class BatchEventResult(BaseModel):
    event_id: str
    outcome: Literal["stored", "duplicate"] = Field(
        description="`duplicate`: its idempotency key was seen before (or earlier in the batch)."
    )
    delivered: bool = Field(
        description="Temporal accepted what the event causes. False: the event is stored and"
        " the outbox relay delivers it shortly (its enrolments are then not listed here)."
    )
    enrolments: list[EnrolmentPublic]


class BatchAccepted(BaseModel):
    results: list[BatchEventResult] = Field(description="One per event, in the batch's order.")


def _problem(status_code: int, errors: list[FieldError]) -> ProblemError:
    return ProblemError(
        status_code,
        f"{errors[0].field}: {errors[0].message}"
        + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
        errors=errors,
    )


async def _checked(body: EventBatch, pool: PoolDep, max_data_bytes: int) -> list[IncomingEvent]:
    """The batch's events, addressed to their contacts, once every one of them is valid.

    Raises:
        ProblemError: 413 naming each `events[i].data` over the size limit, else 422 naming
            every field of every event that is wrong (nothing is stored).
    """
    too_big = [
        FieldError(field=f"events[{i}].data", message=f"at most {max_data_bytes} bytes of JSON")
        for i, e in enumerate(body.events)
        if json_size(e.data) > max_data_bytes
    ]
    if too_big:
        raise _problem(413, too_big)
    errors = [
        FieldError(field=f"events[{i}].{path}", message=message)
        for i, e in enumerate(body.events)
        for path, message in activity_problems(e.type, e.data)
    ]
    known = await audiences.existing(pool, [str(e.audience_id) for e in body.events])
    errors += [
        FieldError(field=f"events[{i}].audience_id", message="no such audience")
        for i, e in enumerate(body.events)
        if str(e.audience_id) not in known
    ]
    ids = await contacts.resolve_many(pool, [(str(e.audience_id), e.contact) for e in body.events])
    errors += [
        FieldError(field=f"events[{i}].contact", message="no such contact in this audience")
        for i, (e, contact_id) in enumerate(zip(body.events, ids, strict=True))
        if contact_id is None and str(e.audience_id) in known
    ]
    if errors:
        raise _problem(422, sorted(errors, key=lambda err: _index(err.field)))
    return [
        IncomingEvent(
            type=e.type,
            audience_id=str(e.audience_id),
            contact_id=contact_id,
            # As the single post builds it, so a retry through either is the same event.
            idempotency_key=f"{e.type}:{contact_id}:{e.idempotency_key or uuid.uuid4().hex}",
            data=e.data,
            occurred_at=e.occurred_at,
        )
        for e, contact_id in zip(body.events, ids, strict=True)
        if contact_id is not None
    ]


def _index(field: str) -> int:
    return int(field.split("[", 1)[1].split("]", 1)[0])


@router.post(
    "/events:batch",
    status_code=status.HTTP_202_ACCEPTED,
    responses=ERRORS,
    summary="Post up to 500 activity events at once",
)
async def post_batch(
    body: EventBatch,
    pool: PoolDep,
    ingest: IngestDep,
    settings: SettingsDep,
) -> BatchAccepted:
    """Records up to 500 activity events (orders, page views, carts…) of any contacts in one
    transaction, then enrols the contacts in the flows they trigger.

    The batch is all or nothing: if any event is invalid (a missing field, an unknown contact),
    the answer is a 422 naming every bad field as `events[i].field` and nothing is stored. Once
    stored, each event has its result, in order: `stored` or `duplicate` (idempotency key seen
    before), whether Temporal accepted it now (`delivered`; otherwise the outbox relay delivers
    it shortly) and its enrolments. A 202 means every event is durable.
    """
    checked = await _checked(body, pool, settings.max_event_data_bytes)
    stored = await batch.store_batch(ingest, checked)
    outcomes = await batch.deliver_batch(ingest, checked, stored)
    return BatchAccepted(
        results=[
            BatchEventResult(
                event_id=o.event_id,
                outcome="duplicate" if o.duplicate else "stored",
                delivered=o.delivered,
                enrolments=[EnrolmentPublic.of(e) for e in o.enrolments],
            )
            for o in outcomes
        ]
    )

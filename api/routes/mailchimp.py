"""Mailchimp Marketing API 3.0 compatible routes: a program written against Mailchimp (its
official client included) works by changing only its base URL and API key.

`list_id` is an audience id; `subscriber_hash` is the MD5 of the lower-cased email (the email
itself is accepted too). Changes go through the same ingest as the native API, so they fire
the same triggers: `signed_up_email`, `tag_added`, `field_changed`, `event_api`, `flow_api`.
Errors have Mailchimp's shape and status codes (`type`, `title`, `status`, `detail`,
`instance`, and `errors` for fields). Fields Mailchimp has and this server does not act on
(`language`, `vip`, `interests`, …) are refused with a 400 naming them, never ignored.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.deps import IngestDep, PoolDep, SettingsDep, TemporalDep, require_api_key
from api.problems import (
    MAILCHIMP_ERRORS,
    FieldError,
    Problem,
    ProblemError,
    mailchimp_invalid,
    validation_errors,
)
from api.routes.audiences import TimeZone
from journeys import changes, members
from journeys.config import Settings
from journeys.domain.events import IncomingEvent
from journeys.domain.journey_ids import journey_ids
from journeys.domain.merge_fields import MergeField, from_contact, to_contact
from journeys.domain.text import EmailAddress as Email
from journeys.ingest import Ingest
from journeys.registry import ActiveFlow
from journeys.security import subscriber_hash as hash_of_email
from journeys.store import audiences, contacts, events, flows, merge_fields


async def mailchimp_key(request: Request) -> str:
    """The API key from HTTP Basic (any user name), refused with Mailchimp's titles."""
    try:
        return await require_api_key(request)
    except ProblemError as err:
        missing = "required" in err.detail
        raise ProblemError(
            401,
            "Your request did not include an API key."
            if missing
            else "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
            title="API Key Missing" if missing else "API Key Invalid",
            type=MAILCHIMP_ERRORS,
            headers=err.headers,
        ) from err


router = APIRouter(prefix="/3.0", tags=["mailchimp"], dependencies=[Depends(mailchimp_key)])

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem},
    401: {"model": Problem},
    404: {"model": Problem},
}
BATCH_MAX = 500
# Members of a batch saved at once: most of a save is waiting on Postgres and Temporal (on the
# test machine, 500 members took 15 s with 8 at once, 8 s with 16; without flows 4.5 s and 1.4 s).
BATCH_PARALLEL = 16
Status = Literal["subscribed", "unsubscribed", "pending", "transactional"]


def _not_found(detail: str = "The requested resource could not be found.") -> ProblemError:
    return ProblemError(404, detail, title="Resource Not Found", type=MAILCHIMP_ERRORS)


def _bad(detail: str, *, title: str = "Bad Request", field: str | None = None) -> ProblemError:
    errors = [FieldError(field=field, message=detail)] if field else None
    return ProblemError(400, detail, title=title, type=MAILCHIMP_ERRORS, errors=errors)


# --- members ------------------------------------------------------------------------------------


class MemberLocation(BaseModel):
    """Where the member is; `timezone` sets the time zone flows use for its local times."""

    model_config = ConfigDict(extra="forbid")

    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    country_code: str | None = Field(None, pattern=r"^[A-Za-z]{2}$")
    timezone: TimeZone | None = None


class MemberIn(BaseModel):
    """A list member as Mailchimp's add/update/upsert calls take it."""

    model_config = ConfigDict(extra="forbid")

    email_address: Email | None = Field(None, max_length=254)
    status: Status | None = None
    status_if_new: Status | None = None
    merge_fields: dict[str, Any] | None = None
    tags: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(
        None, max_length=100, description="Tags to add (each new one fires `tag_added`)."
    )
    timezone: TimeZone | None = Field(None, description="IANA zone (also `location.timezone`).")
    location: MemberLocation | None = None


class MemberTag(BaseModel):
    id: int
    name: str


class Member(BaseModel):
    """A list member as Mailchimp shows it."""

    id: str = Field(description="The subscriber hash.")
    email_address: str
    unique_email_id: str
    contact_id: str
    full_name: str
    status: str
    merge_fields: dict[str, Any]
    location: dict[str, Any]
    timestamp_signup: datetime
    last_changed: datetime
    tags_count: int
    tags: list[MemberTag]
    list_id: str


async def _audience(pool: PoolDep, list_id: str) -> dict[str, Any]:
    row = await audiences.get(pool, list_id)
    if row is None:
        raise _not_found(f"The list {list_id} could not be found.")
    return row


async def _member_row(list_id: str, subscriber_hash: str, pool: PoolDep) -> dict[str, Any]:
    """The member the path names, by subscriber hash or email; Mailchimp's 404 if none."""
    await _audience(pool, list_id)
    row = await contacts.resolve(pool, list_id, subscriber_hash)
    if row is None:
        raise _not_found()
    return row


MemberRow = Annotated[dict[str, Any], Depends(_member_row)]


async def _show(pool: PoolDep, row: dict[str, Any], merge: dict[str, MergeField]) -> Member:
    tag_rows = await contacts.tags_with_ids(pool, row["id"])
    location = dict(row.get("location") or {})
    if row.get("timezone"):
        location["timezone"] = row["timezone"]
    return Member(
        id=row["subscriber_hash"],
        email_address=row["email"],
        unique_email_id=row["id"],
        contact_id=row["id"],
        full_name=" ".join(p for p in (row["first_name"], row["last_name"]) if p),
        status=row["status"],
        merge_fields=from_contact(row, merge),
        location=location,
        timestamp_signup=row["signup_at"],
        last_changed=row["updated_at"],
        tags_count=len(tag_rows),
        tags=[MemberTag(id=r["id"], name=r["name"]) for r in tag_rows],
        list_id=row["audience_id"],
    )


def _given(
    body: MemberIn,
    *,
    email: str,
    before: dict[str, Any] | None,
    merge: dict[str, MergeField],
    settings: Settings,
    field_prefix: str = "",
) -> dict[str, Any]:
    """The native contact change a Mailchimp member body asks for.

    Raises:
        ProblemError: a merge field is unknown or does not fit its type (400, per field).
    """
    given, problems = to_contact(
        body.merge_fields or {},
        merge,
        creating=before is None,
        phone_region=settings.phone_default_region,
    )
    if problems:
        raise mailchimp_invalid(
            [FieldError(field=f"{field_prefix}merge_fields.{t}", message=m) for t, m in problems],
            "Your merge fields were invalid.",
        )
    given["email"] = email
    # `status_if_new` applies to a contact that does not exist yet (PUT's upsert), or that
    # was archived: putting an archived member back is adding it again, as at Mailchimp.
    is_new = before is None or before["status"] == "archived"
    new_status = body.status or (body.status_if_new if is_new else None)
    if new_status:
        given["status"] = new_status
    location = body.location.model_dump(exclude_none=True) if body.location else None
    timezone = body.timezone or (location or {}).pop("timezone", None)
    if timezone:
        given["timezone"] = timezone
    if location:
        given["location"] = location
    return given


async def _save(
    ingest: Ingest,
    settings: Settings,
    *,
    list_id: str,
    given: dict[str, Any],
    tags: list[str] | None,
) -> tuple[dict[str, Any], bool]:
    key = uuid.uuid4().hex
    try:
        row, created, _, _ = await members.save(
            ingest, settings, audience_id=list_id, given=given, key=key
        )
    except members.ConfirmationNotSent as err:
        raise ProblemError(
            503,
            f"the member is stored as pending, but its confirmation email failed ({err});"
            " send the request again to retry",
            type=MAILCHIMP_ERRORS,
        ) from err
    if tags:
        await ingest.change(
            partial(
                changes.add_tags,
                audience_id=list_id,
                contact_id=row["id"],
                names=list(dict.fromkeys(tags)),
                key=key,
            )
        )
    return row, created


async def _store(
    pool: PoolDep,
    ingest: Ingest,
    settings: Settings,
    *,
    list_id: str,
    body: MemberIn,
    email: str,
    before: dict[str, Any] | None,
) -> Member:
    """Saves one member as a PUT, PATCH or POST gave it, and shows it as saved."""
    merge = await merge_fields.defined(pool, list_id)
    given = _given(body, email=email, before=before, merge=merge, settings=settings)
    row, _ = await _save(ingest, settings, list_id=list_id, given=given, tags=body.tags)
    return await _show(pool, row, merge)


def _check_hash(subscriber: str, email: str) -> None:
    if subscriber.lower() not in (hash_of_email(email), email.strip().lower()):
        raise _bad(
            "The subscriber hash does not match the email address.",
            title="Invalid Resource",
            field="email_address",
        )


def _paths(value: str | None) -> list[list[str]]:
    return [p.strip().split(".") for p in (value or "").split(",") if p.strip()]


def _pick(data: dict[str, Any], paths: list[list[str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in paths:
        head, rest = path[0], path[1:]
        if head not in data:
            continue
        if rest and isinstance(data[head], dict):
            out[head] = {**out.get(head, {}), **_pick(data[head], [rest])}
        else:
            out[head] = data[head]
    return out


def _drop(data: dict[str, Any], paths: list[list[str]]) -> dict[str, Any]:
    out = dict(data)
    for path in paths:
        head, rest = path[0], path[1:]
        if head in out and rest and isinstance(out[head], dict):
            out[head] = _drop(out[head], [rest])
        elif not rest:
            out.pop(head, None)
    return out


@router.get("/lists/{list_id}/members/{subscriber_hash}", response_model=Member, responses=ERRORS)
async def get_member(
    list_id: str,
    row: MemberRow,
    pool: PoolDep,
    fields: str | None = Query(
        None, max_length=2000, description="Comma-separated fields to return (dots for sub-fields)."
    ),
    exclude_fields: str | None = Query(
        None, max_length=2000, description="Comma-separated fields to leave out."
    ),
) -> Any:
    """One member, by subscriber hash or email address."""
    shown = await _show(pool, row, await merge_fields.defined(pool, list_id))
    if not (fields or exclude_fields):
        return shown
    data = shown.model_dump(mode="json")
    if fields:
        data = _pick(data, _paths(fields))
    return JSONResponse(_drop(data, _paths(exclude_fields)))


@router.put("/lists/{list_id}/members/{subscriber_hash}", responses=ERRORS)
async def set_member(
    list_id: str,
    subscriber_hash: str,
    body: MemberIn,
    pool: PoolDep,
    ingest: IngestDep,
    settings: SettingsDep,
) -> Member:
    """Adds or updates a member (`status_if_new` is the status of a new one)."""
    await _audience(pool, list_id)
    if body.email_address is None:
        raise mailchimp_invalid([FieldError(field="email_address", message="is required")])
    _check_hash(subscriber_hash, body.email_address)
    before = await contacts.resolve(pool, list_id, body.email_address)
    if (before is None or before["status"] == "archived") and not (
        body.status or body.status_if_new
    ):
        raise mailchimp_invalid(
            [FieldError(field="status_if_new", message="is required for a new member")]
        )
    return await _store(
        pool, ingest, settings, list_id=list_id, body=body, email=body.email_address, before=before
    )


@router.patch("/lists/{list_id}/members/{subscriber_hash}", responses=ERRORS)
async def update_member(
    list_id: str,
    body: MemberIn,
    before: MemberRow,
    pool: PoolDep,
    ingest: IngestDep,
    settings: SettingsDep,
) -> Member:
    """Updates an existing member; fields left out keep their value."""
    if body.email_address and hash_of_email(body.email_address) != before["subscriber_hash"]:
        raise _bad(
            "Changing a member's email address is not supported: archive it and add the new one.",
            title="Invalid Resource",
            field="email_address",
        )
    return await _store(
        pool, ingest, settings, list_id=list_id, body=body, email=before["email"], before=before
    )


@router.post("/lists/{list_id}/members", responses=ERRORS)
async def add_member(
    list_id: str, body: MemberIn, pool: PoolDep, ingest: IngestDep, settings: SettingsDep
) -> Member:
    """Adds a new member; an existing one is Mailchimp's 400 "Member Exists"."""
    await _audience(pool, list_id)
    missing = [
        FieldError(field=name, message="is required")
        for name in ("email_address", "status")
        if getattr(body, name) is None
    ]
    if missing:
        raise mailchimp_invalid(missing)
    assert body.email_address is not None
    before = await contacts.resolve(pool, list_id, body.email_address)
    if before is not None and before["status"] != "archived":
        raise _bad(
            f"{body.email_address} is already a list member. Use PUT to insert or update"
            " list members.",
            title="Member Exists",
        )
    return await _store(
        pool, ingest, settings, list_id=list_id, body=body, email=body.email_address, before=before
    )


@router.delete(
    "/lists/{list_id}/members/{subscriber_hash}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=ERRORS,
)
async def archive_member(row: MemberRow, ingest: IngestDep) -> Response:
    """Archives the member: it stays on record, gets no more marketing email."""
    await ingest.change(partial(changes.archive, contact=row, key=uuid.uuid4().hex))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=ERRORS,
)
async def delete_member_permanently(
    row: MemberRow, pool: PoolDep, temporal: TemporalDep
) -> Response:
    """Erases the member's personal data and ends its runs in every flow.

    Open runs are terminated first (their histories hold ids, never the address), then the
    contact, its tags, groups, events and enrolments are deleted and its sent messages lose
    their recipient.
    """
    await members.erase(pool, temporal, contact_id=row["id"])
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- batch subscribe ----------------------------------------------------------------------------


class BatchIn(BaseModel):
    """Mailchimp's batch subscribe: up to 500 members; each one is checked on its own."""

    model_config = ConfigDict(extra="forbid")

    members: list[dict[str, Any]] = Field(min_length=1, max_length=BATCH_MAX)
    update_existing: bool = False


class BatchError(BaseModel):
    email_address: str
    error: str
    error_code: str
    field: str
    field_message: str


class BatchResult(BaseModel):
    new_members: list[Member]
    updated_members: list[Member]
    errors: list[BatchError]
    total_created: int
    total_updated: int
    error_count: int


@router.post("/lists/{list_id}", responses=ERRORS)
async def batch_subscribe(
    list_id: str, body: BatchIn, pool: PoolDep, ingest: IngestDep, settings: SettingsDep
) -> BatchResult:
    """Adds or updates many members; a bad one is reported in `errors`, the others are saved.

    Members are saved a few at a time in parallel (each is its own change, as one PUT would
    be): most of a save is waiting for Postgres and Temporal, not computing.
    """
    await _audience(pool, list_id)
    merge = await merge_fields.defined(pool, list_id)
    errors: list[BatchError] = []
    seen: set[str] = set()

    def fail(email: str, error: str, code: str, field: str = "", message: str = "") -> None:
        errors.append(
            BatchError(
                email_address=email,
                error=error,
                error_code=code,
                field=field,
                field_message=message or error,
            )
        )

    async def one(index: int, raw: dict[str, Any]) -> tuple[bool, Member] | None:
        email = str(raw.get("email_address", ""))
        try:
            member = MemberIn.model_validate(raw)
        except ValidationError as err:
            first = validation_errors(list(err.errors()), frozenset())[0]
            fail(email, f"{first.field}: {first.message}", "ERROR_GENERIC", first.field)
            return None
        if member.email_address is None:
            fail(email, "email_address is required", "ERROR_GENERIC", "email_address")
            return None
        digest = hash_of_email(member.email_address)
        if digest in seen:
            fail(email, f"{email} appears twice in this batch", "ERROR_GENERIC", "email_address")
            return None
        seen.add(digest)
        async with limit:
            before = await contacts.resolve(pool, list_id, member.email_address)
            if before is not None and before["status"] != "archived" and not body.update_existing:
                fail(
                    email,
                    f"{email} is already a list member, do you want to update? please provide"
                    " update_existing:true in the request body",
                    "ERROR_CONTACT_EXISTS",
                )
                return None
            if before is None and not (member.status or member.status_if_new):
                fail(email, "status is required for a new member", "ERROR_GENERIC", "status")
                return None
            try:
                given = _given(
                    member,
                    email=member.email_address,
                    before=before,
                    merge=merge,
                    settings=settings,
                    field_prefix=f"members[{index}].",
                )
                row, _ = await _save(
                    ingest, settings, list_id=list_id, given=given, tags=member.tags
                )
            except ProblemError as err:
                where = err.errors[0] if err.errors else None
                fail(
                    email,
                    err.detail,
                    "ERROR_GENERIC",
                    where.field if where else "",
                    where.message if where else "",
                )
                return None
            return before is None, await _show(pool, row, merge)

    limit = asyncio.Semaphore(BATCH_PARALLEL)
    saved = await asyncio.gather(*(one(i, raw) for i, raw in enumerate(body.members)))
    created = [m for s in saved if s and s[0] for m in [s[1]]]
    updated = [m for s in saved if s and not s[0] for m in [s[1]]]
    return BatchResult(
        new_members=created,
        updated_members=updated,
        errors=errors,
        total_created=len(created),
        total_updated=len(updated),
        error_count=len(errors),
    )


# --- events and tags ----------------------------------------------------------------------------


class MemberEvent(BaseModel):
    """A custom event (the `event_api` trigger)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{2,30}$")
    properties: dict[str, str] | None = None
    occurred_at: datetime | None = None
    is_syncing: bool = Field(False, description="Record only: trigger no flow.")


class MemberEventOut(BaseModel):
    name: str
    properties: dict[str, Any]
    occurred_at: datetime


class MemberEvents(BaseModel):
    events: list[MemberEventOut]
    total_items: int


@router.post(
    "/lists/{list_id}/members/{subscriber_hash}/events",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=ERRORS,
)
async def post_member_event(
    list_id: str, body: MemberEvent, row: MemberRow, ingest: IngestDep
) -> Response:
    """Records the event; it enrols the member in flows with a matching `event_api` trigger."""
    event = IncomingEvent(
        type="custom_event",
        audience_id=list_id,
        contact_id=row["id"],
        idempotency_key=f"custom_event:{row['id']}:{uuid.uuid4().hex}",
        data={"name": body.name, "properties": body.properties or {}},
        occurred_at=body.occurred_at,
    )
    await ingest.event(event, trigger=not body.is_syncing)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/lists/{list_id}/members/{subscriber_hash}/events", responses=ERRORS)
async def get_member_events(
    row: MemberRow, pool: PoolDep, count: int = Query(10, ge=1, le=1000)
) -> MemberEvents:
    """The member's latest custom events, newest first."""
    found = await events.of_contact(pool, row["id"], "custom_event", limit=count)
    return MemberEvents(
        events=[
            MemberEventOut(
                name=e["data"].get("name", ""),
                properties=e["data"].get("properties") or {},
                occurred_at=e["occurred_at"],
            )
            for e in found
        ],
        total_items=len(found),
    )


class TagChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    status: Literal["active", "inactive"]


class TagsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tags: list[TagChange] = Field(min_length=1, max_length=100)
    is_syncing: bool = Field(False, description="Change the tags without triggering flows.")


@router.post(
    "/lists/{list_id}/members/{subscriber_hash}/tags",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=ERRORS,
)
async def update_member_tags(
    list_id: str, body: TagsIn, row: MemberRow, ingest: IngestDep
) -> Response:
    """Adds (`active`) and removes (`inactive`) tags; each new tag fires `tag_added`."""
    key = uuid.uuid4().hex
    add = [t.name.strip() for t in body.tags if t.status == "active"]
    remove = [t.name.strip() for t in body.tags if t.status == "inactive"]
    for names, change in ((remove, changes.remove_tags), (add, changes.add_tags)):
        if names:
            await ingest.change(
                partial(
                    change,
                    audience_id=list_id,
                    contact_id=row["id"],
                    names=list(dict.fromkeys(names)),
                    key=key,
                ),
                trigger=not body.is_syncing,
            )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- customer journeys --------------------------------------------------------------------------


class JourneyTrigger(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email_address: Email = Field(max_length=254)


@router.post(
    "/customer-journeys/journeys/{journey_id}/steps/{step_id}/actions/trigger",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=ERRORS,
)
async def trigger_journey(
    journey_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    step_id: Annotated[int, Path(ge=0)],
    body: JourneyTrigger,
    pool: PoolDep,
    ingest: IngestDep,
) -> Response:
    """Enrols the contact through the flow's `flow_api` trigger (as `POST /v1/flows/{id}/trigger`).

    The ids are the ones `GET /v1/flows/{id}` shows as `journey_id` and `step_id`.
    """
    flow = await flows.by_journey_id(pool, journey_id)
    ids = journey_ids(flow) if flow else None
    if flow is None or ids is None or ids[1] != step_id:
        raise _not_found(f"Journey {journey_id} has no API trigger step {step_id}.")
    if flow["status"] != "active":
        raise _bad(f"The journey is {flow['status']}: only an active journey can be triggered.")
    contact = await contacts.resolve(pool, flow["audience_id"], body.email_address)
    if contact is None:
        raise _not_found(f"{body.email_address} is not a member of the journey's list.")
    await ingest.to_flow(
        ActiveFlow.from_row(flow),
        contact["id"],
        event_type="flow_api",
        key=f"flow_api:{flow['id']}:{contact['id']}:{uuid.uuid4().hex}",
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)

"""Contacts of an audience and their tags. Adding a tag is the `tag_added` trigger's event."""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response, status
from pydantic import AfterValidator, BaseModel, Field, WithJsonSchema

from api.deps import API_KEY_REQUIRED, IngestDep, PoolDep, SettingsDep
from api.problems import FieldError, Problem, ProblemError
from api.routes.audiences import TimeZone, require_audience
from journeys import changes, members
from journeys.config import Settings
from journeys.dispatch import DispatchResult, Enrolment
from journeys.domain.events import ACTIVITY_EVENTS, IncomingEvent, activity_problems
from journeys.domain.merge_fields import COLUMN, MergeField, to_contact
from journeys.domain.phones import to_e164
from journeys.domain.text import (
    JSON_OBJECT_SCHEMA,
    CleanJson,
    EmailAddress,
    SingleLine,
    json_size,
)
from journeys.ingest import Ingest
from journeys.store import contacts, groups, merge_fields

router = APIRouter(
    prefix="/audiences/{audience_id}/contacts", tags=["contacts"], dependencies=[API_KEY_REQUIRED]
)

ERRORS = {
    401: {"model": Problem},
    404: {"model": Problem},
    413: {"model": Problem},
    422: {"model": Problem},
}
_BIRTHDAY = re.compile(r"^(\d{4}-)?(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")


def _birthday(value: str) -> str:
    if not _BIRTHDAY.match(value):
        raise ValueError("birthday must be MM-DD or YYYY-MM-DD")
    return value


TagName = Annotated[SingleLine, Field(min_length=1, max_length=100)]
JsonObject = Annotated[dict[str, Any], CleanJson, WithJsonSchema(JSON_OBJECT_SCHEMA)]


def _within(value: Any, *, field: str, limit: int) -> None:
    """Refuses a JSON value larger than `limit` bytes before anything is stored (413)."""
    size = json_size(value)
    if size > limit:
        raise ProblemError(
            413,
            f"{field}: {size} bytes is more than the {limit} allowed",
            errors=[FieldError(field=field, message=f"at most {limit} bytes of JSON")],
        )


class ContactUpsert(BaseModel):
    """A contact, matched on its email address: fields left out keep their value."""

    email: EmailAddress = Field(max_length=254)
    status: Literal["subscribed", "unsubscribed", "pending", "transactional"] | None = None
    first_name: SingleLine | None = Field(None, max_length=100)
    last_name: SingleLine | None = Field(None, max_length=100)
    phone: SingleLine | None = Field(
        None, max_length=32, description="Stored in E.164, e.g. +33612345678."
    )
    sms_status: Literal["subscribed", "unsubscribed", "none"] | None = None
    timezone: TimeZone | None = None
    birthday: (
        Annotated[
            str,
            AfterValidator(_birthday),
            Field(json_schema_extra={"pattern": _BIRTHDAY.pattern}),
        ]
        | None
    ) = None
    fields: JsonObject | None = Field(
        None,
        description="Custom fields, merged into stored ones (size: JOURNEYS_MAX_CONTACT_FIELDS_BYTES).",
    )
    imported: bool = Field(
        False,
        description="Part of a bulk import: fires signed_up triggers only where they include imports.",
    )


class ContactPublic(BaseModel):
    id: str
    audience_id: str
    email: str
    subscriber_hash: str
    status: str
    first_name: str | None
    last_name: str | None
    phone: str | None
    sms_status: str
    timezone: str | None
    birthday: str | None
    fields: dict[str, Any]
    tags: list[str]
    signup_at: datetime
    updated_at: datetime


class TagsAdd(BaseModel):
    tags: list[TagName] = Field(min_length=1, max_length=100)


class EnrolmentPublic(BaseModel):
    flow_id: str
    workflow_id: str
    outcome: Literal["started", "already_in_flow", "refused"]
    reason: str | None = None

    @classmethod
    def of(cls, enrolment: Enrolment) -> EnrolmentPublic:
        """What the API shows of one flow's decision on an event (`Dispatcher` outcomes)."""
        return cls(
            flow_id=enrolment.flow_id,
            workflow_id=enrolment.workflow_id,
            outcome=enrolment.outcome,  # type: ignore[arg-type]
            reason=enrolment.reason,
        )


class TagsAdded(BaseModel):
    contact_id: str
    tags: list[str] = Field(description="All the contact's tags after the change.")
    added: list[str] = Field(description="Tags the contact did not have before.")
    enrolments: list[EnrolmentPublic]


async def _contact(pool: PoolDep, audience_id: str, ref: str) -> dict[str, Any]:
    # One query on the hot path; the audience is looked up only to say which one is missing.
    contact = await contacts.resolve(pool, audience_id, ref)
    if contact is None:
        await require_audience(pool, audience_id)
        raise ProblemError(404, f"contact {ref!r} does not exist in audience {audience_id}")
    return contact


async def _contact_id(pool: PoolDep, audience_id: str, ref: str) -> str:
    """The contact's id (a 404 as `_contact` words it if none), reading nothing else."""
    found = await contacts.resolve_id(pool, audience_id, ref)
    if found is None:
        await require_audience(pool, audience_id)
        raise ProblemError(404, f"contact {ref!r} does not exist in audience {audience_id}")
    return found


async def _public(pool: PoolDep, contact: dict[str, Any]) -> ContactPublic:
    return ContactPublic(**contact, tags=await contacts.tags(pool, contact["id"]))


def _normalise(given: dict[str, Any], merge: dict[str, MergeField], settings: Settings) -> None:
    """Phone to E.164 and custom fields named by a merge tag to their type, in place.

    Raises:
        ProblemError: 422 naming each value that does not fit.
    """
    errors = []
    if given.get("phone"):
        try:
            given["phone"] = to_e164(given["phone"], region=settings.phone_default_region)
        except ValueError as err:
            errors.append(FieldError(field="phone", message=str(err)))
    typed = {k: v for k, v in (given.get("fields") or {}).items() if k in merge and k not in COLUMN}
    if typed:
        converted, problems = to_contact(
            typed, merge, creating=False, phone_region=settings.phone_default_region
        )
        errors += [FieldError(field=f"fields.{tag}", message=m) for tag, m in problems]
        given["fields"] = {**given["fields"], **converted.get("fields", {})}
    if errors:
        raise ProblemError(422, f"{errors[0].field}: {errors[0].message}", errors=errors)


@router.post(
    "",
    responses={**ERRORS, 200: {"model": ContactPublic, "description": "Updated"}},
    status_code=status.HTTP_201_CREATED,
)
async def upsert_contact(
    audience_id: uuid.UUID,
    body: ContactUpsert,
    pool: PoolDep,
    ingest: IngestDep,
    settings: SettingsDep,
    response: Response,
) -> ContactPublic:
    """Creates the contact (201) or updates the one with that email (200).

    A new subscription fires `signed_up_email` triggers; a field that changes fires
    `field_changed` triggers. `status: pending` is double opt-in: the contact is emailed a
    signed confirmation link and becomes `subscribed` (firing `signed_up_email`) only when it
    follows it. Phones are stored in E.164; custom fields named by one of the audience's merge
    fields are checked and converted by its type.
    """
    if body.fields is not None:
        _within(body.fields, field="fields", limit=settings.max_contact_fields_bytes)
    aid = str(audience_id)
    await require_audience(pool, aid)
    given = body.model_dump(exclude_unset=True)
    _normalise(given, await merge_fields.defined(pool, aid), settings)
    try:
        row, created, _, _ = await members.save(
            ingest, settings, audience_id=aid, given=given, key=uuid.uuid4().hex
        )
    except members.ConfirmationNotSent as err:
        raise ProblemError(
            503,
            f"the contact is stored as pending, but its confirmation email failed ({err});"
            " send the request again to retry",
        ) from err
    if not created:
        response.status_code = status.HTTP_200_OK
    return await _public(pool, row)


class ContactPage(BaseModel):
    contacts: list[ContactPublic]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


def _cursor(row: dict[str, Any]) -> str:
    raw = json.dumps([row["email"].lower(), row["id"]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after(cursor: str) -> tuple[str, str]:
    try:
        email, last_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        uuid.UUID(last_id)
        return str(email), str(last_id)
    except (ValueError, TypeError) as err:
        raise ProblemError(
            422,
            "query.cursor: not a cursor this API returned",
            errors=[FieldError(field="query.cursor", message="not a cursor this API returned")],
        ) from err


@router.get("", responses=ERRORS)
async def list_contacts(
    audience_id: uuid.UUID,
    pool: PoolDep,
    email_prefix: str | None = Query(None, min_length=1, max_length=254),
    tag: str | None = Query(None, min_length=1, max_length=100),
    status: Literal["subscribed", "unsubscribed", "cleaned", "pending", "transactional", "archived"]
    | None = None,
    cursor: str | None = Query(None, max_length=1000),
    limit: int = Query(100, ge=1, le=1000),
) -> ContactPage:
    """The audience's contacts in email order, a page at a time, filtered by email prefix,
    tag and status (all optional, combined with AND)."""
    aid = str(audience_id)
    await require_audience(pool, aid)
    rows = await contacts.search(
        pool,
        aid,
        email_prefix=email_prefix,
        tag=tag,
        status=status,
        after=_after(cursor) if cursor else None,
        limit=limit + 1,
    )
    page = rows[:limit]
    return ContactPage(
        contacts=[ContactPublic(**row) for row in page],
        next_cursor=_cursor(page[-1]) if len(rows) > limit else None,
    )


@router.get("/{contact}", responses=ERRORS)
async def get_contact(audience_id: uuid.UUID, contact: str, pool: PoolDep) -> ContactPublic:
    """One contact, by id, email address or subscriber hash."""
    return await _public(pool, await _contact(pool, str(audience_id), contact))


def _enrolments(results: list[DispatchResult]) -> list[EnrolmentPublic]:
    return [EnrolmentPublic.of(e) for result in results for e in result.enrolments]


async def _change(
    ingest: Ingest, audience_id: str, contact_id: str, change: Any, names: list[str], key: str
) -> tuple[list[str], list[DispatchResult]]:
    """Runs one tag/group change; its events are stored with it, then delivered."""
    return await ingest.change(
        partial(change, audience_id=audience_id, contact_id=contact_id, names=names, key=key),
        atomic=True,  # one statement (`journeys.changes._labels`)
    )


@router.post("/{contact}/tags", responses=ERRORS)
async def add_tags(
    audience_id: uuid.UUID,
    contact: str,
    body: TagsAdd,
    pool: PoolDep,
    ingest: IngestDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> TagsAdded:
    """Tags the contact; each new tag enrols it in the active flows triggered by that tag.

    Tags the contact already has change nothing. With an `Idempotency-Key` header, a retry
    after a failure finishes what the first attempt began instead of doing it twice.
    """
    aid = str(audience_id)
    contact_id = await _contact_id(pool, aid, contact)
    names = list(dict.fromkeys(t.strip() for t in body.tags))
    request_key = idempotency_key or uuid.uuid4().hex
    added, results = await _change(ingest, aid, contact_id, changes.add_tags, names, request_key)
    if idempotency_key:
        retried = [
            f"tag_added:{contact_id}:{tag}:{request_key}" for tag in names if tag not in added
        ]
        results += await ingest.deliver(await ingest.undelivered(retried))
    return TagsAdded(
        contact_id=contact_id,
        tags=await contacts.tags(pool, contact_id),
        added=added,
        enrolments=_enrolments(results),
    )


@router.delete("/{contact}/tags/{tag}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def remove_tag(
    audience_id: uuid.UUID,
    contact: str,
    tag: str,
    pool: PoolDep,
    ingest: IngestDep,
) -> Response:
    """Removes a tag from the contact (no error if it did not have it)."""
    contact_id = await _contact_id(pool, str(audience_id), contact)
    await _change(
        ingest, str(audience_id), contact_id, changes.remove_tags, [tag], uuid.uuid4().hex
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class GroupsAdd(BaseModel):
    groups: list[TagName] = Field(min_length=1, max_length=100)


class GroupsChanged(BaseModel):
    contact_id: str
    groups: list[str]
    joined: list[str]
    enrolments: list[EnrolmentPublic]


@router.post("/{contact}/groups", responses=ERRORS)
async def join_groups(
    audience_id: uuid.UUID,
    contact: str,
    body: GroupsAdd,
    pool: PoolDep,
    ingest: IngestDep,
) -> GroupsChanged:
    """Puts the contact in audience groups; joining fires `joined_group` triggers."""
    aid = str(audience_id)
    contact_id = await _contact_id(pool, aid, contact)
    names = list(dict.fromkeys(body.groups))
    joined, results = await _change(
        ingest, aid, contact_id, changes.join_groups, names, uuid.uuid4().hex
    )
    return GroupsChanged(
        contact_id=contact_id,
        groups=await groups.of_contact(pool, contact_id),
        joined=joined,
        enrolments=_enrolments(results),
    )


@router.delete(
    "/{contact}/groups/{group}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS
)
async def leave_group(
    audience_id: uuid.UUID,
    contact: str,
    group: str,
    pool: PoolDep,
    ingest: IngestDep,
) -> Response:
    """Takes the contact out of a group; leaving fires `left_group` triggers."""
    contact_id = await _contact_id(pool, str(audience_id), contact)
    await _change(
        ingest, str(audience_id), contact_id, changes.leave_groups, [group], uuid.uuid4().hex
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class CustomEvent(BaseModel):
    """A custom event (the `event_api` trigger), as Mailchimp's member events API takes it."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{2,30}$")
    properties: JsonObject = Field(
        {}, description="Any JSON object (size: JOURNEYS_MAX_EVENT_DATA_BYTES)."
    )
    occurred_at: datetime | None = None
    is_syncing: bool = Field(False, description="Record only: trigger no flow.")


class EventAccepted(BaseModel):
    event_id: str
    duplicate: bool
    enrolments: list[EnrolmentPublic]


@router.post("/{contact}/events", status_code=status.HTTP_202_ACCEPTED, responses=ERRORS)
async def post_event(
    audience_id: uuid.UUID,
    contact: str,
    body: CustomEvent,
    pool: PoolDep,
    ingest: IngestDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> EventAccepted:
    """Records a custom event; it enrols the contact in flows with a matching `event_api` trigger."""
    # Refused before it is stored: an event Temporal cannot carry would never be delivered.
    _within(body.properties, field="properties", limit=settings.max_event_data_bytes)
    aid = str(audience_id)
    contact_id = await _contact_id(pool, aid, contact)
    event = IncomingEvent(
        type="custom_event",
        audience_id=aid,
        contact_id=contact_id,
        idempotency_key=f"custom_event:{contact_id}:{idempotency_key or uuid.uuid4().hex}",
        data={"name": body.name, "properties": body.properties},
        occurred_at=body.occurred_at,
    )
    result = await ingest.event(event, trigger=not body.is_syncing)
    return EventAccepted(
        event_id=result.event_id, duplicate=result.duplicate, enrolments=_enrolments([result])
    )


class ActivityEvent(BaseModel):
    """Something the contact did elsewhere, posted by a backend service as it happens."""

    type: Literal[tuple(ACTIVITY_EVENTS)]  # type: ignore[valid-type]
    data: JsonObject = Field(
        {}, description="Any JSON object (size: JOURNEYS_MAX_EVENT_DATA_BYTES)."
    )
    occurred_at: datetime | None = None


@router.post("/{contact}/activity", status_code=status.HTTP_202_ACCEPTED, responses=ERRORS)
async def post_activity(
    audience_id: uuid.UUID,
    contact: str,
    body: ActivityEvent,
    pool: PoolDep,
    ingest: IngestDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> EventAccepted:
    """Records an activity event (an order, a page view, an email open…) and enrols the contact
    in the flows it triggers. Orders are kept for `purchased` conditions and exit goals.

    Send an `Idempotency-Key` (e.g. the provider's delivery id): a repeat changes nothing.
    """
    _within(body.data, field="data", limit=settings.max_event_data_bytes)
    problems = activity_problems(body.type, body.data)
    if problems:
        raise ProblemError(
            422,
            f"{problems[0][0]}: {problems[0][1]}",
            errors=[FieldError(field=path, message=message) for path, message in problems],
        )
    aid = str(audience_id)
    contact_id = await _contact_id(pool, aid, contact)
    key = f"{body.type}:{contact_id}:{idempotency_key or uuid.uuid4().hex}"
    event = IncomingEvent(
        type=body.type,
        audience_id=aid,
        contact_id=contact_id,
        idempotency_key=key,
        data=body.data,
        occurred_at=body.occurred_at,
    )
    result = await ingest.event(event)
    return EventAccepted(
        event_id=result.event_id, duplicate=result.duplicate, enrolments=_enrolments([result])
    )

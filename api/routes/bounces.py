"""Asynchronous bounces and spam complaints, reported by the mail provider after the send.

A provider (or its webhook relay) posts one JSON report per bounce or complaint with an API
key. The report names the message by its `Message-ID` (what bounce notifications and feedback
loops carry), or the contact by audience and email address. A hard bounce cleans the address,
soft bounces count towards `JOURNEYS_SOFT_BOUNCE_LIMIT`, a complaint unsubscribes.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, Field, model_validator

from api.deps import API_KEY_REQUIRED, IngestDep, PoolDep, SettingsDep
from api.problems import FieldError, Problem, ProblemError
from journeys import changes
from journeys.store import contacts, events, messages

router = APIRouter(prefix="/bounces", tags=["bounces"], dependencies=[API_KEY_REQUIRED])

ERRORS = {401: {"model": Problem}, 404: {"model": Problem}, 422: {"model": Problem}}


class BounceReport(BaseModel):
    """One bounce or complaint."""

    type: Literal["hard", "soft", "complaint"] = Field(
        description="`hard`: the address does not exist; `soft`: deferred; `complaint`: spam."
    )
    message_id: str | None = Field(
        None, min_length=3, max_length=998, description="The `Message-ID` of the email."
    )
    audience_id: uuid.UUID | None = Field(None, description="With `email`, when no message_id.")
    email: str | None = Field(None, min_length=3, max_length=254)
    id: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="The provider's id of this report: a repeat with the same id changes nothing.",
    )
    diagnostic: str | None = Field(None, max_length=2000, description="The server's words.")

    @model_validator(mode="after")
    def _names_someone(self) -> BounceReport:
        if not self.message_id and not (self.audience_id and self.email):
            raise ValueError("a report names its message_id, or an audience_id and an email")
        return self


class BounceOutcome(BaseModel):
    contact_id: str
    status: str = Field(description="The contact's email status after the report.")
    recorded: bool = Field(description="False when the same report (id) came before.")


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses=ERRORS)
async def report_bounce(
    body: BounceReport,
    pool: PoolDep,
    ingest: IngestDep,
    settings: SettingsDep,
) -> BounceOutcome:
    """Records a bounce or complaint reported after the send."""
    email: dict[str, Any] = {}
    contact = None
    if body.message_id:
        message = await messages.by_message_id(pool, body.message_id)
        if message is None or message["contact_id"] is None:
            raise ProblemError(
                404,
                "no message has this message_id",
                errors=[FieldError(field="message_id", message="no message has this Message-ID")],
            )
        contact = await contacts.get(pool, message["contact_id"])
        email = (
            {"campaign_id": message["campaign_id"]}
            if message["campaign_id"]
            else {"flow_id": message["flow_id"], "step_id": message["step_id"]}
        )
        if body.type != "complaint":
            await messages.mark_bounced(
                pool, message["idempotency_key"], body.type, body.diagnostic or "reported"
            )
    else:
        assert body.audience_id is not None and body.email is not None
        contact = await contacts.resolve(pool, str(body.audience_id), body.email)
    if contact is None:
        raise ProblemError(
            404,
            "no such contact",
            errors=[FieldError(field="email", message="no contact of the audience has it")],
        )
    if body.diagnostic:
        email = {**email, "diagnostic": body.diagnostic}
    key = f"report:{body.id or uuid.uuid4().hex}"
    event_type = "email_complained" if body.type == "complaint" else "email_bounced"
    repeated = await events.by_key(pool, f"{event_type}:{key}") is not None
    found = contact
    if body.type == "complaint":
        await ingest.change(
            lambda conn: changes.complain(conn, contact=found, email=email, key=key)
        )
    else:
        await ingest.change(
            lambda conn: changes.bounce(
                conn,
                contact=found,
                kind=body.type,
                email=email,
                key=key,
                soft_limit=settings.soft_bounce_limit,
            )
        )
    after = await contacts.get(pool, contact["id"])
    return BounceOutcome(
        contact_id=contact["id"],
        status=after["status"] if after else "deleted",
        recorded=not repeated,
    )

"""Survey responses (`survey_responded` triggers), posted by the survey form's backend."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request
from pydantic import BaseModel, Field, ValidationError

from api.deps import API_KEY_REQUIRED, IngestDep, PoolDep, SettingsDep
from api.problems import Problem, ProblemError, validation_errors
from api.webhooks import WebhookAccepted, emit, read_body
from journeys.domain.events import IncomingEvent
from journeys.store import contacts

router = APIRouter(prefix="/surveys", tags=["surveys"], dependencies=[API_KEY_REQUIRED])
ERRORS = {401: {"model": Problem}, 404: {"model": Problem}, 422: {"model": Problem}}


class SurveyResponse(BaseModel):
    audience_id: uuid.UUID
    contact: str = Field(min_length=1, max_length=254, description="Email, id or subscriber hash.")
    response_id: str | None = Field(None, max_length=200, description="A repeat is ignored.")
    answers: dict[Annotated[str, Field(max_length=500)], str] = Field(
        default_factory=dict, description="Question → answer."
    )


@router.post(
    "/{survey_id}/responses",
    status_code=202,
    responses=ERRORS,
    openapi_extra={
        "requestBody": {
            "content": {"application/json": {"schema": SurveyResponse.model_json_schema()}}
        }
    },
)
async def survey_response(
    survey_id: Annotated[str, Path(max_length=100)],
    request: Request,
    pool: PoolDep,
    ingest: IngestDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> WebhookAccepted:
    """Records one response; flows whose trigger names this survey (and question/answer) enrol.

    The body is a `SurveyResponse` (read with the receivers' size limit).
    """
    raw = await read_body(request, settings.webhook_max_body_bytes)
    try:
        body = SurveyResponse.model_validate_json(raw)
    except ValidationError as exc:
        errors = validation_errors(list(exc.errors()), frozenset())  # type: ignore[arg-type]
        raise ProblemError(422, f"{errors[0].field}: {errors[0].message}", errors=errors) from exc
    aid = str(body.audience_id)
    contact = await contacts.resolve(pool, aid, body.contact)
    if contact is None:
        raise ProblemError(404, f"contact {body.contact!r} does not exist in audience {aid}")
    delivery = body.response_id or idempotency_key or uuid.uuid4().hex
    event = IncomingEvent(
        type="survey_responded",
        audience_id=aid,
        contact_id=contact["id"],
        idempotency_key=f"survey:{survey_id}:{contact['id']}:{delivery}",
        data={"survey_id": survey_id, "answers": body.answers, "response_id": body.response_id},
    )
    return await emit(ingest, [event])

"""Bulk contact import: `POST /v1/audiences/{id}/contacts:import` with a CSV or JSON-lines body."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.deps import API_KEY_REQUIRED, IngestDep, PoolDep, SettingsDep
from api.problems import FieldError, Problem, ProblemError
from api.routes.audiences import require_audience
from journeys.imports import MAX_LISTED_ERRORS, MAX_ROWS, Format, Importer, UnreadableFile
from journeys.store import merge_fields

router = APIRouter(
    prefix="/audiences/{audience_id}", tags=["contacts"], dependencies=[API_KEY_REQUIRED]
)

ERRORS = {
    401: {"model": Problem},
    404: {"model": Problem},
    415: {"model": Problem},
    422: {"model": Problem},
}
_FORMATS: dict[str, Format] = {
    "text/csv": "csv",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/json-lines": "jsonl",
}


class RowErrorPublic(BaseModel):
    row: int = Field(description="Data row number, from 1 (a CSV header is not counted).")
    field: str
    message: str


class ImportResult(BaseModel):
    rows: int = Field(description="Data rows read.")
    created: int
    updated: int
    failed: int = Field(description="Rows not imported (all of them, listed or not).")
    errors: list[RowErrorPublic] = Field(
        description=f"The bad rows, up to {MAX_LISTED_ERRORS}, each with its number."
    )
    truncated: bool = Field(
        description=f"Reading stopped early (more than {MAX_ROWS} rows, or the file broke off"
        " into something unreadable); `errors` names the first row not read."
    )
    enrolled: int = Field(description="Flow runs the new subscriptions started.")


@router.post(
    "/contacts:import",
    responses=ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
)
async def import_contacts(
    audience_id: uuid.UUID,
    request: Request,
    pool: PoolDep,
    ingest: IngestDep,
    settings: SettingsDep,
) -> ImportResult:
    """Creates or updates up to 100,000 contacts from a CSV (with a header) or JSON-lines body.

    Columns: `email` (required), `status` (subscribed, unsubscribed, transactional),
    `first_name`, `last_name`, `phone` (normalised to E.164), `sms_status`, `timezone`,
    `birthday`, and any merge tag of the audience (converted by its type). The body is read
    as it arrives and stored 1,000 rows at a time; a bad row is reported by number and
    skipped, the good ones are stored. New subscriptions fire `signed_up_email` only in flows
    whose trigger has `include_imported: true`.
    """
    aid = str(audience_id)
    await require_audience(pool, aid)
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    kind = _FORMATS.get(media)
    if kind is None:
        raise ProblemError(
            415,
            f"send the file as text/csv or application/x-ndjson, not {media or 'nothing'}",
            errors=[FieldError(field="content-type", message="unsupported media type")],
        )
    importer = Importer(
        ingest,
        aid,
        merge=await merge_fields.defined(pool, aid),
        phone_region=settings.phone_default_region,
    )
    try:
        report = await importer.run(request.stream(), kind)
    except UnreadableFile as err:
        raise ProblemError(
            422,
            f"{err.field}: {err}",
            errors=[FieldError(field=err.field, message=str(err))],
        ) from err
    return ImportResult(
        rows=report.rows,
        created=report.created,
        updated=report.updated,
        failed=report.failed,
        errors=[RowErrorPublic(row=e.row, field=e.field, message=e.message) for e in report.errors],
        truncated=report.truncated,
        enrolled=report.enrolled,
    )

"""Merge-field definitions of an audience: how named contact values are checked and converted."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field, model_validator

from api.deps import API_KEY_REQUIRED, PoolDep
from api.problems import FieldError, Problem, ProblemError
from api.routes.audiences import require_audience
from journeys.domain.merge_fields import BUILTIN, TAG_PATTERN
from journeys.store import merge_fields

router = APIRouter(
    prefix="/audiences/{audience_id}/merge-fields",
    tags=["merge fields"],
    dependencies=[API_KEY_REQUIRED],
)

ERRORS = {
    401: {"model": Problem},
    404: {"model": Problem},
    409: {"model": Problem},
    422: {"model": Problem},
}
FieldType = Literal["text", "number", "date", "birthday", "phone", "url", "dropdown"]


class MergeFieldCreate(BaseModel):
    tag: str = Field(pattern=TAG_PATTERN, description="Upper case, e.g. COMPANY (≤ 10 chars).")
    name: str = Field(min_length=1, max_length=100)
    type: FieldType
    required: bool = Field(False, description="New contacts must have a value.")
    choices: list[str] = Field(
        [], max_length=200, description="The allowed values of a dropdown field."
    )

    @model_validator(mode="after")
    def _choices_for_dropdowns(self) -> MergeFieldCreate:
        if self.type == "dropdown" and not self.choices:
            raise ValueError("a dropdown field needs choices")
        if self.type != "dropdown" and self.choices:
            raise ValueError("only dropdown fields take choices")
        return self


class MergeFieldUpdate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    required: bool = False
    choices: list[str] = Field([], max_length=200)


class MergeFieldPublic(BaseModel):
    tag: str
    name: str
    type: str
    required: bool
    choices: list[str]
    builtin: bool
    created_at: datetime | None = None


class MergeFieldList(BaseModel):
    merge_fields: list[MergeFieldPublic]


def _builtin(tag: str) -> ProblemError:
    return ProblemError(
        409,
        f"{tag} is a built-in merge field: it cannot be changed or removed",
        errors=[FieldError(field="tag", message="built-in")],
    )


@router.get("", responses=ERRORS)
async def list_merge_fields(audience_id: uuid.UUID, pool: PoolDep) -> MergeFieldList:
    """The built-in fields (FNAME, LNAME, BIRTHDAY, PHONE), then the audience's own."""
    aid = str(audience_id)
    await require_audience(pool, aid)
    builtins = [
        MergeFieldPublic(
            tag=f.tag, name=f.name, type=f.type, required=False, choices=[], builtin=True
        )
        for f in BUILTIN.values()
    ]
    own = [
        MergeFieldPublic(**{**row, "builtin": False})
        for row in await merge_fields.list_for(pool, aid)
    ]
    return MergeFieldList(merge_fields=builtins + own)


@router.post("", status_code=status.HTTP_201_CREATED, responses=ERRORS)
async def create_merge_field(
    audience_id: uuid.UUID, body: MergeFieldCreate, pool: PoolDep
) -> MergeFieldPublic:
    """Defines a merge field; contact values under its tag are checked against its type."""
    aid = str(audience_id)
    await require_audience(pool, aid)
    if body.tag in BUILTIN:
        raise _builtin(body.tag)
    row = await merge_fields.create(pool, audience_id=aid, **body.model_dump())
    if row is None:
        raise ProblemError(
            409,
            f"the audience already has a merge field {body.tag}",
            errors=[FieldError(field="tag", message="already defined")],
        )
    return MergeFieldPublic(**{**row, "builtin": False})


@router.put("/{tag}", responses=ERRORS)
async def update_merge_field(
    audience_id: uuid.UUID, tag: str, body: MergeFieldUpdate, pool: PoolDep
) -> MergeFieldPublic:
    """Renames a field or changes whether it is required and its choices (not its type)."""
    aid = str(audience_id)
    if tag in BUILTIN:
        raise _builtin(tag)
    current = await merge_fields.get(pool, aid, tag)
    if current is None:
        await require_audience(pool, aid)
        raise ProblemError(404, f"merge field {tag} does not exist")
    if (current["type"] == "dropdown") != bool(body.choices):
        raise ProblemError(
            422,
            "choices: only dropdown fields take choices, and they need at least one",
            errors=[FieldError(field="choices", message="must fit the field's type")],
        )
    row = await merge_fields.update(
        pool, aid, tag, name=body.name, required=body.required, choices=body.choices
    )
    assert row is not None
    return MergeFieldPublic(**{**row, "builtin": False})


@router.delete("/{tag}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
async def delete_merge_field(audience_id: uuid.UUID, tag: str, pool: PoolDep) -> Response:
    """Removes a definition; contacts keep their values, which are no longer checked."""
    aid = str(audience_id)
    if tag in BUILTIN:
        raise _builtin(tag)
    if not await merge_fields.delete(pool, aid, tag):
        await require_audience(pool, aid)
        raise ProblemError(404, f"merge field {tag} does not exist")
    return Response(status_code=status.HTTP_204_NO_CONTENT)

"""Shared parameter types: email references, local times of day, identifiers."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator


def type_required(schema: dict[str, Any]) -> None:
    """JSON Schema of a tagged-union member: its `type` must be written.

    Pydantic gives `type` a default, but a discriminated union cannot pick the member without
    it, so a schema that calls it optional would describe input the API refuses.
    """
    if "type" in schema.get("properties", {}):
        required = schema.setdefault("required", [])
        if "type" not in required:
            required.insert(0, "type")


# Exactly one target (what `EmailRef._one_target` checks), for editors and generated clients.
_EMAIL_REF_TARGETS: dict[str, Any] = {
    "oneOf": [
        {
            "required": ["campaign_id"],
            "properties": {
                "campaign_id": {"type": "string"},
                "flow_id": {"type": "null"},
                "step_id": {"type": "null"},
            },
        },
        {
            "required": ["flow_id", "step_id"],
            "properties": {
                "campaign_id": {"type": "null"},
                "flow_id": {"type": "string"},
                "step_id": {"type": "string"},
            },
        },
    ]
}

_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _time_of_day(value: str) -> str:
    if not _TIME.match(value):
        raise ValueError(f"{value!r} is not a time of day: use HH:MM, 24-hour (e.g. 09:30)")
    return value


TimeOfDay = Annotated[
    str,
    AfterValidator(_time_of_day),
    Field(json_schema_extra={"pattern": _TIME.pattern, "examples": ["09:00"]}),
]
Name = Annotated[str, Field(min_length=1, max_length=100)]
FieldName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
Url = Annotated[str, Field(min_length=1, max_length=2048)]


class EmailRef(BaseModel):
    """One specific email: a campaign, or a send-email step of a flow."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_EMAIL_REF_TARGETS)

    campaign_id: str | None = Field(None, min_length=1)
    flow_id: str | None = Field(None, min_length=1)
    step_id: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_target(self) -> EmailRef:
        if self.campaign_id and (self.flow_id or self.step_id):
            raise ValueError(
                "an email ref names a campaign_id, or a flow_id with a step_id, not both"
            )
        if not self.campaign_id and not (self.flow_id and self.step_id):
            raise ValueError("an email ref needs campaign_id, or flow_id and step_id")
        return self


def refers_to(ref: EmailRef, data: dict[str, Any]) -> bool:
    """Whether an email event's data (`campaign_id`, or `flow_id` + `step_id`) names this email."""
    if ref.campaign_id:
        return data.get("campaign_id") == ref.campaign_id
    return data.get("flow_id") == ref.flow_id and data.get("step_id") == ref.step_id


def url_matches(pattern: str, url: str) -> bool:
    """Exact match, or `*` as a wildcard for any run of characters."""
    if "*" not in pattern:
        return pattern.rstrip("/") == url.rstrip("/")
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, url) is not None

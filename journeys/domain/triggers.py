"""Trigger models: what enrols a contact into a flow. Ids follow TRIGGERS.md (a contract)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TagAdded(_Trigger):
    """Enrols a contact when the tag is added to it."""

    type: Literal["tag_added"] = "tag_added"
    tag: str = Field(min_length=1, max_length=100)


class ManualAdd(_Trigger):
    """Enrols contacts an operator adds through the API or CLI."""

    type: Literal["manual_add"] = "manual_add"


Trigger = Annotated[TagAdded | ManualAdd, Field(discriminator="type")]

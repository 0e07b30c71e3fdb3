"""The flow definition: triggers, settings and the step tree, as authored in JSON or YAML."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, Field

from journeys.domain.durations import Duration
from journeys.domain.steps import Step
from journeys.domain.triggers import Trigger


class Reentry(BaseModel):
    """Whether a contact that finished the flow may enter it again."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed: bool = False
    min_interval: Duration | None = None


class FlowSettings(BaseModel):
    """Flow-wide behaviour."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reentry: Reentry = Reentry()


class FlowDefinition(BaseModel):
    """A flow as its author writes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    audience_id: str = Field(min_length=1)
    triggers: list[Trigger] = Field(min_length=1, max_length=3)
    steps: list[Step] = Field(min_length=1)
    settings: FlowSettings = FlowSettings()

    def walk(self) -> Iterator[Step]:
        """Yields every step of the tree, depth first, in authoring order."""
        yield from self.steps

    def step(self, step_id: str) -> Step:
        """Returns the step with this id.

        Raises:
            KeyError: no step has it.
        """
        for step in self.walk():
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def authored(self) -> dict[str, Any]:
        """The definition as JSON-ready data, without defaults the author left out."""
        return self.model_dump(mode="json", exclude_unset=True)


def _union_tags(union: Any) -> set[str]:
    members = get_args(get_args(union)[0])
    return {member.model_fields["type"].default for member in members}


# Every `type` value of a trigger or step: pydantic names them in error locations.
TYPE_TAGS: frozenset[str] = frozenset(_union_tags(Trigger) | _union_tags(Step))

"""The trigger and step unions are written out for the type checker; nothing may be left out."""

from __future__ import annotations

import inspect

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from journeys.domain import steps, triggers
from journeys.domain.steps import STEP_MODELS, Step
from journeys.domain.triggers import TRIGGER_MODELS, Trigger


def _models_defined_in(module: object, base: type[BaseModel]) -> list[type[BaseModel]]:
    """Every public model of the module with a `type` tag, in the order it is written."""
    found = [
        cls
        for name, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, base) and not name.startswith("_") and "type" in cls.model_fields
        and cls.__module__ == module.__name__  # type: ignore[attr-defined]
    ]  # fmt: skip
    return sorted(found, key=lambda cls: inspect.getsourcelines(cls)[1])


@pytest.mark.parametrize(
    ("module", "base", "members"),
    [
        (triggers, triggers._Trigger, TRIGGER_MODELS),
        (steps, steps._Step, STEP_MODELS),
    ],
)
def test_every_model_written_in_the_module_is_in_its_union(
    module: object, base: type[BaseModel], members: tuple[type[BaseModel], ...]
) -> None:
    assert list(members) == _models_defined_in(module, base)


def test_the_unions_still_dispatch_on_type() -> None:
    trigger = TypeAdapter(Trigger).validate_python({"type": "birthday", "offset_days": -3})
    assert isinstance(trigger, triggers.Birthday)
    step = TypeAdapter(Step).validate_python({"type": "delay", "id": "d", "duration": "2d"})
    assert isinstance(step, steps.Delay)
    with pytest.raises(ValidationError, match="union_tag_invalid"):
        TypeAdapter(Trigger).validate_python({"type": "no_such_trigger"})


def test_the_schemas_map_every_tag() -> None:
    for union, members in ((Trigger, TRIGGER_MODELS), (Step, STEP_MODELS)):
        schema = TypeAdapter(union).json_schema()
        mapping = schema["discriminator"]["mapping"]
        assert set(mapping) == {m.model_fields["type"].default for m in members}

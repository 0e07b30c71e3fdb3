"""Second validation layer: flow rules the schema cannot express, as typed violations."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from journeys.domain.flow import FlowDefinition
from journeys.domain.steps import SendEmail, Step
from journeys.domain.templating import syntax_error


class Violation(BaseModel):
    """One broken rule: where (JSON path), which rule (code), and what to do (message)."""

    path: str
    code: str
    message: str


def _located_steps(steps: list[Step], prefix: str = "steps") -> Iterator[tuple[str, Step]]:
    for index, step in enumerate(steps):
        yield f"{prefix}[{index}]", step


def violations(flow: FlowDefinition) -> list[Violation]:
    """Every rule the flow breaks, all at once (empty = the flow can run)."""
    found: list[Violation] = []
    seen: dict[str, str] = {}
    for path, step in _located_steps(flow.steps):
        if step.id in seen:
            found.append(
                Violation(
                    path=f"{path}.id",
                    code="duplicate_step_id",
                    message=f"step id {step.id!r} is already used at {seen[step.id]}",
                )
            )
        else:
            seen[step.id] = path
        if isinstance(step, SendEmail):
            for name in ("subject", "preheader", "html", "text"):
                source = getattr(step, name)
                error = syntax_error(source) if source else None
                if error:
                    found.append(
                        Violation(path=f"{path}.{name}", code="template_syntax", message=error)
                    )
    return found

"""What a flow did, per step, and two ways to look at it: a table and a Mermaid diagram."""

from __future__ import annotations

from pydantic import BaseModel, Field

from journeys.domain.flow import FlowDefinition
from journeys.domain.steps import Step


class StepCounts(BaseModel):
    """One step's numbers. `passed` is known for steps that leave a record (sends)."""

    step_id: str
    type: str
    now: int = Field(0, description="Contacts whose run rests at this step now.")
    passed: int | None = Field(
        None, description="Contacts that went through it (sends: one message each); else null."
    )
    emails_sent: int = 0
    emails_failed: int = 0
    opened: int = Field(0, description="Contacts that opened this email (unique).")
    clicked: int = Field(0, description="Contacts that clicked a link of it (unique).")
    unsubscribed: int = Field(0, description="Contacts that unsubscribed through it.")
    bounced: int = Field(0, description="Its emails that bounced (hard or soft).")
    sms_sent: int = 0


class FlowReport(BaseModel):
    flow_id: str
    name: str
    version: int
    entered: int = Field(description="Entries into the flow (a re-entry counts again).")
    running: int
    completed: int
    exited: int
    steps: list[StepCounts]


_COLUMNS = (
    ("step", "step_id"),
    ("type", "type"),
    ("now", "now"),
    ("passed", "passed"),
    ("sent", "emails_sent"),
    ("failed", "emails_failed"),
    ("opened", "opened"),
    ("clicked", "clicked"),
    ("unsub", "unsubscribed"),
    ("bounced", "bounced"),
    ("sms", "sms_sent"),
)


def table(report: FlowReport) -> str:
    """The report as a plain-text table, one row per step, in authoring order."""
    rows = [[title for title, _ in _COLUMNS]]
    for step in report.steps:
        values = step.model_dump()
        rows.append(["-" if values[key] is None else str(values[key]) for _, key in _COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = [
        f"{report.name} (v{report.version}): {report.entered} entered, {report.running} running,"
        f" {report.completed} completed, {report.exited} exited"
    ]
    for index, row in enumerate(rows):
        lines.append(
            "  ".join(
                cell.ljust(w) if i < 2 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def _label(step: Step, counts: StepCounts | None) -> str:
    parts = [f"<b>{step.id}</b>", step.type]
    if counts is not None:
        numbers = [f"now {counts.now}"]
        if step.type == "send_email":
            numbers += [
                f"sent {counts.emails_sent}",
                f"opened {counts.opened}",
                f"clicked {counts.clicked}",
            ]
            if counts.unsubscribed:
                numbers.append(f"unsub {counts.unsubscribed}")
            if counts.bounced:
                numbers.append(f"bounced {counts.bounced}")
        elif step.type == "send_sms":
            numbers.append(f"sent {counts.sms_sent}")
        parts.append(" · ".join(numbers))
    return "<br/>".join(parts).replace('"', "#quot;")


def mermaid(definition: FlowDefinition, report: FlowReport | None = None) -> str:
    """The flow as a Mermaid flowchart: triggers, then steps with their branches and counts."""
    counts = {s.step_id: s for s in report.steps} if report else {}
    node = {step.id: f"s{index}" for index, (_, step) in enumerate(definition.walk())}
    triggers = " or ".join(t.type for t in definition.triggers)
    entered = f"<br/>entered {report.entered}" if report else ""
    lines = ["flowchart TD", f'  start(["{triggers}{entered}"])']
    for _, step in definition.walk():
        shape = ('{{"', '"}}') if step.branches() else ('["', '"]')
        lines.append(f"  {node[step.id]}{shape[0]}{_label(step, counts.get(step.id))}{shape[1]}")
    edges: list[str] = []

    def link(sources: list[tuple[str, str]], target: str) -> None:
        for source, label in sources:
            arrow = f" -->|{label}| " if label else " --> "
            edges.append(f"  {source}{arrow}{target}")

    def chain(steps: list[Step], sources: list[tuple[str, str]]) -> list[tuple[str, str]]:
        for step in steps:
            link(sources, node[step.id])
            if step.type == "exit":
                return []
            branches = step.branches()
            if branches:
                sources = []
                for name, branch in branches:
                    short = name.replace(".steps", "")
                    if branch:
                        sources += chain(branch, [(node[step.id], short)])
                    else:
                        sources.append((node[step.id], short))
            else:
                sources = [(node[step.id], "")]
        return sources

    ends = chain(definition.steps, [("start", "")])
    completed = f"<br/>completed {report.completed}" if report else ""
    lines.append(f'  done(["end{completed}"])')
    link(ends, "done")
    return "\n".join(lines + edges) + "\n"

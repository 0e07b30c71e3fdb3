"""Second validation layer: flow rules the schema cannot express, as typed violations.

The schema (pydantic models) guarantees each piece is well formed; these rules guarantee the
pieces make a flow that can run. Every violation carries the JSON path of the offending part.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from journeys.domain.conditions import ConditionSet, EmailActivityCondition
from journeys.domain.flow import (
    MAX_DEFINITION_BYTES,
    MAX_STEPS,
    MAX_TEMPLATE_BYTES,
    MAX_WAIT_FOR_TRIGGER,
    FlowDefinition,
)
from journeys.domain.refs import EmailRef
from journeys.domain.steps import (
    Exit,
    IfElse,
    SendEmail,
    SendSms,
    Step,
    UpdateField,
    WaitForTrigger,
    Webhook,
)
from journeys.domain.templating import template_problems

ABANDONED_CART = frozenset({"abandoned_cart", "abandoned_cart_specific_products"})
ABANDONED_CART_STEPS = frozenset({"send_email", "send_sms", "delay"})
WAIT_RULES = frozenset({"delay", "wait_until", "wait_for_trigger"})
MARKETING_ONLY_STEPS = frozenset({"percent_split", "wait_for_trigger"})


class Violation(BaseModel):
    """One broken rule: where (JSON path), which rule (code), and what to do (message).

    `blocks` says what it prevents: saving the flow, or only activating it (a flow may be
    drafted before, say, SMS is configured).
    """

    path: str
    code: str
    message: str
    blocks: Literal["save", "activation"] = "save"


@dataclass(frozen=True)
class ValidationContext:
    """What the rules need to know beyond the definition (gathered from the store)."""

    sms_configured: bool = True
    campaign_ids: frozenset[str] = frozenset()
    flow_email_steps: dict[str, frozenset[str]] = field(default_factory=dict)
    flow_id: str | None = None  # the flow being edited, so it may refer to its own emails


def email_refs(flow: FlowDefinition) -> Iterator[tuple[str, EmailRef]]:
    """(path, ref) of every email reference: in triggers and in conditions."""
    for index, trigger in enumerate(flow.triggers):
        ref = getattr(trigger, "email", None)
        if isinstance(ref, EmailRef):
            yield f"triggers[{index}].email", ref
    sets: list[tuple[str, ConditionSet]] = []
    if flow.settings.starting_filter:
        sets.append(("settings.starting_filter", flow.settings.starting_filter))
    for path, step in flow.walk():
        if isinstance(step, (IfElse, WaitForTrigger)):
            sets.append((f"{path}.conditions", step.conditions))
    for path, conditions in sets:
        for index, condition in enumerate(conditions.conditions):
            if isinstance(condition, EmailActivityCondition):
                yield f"{path}.conditions[{index}].email", condition.email


def _templates(step: Step) -> Iterator[tuple[str, str, bool]]:
    """(field path, template, is HTML) of every template the step renders when it runs."""
    if isinstance(step, SendEmail):
        for name in ("subject", "preheader", "html", "text"):
            source = getattr(step, name)
            if source:
                yield name, source, name == "html"
    elif isinstance(step, SendSms):
        yield "body", step.body, False
    elif isinstance(step, UpdateField) and isinstance(step.value, str):
        yield "value", step.value, False
    elif isinstance(step, Webhook):
        for header, value in step.headers.items():
            yield f"headers.{header}", value, False
        if step.body:
            for path, source in _nested_strings(step.body, "body"):
                yield path, source, False


def _nested_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _nested_strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nested_strings(item, f"{path}[{index}]")


def _unreachable(steps: list[Step], path: str) -> Iterator[Violation]:
    for index, step in enumerate(steps):
        if isinstance(step, Exit) and index + 1 < len(steps):
            yield Violation(
                path=f"{path}[{index + 1}]",
                code="unreachable_step",
                message=f"step {steps[index + 1].id!r} can never run: `{step.id}` exits the flow before it",
            )
        for name, branch in step.branches():
            yield from _unreachable(branch, f"{path}[{index}].{name}")


def violations(flow: FlowDefinition, context: ValidationContext | None = None) -> list[Violation]:
    """Every rule the flow breaks, all at once (empty = the flow can run)."""
    ctx = context or ValidationContext()
    found: list[Violation] = []
    found += _trigger_rules(flow, ctx)
    found += _step_rules(flow, ctx)
    found += list(_unreachable(flow.steps, "steps"))
    size = len(flow.model_dump_json(exclude_unset=True).encode())
    if size > MAX_DEFINITION_BYTES:
        # Every contact's run carries its flow version: far under Temporal's payload limit.
        found.append(
            Violation(
                path="steps",
                code="flow_too_large",
                message=f"a flow may hold at most {MAX_DEFINITION_BYTES // 1024} KiB"
                f" ({size // 1024} KiB here)",
            )
        )
    for path, ref in email_refs(flow):
        problem = _ref_problem(ref, ctx)
        if problem:
            found.append(Violation(path=path, code="unknown_email_ref", message=problem))
    return found


def _trigger_rules(flow: FlowDefinition, ctx: ValidationContext) -> list[Violation]:
    found = []
    triggers = flow.triggers
    for index, trigger in enumerate(triggers):
        path = f"triggers[{index}]"
        if trigger.alone and len(triggers) > 1:
            found.append(
                Violation(
                    path=path,
                    code="trigger_not_alone",
                    message=f"`{trigger.type}` must be the flow's only trigger",
                )
            )
        if trigger in triggers[:index]:
            found.append(
                Violation(
                    path=path, code="duplicate_trigger", message="the same trigger is listed twice"
                )
            )
        if trigger.type == "specific_date":
            yearly = [t.type for t in triggers if t.yearly]
            if yearly:
                found.append(
                    Violation(
                        path=path,
                        code="specific_date_with_yearly",
                        message=f"specific_date cannot be combined with yearly triggers ({', '.join(yearly)})",
                    )
                )
        if trigger.needs_sms and not ctx.sms_configured:
            found.append(
                Violation(
                    path=path,
                    code="sms_not_configured",
                    blocks="activation",
                    message=f"`{trigger.type}` needs SMS: configure an SMS provider before activating",
                )
            )
    return found


def _step_rules(flow: FlowDefinition, ctx: ValidationContext) -> list[Violation]:
    found = []
    types = {t.type for t in flow.triggers}
    abandoned = bool(types & ABANDONED_CART)
    specific_date = "specific_date" in types
    transactional = flow.transactional
    seen: dict[str, str] = {}
    count = waits_for_trigger = 0
    for path, step in flow.walk():
        count += 1
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
        if abandoned and step.type not in ABANDONED_CART_STEPS:
            found.append(
                Violation(
                    path=path,
                    code="abandoned_cart_step",
                    message=f"abandoned-cart flows may only send email/SMS and delay, not `{step.type}`",
                )
            )
        if specific_date and step.type in WAIT_RULES:
            found.append(
                Violation(
                    path=path,
                    code="specific_date_with_wait",
                    message=f"a specific_date flow cannot contain wait rules like `{step.type}`",
                )
            )
        if transactional and step.type in MARKETING_ONLY_STEPS:
            found.append(
                Violation(
                    path=path,
                    code="marketing_step_in_transactional",
                    message=f"transactional flows cannot contain `{step.type}`",
                )
            )
        if isinstance(step, SendSms) and not ctx.sms_configured:
            found.append(
                Violation(
                    path=path,
                    code="sms_not_configured",
                    blocks="activation",
                    message="send_sms needs SMS: configure an SMS provider before activating",
                )
            )
        if isinstance(step, WaitForTrigger):
            waits_for_trigger += 1
            if waits_for_trigger == MAX_WAIT_FOR_TRIGGER + 1:
                found.append(
                    Violation(
                        path=path,
                        code="too_many_wait_for_trigger",
                        message=f"a flow may hold at most {MAX_WAIT_FOR_TRIGGER} wait_for_trigger steps",
                    )
                )
        for name, source, html in _templates(step):
            size = len(source.encode())
            if size > MAX_TEMPLATE_BYTES:
                found.append(
                    Violation(
                        path=f"{path}.{name}",
                        code="template_too_large",
                        message=f"a template may hold at most {MAX_TEMPLATE_BYTES // 1024} KiB"
                        f" ({size // 1024} KiB here)",
                    )
                )
                continue
            for message in template_problems(source, html=html):
                found.append(Violation(path=f"{path}.{name}", code="template", message=message))
    if count > MAX_STEPS:
        found.append(
            Violation(
                path="steps",
                code="too_many_steps",
                message=f"a flow may hold at most {MAX_STEPS} steps, branches included (it has {count})",
            )
        )
    return found


def _ref_problem(ref: EmailRef, ctx: ValidationContext) -> str | None:
    if ref.campaign_id:
        if ref.campaign_id not in ctx.campaign_ids:
            return f"campaign {ref.campaign_id} does not exist"
        return None
    steps = ctx.flow_email_steps.get(ref.flow_id or "")
    if steps is None:
        return f"flow {ref.flow_id} does not exist"
    if ref.step_id not in steps:
        return f"flow {ref.flow_id} has no send_email step {ref.step_id!r}"
    return None

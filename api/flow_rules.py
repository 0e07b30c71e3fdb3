"""Runs the flow rules (second validation layer) with what they need from the store."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from pydantic import ValidationError

from api.problems import FieldError, ProblemError, validation_errors
from journeys.channels.netguard import NetGuard
from journeys.config import Settings
from journeys.domain.flow import TYPE_TAGS, FlowDefinition
from journeys.domain.steps import Webhook
from journeys.domain.validation import ValidationContext, Violation, email_refs, violations
from journeys.store import campaigns, flows


async def context_for(
    pool: asyncpg.Pool, settings: Settings, definition: FlowDefinition, flow_id: str | None = None
) -> ValidationContext:
    """Looks up exactly the campaigns and flows the definition refers to."""
    refs = [ref for _, ref in email_refs(definition)]
    campaign_ids = [r.campaign_id for r in refs if r.campaign_id]
    flow_ids = sorted({r.flow_id for r in refs if r.flow_id and r.flow_id != flow_id})
    steps = await flows.email_steps(pool, flow_ids)
    if flow_id is not None:
        # A flow may refer to its own emails, as they are in the definition being saved.
        steps[flow_id] = frozenset(s.id for _, s in definition.walk() if s.type == "send_email")
    return ValidationContext(
        sms_configured=settings.sms_configured,
        campaign_ids=await campaigns.existing(pool, campaign_ids),
        flow_email_steps=steps,
        flow_id=flow_id,
    )


def schema_violations(data: Any) -> tuple[FlowDefinition | None, list[Violation]]:
    """Parses a definition; schema errors come back as violations instead of an exception."""
    try:
        return FlowDefinition.model_validate(data), []
    except ValidationError as exc:
        found = [
            Violation(path=err.field, code="schema", message=err.message)
            for err in validation_errors(list(exc.errors()), TYPE_TAGS)
        ]
        return None, found


def raise_if_any(found: list[Violation]) -> None:
    """A 422 listing every violation, each with its path."""
    if not found:
        return
    detail = f"{found[0].path}: {found[0].message}"
    if len(found) > 1:
        detail += f" (and {len(found) - 1} more)"
    raise ProblemError(
        422,
        detail,
        title="Invalid Flow",
        errors=[FieldError(field=v.path, message=v.message, code=v.code) for v in found],
    )


async def check(
    pool: asyncpg.Pool,
    settings: Settings,
    definition: FlowDefinition,
    *,
    flow_id: str | None = None,
    for_activation: bool = False,
) -> None:
    """Raises a 422 if the definition may not be saved (or, for activation, activated)."""
    found = await rule_violations(pool, settings, definition, flow_id=flow_id)
    if not for_activation:
        found = [v for v in found if v.blocks == "save"]
    raise_if_any(found)


async def webhook_target_violations(
    settings: Settings, definition: FlowDefinition
) -> list[Violation]:
    """Webhook steps whose URL points at an internal address (or a name resolving to one)."""
    guard = NetGuard(settings.webhook_allowlist)
    hooks = [(path, step) for path, step in definition.walk() if isinstance(step, Webhook)]
    problems = await asyncio.gather(*(guard.url_problem(step.url) for _, step in hooks))
    return [
        Violation(
            path=f"{path}.url",
            code="webhook_target",
            message=f"webhooks may not call internal addresses: {problem}"
            " (JOURNEYS_WEBHOOK_ALLOWED_HOSTS lists allowed ones)",
        )
        for (path, _), problem in zip(hooks, problems, strict=True)
        if problem
    ]


async def rule_violations(
    pool: asyncpg.Pool, settings: Settings, definition: FlowDefinition, *, flow_id: str | None
) -> list[Violation]:
    """Every flow-rule violation: the domain rules, then the webhook targets.

    The domain rules render every template in the sandbox, so they run in a thread: a costly
    template delays this answer only, never the other requests.
    """
    context = await context_for(pool, settings, definition, flow_id)
    found = await asyncio.to_thread(violations, definition, context)
    return found + await webhook_target_violations(settings, definition)

"""Reading and changing the contact for flow steps: actions, conditions, local-time waits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from journeys import changes
from journeys.domain.runs import (
    ActivityName,
    ContactActionInput,
    ContactActionResult,
    EvaluateInput,
    EvaluateResult,
    Phase,
    ResolveWaitInput,
    ResolveWaitResult,
)
from journeys.domain.schedule import wait_until
from journeys.domain.steps import (
    AddTag,
    AddToGroup,
    RemoveFromGroup,
    RemoveTag,
    Unsubscribe,
    UpdateField,
)
from journeys.domain.templating import contact_context
from journeys.ingest import Ingest
from journeys.local_time import zone_for
from journeys.rendering import FieldRefused, render_fields
from journeys.store import conditions, contacts, enrollments

# Called after conditions were read, before the answer returns; tests use it to deliver an
# event at the worst moment (while the workflow waits for the answer).
AfterEvaluateHook = Callable[[EvaluateInput, bool], Awaitable[None]]


class ContactActivities:
    """Contact reads and writes made by flow steps.

    Args:
        pool: The database pool.
        ingest: Records the changes steps make and delivers the events they cause (a tag
            added by one flow can start another).
    """

    def __init__(
        self, pool: asyncpg.Pool, ingest: Ingest, *, after_evaluate: AfterEvaluateHook | None = None
    ) -> None:
        self._pool = pool
        self._ingest = ingest
        self._after_evaluate = after_evaluate

    async def _contact(self, contact_id: str) -> dict:
        contact = await contacts.get(self._pool, contact_id)
        if contact is None:
            raise ApplicationError(
                "the contact no longer exists", type="ContactGone", non_retryable=True
            )
        return contact

    @activity.defn(name=ActivityName.APPLY_CONTACT_ACTION)
    async def apply_contact_action(self, input: ContactActionInput) -> ContactActionResult:
        """Applies the step's change; idempotent, since its events are keyed by the step run."""
        action, key = input.action, input.idempotency_key
        async with self._pool.acquire() as conn, conn.transaction():
            if input.closes_entry is not None:
                # The flow's last step: the entry ends with the change, in one transaction
                # (whatever the change's outcome: the step has one).
                await enrollments.finish(
                    conn,
                    flow_id=input.flow_id,
                    contact_id=input.contact_id,
                    entry=input.closes_entry,
                    status=Phase.COMPLETED.value,
                )
            contact = await contacts.get(conn, input.contact_id)
            if contact is None:
                return ContactActionResult(changed=False, detail="the contact no longer exists")
            ids = {"audience_id": input.audience_id, "contact_id": input.contact_id, "key": key}
            if isinstance(action, AddTag):
                done, pending = await changes.add_tags(conn, names=[action.tag], **ids)
            elif isinstance(action, RemoveTag):
                done, pending = await changes.remove_tags(conn, names=[action.tag], **ids)
            elif isinstance(action, AddToGroup):
                done, pending = await changes.join_groups(conn, names=[action.group], **ids)
            elif isinstance(action, RemoveFromGroup):
                done, pending = await changes.leave_groups(conn, names=[action.group], **ids)
            elif isinstance(action, UpdateField):
                value = action.value
                if isinstance(value, str):
                    context = contact_context(
                        contact, event=input.event, flow={"id": input.flow_id}
                    )
                    try:
                        value = (await render_fields({"value": (value, False)}, context))["value"]
                    except FieldRefused as exc:
                        # A retry renders the same refusal: the step is skipped, the run goes on.
                        return ContactActionResult(
                            changed=False, detail=f"update_field skipped: template refused: {exc}"
                        )
                _, pending = await changes.set_fields(
                    conn, contact=contact, values={action.field: value}, key=key
                )
                done = [action.field] if pending else []
            elif isinstance(action, Unsubscribe):
                done, pending = await changes.unsubscribe(
                    conn, contact=contact, channels=action.channels, key=key
                )
            else:  # pragma: no cover - the union admits no other action
                raise ApplicationError(f"unknown action {action.type}", non_retryable=True)
        await self._ingest.deliver(pending)
        return ContactActionResult(
            changed=bool(done), detail=f"{action.type}: {', '.join(done) or 'no change'}"
        )

    @activity.defn(name=ActivityName.EVALUATE_CONDITIONS)
    async def evaluate_conditions(self, input: EvaluateInput) -> EvaluateResult:
        """Checks the conditions against the contact as it is now."""
        contact = await self._contact(input.contact_id)
        matched = await conditions.evaluate(self._pool, contact, input.conditions)
        if self._after_evaluate is not None:
            await self._after_evaluate(input, matched)
        return EvaluateResult(matched=matched)

    @activity.defn(name=ActivityName.RESOLVE_WAIT)
    async def resolve_wait(self, input: ResolveWaitInput) -> ResolveWaitResult:
        """Turns a local-time wait rule into the UTC instant the workflow sleeps until."""
        contact = await self._contact(input.contact_id)
        zone = await zone_for(self._pool, contact, basis=input.timezone_basis)
        field_value = None
        if input.rule.date_field:
            name = input.rule.date_field
            field_value = (
                contact[name] if name in contact else (contact.get("fields") or {}).get(name)
            )
        until = wait_until(datetime.now(UTC), input.rule, zone, field_value)
        return ResolveWaitResult(until=until.astimezone(UTC), zone=str(zone))

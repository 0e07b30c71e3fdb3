"""Entering and leaving a flow, recorded in `enrollments` (the source of truth for re-entry)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
from temporalio import activity

from journeys.domain.flow import FlowDefinition
from journeys.domain.reentry import NO_MARKETING, admits
from journeys.domain.runs import (
    ActivityName,
    BeginEnrollmentInput,
    BeginEnrollmentResult,
    FinishEnrollmentInput,
    ListRunningInput,
    ListRunningResult,
)
from journeys.store import conditions, contacts, enrollments, flows


class EnrollmentActivities:
    """Admits contacts into flows, closes their entries, lists a flow's open runs."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn(name=ActivityName.BEGIN_ENROLLMENT)
    async def begin_enrollment(self, input: BeginEnrollmentInput) -> BeginEnrollmentResult:
        """Admits the run as a new entry, or refuses it (re-entry rules, starting filter).

        For runs started without an entry: the gateway decides most entries itself and starts
        the run with one (`journeys.dispatch`); armed timer triggers, refusals the runs list
        shows as skipped and runs started by older code come here.

        Idempotent per run: a retry returns the entry the first attempt made.

        The plain case (the contact may enter, no starting filter: a timer trigger firing for
        a subscribed contact) is one statement (`enrollments.admit_run`), as the gateway's
        entries are; the rest is decided under the contact's lock, with the reason it refuses.
        """
        if input.starting_filter is None:
            entry = await enrollments.admit_run(
                self._pool,
                flow_id=input.flow_id,
                contact_id=input.contact_id,
                version=input.version,
                workflow_id=input.workflow_id,
                run_id=input.run_id,
                trigger_type=input.trigger_type,
                event_id=input.event_id,
                reentry_allowed=input.reentry_allowed,
                min_interval_seconds=input.reentry_min_interval_seconds,
            )
            if entry is not None:
                return BeginEnrollmentResult(admitted=True, entry=entry)
        async with self._pool.acquire() as conn, conn.transaction():
            await enrollments.lock(conn, input.flow_id, input.contact_id)
            mine = await enrollments.by_run(conn, input.run_id)
            if mine:
                return BeginEnrollmentResult(admitted=True, entry=mine["entry"])
            contact = await contacts.get(conn, input.contact_id)
            if contact is None:
                return BeginEnrollmentResult(admitted=False, reason="the contact no longer exists")
            if contact["status"] in NO_MARKETING and not await self._transactional(conn, input):
                return BeginEnrollmentResult(
                    admitted=False,
                    reason=f"the contact is {contact['status']} and the flow is not transactional",
                )
            now = datetime.now(UTC)
            # This run holds the workflow id, so a 'running' entry of another run is stale.
            await enrollments.close_stale(conn, input.flow_id, input.contact_id, now)
            last = await enrollments.last(conn, input.flow_id, input.contact_id)
            refusal = admits(
                last_started_at=last["started_at"] if last else None,
                allowed=input.reentry_allowed,
                min_interval=(
                    timedelta(seconds=input.reentry_min_interval_seconds)
                    if input.reentry_min_interval_seconds is not None
                    else None
                ),
                now=now,
            )
            if refusal:
                return BeginEnrollmentResult(admitted=False, reason=refusal)
            if input.starting_filter and not await conditions.evaluate(
                conn, contact, input.starting_filter
            ):
                return BeginEnrollmentResult(
                    admitted=False, reason="the contact does not meet the flow's starting filter"
                )
            entry = (last["entry"] + 1) if last else 1
            await enrollments.insert(
                conn,
                flow_id=input.flow_id,
                contact_id=input.contact_id,
                entry=entry,
                version=input.version,
                workflow_id=input.workflow_id,
                run_id=input.run_id,
                trigger_type=input.trigger_type,
                event_id=input.event_id,
            )
            return BeginEnrollmentResult(admitted=True, entry=entry)

    @staticmethod
    async def _transactional(conn: asyncpg.Connection, input: BeginEnrollmentInput) -> bool:
        """Whether the flow version the run enters is transactional (read from the store)."""
        stored = await flows.version_definition(conn, input.flow_id, input.version)
        return stored is not None and FlowDefinition.model_validate(stored).transactional

    @activity.defn(name=ActivityName.FINISH_ENROLLMENT)
    async def finish_enrollment(self, input: FinishEnrollmentInput) -> None:
        """Records how the entry ended."""
        await enrollments.finish(
            self._pool,
            flow_id=input.flow_id,
            contact_id=input.contact_id,
            entry=input.entry,
            status=input.status.value,
            reason=input.reason,
        )

    @activity.defn(name=ActivityName.LIST_RUNNING)
    async def list_running(self, input: ListRunningInput) -> ListRunningResult:
        """One page of the flow's open runs (for pause/resume/archive fan-outs)."""
        ids = await enrollments.running_page(
            self._pool, input.flow_id, after=input.after, limit=input.limit
        )
        return ListRunningResult(workflow_ids=ids)

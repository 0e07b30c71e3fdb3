"""Where a contact is in every flow: what operators ask first ("where is ada@example.com?").

Temporal holds ids only (no email, no personal data), so a contact is found here, in Postgres,
and each of its runs is then asked where it is (`status` and `timeline` queries).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from pydantic import BaseModel, Field
from temporalio.client import Client
from temporalio.service import RPCError

from api.deps import API_KEY_REQUIRED, PoolDep, SettingsDep, TemporalDep
from api.problems import Problem, ProblemError
from api.routes.audiences import require_audience
from journeys.config import Settings
from journeys.domain.runs import RunStatus, TimelineEntry
from journeys.local_time import zone_for
from journeys.store import armed, contacts, enrollments

router = APIRouter(
    prefix="/audiences/{audience_id}/contacts", tags=["contacts"], dependencies=[API_KEY_REQUIRED]
)

ERRORS: dict[int | str, dict[str, Any]] = {401: {"model": Problem}, 404: {"model": Problem}}


class JourneyPublic(BaseModel):
    """One flow the contact is or was in, and where it stands there."""

    flow_id: str
    flow_name: str
    version: int
    entry: int | None = Field(description="Which entry into the flow; None while armed.")
    status: str = Field(description="The entry's status: running, completed, exited, skipped…")
    phase: str | None = Field(None, description="Where the run is (armed, waiting, …), if open.")
    step_id: str | None = None
    waiting_for: str | None = Field(None, description="What the run waits for, in words.")
    until: datetime | None = Field(None, description="When the wait ends (or the timer fires).")
    until_local: str | None = Field(None, description="The same moment on the contact's clock.")
    entered_at: datetime | None = None
    ended_at: datetime | None = None
    workflow_id: str
    run_id: str | None = None
    link: str = Field(description="The run in the Temporal UI.")
    timeline: list[TimelineEntry] = []


class ContactJourneys(BaseModel):
    contact_id: str
    zone: str = Field(description="The zone `until_local` is given in.")
    journeys: list[JourneyPublic]


def ui_link(settings: Settings, workflow_id: str, run_id: str | None) -> str:
    """The run's page in the Temporal UI (its latest run when `run_id` is unknown)."""
    base = f"{settings.effective_temporal_ui_url}/namespaces/{quote(settings.temporal_namespace)}"
    path = f"/workflows/{quote(workflow_id, safe='')}"
    return base + path + (f"/{run_id}/history" if run_id else "")


async def _ask(client: Client, workflow_id: str, run_id: str | None) -> dict[str, Any]:
    """The run's status and timeline, if Temporal still has it (closed runs age out)."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    try:
        status, timeline = await asyncio.gather(
            handle.query("status", result_type=RunStatus),
            handle.query("timeline", result_type=list[TimelineEntry]),
        )
    except RPCError:
        return {}
    return {"status": status, "timeline": timeline}


@router.get("/{contact}/journeys", responses=ERRORS)
async def contact_journeys(
    audience_id: uuid.UUID,
    contact: str,
    pool: PoolDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> ContactJourneys:
    """Every flow the contact is or was in: phase, step, what it waits for and until when
    (UTC and the contact's local time), entry and end times, the steps it took, and a link to
    each run in the Temporal UI. Newest first."""
    row = await contacts.resolve(pool, str(audience_id), contact)
    if row is None:
        await require_audience(pool, str(audience_id))
        raise ProblemError(404, f"contact {contact!r} does not exist in audience {audience_id}")
    zone = await zone_for(pool, row)
    entries = await enrollments.of_contact(pool, row["id"])
    entered = {e["workflow_id"] for e in entries}
    waiting = [
        a for a in await armed.of_contact(pool, row["id"]) if a["workflow_id"] not in entered
    ]
    # Open runs are asked where they are: the latest run of each workflow id.
    latest = {e["workflow_id"] for e in entries if e["status"] == "running"}
    asked = await asyncio.gather(
        *(_ask(temporal, a["workflow_id"], None) for a in waiting),
        *(
            _ask(temporal, e["workflow_id"], None if e["workflow_id"] in latest else e["run_id"])
            for e in entries
        ),
    )
    journeys = []
    for source, answer in zip([*waiting, *entries], asked, strict=True):
        status: RunStatus | None = answer.get("status")
        open_now = "entry" not in source or source["status"] == "running"
        until = (status.waiting_until or status.fires_at) if status and open_now else None
        journeys.append(
            JourneyPublic(
                flow_id=source["flow_id"],
                flow_name=source["flow_name"],
                version=source["version"],
                entry=source.get("entry"),
                status=source.get("status", "armed"),
                phase=status.phase.value if status and open_now else None,
                step_id=status.step_id if status and open_now else None,
                waiting_for=status.details if status and open_now else None,
                until=until,
                until_local=f"{until.astimezone(zone):%Y-%m-%d %H:%M}" if until else None,
                entered_at=source.get("started_at"),
                ended_at=source.get("ended_at"),
                workflow_id=source["workflow_id"],
                run_id=source.get("run_id"),
                link=ui_link(settings, source["workflow_id"], source.get("run_id")),
                timeline=answer.get("timeline", []),
            )
        )
    return ContactJourneys(contact_id=row["id"], zone=str(zone), journeys=journeys)

"""The numbers Mailchimp-style clients address a flow's API trigger by.

`POST /3.0/customer-journeys/journeys/{journey_id}/steps/{step_id}/actions/trigger` takes
integers. `journey_id` is the flow's own number (a database identity); `step_id` is derived
from the flow id, so it never changes when triggers are edited or reordered.
"""

from __future__ import annotations

import hashlib
from typing import Any

from journeys.domain.flow import FlowDefinition


def trigger_step_id(flow_id: str) -> int:
    """The step id of a flow's `flow_api` trigger."""
    return int(hashlib.sha256(f"{flow_id}:flow_api".encode()).hexdigest()[:6], 16)


def journey_ids(flow: dict[str, Any]) -> tuple[int, int] | None:
    """(journey_id, step_id) of a stored flow's `flow_api` trigger, or None if it has none."""
    definition = FlowDefinition.model_validate(flow["definition"])
    if not any(t.type == "flow_api" for t in definition.triggers):
        return None
    return flow["journey_id"], trigger_step_id(flow["id"])

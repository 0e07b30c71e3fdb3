"""The start input the gateway sends with a pre-serialised definition decodes as the model."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from temporalio.contrib.pydantic import pydantic_data_converter

from journeys.dispatch import start_input
from journeys.domain.flow import FlowDefinition
from journeys.domain.runs import ContactFlowInput, FlowEvent, RunLimits, RunState
from journeys.registry import ActiveFlow

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "flows").glob("*.yaml"))


def _flow(path: Path) -> ActiveFlow:
    document = yaml.safe_load(path.read_text())
    document["audience_id"] = "5b0d6a1e-8c1f-4d9e-9d5e-2b1f3c4d5e6f"
    return ActiveFlow(
        id="0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f",
        audience_id=document["audience_id"],
        version=3,
        definition=FlowDefinition.model_validate(document),
        activated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
@pytest.mark.parametrize("entered", [False, True])
async def test_the_spliced_payload_is_the_converters_payload(path: Path, entered: bool) -> None:
    flow = _flow(path)
    event = FlowEvent(id="e1", type="tag_added", occurred_at=datetime.now(UTC), data={"tag": "é"})
    given = ContactFlowInput(
        flow_id=flow.id,
        version=flow.version,
        definition=flow.definition,
        contact_id="c1",
        audience_id=flow.audience_id,
        trigger_type="tag_added",
        limits=RunLimits(),
        state=RunState(entry=2, enrolled_by=event, seen=[event.id]) if entered else None,
        last_send_closes_entry=True,
    )
    converter = pydantic_data_converter
    [spliced] = await converter.encode([start_input(flow, given)])
    [usual] = await converter.encode([given])

    assert spliced.metadata == usual.metadata
    assert json.loads(spliced.data) == json.loads(usual.data)
    [decoded] = await converter.decode([spliced], [ContactFlowInput])
    assert decoded == given
    assert flow.definition_json is flow.definition_json  # serialised once per flow version

"""Every trigger id and every step type: accepted, stored, and exported exactly as written."""

from __future__ import annotations

import httpx
import pytest

from journeys import flowfile
from journeys.domain.steps import STEP_TYPES
from journeys.domain.triggers import TRIGGER_TYPES
from tests.flow_samples import STEPS, TRIGGERS, step_flow, trigger_flow


def test_samples_cover_the_whole_catalog() -> None:
    assert set(TRIGGERS) == TRIGGER_TYPES and len(TRIGGER_TYPES) == 46
    assert set(STEPS) == STEP_TYPES


@pytest.fixture(scope="module")
async def refs(app_client: httpx.AsyncClient) -> dict[str, str]:
    """An audience, a campaign and a flow with a send-email step, for email references."""
    audience = (await app_client.post("/v1/audiences", json={"name": "Catalog"})).json()["id"]
    campaign = await app_client.post(
        "/v1/campaigns",
        json={"audience_id": audience, "name": "Autumn", "subject": "Autumn is here"},
    )
    assert campaign.status_code == 201, campaign.text
    source = await app_client.post(
        "/v1/flows", json={**step_flow("send_email", audience, {}), "name": "Email source"}
    )
    assert source.status_code == 201, source.text
    return {
        "audience": audience,
        "campaign": campaign.json()["id"],
        "flow": source.json()["id"],
        "step": "mail",
    }


async def _round_trip(http: httpx.AsyncClient, definition: dict) -> None:
    text = flowfile.dump(definition)
    created = await http.post("/v1/flows", json=flowfile.load(text))
    assert created.status_code == 201, created.text
    exported = (await http.get(f"/v1/flows/{created.json()['id']}")).json()["definition"]
    assert flowfile.dump(exported) == text


@pytest.mark.parametrize("trigger_type", sorted(TRIGGERS))
async def test_each_trigger_round_trips(
    app_client: httpx.AsyncClient, refs: dict[str, str], trigger_type: str
) -> None:
    await _round_trip(app_client, trigger_flow(trigger_type, refs["audience"], refs))


@pytest.mark.parametrize("step_type", sorted(STEPS))
async def test_each_step_type_round_trips(
    app_client: httpx.AsyncClient, refs: dict[str, str], step_type: str
) -> None:
    await _round_trip(app_client, step_flow(step_type, refs["audience"], refs))


async def test_schema_is_published_for_editors_and_in_openapi(
    app_client: httpx.AsyncClient,
) -> None:
    schema = (await app_client.get("/v1/flows/schema")).json()
    trigger_union = schema["properties"]["triggers"]["items"]
    assert set(trigger_union["discriminator"]["mapping"]) == TRIGGER_TYPES
    assert {"FlowDefinition", "SendEmail", "WaitForTrigger"} <= set(
        (await app_client.get("/openapi.json")).json()["components"]["schemas"]
    )

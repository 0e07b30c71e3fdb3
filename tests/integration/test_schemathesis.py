"""Property-based tests of the whole API from its own OpenAPI document (Schemathesis).

The real app (real lifespan: pool, Temporal client, registry, outbox relay) listens on a
loopback port; Schemathesis generates valid and invalid requests for every operation and runs
every built-in check on every answer (`--checks all`): not_a_server_error,
status_code_conformance, content_type_conformance, response_headers_conformance,
response_schema_conformance, negative_data_rejection, positive_data_acceptance (except where
`RULES_BEYOND_THE_SCHEMA` says why), missing_required_header, unsupported_method,
use_after_free, ensure_resource_availability, ignored_auth. In `make test` it is bounded (a few examples per operation, a fixed seed); `make fuzz`
runs it with many more examples and a random seed (FUZZ_EXAMPLES, FUZZ_SEED).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator

import httpx
import hypothesis
import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.app import create_app
from journeys.config import Settings
from journeys.embedded.process import free_port
from tests.helpers import eventually, flow_body

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
SEED = int(os.environ.get("FUZZ_SEED", "20261128"))


# Operations whose input obeys rules JSON Schema does not carry: schema-valid input may rightly
# get 422 (or 400), so only these skip the "valid data is accepted" check. Every other check
# applies to them too. Why each one:
RULES_BEYOND_THE_SCHEMA = {
    # flow graph and trigger rules
    ("POST", "/v1/flows"),
    ("PUT", "/v1/flows/{flow_id}"),
    # "an email event names its campaign or its flow step"
    ("POST", "/v1/audiences/{audience_id}/contacts/{contact}/activity"),
    # the same, for each event of a batch, whose audiences and contacts must also exist
    ("POST", "/v1/events:batch"),
    # a cursor is only one this API returned (signed)
    ("GET", "/v1/audiences/{audience_id}/contacts"),
    # the opt-in token is signed
    ("GET", "/v1/optin/confirm"),
    # segment conditions name existing emails; a campaign needs content before a (test) send
    ("PUT", "/v1/campaigns/{campaign_id}"),
    ("POST", "/v1/campaigns/{campaign_id}/test"),
    ("POST", "/v1/campaigns/{campaign_id}/send"),
    # each provider needs its own secrets
    ("PUT", "/v1/audiences/{audience_id}/integrations/{provider}"),
    # no NUL in answer keys (the schema cannot say so of keys); CSV headers; choices only for
    # dropdown fields; a bounce names a message or an audience and an email
    ("POST", "/v1/surveys/{survey_id}/responses"),
    ("POST", "/v1/audiences/{audience_id}/contacts:import"),
    ("POST", "/v1/audiences/{audience_id}/merge-fields"),
    ("POST", "/v1/bounces"),
    # the site snippet posts JSON in a text body (no CORS preflight)
    ("POST", "/t/collect"),
}


@pytest.fixture(scope="module")
async def live_api(settings: Settings) -> AsyncIterator[str]:
    """The app served by uvicorn on a loopback port, in a thread with its own event loop."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            loop="asyncio",
            lifespan="on",
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, name="schemathesis-api", daemon=True)
    thread.start()
    await eventually(lambda: server.started or not thread.is_alive(), timeout=60)
    assert thread.is_alive(), "the API did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.to_thread(thread.join, 60)


@pytest.fixture(scope="module")
async def real_ids(app_client: httpx.AsyncClient) -> dict[str, str]:
    """Ids of things that exist, so valid requests reach the handlers' logic, not just a 404."""
    audience = (await app_client.post("/v1/audiences", json={"name": "Fuzzed"})).json()["id"]
    contact = await app_client.post(
        f"/v1/audiences/{audience}/contacts", json={"email": "fuzz@example.com"}
    )
    flow = await app_client.post("/v1/flows", json=flow_body(audience, name="Fuzzed flow"))
    doomed = await app_client.post("/v1/flows", json=flow_body(audience, name="Fuzzed, deleted"))
    campaign = await app_client.post(
        "/v1/campaigns", json={"audience_id": audience, "name": "Fuzzed", "subject": "Hi"}
    )
    return {
        "audience_id": audience,
        "contact": contact.json()["id"],
        "flow_id": flow.json()["id"],
        "campaign_id": campaign.json()["id"],
        "deleted_flow_id": doomed.json()["id"],
    }


@pytest.fixture(scope="module")
def http(api_key: str) -> requests.Session:
    """One connection pool for every generated request, with the API key."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {api_key}"
    return session


# The document the app serves (building it needs no database); requests go to `live_api`.
# (schemathesis.pytest.from_fixture would load it from the live server, but its lazy loader
# touches a pytest internal that pytest 9 removed.)
# The coverage phase is left out: it enumerates every boundary of the flow-definition schema
# (a large tagged union) and takes minutes before the first request.
CONFIG = schemathesis.Config.from_dict({"phases": {"coverage": {"enabled": False}}})
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi(), config=CONFIG)


@schema.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    # No shrinking: a failure is reported as found (a shrink can take minutes on 2 cores).
    phases=[Phase.explicit, Phase.generate],
)
@hypothesis.seed(SEED)
def test_every_operation_conforms_to_the_openapi_document(
    case: schemathesis.Case,
    live_api: str,
    http: requests.Session,
    real_ids: dict[str, str],
) -> None:
    if case.path_parameters and case.meta and case.meta.generation.mode.is_positive:
        # Valid requests address things that exist (random ids are covered by negative cases).
        # The one flow a DELETE may remove is not the one every other operation works on.
        ids = (
            {**real_ids, "flow_id": real_ids["deleted_flow_id"]}
            if case.method == "DELETE"
            else real_ids
        )
        case.path_parameters = {k: ids.get(k, v) for k, v in case.path_parameters.items()}
    semantic = (case.method, case.operation.path) in RULES_BEYOND_THE_SCHEMA
    case.call_and_validate(
        base_url=live_api,
        session=http,
        excluded_checks=[positive_data_acceptance] if semantic else [],
    )

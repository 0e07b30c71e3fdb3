"""Bad input gets a problem+json naming the field; nothing half-written."""

from __future__ import annotations

import uuid

import httpx

from tests.helpers import flow_body

PROBLEM = "application/problem+json"


async def _problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["title"] and body["instance"]
    return body


async def test_unknown_step_type_names_the_field(
    app_client: httpx.AsyncClient, audience_id: str
) -> None:
    body = flow_body(audience_id)
    body["steps"][1] = {"id": "pause", "type": "teleport"}
    problem = await _problem(await app_client.post("/v1/flows", json=body), 422)
    assert [e["field"] for e in problem["errors"]] == ["steps[1].type"]
    assert "teleport" in problem["errors"][0]["message"]


async def test_bad_duration_names_the_field(
    app_client: httpx.AsyncClient, audience_id: str
) -> None:
    problem = await _problem(
        await app_client.post("/v1/flows", json=flow_body(audience_id, delay="2 fortnights")), 422
    )
    assert [e["field"] for e in problem["errors"]] == ["steps[1].duration"]
    assert "invalid duration" in problem["detail"]


async def test_empty_steps_names_the_field(app_client: httpx.AsyncClient, audience_id: str) -> None:
    body = flow_body(audience_id)
    body["steps"] = []
    problem = await _problem(await app_client.post("/v1/flows", json=body), 422)
    assert [e["field"] for e in problem["errors"]] == ["steps"]


async def test_several_errors_reported_at_once(
    app_client: httpx.AsyncClient, audience_id: str
) -> None:
    body = flow_body(audience_id, delay="soon")
    body["steps"][0]["subject"] = ""
    body["triggers"] = [{"type": "tag_added"}]
    problem = await _problem(await app_client.post("/v1/flows", json=body), 422)
    fields = {e["field"] for e in problem["errors"]}
    assert fields == {"triggers[0].tag", "steps[0].subject", "steps[1].duration"}


async def test_duplicate_step_ids_and_bad_templates_rejected(
    app_client: httpx.AsyncClient, audience_id: str
) -> None:
    body = flow_body(audience_id)
    body["steps"][2]["id"] = "hello"
    body["steps"][0]["subject"] = "Hi {{ contact.first_name"
    problem = await _problem(await app_client.post("/v1/flows", json=body), 422)
    assert {e["field"] for e in problem["errors"]} == {"steps[2].id", "steps[0].subject"}


async def test_unknown_audience_is_404(app_client: httpx.AsyncClient) -> None:
    missing = str(uuid.uuid4())
    problem = await _problem(await app_client.post("/v1/flows", json=flow_body(missing)), 404)
    assert missing in problem["detail"]
    await _problem(
        await app_client.post(f"/v1/audiences/{missing}/contacts", json={"email": "a@b.co"}), 404
    )
    await _problem(await app_client.post("/v1/flows", json=flow_body("not-a-uuid")), 404)


async def test_unknown_contact_and_flow_are_404(
    app_client: httpx.AsyncClient, audience_id: str
) -> None:
    await _problem(
        await app_client.post(
            f"/v1/audiences/{audience_id}/contacts/nobody@example.com/tags", json={"tags": ["x"]}
        ),
        404,
    )
    await _problem(await app_client.post(f"/v1/flows/{uuid.uuid4()}/activate"), 404)
    await _problem(await app_client.get("/v1/flows/nope/runs"), 404)


async def test_no_or_wrong_key_is_401(app_client: httpx.AsyncClient, audience_id: str) -> None:
    url = f"/v1/audiences/{audience_id}"
    problem = await _problem(await app_client.get(url, headers={"Authorization": ""}), 401)
    assert "API key" in problem["detail"]
    await _problem(await app_client.get(url, headers={"Authorization": "Bearer jrn_wrong"}), 401)
    basic = httpx.BasicAuth("anystring", "jrn_wrong")
    await _problem(await app_client.get(url, headers={"Authorization": ""}, auth=basic), 401)


async def test_basic_auth_with_key_as_password_works(
    app_client: httpx.AsyncClient, audience_id: str, api_key: str
) -> None:
    response = await app_client.get(
        f"/v1/audiences/{audience_id}",
        headers={"Authorization": ""},
        auth=httpx.BasicAuth("me", api_key),
    )
    assert response.status_code == 200


async def test_bad_contact_input_names_the_field(
    app_client: httpx.AsyncClient, audience_id: str
) -> None:
    url = f"/v1/audiences/{audience_id}/contacts"
    problem = await _problem(await app_client.post(url, json={"email": "not-an-address"}), 422)
    assert problem["errors"][0]["field"] == "email"
    problem = await _problem(
        await app_client.post(url, json={"email": "a@b.co", "timezone": "Mars/Olympus"}), 422
    )
    assert problem["errors"][0]["field"] == "timezone"
    problem = await _problem(await app_client.post(url, content=b"{not json"), 422)
    assert problem["errors"]


async def test_bad_audience_timezone_names_the_field(app_client: httpx.AsyncClient) -> None:
    problem = await _problem(
        await app_client.post("/v1/audiences", json={"name": "x", "timezone": "Nowhere"}), 422
    )
    assert problem["errors"][0]["field"] == "timezone"


async def test_contact_upsert_keeps_earlier_values(
    app_client: httpx.AsyncClient, audience_id: str
) -> None:
    url = f"/v1/audiences/{audience_id}/contacts"
    first = await app_client.post(
        url, json={"email": "Keep@Example.com", "first_name": "Kay", "fields": {"a": 1}}
    )
    assert first.status_code == 201
    second = await app_client.post(
        url, json={"email": "keep@example.com", "last_name": "Lee", "fields": {"b": 2}}
    )
    assert second.status_code == 200
    body = second.json()
    assert body["id"] == first.json()["id"]
    assert (body["first_name"], body["last_name"]) == ("Kay", "Lee")
    assert body["fields"] == {"a": 1, "b": 2}
    # A failed update leaves the contact as it was.
    bad = await app_client.post(
        url, json={"email": "keep@example.com", "first_name": "X", "timezone": "Bad/Zone"}
    )
    assert bad.status_code == 422
    again = await app_client.get(f"{url}/{body['subscriber_hash']}")
    assert again.status_code == 200, again.text
    assert again.json()["first_name"] == "Kay"

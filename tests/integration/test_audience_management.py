"""Audience management on the real stack: bulk import (API and CLI), contact search with
cursors, merge-field definitions, double opt-in and E.164 phone numbers."""

from __future__ import annotations

import asyncio
import html
import json
import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from journeys.cli import main
from journeys.domain.runs import workflow_id
from journeys.embedded.mailcatcher import MailCatcher
from tests.helpers import eventually, in_flow
from tests.live_server import live_api  # noqa: F401

pytestmark = pytest.mark.usefixtures("worker")


async def active_flow(
    http: httpx.AsyncClient, audience_id: str, trigger: dict[str, Any]
) -> dict[str, Any]:
    body = {
        "name": f"Flow {uuid.uuid4().hex[:6]}",
        "audience_id": audience_id,
        "triggers": [trigger],
        "steps": [{"id": "stay", "type": "delay", "duration": "30d"}],
    }
    response = await http.post("/v1/flows", json=body)
    assert response.status_code == 201, response.text
    flow = response.json()
    assert (await http.post(f"/v1/flows/{flow['id']}/activate")).status_code == 200
    return flow


async def count_runs(pool: asyncpg.Pool, flow_id: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM enrollments WHERE flow_id = $1::uuid", flow_id)


# Row number → (CSV line, the field the report must name).
BAD_ROWS = {
    17: ("not-an-email,Al,,subscribed,,", "email"),
    1000: ("r1000@example.com,Al,06 12,subscribed,,", "phone"),
    1001: ("r1001@example.com,Al,,maybe,,", "status"),
    2500: ("r2500@example.com,Al,,subscribed,13-45,", "birthday"),
    4999: ("r4999@example.com,Al,,subscribed,,lots", "SCORE"),
    5000: ("r5000@example.com,Al,,subscribed", "row"),
    7777: ("r7777@example.com,Al,,pending,,", "status"),
    8888: (",Al,,subscribed,,", "email"),
    9999: ("r9999@example.com,Al,+1 202,subscribed,,", "phone"),
    10000: ("r10000@example.com,Al,,subscribed,02/30,", "birthday"),
}


def import_file(path: Path, rows: int) -> Path:
    """A CSV of `rows` contacts with the BAD_ROWS among them."""
    lines = ["email,first_name,phone,status,birthday,SCORE"]
    for number in range(1, rows + 1):
        if number in BAD_ROWS:
            lines.append(BAD_ROWS[number][0])
        elif number == 3:
            # A quoted value may hold the separator and a line break.
            lines.append('r3@example.com,"Smith, Jo\nJr",+33 6 12 34 56 78,subscribed,07-14,3')
        else:
            lines.append(f"r{number}@example.com,Al,,subscribed,,{number}")
    path.write_text("\r\n".join(lines) + "\r\n")
    return path


async def test_cli_imports_10000_rows_storing_good_ones_and_reporting_bad_ones_by_row(
    live_api: str,  # noqa: F811
    api_key: str,
    app_client: httpx.AsyncClient,
    audience_id: str,
    pool: asyncpg.Pool,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await app_client.post(
        f"/v1/audiences/{audience_id}/merge-fields",
        json={"tag": "SCORE", "name": "Score", "type": "number"},
    )
    not_imports = await active_flow(app_client, audience_id, {"type": "signed_up_email"})
    path = import_file(tmp_path / "contacts.csv", 10_000)

    args = ["contacts", "import", str(path), "--audience", audience_id]
    code = await asyncio.to_thread(main, [*args, "--api-url", live_api, "--api-key", api_key])
    out, err = capsys.readouterr()
    assert code == 1  # some rows failed
    assert out.strip() == ("10000 rows: 9990 created, 0 updated, 10 failed; 0 flow runs started")
    assert "100%" in err and "[##############################]" in err  # the progress bar
    reported = re.findall(r"^  row (\d+): (\w+): ", err, re.MULTILINE)
    assert {int(row): field for row, field in reported} == {
        row: field for row, (_, field) in BAD_ROWS.items()
    }

    stored = await pool.fetchval(
        "SELECT count(*) FROM contacts WHERE audience_id = $1::uuid", audience_id
    )
    assert stored == 9990
    jo = await pool.fetchrow(
        "SELECT first_name, phone, birthday, fields FROM contacts"
        " WHERE audience_id = $1::uuid AND email = 'r3@example.com'",
        audience_id,
    )
    assert dict(jo) == {
        "first_name": "Smith, Jo\nJr",
        "phone": "+33612345678",
        "birthday": "07-14",
        "fields": {"SCORE": 3},
    }
    # Imported subscriptions are recorded, and fire no flow that does not take imports.
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM events WHERE audience_id = $1::uuid AND type = 'subscribed_email'"
            " AND (data->>'imported')::boolean AND dispatched_at IS NOT NULL",
            audience_id,
        )
        == 9990
    )
    assert await count_runs(pool, not_imports["id"]) == 0


async def test_json_lines_import_enrols_only_in_flows_that_take_imports(
    app_client: httpx.AsyncClient, audience_id: str, client: Client, pool: asyncpg.Pool
) -> None:
    base = f"/v1/audiences/{audience_id}/contacts"
    for email, status in (("gone@example.com", "unsubscribed"), ("kept@example.com", "subscribed")):
        response = await app_client.post(base, json={"email": email, "status": status})
        assert response.status_code == 201
    takes = await active_flow(
        app_client, audience_id, {"type": "signed_up_email", "include_imported": True}
    )
    ignores = await active_flow(app_client, audience_id, {"type": "signed_up_email"})
    rows = [
        {"email": "new@example.com", "first_name": "New", "last_name": None},
        {"email": "quiet@example.com", "status": "unsubscribed"},
        "{not json",
        {"email": "gone@example.com", "status": "subscribed"},  # consent is theirs to give
        {"email": "x@example.com", "colour": "blue"},
        {"email": "kept@example.com", "first_name": "Kept"},
    ]
    body = "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n"
    response = await app_client.post(
        f"{base}:import", content=body.encode(), headers={"Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["rows"], report["created"], report["updated"], report["failed"]) == (6, 2, 1, 3)
    assert [(e["row"], e["field"]) for e in report["errors"]] == [
        (3, "row"),
        (4, "status"),
        (5, "colour"),
    ]
    assert report["enrolled"] == 1

    def contact(email: str) -> Any:
        return app_client.get(f"{base}/{email}")

    new = (await contact("new@example.com")).json()
    quiet = (await contact("quiet@example.com")).json()
    assert (await contact("gone@example.com")).json()["status"] == "unsubscribed"
    assert (await contact("kept@example.com")).json()["first_name"] == "Kept"
    assert await in_flow(client, takes["id"], new["id"])
    assert not await in_flow(client, takes["id"], quiet["id"])  # no consent
    assert await count_runs(pool, ignores["id"]) == 0

    wrong = await app_client.post(
        f"{base}:import", content=b"a,b\n1,2\n", headers={"Content-Type": "text/csv"}
    )
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "header"
    broken = await app_client.post(
        f"/v1/audiences/{audience_id}/contacts:import",
        content=b'{"email": "early@example.com"}\n' + b"x" * 70_000,
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert broken.status_code == 200, broken.text
    assert (broken.json()["created"], broken.json()["truncated"]) == (1, True)
    assert broken.json()["errors"][0]["row"] == 2
    assert (await contact("early@example.com")).status_code == 200
    typeless = await app_client.post(
        f"/v1/audiences/{audience_id}/contacts:import", content=b"{}", headers={}
    )
    assert typeless.status_code == 415


async def test_an_import_arms_new_contacts_of_an_active_date_flow(
    app_client: httpx.AsyncClient, audience_id: str, client: Client
) -> None:
    """An imported birthday is a timer to arm, though no flow is *triggered* by the import."""
    flow = await active_flow(app_client, audience_id, {"type": "birthday", "time_of_day": "09:00"})
    base = f"/v1/audiences/{audience_id}/contacts"
    rows = [{"email": "cake@example.com", "birthday": "07-14"}]
    response = await app_client.post(
        f"{base}:import",
        content="\n".join(json.dumps(r) for r in rows).encode() + b"\n",
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 200, response.text
    cake = (await app_client.get(f"{base}/cake@example.com")).json()
    assert await eventually(lambda: in_flow(client, flow["id"], cake["id"]))
    status = await client.get_workflow_handle(workflow_id(flow["id"], cake["id"])).query("status")
    assert status["fires_at"] is not None


async def test_contacts_are_listed_by_email_with_filters_and_cursor_pages(
    app_client: httpx.AsyncClient, audience_id: str
) -> None:
    base = f"/v1/audiences/{audience_id}/contacts"
    people = [
        ("ann@a.example", "subscribed", ["vip"]),
        ("Anna@a.example", "unsubscribed", ["vip"]),
        ("ant@b.example", "subscribed", []),
        ("bob@a.example", "subscribed", ["vip"]),
        ("an_y@a.example", "subscribed", []),
        ("cat@c.example", "transactional", []),
    ]
    for email, status, tags in people:
        assert (await app_client.post(base, json={"email": email, "status": status})).is_success
        if tags:
            await app_client.post(f"{base}/{email}/tags", json={"tags": tags})

    async def walk(**params: Any) -> list[str]:
        seen, cursor = [], None
        while True:
            query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await app_client.get(base, params=query)).json()
            assert len(page["contacts"]) <= 2
            seen += [c["email"] for c in page["contacts"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return seen

    assert await walk() == [
        "an_y@a.example",
        "ann@a.example",  # byte order of the lower-cased address: "@" sorts before letters
        "Anna@a.example",
        "ant@b.example",
        "bob@a.example",
        "cat@c.example",
    ]
    assert await walk(email_prefix="ANN") == ["ann@a.example", "Anna@a.example"]
    assert await walk(email_prefix="an_") == ["an_y@a.example"]  # `_` is not a wildcard
    assert await walk(tag="vip", status="subscribed") == ["ann@a.example", "bob@a.example"]
    page = (await app_client.get(base, params={"tag": "vip", "limit": 1})).json()
    assert page["contacts"][0]["tags"] == ["vip"]
    bad = await app_client.get(base, params={"cursor": "nonsense"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.cursor"


async def test_merge_fields_are_defined_per_audience_and_convert_values(
    app_client: httpx.AsyncClient, audience_id: str
) -> None:
    fields = f"/v1/audiences/{audience_id}/merge-fields"
    created = await app_client.post(
        fields, json={"tag": "SCORE", "name": "Score", "type": "number", "required": True}
    )
    assert created.status_code == 201, created.text
    assert (
        await app_client.post(fields, json={"tag": "SCORE", "name": "x", "type": "text"})
    ).status_code == 409
    assert (
        await app_client.post(fields, json={"tag": "FNAME", "name": "x", "type": "text"})
    ).status_code == 409
    bad = await app_client.post(fields, json={"tag": "size", "name": "x", "type": "text"})
    assert (bad.status_code, bad.json()["errors"][0]["field"]) == (422, "tag")
    bad = await app_client.post(fields, json={"tag": "SIZE", "name": "x", "type": "dropdown"})
    assert bad.status_code == 422 and "needs choices" in bad.json()["detail"]
    listed = (await app_client.get(fields)).json()["merge_fields"]
    assert [(f["tag"], f["builtin"]) for f in listed] == [
        ("FNAME", True),
        ("LNAME", True),
        ("BIRTHDAY", True),
        ("PHONE", True),
        ("SCORE", False),
    ]

    contacts = f"/v1/audiences/{audience_id}/contacts"
    ok = await app_client.post(
        contacts, json={"email": "s@example.com", "fields": {"SCORE": " 12 "}}
    )
    assert ok.json()["fields"] == {"SCORE": 12}
    wrong = await app_client.post(
        contacts, json={"email": "s@example.com", "fields": {"SCORE": "lots"}}
    )
    assert wrong.status_code == 422
    assert wrong.json()["errors"] == [
        {"field": "fields.SCORE", "message": "must be a number", "code": None}
    ]
    assert (await app_client.get(f"{contacts}/s@example.com")).json()["fields"] == {"SCORE": 12}

    renamed = await app_client.put(f"{fields}/SCORE", json={"name": "Points"})
    assert renamed.json()["name"] == "Points"
    assert (await app_client.delete(f"{fields}/SCORE")).status_code == 204
    assert (await app_client.delete(f"{fields}/SCORE")).status_code == 404
    free = await app_client.post(
        contacts, json={"email": "s@example.com", "fields": {"SCORE": "lots"}}
    )
    assert free.json()["fields"] == {"SCORE": "lots"}  # no definition, no check


async def test_double_opt_in_subscribes_only_through_the_signed_link(
    app_client: httpx.AsyncClient,
    audience_id: str,
    client: Client,
    mail: MailCatcher,
    pool: asyncpg.Pool,
) -> None:
    flow = await active_flow(app_client, audience_id, {"type": "signed_up_email"})
    email = f"optin-{uuid.uuid4().hex[:6]}@example.com"
    response = await app_client.post(
        f"/v1/audiences/{audience_id}/contacts", json={"email": email, "status": "pending"}
    )
    assert response.status_code == 201, response.text
    contact = response.json()
    assert contact["status"] == "pending"
    assert not await in_flow(client, flow["id"], contact["id"])

    message = (await eventually(lambda: mail.to(email)))[0]
    assert message.subject == "Please confirm your subscription to Test audience"
    link = html.unescape(re.search(r'href="([^"]+)"', message.body("html")).group(1))
    target = urlsplit(link)
    assert target.path == "/v1/optin/confirm"

    token = target.query.removeprefix("token=")
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    refused = await app_client.get(target.path, params={"token": forged})
    assert refused.status_code == 400
    assert (await app_client.get(f"/v1/audiences/{audience_id}/contacts/{email}")).json()[
        "status"
    ] == "pending"

    confirmed = await app_client.get(f"{target.path}?{target.query}")
    assert confirmed.status_code == 200 and "Subscription confirmed" in confirmed.text
    assert (await app_client.get(f"/v1/audiences/{audience_id}/contacts/{email}")).json()[
        "status"
    ] == "subscribed"
    assert await in_flow(client, flow["id"], contact["id"])
    again = await app_client.get(f"{target.path}?{target.query}")
    assert again.status_code == 200
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM events WHERE contact_id = $1::uuid AND type = 'subscribed_email'",
            contact["id"],
        )
        == 1
    )


async def test_phone_numbers_are_stored_in_e164(
    app_client: httpx.AsyncClient, audience_id: str
) -> None:
    contacts = f"/v1/audiences/{audience_id}/contacts"
    saved = await app_client.post(
        contacts, json={"email": "p@example.com", "phone": "+33 (0)6 12-34-56-78"}
    )
    assert saved.json()["phone"] == "+33612345678"
    for raw in ("06 12 34 56 78", "+1 202", "call me"):
        refused = await app_client.post(contacts, json={"email": "p@example.com", "phone": raw})
        assert refused.status_code == 422, raw
        assert refused.json()["errors"][0]["field"] == "phone"
    assert (await app_client.get(f"{contacts}/p@example.com")).json()["phone"] == "+33612345678"


async def test_an_import_reads_at_most_100000_rows_and_says_where_it_stopped(
    app_client: httpx.AsyncClient, audience_id: str
) -> None:
    # Rows that fail their checks cost no query: this reads 100,001 rows quickly.
    body = "email\n" + "not-an-email\n" * 100_001 + "late@example.com\n"
    response = await app_client.post(
        f"/v1/audiences/{audience_id}/contacts:import",
        content=body.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["rows"], report["created"], report["truncated"]) == (100_000, 0, True)
    assert report["failed"] == 100_001
    assert len(report["errors"]) == 1_001  # 1,000 listed bad rows, then where reading stopped
    assert report["errors"][-1]["row"] == 100_001
    assert "at most 100000 rows" in report["errors"][-1]["message"]
    listed = await app_client.get(f"/v1/audiences/{audience_id}/contacts")
    assert listed.json()["contacts"] == []

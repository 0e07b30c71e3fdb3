"""The engagement loop on the real stack: tracked clicks and opens, one-click unsubscribe."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
from temporalio.client import Client

from journeys.channels.tracking import TokenKind, sign
from journeys.config import Settings
from journeys.domain.runs import Phase, RunResult, workflow_id
from journeys.embedded.mailcatcher import CaughtMail, MailCatcher
from tests.helpers import eventually

SALE = "https://shop.example.com/sale?utm=a&b=2"
HTML = (
    '<html><body><p>Hi {{ contact.first_name }}</p><a href="https://shop.example.com/sale?utm=a&amp;b=2">'
    "Sale</a> <a href='mailto:help@example.com'>help</a></body></html>"
)


async def _contact(http: httpx.AsyncClient, audience_id: str, name: str) -> dict:
    email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
    response = await http.post(
        f"/v1/audiences/{audience_id}/contacts", json={"email": email, "first_name": name}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _flow(http: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await http.post("/v1/flows", json=body)
    assert response.status_code == 201, response.text
    flow_id = response.json()["id"]
    response = await http.post(f"/v1/flows/{flow_id}/activate")
    assert response.status_code == 200, response.text
    return flow_id


def _mail_flow(audience_id: str, tag: str, **settings: Any) -> dict[str, Any]:
    return {
        "name": f"Sale {tag}",
        "audience_id": audience_id,
        "triggers": [{"type": "tag_added", "tag": tag}],
        "steps": [
            {"id": "news", "type": "send_email", "subject": "Sale", "html": HTML},
            {"id": "pause", "type": "delay", "duration": "2d"},
            {"id": "later", "type": "send_email", "subject": "Later", "html": "<p>...</p>"},
        ],
        "settings": settings,
    }


def _follow_up(audience_id: str, name: str, trigger: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "audience_id": audience_id,
        "triggers": [trigger],
        "steps": [{"id": "thanks", "type": "send_email", "subject": name, "text": "Thanks"}],
    }


async def _tag(http: httpx.AsyncClient, audience_id: str, contact: dict, tag: str) -> None:
    response = await http.post(
        f"/v1/audiences/{audience_id}/contacts/{contact['id']}/tags", json={"tags": [tag]}
    )
    assert response.status_code == 200, response.text


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _urls(mail: CaughtMail, prefix: str) -> list[str]:
    return re.findall(rf"https?://[^\s\"'<>]*{prefix}[A-Za-z0-9_\-.]+", mail.body("html"))


async def _events(pool: asyncpg.Pool, contact_id: str, type: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT data FROM events WHERE contact_id = $1::uuid AND type = $2 ORDER BY received_at",
        contact_id,
        type,
    )
    return [dict(r["data"]) for r in rows]


async def test_tracked_click_and_open_record_once_and_fire_flows(
    app_client: httpx.AsyncClient,
    audience_id: str,
    mail: MailCatcher,
    pool: asyncpg.Pool,
    settings: Settings,
    client: Client,
    worker: object,
) -> None:
    contact = await _contact(app_client, audience_id, "Ada")
    flow_id = await _flow(app_client, _mail_flow(audience_id, "sale"))
    email_ref = {"flow_id": flow_id, "step_id": "news"}
    clicked_flow = await _flow(
        app_client,
        _follow_up(
            audience_id,
            "Clicked sale",
            {
                "type": "email_clicked_specific_link",
                "email": email_ref,
                "url": "https://shop.example.com/sale*",
            },
        ),
    )
    opened_flow = await _flow(
        app_client, _follow_up(audience_id, "Opened", {"type": "email_opened", "email": email_ref})
    )

    await _tag(app_client, audience_id, contact, "sale")
    sent = (await eventually(lambda: mail.to(contact["email"])))[0]
    assert sent.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert SALE not in sent.body("html") and "mailto:help@example.com" in sent.body("html")
    [click_url] = _urls(sent, "/t/c/")
    [pixel_url] = _urls(sent, "/t/o/")
    assert click_url.startswith(settings.effective_public_url)
    assert await eventually(lambda: _events(pool, contact["id"], "email_sent")) == [
        {**email_ref, "message_id": sent.message["Message-ID"]}
    ]

    # A real HTTP client follows the tracked link: one redirect, to the URL in the message.
    response = await app_client.get(_path(click_url), follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == SALE
    # Query parameters added to a click URL never choose the target.
    tampered = await app_client.get(
        _path(click_url) + "?url=https://evil.example.com", follow_redirects=False
    )
    assert tampered.headers["location"] == SALE
    assert await _events(pool, contact["id"], "email_clicked") == [
        {**email_ref, "url": SALE},
        {**email_ref, "url": SALE},
    ]

    pixel = await app_client.get(_path(pixel_url))
    assert pixel.status_code == 200 and pixel.headers["content-type"] == "image/gif"
    assert await _events(pool, contact["id"], "email_opened") == [email_ref]

    # Both follow-up flows heard it and sent their email.
    def subjects() -> list[str]:
        return sorted(m.subject for m in mail.to(contact["email"]))

    await eventually(lambda: subjects() == ["Clicked sale", "Opened", "Sale"])
    for follow_up in (clicked_flow, opened_flow):
        handle = client.get_workflow_handle(
            workflow_id(follow_up, contact["id"]), result_type=RunResult
        )
        assert (await handle.result()).phase == Phase.COMPLETED


async def test_forged_edited_or_foreign_tokens_get_404_and_record_nothing(
    app_client: httpx.AsyncClient,
    audience_id: str,
    mail: MailCatcher,
    pool: asyncpg.Pool,
    settings: Settings,
    worker: object,
) -> None:
    contact = await _contact(app_client, audience_id, "Bo")
    await _flow(app_client, _mail_flow(audience_id, "forge"))
    await _tag(app_client, audience_id, contact, "forge")
    sent = (await eventually(lambda: mail.to(contact["email"])))[0]
    [click_url] = _urls(sent, "/t/c/")
    token = click_url.rsplit("/", 1)[1]
    ref = await pool.fetchval("SELECT ref FROM messages WHERE recipient = $1", contact["email"])
    key = settings.tracking_signing_key()

    edited = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
    forged = sign(b"not the key" * 3, TokenKind.CLICK, ref, 0)
    past_the_links = sign(key, TokenKind.CLICK, ref, 7)  # signed, but the message has 1 link
    unknown = sign(key, TokenKind.CLICK, "00" * 16, 0)
    open_as_click = sign(key, TokenKind.OPEN, ref)
    for bad in (edited, forged, past_the_links, unknown, open_as_click, "x", "A" * 200):
        response = await app_client.get(f"/t/c/{bad}", follow_redirects=False)
        assert response.status_code == 404, bad
        assert "location" not in response.headers
    for bad in (edited, forged, unknown):
        assert (await app_client.get(f"/t/o/{bad}.gif")).status_code == 404
        assert (await app_client.post(f"/u/{bad}")).status_code == 404
    for type in ("email_clicked", "email_opened", "unsubscribed"):
        assert await _events(pool, contact["id"], type) == []
    row = await app_client.get(f"/v1/audiences/{audience_id}/contacts/{contact['id']}")
    assert row.json()["status"] == "subscribed"


async def test_tracking_off_per_flow_sends_plain_links_and_no_pixel(
    app_client: httpx.AsyncClient, audience_id: str, mail: MailCatcher, worker: object
) -> None:
    contact = await _contact(app_client, audience_id, "Cy")
    body = _mail_flow(audience_id, "plain", tracking={"opens": False, "clicks": False})
    await _flow(app_client, body)
    await _tag(app_client, audience_id, contact, "plain")
    sent = (await eventually(lambda: mail.to(contact["email"])))[0]
    assert _urls(sent, "/t/c/") == [] and _urls(sent, "/t/o/") == []
    assert 'href="https://shop.example.com/sale?utm=a&amp;b=2"' in sent.body("html")
    # Unsubscribing is not tracking: it stays.
    assert len(_urls(sent, "/u/")) == 1 and sent.message["List-Unsubscribe"]


async def test_one_click_unsubscribe_exits_runs_skips_marketing_keeps_transactional(
    app_client: httpx.AsyncClient,
    audience_id: str,
    mail: MailCatcher,
    pool: asyncpg.Pool,
    client: Client,
    worker: object,
) -> None:
    contact = await _contact(app_client, audience_id, "Di")
    body = _mail_flow(audience_id, "news")
    body["settings"] = {"exit_when": [{"type": "unsubscribed"}]}
    flow_id = await _flow(app_client, body)
    later_flow = await _flow(app_client, _mail_flow(audience_id, "later"))
    receipts = await _flow(
        app_client, _follow_up(audience_id, "Your order", {"type": "order_confirmation"})
    )

    await _tag(app_client, audience_id, contact, "news")
    sent = (await eventually(lambda: mail.to(contact["email"])))[0]
    header = str(sent.message["List-Unsubscribe"]).strip()  # may be folded
    assert header.startswith("<") and header.endswith(">")
    unsubscribe_url = header[1:-1]
    assert [unsubscribe_url] == _urls(sent, "/u/")  # the footer link, since the template had none
    assert unsubscribe_url in sent.body("plain")
    handle = client.get_workflow_handle(workflow_id(flow_id, contact["id"]), result_type=RunResult)

    async def waiting() -> bool:
        runs = (await app_client.get(f"/v1/flows/{flow_id}/runs")).json()["runs"]
        return bool(runs) and runs[0]["phase"] == "waiting"

    await eventually(waiting)

    page = await app_client.get(_path(unsubscribe_url))
    assert page.status_code == 200 and '<form method="post">' in page.text
    assert await _events(pool, contact["id"], "unsubscribed") == []  # a GET changes nothing

    # As a mailbox provider sends it (RFC 8058).
    response = await app_client.post(
        _path(unsubscribe_url),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200 and "unsubscribed" in response.text
    row = await app_client.get(f"/v1/audiences/{audience_id}/contacts/{contact['id']}")
    assert row.json()["status"] == "unsubscribed"
    result = await handle.result()
    assert (result.phase, result.reason) == (Phase.EXITED, "reached the exit goal `unsubscribed`")

    # The next marketing flow does not take the contact in; the transactional one sends.
    await _tag(app_client, audience_id, contact, "later")
    later = client.get_workflow_handle(
        workflow_id(later_flow, contact["id"]), result_type=RunResult
    )
    skipped = await later.result()
    assert skipped.phase == Phase.SKIPPED and "unsubscribed" in (skipped.reason or "")
    response = await app_client.post(
        f"/v1/audiences/{audience_id}/contacts/{contact['id']}/activity",
        json={"type": "order_placed", "data": {"order_id": "o-1"}},
    )
    assert response.status_code == 202, response.text
    receipt = await eventually(
        lambda: [m for m in mail.to(contact["email"]) if m.subject == "Your order"]
    )
    assert receipt[0].message["List-Unsubscribe"] is None
    assert "/t/o/" not in receipt[0].body("plain") and "/u/" not in receipt[0].body("plain")
    done = await client.get_workflow_handle(
        workflow_id(receipts, contact["id"]), result_type=RunResult
    ).result()
    assert done.phase == Phase.COMPLETED
    assert [m.subject for m in mail.to(contact["email"])] == ["Sale", "Your order"]

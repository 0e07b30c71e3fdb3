"""Shopify webhooks and storefront events enrol the right contacts, signed as Shopify signs."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from tests.helpers import in_flow
from tests.providers import shopify_payloads as sp
from tests.providers.conftest import active_flow, contact, contact_id, started

SECRET = "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"


class Store:
    """One Shopify store wired to one audience."""

    def __init__(self, hooks: httpx.AsyncClient, audience: str, site_key: str) -> None:
        self.hooks, self.audience, self.site_key = hooks, audience, site_key

    async def send(
        self,
        topic: str,
        payload: dict[str, Any],
        *,
        event_id: str | None = None,
        secret: str = SECRET,
    ) -> httpx.Response:
        raw = sp.body(payload)
        return await self.hooks.post(
            f"/v1/shopify/{self.audience}/webhooks",
            content=raw,
            headers=sp.headers(secret, raw, topic, event_id),
        )

    async def pixel(self, event: dict[str, Any], email: str | None) -> httpx.Response:
        customer = {"email": email, "id": "115310627314723954"} if email else None
        return await self.hooks.post(
            "/t/collect",
            json={"site_key": self.site_key, "event": event, "customer": customer},
        )


@pytest.fixture
async def store(hooks: httpx.AsyncClient, audience: str) -> Store:
    put = await hooks.put(
        f"/v1/audiences/{audience}/integrations/shopify",
        json={"secret": SECRET, "low_inventory_threshold": 5},
    )
    assert put.status_code == 200, put.text
    site = await hooks.put(f"/v1/audiences/{audience}/integrations/site", json={})
    return Store(hooks, audience, site.json()["token"])


async def _stored(pool: asyncpg.Pool, audience: str) -> tuple[int, int]:
    events = await pool.fetchval(
        "SELECT count(*) FROM events WHERE audience_id = $1::uuid", audience
    )
    contacts = await pool.fetchval(
        "SELECT count(*) FROM contacts WHERE audience_id = $1::uuid", audience
    )
    return events, contacts


@pytest.mark.parametrize(
    "tamper",
    ["no_signature", "altered_body", "wrong_secret", "not_configured"],
)
async def test_unsigned_or_missigned_deliveries_are_refused_and_store_nothing(
    hooks: httpx.AsyncClient, audience: str, pool: asyncpg.Pool, tamper: str
) -> None:
    if tamper != "not_configured":
        await hooks.put(f"/v1/audiences/{audience}/integrations/shopify", json={"secret": SECRET})
    raw = sp.body(sp.order("eve@example.com"))
    headers = sp.headers(
        "another-app-secret" if tamper == "wrong_secret" else SECRET, raw, "orders/create"
    )
    if tamper == "no_signature":
        del headers["X-Shopify-Hmac-Sha256"]
    if tamper == "altered_body":
        raw = raw.replace(b"199.00", b"0.01")
    answer = await hooks.post(f"/v1/shopify/{audience}/webhooks", content=raw, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert await _stored(pool, audience) == (0, 0)


async def test_a_body_over_the_limit_is_refused(store: Store, pool: asyncpg.Pool) -> None:
    payload = sp.order("big@example.com")
    payload["note"] = "x" * 70_000  # the test gateway takes 64 KiB
    answer = await store.send("orders/create", payload)
    assert answer.status_code == 413
    assert await _stored(pool, store.audience) == (0, 0)


ORDER = sp.order
# trigger, [(topic, payload builder)] sent first without expecting anything, the hit, the near miss.
Build = Callable[[str], dict[str, Any]]
ORDER_CASES: list[
    tuple[dict[str, Any], list[tuple[str, Build]], tuple[str, Build], tuple[str, Build]]
] = [
    ({"type": "purchased_any_product"}, [], ("orders/create", ORDER), ("orders/paid", ORDER)),
    (
        {"type": "purchased_specific_product", "product_ids": [str(sp.PRODUCT)]},
        [],
        ("orders/create", ORDER),
        ("orders/create", lambda e: sp.order(e, order_id=77, product_id=sp.OTHER_PRODUCT)),
    ),
    ({"type": "order_confirmation"}, [], ("orders/create", ORDER), ("orders/cancelled", ORDER)),
    (
        {"type": "cancellation_confirmation"},
        [],
        ("orders/cancelled", ORDER),
        ("orders/create", ORDER),
    ),
    ({"type": "order_invoice"}, [], ("orders/paid", ORDER), ("orders/fulfilled", ORDER)),
    (
        {"type": "shipping_confirmation"},
        [("orders/create", ORDER)],
        ("fulfillments/create", lambda e: sp.fulfillment()),
        ("refunds/create", lambda e: sp.refund()),
    ),
    (
        {"type": "refund_confirmation"},
        [("orders/create", ORDER)],
        ("refunds/create", lambda e: sp.refund()),
        ("fulfillments/create", lambda e: sp.fulfillment()),
    ),
]


@pytest.mark.parametrize(
    ("trigger", "before", "hit", "miss"), ORDER_CASES, ids=[c[0]["type"] for c in ORDER_CASES]
)
async def test_order_webhooks_enrol_the_buyer(
    store: Store,
    pool: asyncpg.Pool,
    trigger: dict[str, Any],
    before: list[tuple[str, Build]],
    hit: tuple[str, Build],
    miss: tuple[str, Build],
) -> None:
    email = f"buyer-{uuid.uuid4().hex[:6]}@example.com"
    flow_id = await active_flow(store.hooks, store.audience, trigger)
    for topic, build in before:
        assert not started(await store.send(topic, build(email)), flow_id)
    assert not started(await store.send(miss[0], miss[1](email)), flow_id)
    delivery = str(uuid.uuid4())
    answer = await store.send(hit[0], hit[1](email), event_id=delivery)
    assert started(answer, flow_id)
    # The buyer became a contact, by email; a new one is not subscribed to marketing.
    row = await pool.fetchrow(
        "SELECT id::text, status, first_name FROM contacts WHERE audience_id = $1::uuid AND email = $2",
        store.audience,
        email,
    )
    assert row["status"] == "transactional" and row["first_name"] == "John"
    assert answer.json()["enrolments"][0]["workflow_id"].endswith(row["id"])
    # Shopify redelivers: same event id, nothing new.
    again = await store.send(hit[0], hit[1](email), event_id=delivery)
    assert again.json()["duplicate"] is True and again.json()["enrolments"] == []


async def test_an_order_before_activation_enrols_no_one(
    store: Store, hooks: httpx.AsyncClient, pool: asyncpg.Pool, client: Client
) -> None:
    created = await hooks.post(
        "/v1/flows",
        json={
            "name": "Thanks",
            "audience_id": store.audience,
            "triggers": [{"type": "purchased_any_product"}],
            "steps": [{"id": "hello", "type": "send_email", "subject": "Hi", "html": "<p>Hi</p>"}],
        },
    )
    flow_id = created.json()["id"]
    assert not started(await store.send("orders/create", sp.order("early@example.com")), flow_id)
    assert (await hooks.post(f"/v1/flows/{flow_id}/activate")).status_code == 200
    buyer = await contact_id(pool, store.audience, "early@example.com")
    assert buyer is not None and not await in_flow(client, flow_id, buyer)


@pytest.mark.parametrize(
    ("action", "topic", "completed", "fires"),
    [
        ("started", "checkouts/create", False, True),
        ("completed", "checkouts/update", True, True),
        ("payment_submitted", "checkouts/create", False, False),
        ("completed", "checkouts/create", False, False),
    ],
)
async def test_checkout_webhooks_fire_checkout_actions(
    store: Store, action: str, topic: str, completed: bool, fires: bool
) -> None:
    flow_id = await active_flow(
        store.hooks, store.audience, {"type": "shopify_checkout_action", "action": action}
    )
    answer = await store.send(topic, sp.checkout("cat@example.com", completed=completed))
    assert started(answer, flow_id) is fires


async def test_a_checkout_stores_the_cart_and_the_order_closes_it(
    store: Store, pool: asyncpg.Pool
) -> None:
    email = "cart@example.com"
    await store.send("checkouts/create", sp.checkout(email))
    cart = await pool.fetchrow(
        "SELECT c.items, c.product_ids, c.url, c.completed_at, k.email FROM carts c"
        " JOIN contacts k ON k.id = c.contact_id WHERE c.audience_id = $1::uuid AND c.external_id = $2",
        store.audience,
        "68778783ad298f1c80c3bafcddeea02f",
    )
    assert cart["email"] == email and cart["product_ids"] == [str(sp.PRODUCT)]
    assert cart["items"] == [{"product_id": str(sp.PRODUCT), "quantity": 2, "price": "199.00"}]
    assert "/recover?" in cart["url"] and cart["completed_at"] is None
    placed = sp.order(email)
    placed["cart_token"] = "68778783ad298f1c80c3bafcddeea02f"
    await store.send("orders/create", placed)
    closed = await pool.fetchval(
        "SELECT completed_at FROM carts WHERE audience_id = $1::uuid AND external_id = $2",
        store.audience,
        "68778783ad298f1c80c3bafcddeea02f",
    )
    assert closed is not None


async def test_the_native_activity_endpoint_stores_carts_too(
    hooks: httpx.AsyncClient, audience: str, pool: asyncpg.Pool
) -> None:
    await contact(hooks, audience, "native@example.com")
    answer = await hooks.post(
        f"/v1/audiences/{audience}/contacts/native@example.com/activity",
        json={
            "type": "cart_updated",
            "data": {
                "cart_id": "web-42",
                "items": [{"product_id": "sku-1", "quantity": 3, "price": "9.50"}],
                "url": "https://shop.example/cart/web-42",
            },
        },
    )
    assert answer.status_code == 202, answer.text
    cart = await pool.fetchrow(
        "SELECT items, url, emptied_at FROM carts WHERE audience_id = $1::uuid AND external_id = 'web-42'",
        audience,
    )
    assert cart["items"] == [{"product_id": "sku-1", "quantity": 3, "price": "9.50"}]
    assert cart["url"] == "https://shop.example/cart/web-42" and cart["emptied_at"] is None


STOREFRONT = [
    (
        {"type": "shopify_viewed_page", "url": "https://journeys-test.myshopify.com/pages/about"},
        ("page_viewed", {}, "https://journeys-test.myshopify.com/pages/about"),
        ("page_viewed", {}, "https://journeys-test.myshopify.com/pages/contact"),
    ),
    (
        {"type": "shopify_viewed_product", "product_id": str(sp.PRODUCT)},
        ("product_viewed", {"productVariant": sp.product_variant(sp.PRODUCT)}, None),
        ("product_viewed", {"productVariant": sp.product_variant(sp.OTHER_PRODUCT)}, None),
    ),
    (
        {"type": "shopify_searched", "term": "boots"},
        ("search_submitted", {"searchResult": {"query": "red boots", "productVariants": []}}, None),
        ("search_submitted", {"searchResult": {"query": "sandals", "productVariants": []}}, None),
    ),
    (
        {"type": "shopify_added_to_cart", "product_id": str(sp.PRODUCT)},
        ("product_added_to_cart", {"cartLine": sp.cart_line(sp.PRODUCT)}, None),
        ("product_added_to_cart", {"cartLine": sp.cart_line(sp.OTHER_PRODUCT)}, None),
    ),
    (
        {"type": "shopify_checkout_action", "action": "payment_submitted"},
        ("payment_info_submitted", {"checkout": {"token": "t1"}}, None),
        ("checkout_started", {"checkout": {"token": "t1"}}, None),
    ),
]


@pytest.mark.parametrize(
    ("trigger", "hit", "miss"), STOREFRONT, ids=[c[0]["type"] for c in STOREFRONT]
)
async def test_storefront_customer_events_enrol_the_customer(
    store: Store,
    pool: asyncpg.Pool,
    client: Client,
    trigger: dict[str, Any],
    hit: tuple[str, dict[str, Any], str | None],
    miss: tuple[str, dict[str, Any], str | None],
) -> None:
    flow_id = await active_flow(store.hooks, store.audience, trigger)
    client_id = uuid.uuid4().hex
    # The pixel never creates contacts (its key is public): the customer is known already.
    stranger = sp.pixel_event(hit[0], hit[1], client_id=uuid.uuid4().hex)
    assert (await store.pixel(stranger, "stranger@example.com")).status_code == 204
    assert await contact_id(pool, store.audience, "stranger@example.com") is None
    await contact(store.hooks, store.audience, "pix@example.com")

    async def send(case: tuple[str, dict[str, Any], str | None], email: str | None) -> bool:
        name, data, href = case
        extra = {"href": href} if href else {}
        event = sp.pixel_event(name, data, client_id=client_id, **extra)
        answer = await store.pixel(event, email)
        assert answer.status_code == 204, answer.text
        who = await contact_id(pool, store.audience, "pix@example.com")
        return who is not None and await in_flow(client, flow_id, who)

    # An anonymous browser enrols no one; the near miss of the logged-in customer neither;
    # once the customer logged in, the same browser's hit does.
    assert not await send(hit, None)
    assert not await send(miss, "pix@example.com")
    assert await send(hit, None)


async def _stock(store: Store, product: int, item: int, quantity: int) -> None:
    answer = await store.send("products/update", sp.product(product, item, quantity))
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("source", ["checkout", "pixel"])
@pytest.mark.parametrize(("quantity", "fires"), [(2, True), (50, False)])
async def test_adding_a_low_stock_product_to_the_cart(
    store: Store, pool: asyncpg.Pool, client: Client, quantity: int, fires: bool, source: str
) -> None:
    await _stock(store, sp.PRODUCT, sp.INVENTORY_ITEM, quantity)
    flow_id = await active_flow(
        store.hooks, store.audience, {"type": "shopify_low_inventory_added_to_cart"}
    )
    if source == "checkout":
        answer = await store.send("checkouts/create", sp.checkout("low@example.com"))
        assert started(answer, flow_id) is fires
        return
    added = sp.pixel_event(
        "product_added_to_cart", {"cartLine": sp.cart_line(sp.PRODUCT)}, client_id="c-low"
    )
    await contact(store.hooks, store.audience, "low@example.com")
    assert (await store.pixel(added, "low@example.com")).status_code == 204
    who = await contact_id(pool, store.audience, "low@example.com")
    assert who is not None and await in_flow(client, flow_id, who) is fires


async def test_cart_webhooks_feed_known_carts_and_keep_anonymous_ones(
    store: Store, pool: asyncpg.Pool
) -> None:
    flow_id = await active_flow(
        store.hooks,
        store.audience,
        {"type": "shopify_added_to_cart", "product_id": str(sp.OTHER_PRODUCT)},
    )
    # A cart nobody claimed yet is kept, without a contact, and enrols no one.
    anonymous = {
        "id": "eeafa272cebfd4b22385bc4b645e762c",
        "token": "eeafa272cebfd4b22385bc4b645e762c",
        "line_items": [sp.line_item(sp.OTHER_PRODUCT)],
        "note": None,
        "updated_at": "2026-11-28T02:00:00Z",
        "created_at": "2026-11-28T02:00:00Z",
    }
    assert not started(await store.send("carts/create", anonymous), flow_id)
    kept = await pool.fetchrow(
        "SELECT contact_id, product_ids FROM carts WHERE external_id = $1", anonymous["token"]
    )
    assert kept["contact_id"] is None and kept["product_ids"] == [str(sp.OTHER_PRODUCT)]
    # The checkout named the buyer of this cart: its later updates are theirs.
    await store.send("checkouts/create", sp.checkout("carts@example.com"))
    token = "68778783ad298f1c80c3bafcddeea02f"
    same = {**anonymous, "id": token, "token": token, "line_items": [sp.line_item(sp.PRODUCT)]}
    assert not started(await store.send("carts/update", same), flow_id)  # nothing new in it
    more = {**same, "line_items": [sp.line_item(sp.PRODUCT), sp.line_item(sp.OTHER_PRODUCT)]}
    assert started(await store.send("carts/update", more), flow_id)
    # Emptied: the cart no longer holds anything a restock could bring the buyer back for.
    await store.send("carts/update", {**same, "line_items": []})
    emptied = await pool.fetchrow(
        "SELECT emptied_at, product_ids FROM carts WHERE audience_id = $1::uuid AND external_id = $2",
        store.audience,
        token,
    )
    assert emptied["emptied_at"] is not None and emptied["product_ids"] == []


async def test_a_restock_reaches_the_contacts_with_the_product_in_an_open_cart(
    store: Store,
) -> None:
    await _stock(store, sp.PRODUCT, sp.INVENTORY_ITEM, 0)
    await _stock(store, sp.OTHER_PRODUCT, sp.OTHER_INVENTORY_ITEM, 0)
    await store.send("checkouts/create", sp.checkout("waiting@example.com"))
    flow_id = await active_flow(
        store.hooks,
        store.audience,
        {"type": "shopify_back_in_stock", "product_id": str(sp.PRODUCT)},
    )
    # Another product restocked, or stock still at the threshold: nobody.
    other = await store.send(
        "inventory_levels/update", sp.inventory_level(sp.OTHER_INVENTORY_ITEM, 30)
    )
    assert not started(other, flow_id)
    first = await store.send("inventory_levels/update", sp.inventory_level(sp.INVENTORY_ITEM, 3))
    assert not started(first, flow_id)
    # A second warehouse: the product's stock is the sum over locations (3 + 2 = 5, still low).
    second = sp.inventory_level(sp.INVENTORY_ITEM, 2, location=905684977)
    assert not started(await store.send("inventory_levels/update", second), flow_id)
    restock = sp.inventory_level(sp.INVENTORY_ITEM, 20, location=905684977)
    delivery = str(uuid.uuid4())
    back = await store.send("inventory_levels/update", restock, event_id=delivery)
    assert started(back, flow_id)
    waiting = [e for e in back.json()["enrolments"] if e["flow_id"] == flow_id]
    assert len(waiting) == 1
    # Shopify redelivers the same event: nobody again.
    again = await store.send("inventory_levels/update", restock, event_id=delivery)
    assert again.json()["enrolments"] == []

"""Tag and group changes store their events in the same single statement (no transaction)."""

from __future__ import annotations

import uuid

import asyncpg

from journeys import changes
from journeys.store import contacts


async def _contact(pool: asyncpg.Pool, audience_id: str) -> str:
    row, _ = await contacts.upsert(
        pool, audience_id=audience_id, email=f"l-{uuid.uuid4().hex[:8]}@example.com"
    )
    return str(row["id"])


async def test_each_label_changed_is_one_event_in_the_order_given(
    pool: asyncpg.Pool, audience_id: str
) -> None:
    contact_id = await _contact(pool, audience_id)
    ids = {"audience_id": audience_id, "contact_id": contact_id}
    await changes.add_tags(pool, names=["b"], key="first", **ids)

    added, pending = await changes.add_tags(pool, names=["c", "b", "a", "c"], key="k", **ids)
    assert added == ["c", "a"]  # b was there already; c given twice is one tag
    assert [(e.type, e.data, s["type"], s["data"]) for e, s in pending] == [
        ("tag_added", {"tag": "c"}, "tag_added", {"tag": "c"}),
        ("tag_added", {"tag": "a"}, "tag_added", {"tag": "a"}),
    ]
    assert [e.idempotency_key for e, _ in pending] == [
        f"tag_added:{contact_id}:c:k",
        f"tag_added:{contact_id}:a:k",
    ]
    assert all(s["dispatched_at"] is None and s["contact_id"] == contact_id for _, s in pending)
    assert await contacts.tags(pool, contact_id) == ["a", "b", "c"]

    removed, pending = await changes.remove_tags(pool, names=["a", "zz", "b"], key="r", **ids)
    assert removed == ["a", "b"]
    assert [(e.type, s["data"]) for e, s in pending] == [
        ("tag_removed", {"tag": "a"}),
        ("tag_removed", {"tag": "b"}),
    ]
    joined, pending = await changes.join_groups(pool, names=["vip"], key="g", **ids)
    assert joined == ["vip"] and pending[0][1]["data"] == {"group": "vip"}
    stored = await pool.fetchval(
        "SELECT count(*) FROM events WHERE contact_id = $1::uuid", uuid.UUID(contact_id)
    )
    assert stored == 1 + 2 + 2 + 1


async def test_a_repeated_request_key_hands_back_the_event_stored_the_first_time(
    pool: asyncpg.Pool, audience_id: str
) -> None:
    contact_id = await _contact(pool, audience_id)
    ids = {"audience_id": audience_id, "contact_id": contact_id}
    _, first = await changes.add_tags(pool, names=["vip"], key="same", **ids)
    await changes.remove_tags(pool, names=["vip"], key="other", **ids)

    # The tag is new again, but its event's key was stored: that event, not a second one.
    added, again = await changes.add_tags(pool, names=["vip"], key="same", **ids)
    assert added == ["vip"]
    assert again[0][1]["id"] == first[0][1]["id"]
    assert await contacts.tags(pool, contact_id) == ["vip"]

"""Changes to contacts and the events they cause, shared by the API and by flow steps.

Each function changes the contact and stores the events in the caller's transaction, then
returns them for delivery after commit: a change is never recorded without its events.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from journeys.domain.events import IncomingEvent
from journeys.store import contacts, events, memberships

Pending = list[tuple[IncomingEvent, dict[str, Any]]]

# Standard columns a flow step or API call may set directly; anything else is a custom field.
STANDARD_FIELDS = frozenset({"first_name", "last_name", "phone", "timezone", "birthday"})


def _ids(contact: dict[str, Any]) -> dict[str, str]:
    """The audience and contact ids an event about this contact is stored under."""
    return {"audience_id": contact["audience_id"], "contact_id": contact["id"]}


async def _record(
    conn: asyncpg.Connection,
    pending: Pending,
    *,
    audience_id: str,
    contact_id: str,
    type: str,
    key: str,
    data: dict[str, Any],
) -> None:
    event = IncomingEvent(
        type=type, audience_id=audience_id, contact_id=contact_id, idempotency_key=key, data=data
    )
    stored, _ = await events.record(
        conn,
        idempotency_key=key,
        audience_id=audience_id,
        contact_id=contact_id,
        type=type,
        data=data,
    )
    pending.append((event, stored))


async def _labels(
    conn: asyncpg.Connection | asyncpg.Pool,
    kind: memberships.Kind,
    event_type: str,
    *,
    audience_id: str,
    contact_id: str,
    names: list[str],
    key: str,
) -> tuple[list[str], Pending]:
    """Applies a tag/group change; each name it actually changed becomes one event.

    One statement changes the labels and stores the events (`memberships.change_recording`),
    so `conn` may be the pool: the change is atomic without a transaction around it.
    """
    field = "group" if kind is memberships.GROUPS else "tag"
    changed = await memberships.change_recording(
        conn,
        kind,
        adding=event_type in ("tag_added", "joined_group"),
        audience_id=audience_id,
        contact_id=contact_id,
        names=list(dict.fromkeys(names)),
        event_type=event_type,
        field=field,
        key=key,
    )
    pending: Pending = []
    for name, stored in changed:
        event_key = f"{event_type}:{contact_id}:{name}:{key}"
        if stored is None:  # stored by an earlier attempt of the same request
            stored = await events.by_key(conn, event_key)
            assert stored is not None
        event = IncomingEvent(
            type=event_type,
            audience_id=audience_id,
            contact_id=contact_id,
            idempotency_key=event_key,
            data={field: name},
        )
        pending.append((event, stored))
    return [name for name, _ in changed], pending


async def add_tags(
    conn: asyncpg.Connection | asyncpg.Pool, **change: Any
) -> tuple[list[str], Pending]:
    """Tags the contact; each tag it did not have yet becomes a `tag_added` event.

    Keyword arguments: audience_id, contact_id, names, key (what makes the events idempotent).
    """
    return await _labels(conn, memberships.TAGS, "tag_added", **change)


async def remove_tags(
    conn: asyncpg.Connection | asyncpg.Pool, **change: Any
) -> tuple[list[str], Pending]:
    """Untags the contact; each tag it had becomes a `tag_removed` event."""
    return await _labels(conn, memberships.TAGS, "tag_removed", **change)


async def join_groups(
    conn: asyncpg.Connection | asyncpg.Pool, **change: Any
) -> tuple[list[str], Pending]:
    """Puts the contact in groups; each new membership becomes a `joined_group` event."""
    return await _labels(conn, memberships.GROUPS, "joined_group", **change)


async def leave_groups(
    conn: asyncpg.Connection | asyncpg.Pool, **change: Any
) -> tuple[list[str], Pending]:
    """Takes the contact out of groups; each ended membership becomes a `left_group` event."""
    return await _labels(conn, memberships.GROUPS, "left_group", **change)


async def set_fields(
    conn: asyncpg.Connection, *, contact: dict[str, Any], values: dict[str, Any], key: str
) -> tuple[dict[str, Any], Pending]:
    """Sets fields (standard or custom); each value that changes becomes a `field_changed` event.

    Returns:
        The updated contact and the pending events.
    """
    pending: Pending = []
    standard = {k: v for k, v in values.items() if k in STANDARD_FIELDS}
    custom = {k: v for k, v in values.items() if k not in STANDARD_FIELDS}
    changed = {k: v for k, v in standard.items() if contact.get(k) != v}
    changed |= {k: v for k, v in custom.items() if (contact.get("fields") or {}).get(k) != v}
    if not changed:
        return contact, pending
    updated = await contacts.set_fields(conn, contact["id"], standard=standard, custom=custom)
    for name, value in changed.items():
        previous = (
            contact.get(name)
            if name in STANDARD_FIELDS
            else (contact.get("fields") or {}).get(name)
        )
        await _record(
            conn,
            pending,
            **_ids(contact),
            type="field_changed",
            key=f"field_changed:{contact['id']}:{name}:{key}",
            data={"field": name, "value": value, "previous": previous},
        )
    return updated, pending


async def unsubscribe(
    conn: asyncpg.Connection,
    *,
    contact: dict[str, Any],
    channels: list[str],
    key: str,
    cause: dict[str, Any] | None = None,
) -> tuple[list[str], Pending]:
    """Ends marketing consent on the channels; each one that changes becomes an `unsubscribed` event.

    Args:
        cause: What the event data also names, e.g. the email ref of the unsubscribe link.
    """
    pending: Pending = []
    done = await contacts.unsubscribe(conn, contact["id"], channels)
    for channel in done:
        await _record(
            conn,
            pending,
            **_ids(contact),
            type="unsubscribed",
            key=f"unsubscribed:{contact['id']}:{channel}:{key}",
            data={**(cause or {}), "channel": channel},
        )
    return done, pending


async def upsert(
    conn: asyncpg.Connection, *, audience_id: str, given: dict[str, Any], key: str
) -> tuple[tuple[dict[str, Any], bool], Pending]:
    """Creates the contact with `given["email"]` or updates it with the given fields.

    Returns:
        ((the contact, whether it was created), the events the change caused).
    """
    before = await contacts.resolve(conn, audience_id, given["email"])
    row, created = await contacts.upsert(
        conn, audience_id=audience_id, **{k: v for k, v in given.items() if k != "imported"}
    )
    pending = await after_upsert(conn, before=before, after=row, given=given, key=key)
    return (row, created), pending


def upsert_events(
    before: dict[str, Any] | None, after: dict[str, Any], given: dict[str, Any]
) -> list[tuple[str, str, dict[str, Any]]]:
    """The events an upsert causes, as (type, idempotency key part, data).

    A new email subscription is `subscribed_email` (`imported` says whether it came from a
    bulk import, which only flows that include imports take); each field that changed is
    `field_changed`. Pure, so bulk imports compute the same events for many rows at once.
    """
    out: list[tuple[str, str, dict[str, Any]]] = []
    if after["status"] == "subscribed" and (before is None or before["status"] != "subscribed"):
        out.append(("subscribed_email", "", {"imported": bool(given.get("imported", False))}))
    if before is None:
        return out
    changed = {
        name: after[name]
        for name in STANDARD_FIELDS
        if name in given and before.get(name) != after.get(name)
    }
    old_custom = before.get("fields") or {}
    changed |= {
        name: value
        for name, value in (given.get("fields") or {}).items()
        if old_custom.get(name) != value
    }
    for name, value in changed.items():
        previous = before.get(name) if name in STANDARD_FIELDS else old_custom.get(name)
        out.append(
            ("field_changed", f"{name}:", {"field": name, "value": value, "previous": previous})
        )
    return out


async def after_upsert(
    conn: asyncpg.Connection,
    *,
    before: dict[str, Any] | None,
    after: dict[str, Any],
    given: dict[str, Any],
    key: str,
) -> Pending:
    """Stores the events an upsert causes (see `upsert_events`)."""
    pending: Pending = []
    for type, part, data in upsert_events(before, after, given):
        await _record(
            conn,
            pending,
            audience_id=after["audience_id"],
            contact_id=after["id"],
            type=type,
            key=f"{type}:{after['id']}:{part}{key}",
            data=data,
        )
    return pending


async def set_sms_consent(
    conn: asyncpg.Connection, *, contact: dict[str, Any], subscribed: bool, key: str
) -> tuple[bool, Pending]:
    """Turns SMS marketing consent on (`subscribed_sms`) or off (`unsubscribed`, channel sms).

    Returns:
        Whether the consent changed, and the pending event if it did.
    """
    pending: Pending = []
    wanted = "subscribed" if subscribed else "unsubscribed"
    before = await contacts.set_sms_status(conn, contact["id"], wanted)
    if before == wanted:
        return False, pending
    await _record(
        conn,
        pending,
        **_ids(contact),
        type="subscribed_sms" if subscribed else "unsubscribed",
        key=f"sms_consent:{contact['id']}:{wanted}:{key}",
        data={"channel": "sms"} if not subscribed else {"imported": False},
    )
    return True, pending


async def bounce(
    conn: asyncpg.Connection,
    *,
    contact: dict[str, Any],
    kind: str,
    email: dict[str, Any],
    key: str,
    soft_limit: int,
) -> tuple[bool, Pending]:
    """Records a bounce; a hard one, or the `soft_limit`-th soft one in a row, cleans the address.

    Args:
        contact: The contact whose address bounced.
        kind: `hard` (refused for good) or `soft` (deferred).
        email: The message's email ref (`flow_id` and `step_id`, or `campaign_id`).
        key: Makes a repeated report change nothing.
        soft_limit: Soft bounces in a row that clean the address.

    Returns:
        (whether the address is cleaned now, the events: `email_bounced`, then `cleaned`).
    """
    pending: Pending = []
    ids = _ids(contact)
    stored_before = await events.by_key(conn, f"email_bounced:{key}")
    if stored_before is not None:  # the same report again
        return contact["status"] == "cleaned", pending
    await _record(
        conn,
        pending,
        **ids,
        type="email_bounced",
        key=f"email_bounced:{key}",
        data={**email, "bounce": kind},
    )
    clean = kind == "hard"
    if kind == "soft":
        clean = await contacts.count_soft_bounce(conn, contact["id"]) >= soft_limit
    if clean and await contacts.clean(conn, contact["id"]) not in (None, "cleaned"):
        await _record(
            conn,
            pending,
            **ids,
            type="cleaned",
            key=f"cleaned:{key}",
            data={**email, "reason": f"{kind} bounce"},
        )
    return clean, pending


async def complain(
    conn: asyncpg.Connection, *, contact: dict[str, Any], email: dict[str, Any], key: str
) -> tuple[list[str], Pending]:
    """A spam complaint: recorded as `email_complained`, and it ends email consent."""
    pending: Pending = []
    await _record(
        conn,
        pending,
        **_ids(contact),
        type="email_complained",
        key=f"email_complained:{key}",
        data=email,
    )
    done, more = await unsubscribe(conn, contact=contact, channels=["email"], key=key, cause=email)
    return done, pending + more


async def confirm_subscription(
    conn: asyncpg.Connection, *, contact: dict[str, Any], key: str
) -> tuple[bool, Pending]:
    """Double opt-in: a pending contact followed its confirmation link and is now subscribed.

    Returns:
        Whether the contact was pending (a second click, or a contact that unsubscribed
        since, changes nothing), and the `subscribed_email` event it causes.
    """
    # Locked and read again: two clicks at once subscribe once.
    current = await contacts.get_for_update(conn, contact["id"])
    if current is None or current["status"] != "pending":
        return False, []
    after = await contacts.set_status(conn, contact["id"], "subscribed")
    return True, await after_upsert(conn, before=current, after=after, given={}, key=key)


async def archive(
    conn: asyncpg.Connection, *, contact: dict[str, Any], key: str
) -> tuple[dict[str, Any], Pending]:
    """Archives the contact (Mailchimp's DELETE): it stays on record and gets no more email.

    Leaving `subscribed` is an `unsubscribed` event, so runs with an email-status exit
    condition hear of it.
    """
    pending: Pending = []
    after = await contacts.set_status(conn, contact["id"], "archived")
    if contact["status"] == "subscribed":
        await _record(
            conn,
            pending,
            **_ids(contact),
            type="unsubscribed",
            key=f"unsubscribed:{contact['id']}:email:{key}",
            data={"channel": "email", "archived": True},
        )
    return after, pending

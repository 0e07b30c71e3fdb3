"""Counts for reports: what a flow's steps sent and what their emails caused; a contact's history."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool

_ENGAGEMENT = ("email_opened", "email_clicked", "unsubscribed", "email_bounced")


async def flow_steps(conn: Conn, flow_id: str) -> dict[str, dict[str, int]]:
    """Per step id: messages by channel and outcome, and contacts that engaged with its email."""
    found: dict[str, dict[str, int]] = defaultdict(dict)
    for row in await conn.fetch(
        """
        SELECT step_id, channel,
               count(*) FILTER (WHERE status = 'sent') AS sent,
               count(*) FILTER (WHERE status = 'failed') AS failed,
               count(DISTINCT contact_id) AS contacts
        FROM messages WHERE flow_id = $1::uuid GROUP BY step_id, channel
        """,
        flow_id,
    ):
        step = found[row["step_id"]]
        step[f"{row['channel']}_sent"] = row["sent"]
        step[f"{row['channel']}_failed"] = row["failed"]
        step["passed"] = step.get("passed", 0) + row["contacts"]
    for row in await conn.fetch(
        """
        SELECT data->>'step_id' AS step_id, type,
               count(DISTINCT contact_id) AS contacts, count(*) AS total
        FROM events WHERE data->>'flow_id' = $1 AND type = ANY($2::text[])
        GROUP BY 1, 2
        """,
        flow_id,
        list(_ENGAGEMENT),
    ):
        if row["step_id"] is not None:
            # Bounces count emails; opens, clicks and unsubscribes count contacts.
            value = row["total"] if row["type"] == "email_bounced" else row["contacts"]
            found[row["step_id"]][row["type"]] = value
    return dict(found)


async def flow_entries(conn: Conn, flow_id: str) -> dict[str, int]:
    """Entries into the flow by status (`running`, `completed`, `exited`, …)."""
    rows = await conn.fetch(
        "SELECT status, count(*) AS n FROM enrollments WHERE flow_id = $1::uuid GROUP BY status",
        flow_id,
    )
    return {r["status"]: r["n"] for r in rows}


async def timeline(conn: Conn, contact_id: str, *, limit: int) -> list[dict[str, Any]]:
    """The contact's events, messages and flow entries, newest first."""
    rows = await conn.fetch(
        """
        (SELECT 'event' AS kind, occurred_at AS at, type AS what, data, NULL::text AS flow_id,
                NULL::text AS status
         FROM events WHERE contact_id = $1::uuid ORDER BY occurred_at DESC LIMIT $2)
        UNION ALL
        (SELECT 'message', COALESCE(sent_at, created_at), channel,
                jsonb_build_object('subject', subject, 'step_id', step_id,
                                   'campaign_id', campaign_id, 'recipient', recipient,
                                   'bounce', bounce, 'error', error),
                flow_id::text, status
         FROM messages WHERE contact_id = $1::uuid ORDER BY created_at DESC LIMIT $2)
        UNION ALL
        (SELECT 'journey', COALESCE(ended_at, started_at), trigger_type,
                jsonb_build_object('entry', entry, 'version', version, 'workflow_id', workflow_id,
                                   'started_at', started_at, 'ended_at', ended_at),
                flow_id::text, status
         FROM enrollments WHERE contact_id = $1::uuid ORDER BY started_at DESC LIMIT $2)
        ORDER BY at DESC LIMIT $2
        """,
        contact_id,
        limit,
    )
    return [dict(r) for r in rows]

"""The group-committed ledger marks of a campaign page (`activities.send_marks`), on Postgres."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from activities.send_marks import LedgerMarks
from journeys.config import Settings
from journeys.store import messages


async def _claimed(pool: asyncpg.Pool, count: int) -> list[str]:
    keys = [f"marks-{uuid.uuid4().hex}" for _ in range(count)]
    for key in keys:
        await messages.claim(
            pool,
            idempotency_key=key,
            channel="email",
            flow_id=None,
            step_id=None,
            contact_id=None,
            workflow_id=None,
            recipient="ada@example.com",
            subject="Hi",
            message_id=f"<{key}@journeys.test>",
            ref=key,
        )
    return keys


async def _statuses(pool: asyncpg.Pool, keys: list[str]) -> list[str]:
    rows = await pool.fetch(
        "SELECT idempotency_key, status FROM messages WHERE idempotency_key = ANY($1::text[])",
        keys,
    )
    by_key = {r["idempotency_key"]: r["status"] for r in rows}
    return [by_key[k] for k in keys]


async def test_lanes_marks_are_written_and_only_pending_rows_are_taken(
    pool: asyncpg.Pool,
) -> None:
    keys = await _claimed(pool, 12)
    await messages.mark_failed(pool, keys[-1], "refused")
    async with pool.acquire() as conn:
        marks = await LedgerMarks.on(conn)
        # Planned per execution: a plan cached while the ledger was small scans the table.
        assert await conn.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
        # Twelve lanes at once: each learns whether its own row was taken.
        taken = await asyncio.gather(*(marks.sending(k) for k in keys))
        assert taken == [True] * 11 + [False]
        assert await _statuses(pool, keys[:11]) == ["sending"] * 11
        # A row already `sending` (another attempt holds it) is not taken again.
        assert await marks.sending(keys[0]) is False
        for key in keys[:5]:
            marks.sent(key)
        await marks.flush()
    assert await _statuses(pool, keys) == ["sent"] * 5 + ["sending"] * 6 + ["failed"]


async def test_a_failed_statement_fails_the_waiting_lane_and_the_flush(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    keys = await _claimed(pool, 2)
    conn = await asyncpg.connect(settings.effective_database_url)
    marks = await LedgerMarks.on(conn)
    assert await marks.sending(keys[0]) is True
    await conn.close()
    marks.sent(keys[0])  # its statement fails: the row stays `sending` (a retry: uncertain)
    with pytest.raises(asyncpg.InterfaceError):
        await marks.flush()
    # No lane may hand an email over once a mark could not be written.
    with pytest.raises(asyncpg.InterfaceError):
        await marks.sending(keys[1])
    assert await _statuses(pool, keys) == ["sending", "pending"]

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
    async with LedgerMarks.held(pool) as marks:
        # Planned per execution: a plan cached while the ledger was small scans the table.
        assert await marks.connection.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
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
    # The pool does not reset connections: none went back with the page's setting.
    held = [await pool.acquire() for _ in range(pool.get_max_size())]
    try:
        settings = [await c.fetchval("SHOW plan_cache_mode") for c in held]
    finally:
        for c in held:
            await pool.release(c)
    assert set(settings) == {"auto"}


async def test_a_failed_statement_fails_the_waiting_lane_and_the_flush(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    keys = await _claimed(pool, 2)
    with pytest.raises(asyncpg.InterfaceError):  # the connection is closed, not pooled again
        async with LedgerMarks.held(pool) as marks:
            assert await marks.sending(keys[0]) is True
            marks.connection.terminate()
            marks.sent(keys[0])  # its statement fails: the row stays `sending` (retry: uncertain)
            with pytest.raises(asyncpg.InterfaceError):
                await marks.flush()
            # No lane may hand an email over once a mark could not be written.
            with pytest.raises(asyncpg.InterfaceError):
                await marks.sending(keys[1])
    assert await _statuses(pool, keys) == ["sending", "pending"]

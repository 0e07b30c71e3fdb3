"""The asyncpg pool, created by each process at start-up (never at import)."""

from __future__ import annotations

import json

import asyncpg


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in and out as Python objects, so queries never json.dumps by hand.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a connection goes back to the pool with: nothing more to undo.

    asyncpg's default reset runs `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL` on every release: a round trip per query made on the pool (~10% of the gateway's
    CPU per event, and as much again in Postgres). None of it can be left behind here: pooled
    connections never take session-level advisory locks, hold cursors, LISTEN or SET (the
    LISTENing registry and key cache, and migrations' lock, use connections of their own;
    `tests/unit/test_pool_session.py` keeps it so). An open transaction is still rolled back
    and listeners dropped: asyncpg does that before calling this.
    """


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """Opens a pool whose connections map jsonb to Python objects."""
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, reset=_keep_session
    )
    assert pool is not None
    return pool

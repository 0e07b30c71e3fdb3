"""Pooled connections keep no session state, so the pool may skip asyncpg's reset query.

`journeys.store.pool` returns connections to the pool without `RESET ALL; UNLISTEN *; ...`
(a round trip per query). That is only safe while no code run on a pooled connection leaves
session state behind: this scans the code for what would, outside the modules that do it on
connections of their own.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "journeys", "activities", "workers", "workflows")

# Each of these outlives the transaction: on a pooled connection it would reach the next user.
SESSION_STATE = {
    "session advisory lock": re.compile(r"pg_advisory_lock(_shared)?\s*\(|pg_try_advisory_lock\("),
    "LISTEN": re.compile(r"add_listener\(|[\"']\s*LISTEN\b", re.IGNORECASE),
    "SET": re.compile(
        r"[\"']\s*SET\s+(SESSION\b|ROLE\b|search_path|TIME\s+ZONE|\w+\s*(=|TO\b))|"
        r"set_config\(\s*[^)]*,\s*false\s*\)",
        re.IGNORECASE,
    ),
    "cursor kept past its transaction": re.compile(r"WITH\s+HOLD", re.IGNORECASE),
    "temporary table": re.compile(r"CREATE\s+TEMP(ORARY)?\s+TABLE", re.IGNORECASE),
    "prepared statement by name": re.compile(r"[\"']\s*PREPARE\s+\w+", re.IGNORECASE),
}

# Modules that do one of the above on a connection they open themselves (never the pool's).
OWN_CONNECTION = {
    "journeys/store/migrate.py": {"session advisory lock"},  # its own asyncpg.connect
    "journeys/registry.py": {"LISTEN"},  # its own listening connection
    "api/keycache.py": {"LISTEN"},  # its own listening connection
    # Sets a planner option on the connection it holds for a page and resets it before the
    # connection goes back (closes the connection if the reset fails).
    "activities/send_marks.py": {"SET"},
}


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_no_pooled_code_leaves_session_state() -> None:
    found = []
    for path in _sources():
        name = path.relative_to(ROOT).as_posix()
        text = path.read_text()
        for what, pattern in SESSION_STATE.items():
            if what in OWN_CONNECTION.get(name, set()):
                continue
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{name}:{line}: {what}: {match.group(0)!r}")
    assert not found, (
        "session state on what may be a pooled connection (the pool does not reset it, see"
        " journeys/store/pool.py): " + "; ".join(found)
    )


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT pg_advisory_lock($1)",
        "SET search_path = other",
        "SET statement_timeout TO 0",
        "SELECT set_config('x.y', 'z', false)",
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
        "CREATE TEMP TABLE t (x int)",
        "LISTEN flows",
    ],
)
def test_the_scan_sees_session_state(sql: str) -> None:
    source = f'await conn.execute("{sql}")'
    assert any(pattern.search(source) for pattern in SESSION_STATE.values())


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE events SET dispatched_at = now() WHERE id = $1",
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        "SELECT set_config('x.y', 'z', true)",
    ],
)
def test_the_scan_leaves_transaction_scoped_statements_alone(sql: str) -> None:
    source = f'await conn.execute("{sql}")'
    assert not any(pattern.search(source) for pattern in SESSION_STATE.values())

"""`journeys apikey list` / `revoke`: the rotation procedure of docs/operations.md."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from journeys.cli import main
from journeys.config import Settings


@pytest.fixture
def journeys(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):  # type: ignore[no-untyped-def]
    """Runs a `journeys` command in-process against the test database: (exit code, out, err)."""
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", settings.effective_database_url)

    async def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(main, list(args))  # main runs its own event loop
        out, err = capsys.readouterr()
        return code, out, err

    return run


async def _status(app_client: httpx.AsyncClient, key: str) -> int:
    response = await app_client.post(
        "/v1/audiences", json={"name": "rotation"}, headers={"Authorization": f"Bearer {key}"}
    )
    return response.status_code


async def test_rotate_a_key_create_list_revoke(
    journeys, app_client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    name = f"shop-{uuid.uuid4().hex[:6]}"
    _, old, _ = await journeys("apikey", "create", name)
    old = old.strip()
    assert await _status(app_client, old) == 201  # in use

    # Rotation: a second key under the same name, so clients can switch one by one.
    _, new, _ = await journeys("apikey", "create", name)
    new = new.strip()

    code, listing, _ = await journeys("apikey", "list")
    assert code == 0
    rows = [line.split() for line in listing.splitlines() if name in line]
    assert [row[0] for row in rows] == [old[:8], new[:8]]
    assert all(row[-1] == "active" for row in rows)
    assert old not in listing and new not in listing  # never the key itself
    assert rows[0][4] != "-" and rows[1][4] == "-"  # last used: only the old one so far

    # By name, two keys match: refuse rather than cut off the clients already switched.
    code, _, err = await journeys("apikey", "revoke", name)
    assert code == 1
    assert old[:8] in err and new[:8] in err
    assert await _status(app_client, old) == 201

    code, out, _ = await journeys("apikey", "revoke", old[:8])
    assert code == 0 and out.strip() == f"revoked {old[:8]} ({name})"
    assert await _status(app_client, new) == 201
    revoked = await pool.fetchrow("SELECT revoked_at FROM api_keys WHERE prefix = $1", old[:8])
    assert revoked["revoked_at"] is not None

    code, listing, _ = await journeys("apikey", "list")
    status = {line.split()[0]: line for line in listing.splitlines() if name in line}
    assert "revoked" in status[old[:8]] and status[new[:8]].rstrip().endswith("active")

    # Revoking again, or an unknown key, says so.
    code, _, err = await journeys("apikey", "revoke", old[:8])
    assert code == 1 and "no active key" in err


async def test_a_revoked_key_is_refused(journeys, app_client: httpx.AsyncClient) -> None:
    name = f"bot-{uuid.uuid4().hex[:6]}"
    _, key, _ = await journeys("apikey", "create", name)
    code, _, _ = await journeys("apikey", "revoke", name)  # the only key of that name
    assert code == 0
    response = await app_client.post(
        "/v1/audiences", json={"name": "x"}, headers={"Authorization": f"Bearer {key.strip()}"}
    )
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_revoke_all_keys_of_a_name(journeys) -> None:
    name = f"old-{uuid.uuid4().hex[:6]}"
    keys = [(await journeys("apikey", "create", name))[1].strip() for _ in range(2)]
    code, out, _ = await journeys("apikey", "revoke", name, "--all")
    assert code == 0
    assert sorted(out.split()[1::3]) == sorted(k[:8] for k in keys)

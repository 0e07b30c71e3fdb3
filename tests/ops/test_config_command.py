"""`journeys config`: the effective configuration, secrets masked, bad values explained."""

from __future__ import annotations

import pytest

from journeys.cli import main
from journeys.config import DEV_SECRET, Settings
from journeys.redact import MASK, mask_url
from journeys.settings_doc import env_name, settings_table


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(env_name(name), raising=False)


def _config(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["config", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_config_prints_every_setting_with_secrets_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOURNEYS_ENV", "production")
    monkeypatch.setenv("JOURNEYS_SECRET_KEY", "k3y-that-signs-tokens")
    monkeypatch.setenv("JOURNEYS_SMTP_PASSWORD", "smtp-pa55")
    monkeypatch.setenv(
        "JOURNEYS_DATABASE_URL",
        "postgresql://journeys:db-pa55@db.internal:5432/journeys?sslmode=require&sslpassword=tls-pa55",
    )
    monkeypatch.setenv("JOURNEYS_TASK_QUEUE", "flows-eu")
    code, out, _ = _config(capsys)
    assert code == 0
    for secret in ("k3y-that-signs-tokens", "smtp-pa55", "db-pa55", "tls-pa55"):
        assert secret not in out
    lines = dict(line.split("=", 1) for line in out.splitlines() if not line.startswith("#"))
    assert set(lines) == {env_name(name) for name in Settings.model_fields}
    assert lines["JOURNEYS_SECRET_KEY"] == MASK
    assert lines["JOURNEYS_SMTP_PASSWORD"] == MASK
    assert lines["JOURNEYS_DATABASE_URL"] == (
        f"postgresql://journeys:{MASK}@db.internal:5432/journeys?sslmode=require&sslpassword={MASK}"
    )
    assert lines["JOURNEYS_TASK_QUEUE"] == "flows-eu"
    assert lines["JOURNEYS_SMTP_USERNAME"] == ""  # unset


def test_config_says_what_unset_addresses_and_the_dev_secret_mean(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _config(capsys)
    assert code == 0
    assert "# -> embedded Postgres: postgresql://postgres@127.0.0.1:55432/journeys" in out
    assert "# -> embedded Temporal: 127.0.0.1:7233" in out
    assert "# -> the development secret" in out
    assert DEV_SECRET not in out


def test_empty_variables_count_as_unset(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # What compose passes for `${JOURNEYS_SMTP_USERNAME:-}`: no login, not an empty one.
    monkeypatch.setenv("JOURNEYS_SMTP_USERNAME", "")
    monkeypatch.setenv("JOURNEYS_SMTP_PORT", "")
    assert Settings().smtp_username is None
    assert Settings().smtp_port == 1025


def test_invalid_configuration_is_explained_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOURNEYS_ENV", "production")
    monkeypatch.setenv("JOURNEYS_API_PORT", "eighty")
    code, out, err = _config(capsys)
    assert code == 2 and out == ""
    assert "invalid configuration" in err
    assert "JOURNEYS_API_PORT" in err
    assert "Traceback" not in err


def test_production_without_a_secret_key_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOURNEYS_ENV", "production")
    code, _, err = _config(capsys)
    assert code == 2
    assert "JOURNEYS_SECRET_KEY must be set to a real secret in production" in err


def test_config_markdown_prints_the_documented_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _config(capsys, "--markdown")
    assert code == 0 and out == settings_table()


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:p@h/db", f"postgresql://u:{MASK}@h/db"),
        ("postgresql://u@h:5432/db", "postgresql://u@h:5432/db"),
        (
            "postgresql://h/db?password=p&application_name=x",
            f"postgresql://h/db?password={MASK}&application_name=x",
        ),
        ("postgresql://u:p%40ss@h/db", f"postgresql://u:{MASK}@h/db"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked

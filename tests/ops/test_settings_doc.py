"""The documented settings table is generated from the settings class and cannot drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from journeys import settings_doc
from journeys.config import Settings
from journeys.settings_doc import END, START, settings_table

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED_IN = [ROOT / "docs" / "configuration.md", ROOT / "README.md"]


def _documented_table(path: Path) -> str:
    text = path.read_text()
    return text[text.index(START) + len(START) : text.index(END)].lstrip("\n")


@pytest.mark.parametrize("path", DOCUMENTED_IN, ids=lambda p: p.name)
def test_docs_settings_table_is_the_generated_one(path: Path) -> None:
    assert _documented_table(path) == settings_table(), (
        f"{path.relative_to(ROOT)} is out of date: run `make docs`"
    )


def test_table_has_one_row_per_setting_with_its_variable_default_and_meaning() -> None:
    rows = settings_table().splitlines()[2:]
    assert len(rows) == len(Settings.model_fields)
    by_variable = {row.split(" | ")[0].strip("| `"): row for row in rows}
    assert "| `55432` | Port of the embedded Postgres." in by_variable["JOURNEYS_POSTGRES_PORT"]
    assert "| unset |" in by_variable["JOURNEYS_DATABASE_URL"]
    assert "One of `development`, `production`." in by_variable["JOURNEYS_ENV"]
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} needs a description: it is the documentation"


def test_table_never_shows_a_secret_default() -> None:
    assert "dev-only-secret" not in settings_table()
    assert "| a development value |" in settings_table()


def test_make_docs_rewrites_only_between_the_markers(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(f"# Title\n\nbefore\n{START}\n| stale |\n{END}\nafter\n")
    assert settings_doc.main(["--check", str(doc)]) == 1
    assert settings_doc.main([str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("# Title\n\nbefore\n") and text.endswith(f"{END}\nafter\n")
    assert "| stale |" not in text and settings_table() in text
    assert settings_doc.main(["--check", str(doc)]) == 0


def test_a_file_without_markers_is_refused(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("no markers here\n")
    with pytest.raises(ValueError, match="markers"):
        settings_doc.main([str(doc)])

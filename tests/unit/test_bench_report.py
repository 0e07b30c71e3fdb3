"""The benchmark report: a benchmark run again alone after the full run shows its later figures,
says which run they come from, and an older run of it alone is ignored."""

from __future__ import annotations

from pathlib import Path

from bench import report
from bench.__main__ import _newer_alone
from bench.config import BenchConfig
from bench.results import Figure, Recorder

MACHINE = {
    "cores": 2,
    "memory_gib": 4,
    "cpu": "test",
    "os": "test",
    "python": "3.11",
    "temporal_cli": "x",
    "temporalio_sdk": "y",
}


def _run(results: Path, run_id: str, arming: float, saved: str) -> Recorder:
    rec = Recorder(results, run_id=run_id, machine=MACHINE, sizes="default")
    rec.add(Figure("armed", "arm_per_s", arming, "contacts/s", 30.0, "raw", "higher", {"n": 10}))
    rec.note("armed", f"note of {run_id}")
    rec.extras["config"] = {}
    rec.save(results.with_name(saved))
    return rec


def test_a_benchmark_run_alone_after_the_full_run_replaces_its_section(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    full = _run(results, "20261201T100000-aaaaaa", 20.0, "last_run.json")
    _run(results, "20261202T090000-bbbbbb", 27.0, "last_run-armed.json")
    newer = _newer_alone(full, BenchConfig(), results)
    assert list(newer) == ["armed"]
    text = report.render(full, BenchConfig(), newer)
    section = text[text.index("## 7. Armed contacts") :]
    assert "_From run `20261202T090000-bbbbbb` (`BENCH_ONLY=armed`" in section
    assert "| arm_per_s | n=10 | 27.0 contacts/s" in section
    assert "note of 20261202T090000-bbbbbb" in section
    assert "20.0 contacts/s" not in section
    assert "note of 20261201T100000-aaaaaa" not in text


def test_a_run_alone_older_than_the_full_run_is_ignored(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    _run(results, "20261201T090000-bbbbbb", 27.0, "last_run-armed.json")
    full = _run(results, "20261201T100000-aaaaaa", 20.0, "last_run.json")
    assert _newer_alone(full, BenchConfig(), results) == {}
    text = report.render(full, BenchConfig(), {})
    assert "_From run" not in text and "note of 20261201T100000-aaaaaa" in text

"""Every benchmark at a tiny size, so the suite never rots. Structure only, never timings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psutil

from bench.__main__ import expected_keys
from bench.config import BenchConfig
from bench.report import SECTIONS

ROOT = Path(__file__).resolve().parents[2]


def _mentions(proc: psutil.Process, text: str) -> bool:
    try:
        return text in " ".join(proc.cmdline()) or any(text in v for v in proc.environ().values())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def test_every_benchmark_runs_small_and_leaves_nothing_behind(tmp_path: Path) -> None:
    results, markdown, scratch = tmp_path / "results.jsonl", tmp_path / "BENCH.md", tmp_path / "run"
    env = {**os.environ, "BENCH_SIZES": "smoke"}
    env.pop("BENCH_ONLY", None)
    env.pop("BENCH_LARGE", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--results",
            str(results),
            "--markdown",
            str(markdown),
            "--scratch",
            str(scratch),
            "--keep",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    assert len({row["run_id"] for row in rows}) == 1
    keys = [row["key"] for row in rows]
    assert len(keys) == len(set(keys)), "a figure was recorded twice"
    for expected in expected_keys(BenchConfig.from_env({"BENCH_SIZES": "smoke"})):
        pattern = ".*".join(re.escape(part) for part in expected.split("*"))
        found = [row for row in rows if re.fullmatch(pattern, row["key"])]
        assert found, f"missing figure {expected}"
    measures = [row for row in rows if row.get("kind") == "measure"]
    assert measures, "no CPU per process role was recorded"
    for row in measures:
        assert isinstance(row["value"], int | float) and row["value"] >= 0, row
    for row in rows:
        assert isinstance(row["value"], int | float), row
        if row in measures:
            continue
        assert isinstance(row["baseline"], int | float) and row["baseline"] > 0, row
        assert isinstance(row["ratio"], int | float), row
        assert row["baseline_label"] and row["unit"], row
        machine = row["machine"]
        assert machine["cores"] and machine["memory_gib"] and machine["python"], machine
        assert "Server" in machine["temporal_cli"] and machine["temporalio_sdk"], machine

    report = markdown.read_text()
    for title, _ in SECTIONS.values():
        assert f"## {title}" in report
    assert "| temporalio SDK |" in report and "raw Temporal" in report
    assert "## Where the time goes" in report
    # The armed-contacts section says where its time goes and whether issue 9's floors held.
    assert "Where the time goes, arming" in report and "Floors of issue 9" in report

    # Nothing the run started is still alive: no process refers to its scratch directory
    # (the run itself also exits non-zero if any child of it outlived it).
    assert not [p.pid for p in psutil.process_iter() if _mentions(p, str(scratch))]

"""Figures: one measured value next to its raw-Temporal baseline, and where they are written."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True)
class Figure:
    """One figure of a benchmark.

    Args:
        bench: Benchmark it belongs to (`ingest`, `e2e`, `cost`, `waiting`, `tuning`).
        name: What is measured, e.g. `events_per_s`.
        value: The temporal-journeys measurement.
        unit: Unit of `value` and `baseline`.
        baseline: The same measurement for raw Temporal, same server, same run.
        baseline_label: What the baseline ran, in words.
        better: Whether higher or lower values are better (for reading the ratio).
        params: What distinguishes this figure from others of the same name.
    """

    bench: str
    name: str
    value: float
    unit: str
    baseline: float
    baseline_label: str
    better: Literal["higher", "lower"]
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """value / baseline; None when the baseline is zero."""
        if not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def key(self) -> str:
        """`bench.name[k=v,...]`: unique within a run."""
        params = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.bench}.{self.name}" + (f"[{params}]" if params else "")


class Recorder:
    """Collects a run's figures, prints each and appends it to `results.jsonl` at once.

    Args:
        path: The machine-readable results file (appended to, one JSON object per line).
        run_id: Identifies this run's rows among earlier runs'.
        machine: Where the run happens (see `bench.machine.describe`).
    """

    def __init__(self, path: Path, *, run_id: str, machine: dict[str, Any], sizes: str) -> None:
        self.path = path
        self.run_id = run_id
        self.machine = machine
        self.sizes = sizes
        self.figures: list[Figure] = []
        self.notes: dict[str, list[str]] = {}
        self.extras: dict[str, Any] = {}

    def add(self, figure: Figure) -> Figure:
        if not math.isfinite(figure.value) or not math.isfinite(figure.baseline):
            raise ValueError(f"{figure.key}: not a finite measurement ({figure})")
        self.figures.append(figure)
        ratio = figure.ratio
        print(
            f"  {figure.key}: {figure.value:.4g} {figure.unit}  (raw {figure.baseline:.4g}, "
            f"ratio {'n/a' if ratio is None else f'{ratio:.3g}'})",
            flush=True,
        )
        row = {
            **asdict(figure),
            "key": figure.key,
            "ratio": ratio,
        }
        self._append(row)
        return figure

    def _append(self, row: dict[str, Any]) -> None:
        """Appends one row to `results.jsonl`, stamped with this run, its sizes, time and machine."""
        stamped = {
            **row,
            "run_id": self.run_id,
            "sizes": self.sizes,
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": self.machine,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps(stamped, sort_keys=True) + "\n")

    def measure(
        self, bench: str, name: str, value: float, unit: str, params: dict[str, Any]
    ) -> None:
        """A measurement with no raw counterpart of its own (CPU of one process role), kept in
        `results.jsonl` as `"kind": "measure"` for what is computed from it (`bench.capacity`).

        The report shows the same numbers in its notes; only figures have a baseline and a ratio.
        """
        if not math.isfinite(value):
            raise ValueError(f"{bench}.{name}: not a finite measurement ({value})")
        key = f"{bench}.{name}[" + ",".join(f"{k}={v}" for k, v in sorted(params.items())) + "]"
        row = {
            "kind": "measure",
            "bench": bench,
            "name": name,
            "value": value,
            "unit": unit,
            "params": params,
            "key": key,
        }
        self._append(row)

    def cpu(
        self, bench: str, side: str, per_item: dict[str, float], params: dict[str, Any]
    ) -> None:
        """Records CPU per item by process role (see `bench.profiling.cpu_per_item`).

        A role whose processes ended between the two snapshots (Postgres backends of closed
        connections) can come out negative: that is no measurement, so it is left out.
        """
        for role, ms in per_item.items():
            if ms < 0:
                continue
            self.measure(bench, "cpu_ms_per_item", ms, "ms", {**params, "side": side, "part": role})

    def note(self, bench: str, text: str) -> None:
        """A sentence for the report's section of `bench` (context a figure cannot carry)."""
        print(f"  note: {text}", flush=True)
        self.notes.setdefault(bench, []).append(text)

    def save(self, path: Path) -> None:
        """Everything the report needs, so it can be rendered again (`--render`)."""
        data = {
            "run_id": self.run_id,
            "machine": self.machine,
            "sizes": self.sizes,
            "figures": [asdict(f) for f in self.figures],
            "notes": self.notes,
            "extras": self.extras,
        }
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path, results: Path) -> Recorder:
        """A recorder holding a saved run (adding to it appends to `results`)."""
        data = json.loads(path.read_text())
        rec = cls(results, run_id=data["run_id"], machine=data["machine"], sizes=data["sizes"])
        rec.figures = [Figure(**f) for f in data["figures"]]
        rec.notes, rec.extras = data["notes"], data["extras"]
        return rec


def read_run(path: Path, run_id: str) -> list[dict[str, Any]]:
    """The rows of one run from a results file."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                if row.get("run_id") == run_id:
                    rows.append(row)
    return rows

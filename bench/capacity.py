"""The capacity model: `python -m bench.capacity` writes docs/capacity.md from bench/results.jsonl.

Every number in the document is computed here from the measured per-contact figures of the
latest default-size benchmark runs (history events, bytes and billable actions per journey
shape; CPU per enrolment by process; storage and memory per waiting contact) and from the
assumptions in `ASSUMPTIONS`, each stated in the document. `tests/ops/test_capacity_doc.py`
checks that the committed document is what this script makes of the committed results, so it
stays true when the benchmarks are run again (`make capacity`).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from journeys.domain.timers import TIMER_TRIGGERS

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.jsonl"
DOC = ROOT / "docs" / "capacity.md"
EXAMPLES = ROOT / "examples" / "flows"

SEND_ONLY = "trigger→send_email"
WITH_DELAY = "trigger→delay→send_email"
TEN_STEPS = "10 steps (5× delay, send_email)"


@dataclass(frozen=True)
class Assumptions:
    """What the model takes as given rather than measured (each one is printed in the document)."""

    events_per_s: float = 1000.0
    contacts: tuple[int, ...] = (1_000_000, 10_000_000, 100_000_000)
    enrolling_share: float = 0.10  # events that start a journey; the rest enrol nobody
    waiting_share: float = 0.10  # contacts inside a journey at any moment (an open run each)
    typical_flow: str = WITH_DELAY  # the journey every enrolment runs, for the sizing tables
    history_events_per_shard_per_s: float = 50.0  # planning figure for one history shard
    min_shards: int = 512  # Temporal's shard count is fixed at cluster creation: headroom
    target_cpu_utilisation: float = 0.6  # cores are sized so peaks stay below this
    cores_per_gateway_replica: float = 1.0  # one Python process uses at most one core
    retention_days: int = 30  # closed histories and events kept this long
    contact_row_bytes: int = 2_048  # a contact row with its tags and indexes in Postgres
    event_row_bytes: int = 600  # an event row with its indexes in Postgres
    action_price_usd_per_million: float = 50.0
    action_price_source: str = (
        "Temporal Cloud's first Action tier (https://temporal.io/pricing, as summarised on"
        " 2026-07-02); higher volumes cost less per Action"
    )


ASSUMPTIONS = Assumptions()


def latest(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The latest default-size row of every key (figures and measures)."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.get("sizes") == "default":
            out[row["key"]] = row  # results.jsonl is appended in time order
    return out


def read(path: Path) -> dict[str, dict[str, Any]]:
    return latest([json.loads(line) for line in path.read_text().splitlines() if line.strip()])


def _value(rows: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
    if key not in rows:
        raise KeyError(
            f"{key} is not in the results: run `make bench` (at least {key.split('.')[0]})"
        )
    return rows[key]


@dataclass(frozen=True)
class PerStep:
    """History events, history bytes and billable actions: per journey and per step kind.

    Solved exactly from the three measured shapes: send-only = base + send;
    delay + send = base + delay + send; 10 steps = base + 5 delay + 5 send.
    """

    base: float
    send: float
    delay: float

    @classmethod
    def solve(cls, one: float, two: float, ten: float) -> PerStep:
        delay = two - one
        send = (ten - 5 * delay - one) / 4
        return cls(base=one - send, send=send, delay=delay)


def per_step(rows: dict[str, dict[str, Any]], name: str, side: str) -> PerStep:
    field = "value" if side == "journeys" else "baseline"
    shapes = [
        _value(rows, f"cost.{name}[flow={s}]")[field] for s in (SEND_ONLY, WITH_DELAY, TEN_STEPS)
    ]
    return PerStep.solve(*shapes)


def cpu(rows: dict[str, dict[str, Any]], side: str) -> dict[str, float]:
    """CPU ms per `tag_added → send_email` enrolment by process, from the e2e max-rate run."""
    prefix = "e2e.cpu_ms_per_item["
    found = {
        row["params"]["part"]: row["value"]
        for key, row in rows.items()
        if key.startswith(prefix)
        and row["params"].get("side") == side
        and row["params"].get("processes") == 1
        and row["value"] >= 0  # negative: processes ended between snapshots, no measurement
    }
    if not found:
        raise KeyError("no e2e CPU per process in the results: run `BENCH_ONLY=e2e make bench`")
    return found


# Kinds of steps, by what they cost in Temporal, in terms of the measured `send` and `delay`.
ACTIVITY_STEPS = {
    "send_email", "send_sms", "webhook", "add_tag", "remove_tag", "update_field",
    "add_to_group", "remove_from_group", "unsubscribe",
}  # fmt: skip
WAIT_STEPS = {"delay"}
WAIT_WITH_CHECK_STEPS = {"wait_until", "wait_for_trigger"}  # a timer and a local-activity marker
CHECK_STEPS = {"if_else"}  # one local-activity marker (conditions read the database)
FREE_STEPS = {"percent_split", "exit"}  # decided in the workflow: no command


def _steps_cost(steps: list[dict[str, Any]], unit: PerStep, marker: float) -> float:
    """The costliest path through `steps` (a branch counts as its costliest side)."""
    total = 0.0
    for step in steps:
        kind = step["type"]
        if kind in ACTIVITY_STEPS:
            total += unit.send
        elif kind in WAIT_STEPS:
            total += unit.delay
        elif kind in WAIT_WITH_CHECK_STEPS:
            total += unit.delay + marker
        elif kind in CHECK_STEPS:
            total += marker
        elif kind not in FREE_STEPS:
            raise ValueError(f"no cost model for step type {kind!r}")
        branches = [step.get("yes"), step.get("no"), step.get("matched"), step.get("timed_out")]
        branches += [path.get("steps") for path in step.get("paths", [])]
        options = [_steps_cost(b, unit, marker) for b in branches if b]
        total += max(options, default=0.0)
    return total


def flow_cost(flow: dict[str, Any], unit: PerStep, marker: float) -> float:
    """Per journey of an example flow: base + its steps (+ the armed wait of a timer trigger)."""
    armed = any(t["type"] in TIMER_TRIGGERS for t in flow["triggers"])
    return unit.base + (unit.delay if armed else 0.0) + _steps_cost(flow["steps"], unit, marker)


def _pow2(n: float) -> int:
    return 1 << max(0, math.ceil(math.log2(max(n, 1))))


def _fmt(n: float, digits: int = 0) -> str:
    return f"{n:,.{digits}f}"


def _bytes(n: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,.0f} B"


def render(rows: dict[str, dict[str, Any]], a: Assumptions = ASSUMPTIONS) -> str:
    """docs/capacity.md from the latest results."""
    events = {s: per_step(rows, "history_events_per_contact", s) for s in ("journeys", "raw")}
    size = {s: per_step(rows, "history_bytes_per_contact", s) for s in ("journeys", "raw")}
    actions = {s: per_step(rows, "billable_actions_per_contact", s) for s in ("journeys", "raw")}
    ours, theirs = cpu(rows, "journeys"), cpu(rows, "raw")
    shape = {SEND_ONLY: 0, WITH_DELAY: 1, TEN_STEPS: 5}[a.typical_flow]
    delays = shape if a.typical_flow != SEND_ONLY else 0
    sends = max(shape, 1)

    def journey(unit: PerStep) -> float:
        return unit.base + delays * unit.delay + sends * unit.send

    waiting_db = _value(rows, "waiting.db_bytes_per_waiting_contact[n=10000]")
    waiting_rss = _value(rows, "waiting.worker_rss_kib_per_waiting_contact[n=10000]")
    run_ids = sorted(
        {
            r["run_id"]
            for k, r in rows.items()
            if k.startswith(("cost.", "e2e.cpu_ms_per_item", "waiting."))
        }
    )
    journeys_per_s = a.events_per_s * a.enrolling_share
    u = a.target_cpu_utilisation
    lines = [
        "# Capacity model",
        "",
        "Generated by `make capacity` (`python -m bench.capacity`) from `bench/results.jsonl`"
        f" (runs {', '.join(f'`{r}`' for r in run_ids)}). Do not edit: rerun the benchmarks,"
        " then `make capacity`; a test checks this file matches the committed results.",
        "",
        "## Assumptions",
        "",
        "| assumption | value |",
        "|---|---|",
        f"| events at the gateway | {_fmt(a.events_per_s)}/s |",
        f"| share of events that start a journey (the rest enrol nobody) | {a.enrolling_share:.0%}"
        f" → {_fmt(journeys_per_s)} journeys/s |",
        f"| journey every enrolment runs (sizing tables) | `{a.typical_flow}` |",
        f"| contacts inside a journey at any moment | {a.waiting_share:.0%} |",
        f"| history events one shard sustains (planning figure, not measured here) |"
        f" {_fmt(a.history_events_per_shard_per_s)}/s |",
        f"| fewest shards (the count is fixed when the cluster is created) | {a.min_shards} |",
        f"| CPU utilisation cores are sized for | {u:.0%} |",
        f"| cores per gateway replica (one Python process) | {a.cores_per_gateway_replica:g} |",
        f"| retention of closed histories and events | {a.retention_days} days |",
        f"| Postgres bytes per contact / per event (rows and indexes) | {a.contact_row_bytes}"
        f" / {a.event_row_bytes} |",
        f"| Temporal Cloud price | USD {a.action_price_usd_per_million:g} per million Actions:"
        f" {a.action_price_source} |",
        "",
        "Measured on the benchmark machine (2 cores, every process on it; the Temporal dev"
        " server, i.e. all its services on SQLite in one process), so CPU per item is the figure"
        " to carry over; a production cluster's Temporal CPU per action differs with its"
        " persistence. CPU per item also grows when other work shares the cores: size from a"
        " `make bench` run on a quiet machine.",
        "",
        "## Per journey, from the measured shapes",
        "",
        "`cost` measures three shapes; solving send-only = base + send, delay + send = base +"
        " delay + send, 10 steps = base + 5 × (delay + send) gives what each part costs.",
        "",
        "| per journey | base (start, entry) | + each send | + each delay | journeys"
        f" `{a.typical_flow}` | raw Temporal, same shape |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, model in (
        ("history events", events),
        ("history bytes", size),
        ("billable actions", actions),
    ):
        o, r = model["journeys"], model["raw"]
        lines.append(
            f"| {label} | {_fmt(o.base, 1)} | {_fmt(o.send, 1)} | {_fmt(o.delay, 1)} |"
            f" {_fmt(journey(o), 1)} | {_fmt(journey(r), 1)} |"
        )
    lines += [
        "",
        "CPU per `tag_added → send_email` enrolment (e2e max-rate run), ms:",
        "",
        "| process | journeys | raw Temporal |",
        "|---|---:|---:|",
    ]
    for part in sorted(set(ours) | set(theirs)):
        lines.append(f"| {part} | {ours.get(part, 0):.2f} | {theirs.get(part, 0):.2f} |")
    lines.append(f"| **total** | {sum(ours.values()):.2f} | {sum(theirs.values()):.2f} |")

    # Throughput-driven: the same for every audience size.
    hist_events_s = journeys_per_s * journey(events["journeys"])
    actions_s = journeys_per_s * journey(actions["journeys"])
    shards = max(a.min_shards, _pow2(hist_events_s / a.history_events_per_shard_per_s))
    temporal_cores = journeys_per_s * ours.get("temporal", 0) / 1000 / u
    worker_cores = journeys_per_s * ours.get("worker", 0) / 1000 / u
    # Every event passes the gateway and Postgres; an enrolling one costs what e2e measured.
    gateway_cores = a.events_per_s * ours.get("gateway", 0) / 1000 / u
    postgres_cores = a.events_per_s * ours.get("postgres", 0) / 1000 / u
    replicas = math.ceil(gateway_cores / a.cores_per_gateway_replica) + 1
    lines += [
        "",
        f"## {_fmt(a.events_per_s)} events/s ({_fmt(journeys_per_s)} journeys/s)",
        "",
        "Throughput sets CPU, shards and Actions; it does not depend on the audience size.",
        "",
        "| | derivation | need |",
        "|---|---|---:|",
        f"| history events/s | {_fmt(journeys_per_s)} journeys/s ×"
        f" {_fmt(journey(events['journeys']), 1)} | {_fmt(hist_events_s)} |",
        f"| billable Actions/s | {_fmt(journeys_per_s)} × {_fmt(journey(actions['journeys']), 1)} |"
        f" {_fmt(actions_s)} |",
        f"| history shards | max({a.min_shards}, next power of 2 ≥ {_fmt(hist_events_s)} /"
        f" {_fmt(a.history_events_per_shard_per_s)}) | {shards} |",
        f"| Temporal service cores | {_fmt(journeys_per_s)} × {ours.get('temporal', 0):.2f} ms"
        f" / {u:.0%} | {temporal_cores:.1f} |",
        f"| worker cores | {_fmt(journeys_per_s)} × {ours.get('worker', 0):.2f} ms / {u:.0%} |"
        f" {worker_cores:.1f} |",
        f"| gateway cores | {_fmt(a.events_per_s)} events/s × {ours.get('gateway', 0):.2f} ms /"
        f" {u:.0%} | {gateway_cores:.1f} |",
        f"| gateway replicas | ⌈cores / {a.cores_per_gateway_replica:g}⌉ + 1 spare | {replicas} |",
        f"| Postgres cores | {_fmt(a.events_per_s)} × {ours.get('postgres', 0):.2f} ms / {u:.0%} |"
        f" {postgres_cores:.1f} |",
        "",
        "Gateway and Postgres CPU per event are those of an enrolling `tag_added` event (an upper"
        " bound: events that enrol nobody cost less; see `batch` in BENCHMARKS for batches).",
        "",
        "## By audience size",
        "",
        "Audience size sets storage and memory: open runs (contacts inside a journey) in"
        " Temporal's store and, if cached, in worker memory; contacts and events in Postgres.",
        "",
        "| contacts | open runs | Temporal store, open runs | Temporal store, closed"
        " histories | worker memory to cache every open run | Postgres, contacts + events |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    closed = journeys_per_s * 86_400 * a.retention_days * journey(size["journeys"])
    events_kept = a.events_per_s * 86_400 * a.retention_days * a.event_row_bytes
    for n in a.contacts:
        open_runs = n * a.waiting_share
        lines.append(
            f"| {_fmt(n)} | {_fmt(open_runs)} | {_bytes(open_runs * waiting_db['value'])} |"
            f" {_bytes(closed)} | {_bytes(open_runs * waiting_rss['value'] * 1024)} |"
            f" {_bytes(n * a.contact_row_bytes + events_kept)} |"
        )
    lines += [
        "",
        f"Temporal store per open run: {_fmt(waiting_db['value'])} bytes (`waiting`, 10k waiting"
        f" contacts, SQLite); worker memory per cached run: {waiting_rss['value']:.0f} KiB."
        " Workers need not cache every open run (`JOURNEYS_WORKER_MAX_CACHED_WORKFLOWS`): an"
        " evicted run is replayed from its history when its timer fires, which costs worker CPU"
        " instead of memory. Closed histories: journeys/s × 86,400 × retention ×"
        f" {_fmt(journey(size['journeys']))} bytes.",
        "",
        "## Temporal Cloud Actions per million journeys, by example flow",
        "",
        "Each example's costliest path (a branch counts as its costliest side), with the"
        " measured base, send and delay costs; steps the cost benchmark does not measure are"
        " modelled as: any action step (`send_sms`, `webhook`, `add_tag`, …) = a send;"
        " `wait_until` / `wait_for_trigger` = a delay + one local-activity marker; `if_else` = one"
        " marker; `percent_split` and `exit` = nothing; a timer trigger (birthday, abandoned cart,"
        " win-back) adds one delay for the armed wait. A marker is 1 Action.",
        "",
        "| example | Actions per journey | USD per million journeys | raw Temporal, same"
        " steps (Actions) |",
        "|---|---:|---:|---:|",
    ]
    for path in sorted(EXAMPLES.glob("*.yaml")):
        flow = yaml.safe_load(path.read_text())
        mine = flow_cost(flow, actions["journeys"], 1.0)
        raw = flow_cost(flow, actions["raw"], 0.0)
        usd = mine * a.action_price_usd_per_million
        lines.append(f"| `{path.name}` | {mine:.1f} | {_fmt(usd)} | {raw:.1f} |")
    lines += [
        "",
        "USD per million journeys = Actions per journey × USD"
        f" {a.action_price_usd_per_million:g} (a million journeys × Actions per journey is that"
        " many million Actions). Raw Temporal: the same timers and one activity per action step,"
        " started without signal or search attributes, no markers.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=DOC)
    args = parser.parse_args()
    args.out.write_text(render(read(args.results)))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

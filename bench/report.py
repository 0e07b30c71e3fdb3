"""Renders BENCHMARKS.md from one run: machine, settings, every figure with baseline and ratio."""

from __future__ import annotations

from pathlib import Path

from bench.config import BenchConfig
from bench.results import Figure, Recorder

FINDINGS = Path(__file__).resolve().parent / "FINDINGS.md"

SECTIONS = {
    "ingest": (
        "1. Ingest (P1)",
        "Events/s the gateway accepts over HTTP (httpx, closed loop at each concurrency), "
        "each event enrolling one contact; no worker runs. Baseline: raw "
        "`start_workflow(start_signal=…)` calls/s from a Python client at the same "
        "concurrency, same server.",
    ),
    "batch": (
        "1b. Batch ingest (`POST /v1/events:batch`)",
        "The same activity event (`page_visited`, each enrolling one fresh contact) posted one "
        "per request and in batches of each size (closed loop of batch requests), then batches "
        "of page views no flow matches; no worker runs. Baseline: raw "
        "`start_workflow(start_signal=…)` calls/s from a Python client, same server, same run.",
    ),
    "e2e": (
        "2. End to end (P2, P4)",
        "Completed enrolments/s for `tag_added → send_email` (HTTP request → workflow completed, "
        'email accepted by the SMTP sink on the way), against raw "start + one no-op activity" '
        "on the same server with the same worker settings. Latency from the HTTP request being "
        "due to SMTP acceptance, open loop at 25/50/90% of the measured maximum; the baseline at "
        "the same rates, from start due to workflow closed.",
    ),
    "cost": (
        "3. Cost per contact (P3)",
        "Read from real histories. Billable actions are estimated from Temporal Cloud's list "
        "(start, signal, timer, activity attempt, search-attribute upsert, marker).",
    ),
    "waiting": (
        "4. Waiting scale (P5)",
        "Contacts enrolled through the gateway into `tag_added → delay → send_email` until N "
        "wait; Temporal SQLite growth (file bytes, and bytes of pages in use) and worker RSS at "
        "each checkpoint; fire lateness = SMTP acceptance − (enrolment accepted + delay).",
    ),
    "tuning": (
        "5. Worker tuning",
        "The end-to-end max-rate run with one and with two worker processes per side.",
    ),
    "engagement": (
        "6. Engagement: campaign send and open tracking",
        "A campaign to N contacts: from `POST …/send` to the SMTP sink accepting the last email "
        "(emails/s) and the first (s), against a raw `aiosmtplib` loop sending the same rendered "
        "messages over as many connections as the worker keeps. Then `GET /t/o/<token>.gif` in a "
        "closed loop (opens/s, p99) against the gateway's plain ingest of the same event.",
    ),
    "armed": (
        "7. Armed contacts (timer triggers)",
        "A `birthday` flow over N contacts activated through the gateway: `ArmFlowWorkflow` "
        "pages through them and starts each contact's run, which rests on one timer (phase "
        "`armed`); done when visibility counts N armed, the worker's queue is empty and a "
        "sample of the runs has its timer. Baseline: raw workflows that only start and sleep "
        "until the same instant, started from a Python client at the arming's concurrency, "
        "done the same way. Temporal SQLite growth and CPU per armed contact, worker RSS at "
        "several N of runs the worker holds (both sides' sticky cache: a quarter of the population, "
        "`armed_cache`). Then a cohort due in the same minute whose journey is one "
        "`add_tag`, against raw sleep-until workflows + one no-op activity: lateness = the "
        "`ActivityTaskStarted` of the first activity after the timer − the instant, on both "
        "sides (our step's effect, the tag's `added_at`, noted beside it). "
        "Both workers run with bytecode, as the Docker image does.",
    ),
    "shapes": (
        "Experiment: what fewer activities and upserts would save",
        "Raw workflows shaped like a one-email contact today and like the recommended shapes, "
        "at the end-to-end max rate (opt-in: `BENCH_ONLY=shapes make bench`).",
    ),
}


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _params(figure: Figure) -> str:
    return ", ".join(f"{k}={v}" for k, v in figure.params.items()) or "–"


def _table(
    figures: list[Figure], *, subject: str = "journeys", baseline: str = "raw Temporal"
) -> list[str]:
    lines = [
        f"| figure | params | {subject} | {baseline} | ratio | better |",
        "|---|---|---:|---:|---:|---|",
    ]
    for f in figures:
        ratio = f.ratio
        lines.append(
            f"| {f.name} | {_params(f)} | {_fmt(f.value)} {f.unit} | {_fmt(f.baseline)} {f.unit} "
            f"| {'n/a' if ratio is None else f'{ratio:.2f}×'} | {f.better} |"
        )
    baselines = sorted({f.baseline_label for f in figures})
    lines += ["", "Baseline: " + "; ".join(baselines) + "."]
    return lines


def render(rec: Recorder, config: BenchConfig, newer: dict[str, Recorder] | None = None) -> str:
    """The whole report as Markdown.

    Args:
        rec: The run.
        config: What it ran.
        newer: Benchmarks run again alone (`BENCH_ONLY`) after `rec`, by name: their
            sections come from that later run, which says so (its raw baseline is its own).
    """
    newer = newer or {}
    machine = rec.machine
    out = [
        "# Benchmarks",
        "",
        f"Generated by `make bench` (`python -m bench`), run `{rec.run_id}` "
        f"(started {rec.run_id[:4]}-{rec.run_id[4:6]}-{rec.run_id[6:8]} "
        f"{rec.run_id[9:11]}:{rec.run_id[11:13]} UTC), sizes `{config.sizes}`"
        f"{' + BENCH_LARGE' if 100_000 in config.waiting_sizes else ''}, "
        f"{rec.extras.get('total_seconds', 0) / 60:.1f} minutes. Every figure is next to its "
        "raw-Temporal baseline measured on the same server in the same run; ratio = "
        "journeys / raw. Rows of every run are in `bench/results.jsonl`. Do not edit this file: "
        "rerun `make bench` (the findings come from `bench/FINDINGS.md`).",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| cores | {machine['cores']} |",
        f"| memory | {machine['memory_gib']} GiB |",
        f"| CPU | {machine['cpu']} |",
        f"| OS | {machine['os']} |",
        f"| Python | {machine['python']} |",
        f"| Temporal CLI / server | {machine['temporal_cli']} |",
        f"| temporalio SDK | {machine['temporalio_sdk']} |",
        "",
        "## Worker settings used",
        "",
        "| setting | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in rec.extras.get("settings", {}).items()],
        "",
        "Every process runs on this one machine: Postgres, the Temporal dev server (SQLite), "
        "the gateway, the workers, the SMTP sink and the load generator share its cores, so "
        "CPU per item (in the notes) says more than a rate about where the time goes.",
        "",
    ]
    if FINDINGS.exists() and set(SECTIONS) - {"shapes"} <= set(config.only):  # full runs only
        out += [FINDINGS.read_text().strip(), ""]
    for name in (n for n in SECTIONS if n in config.only):  # in the order
        title, intro = SECTIONS[name]
        source = newer.get(name, rec)
        figures = [f for f in source.figures if f.bench == name]
        out += [f"## {title}", "", intro, ""]
        if source is not rec:
            out += [
                f"_From run `{source.run_id}` (`BENCH_ONLY={name}`, started "
                f"{source.run_id[9:11]}:{source.run_id[11:13]} UTC on "
                f"{source.run_id[:4]}-{source.run_id[4:6]}-{source.run_id[6:8]}), this "
                "benchmark run again alone after the full run above, with its own raw "
                "baseline; the full run's figures for it are in `bench/results.jsonl`._",
                "",
            ]
        durations = source.extras.get("durations", {})
        if name in durations:
            out += [f"_Took {durations[name]:.0f} s._", ""]
        if figures:
            out += [
                *_table(
                    figures,
                    subject="this shape" if name == "shapes" else "journeys",
                    # Engagement baselines are a raw SMTP loop and plain ingest, not Temporal.
                    baseline="baseline" if name == "engagement" else "raw Temporal",
                ),
                "",
            ]
        for note in source.notes.get(name, []):
            out.append(f"- {note}")
        if source.notes.get(name):
            out.append("")
        if name == "cost" and "cost.breakdown" in rec.extras:
            out += [
                "History events per contact by type:",
                "",
                "```",
                rec.extras["cost.breakdown"],
                "```",
                "",
            ]
    profiles = [k for k in ("profile.gateway", "profile.worker") if k in rec.extras]
    if profiles:
        out += [
            "## Where the time goes (py-spy profiles)",
            "",
            "Sampled in a separate pass after the measured runs (profiling slows what it "
            "watches). Shares of the Python thread holding the GIL; the SDK's Rust core and the "
            "other processes are in the CPU notes above.",
            "",
        ]
        for key in profiles:
            out += ["```", rec.extras[key], "```", ""]
    return "\n".join(out).rstrip() + "\n"

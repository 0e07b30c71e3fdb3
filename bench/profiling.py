"""Where the time goes: CPU per item by process, and py-spy profiles summarised as text.

py-spy attaches to a running gateway or worker by pid and samples whichever thread holds the
GIL (the SDK runs workflow code in a thread pool, which an in-thread profiler would miss), so
shares are shares of the Python CPU the process used; the SDK's Rust core is not sampled.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from pathlib import Path

from journeys.embedded.process import terminate

_PROJECT = ("api", "journeys", "activities", "workflows", "workers")


def cpu_per_item(before: dict[str, float], after: dict[str, float], items: int) -> dict[str, float]:
    """Milliseconds of CPU per item spent by each process role between two snapshots."""
    return {
        role: 1000.0 * (after[role] - before.get(role, 0.0)) / max(items, 1)
        for role in sorted(after)
    }


def format_cpu(per_item: dict[str, float], unit: str) -> str:
    """`gateway 3.10 · temporal 1.20 · ... = 5.1 ms CPU per <unit>`."""
    parts = " · ".join(f"{role} {ms:.2f}" for role, ms in per_item.items() if ms >= 0.005)
    return f"{parts} = {sum(per_item.values()):.2f} ms CPU per {unit}"


def pyspy_binary() -> str:
    from journeys.embedded.process import find_binary

    return find_binary("py-spy")


async def record(pid: int, *, seconds: float, out: Path) -> Path | None:
    """Samples `pid` for `seconds` into a collapsed-stack file; None if py-spy failed."""
    process = await asyncio.create_subprocess_exec(
        pyspy_binary(),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(int(seconds), 1)),
        # --gil keeps only samples of the thread holding the GIL: Python's CPU, not its waits.
        "--rate",
        "200",
        "--gil",
        "--nonblocking",
        "--full-filenames",
        "--format",
        "raw",
        "--output",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(process.communicate(), seconds + 60)
    except (TimeoutError, asyncio.CancelledError):
        await terminate(process, grace=5)
        raise
    if process.returncode != 0 or not out.exists():
        print(f"py-spy failed ({process.returncode}): {err.decode()[-500:]}", file=sys.stderr)
        return None
    return out


def _component(frame: str) -> str:
    """The package (or project folder, or stdlib module) a frame's file belongs to."""
    path = frame.rpartition("(")[2].rpartition(":")[0]
    if "site-packages/" in path:
        return path.split("site-packages/")[1].split("/")[0].removesuffix(".py")
    parts = Path(path).parts
    for i, part in enumerate(parts):
        if part in _PROJECT and i + 1 < len(parts):
            return f"{part}/ (ours)"
    if "/lib/python" in path:
        tail = path.split("/lib/python")[1].split("/")
        return f"stdlib {tail[1].removesuffix('.py')}" if len(tail) > 1 else "stdlib"
    return "other"


def _function(frame: str) -> str:
    name, _, where = frame.partition(" (")
    path, _, _line = where.rstrip(")").rpartition(":")
    short = "/".join(Path(path).parts[-2:])
    return f"{name} ({short})"


def summarize(raw: Path, *, top: int = 12) -> str:
    """A text summary of a py-spy collapsed-stack file.

    Three views: CPU by package of the innermost frame; our own functions by inclusive share
    (which step of a request or activity costs what); and the hottest innermost functions.
    """
    by_component: Counter[str] = Counter()
    inclusive_ours: Counter[str] = Counter()
    by_leaf: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        by_component[_component(frames[-1])] += count
        by_leaf[_function(frames[-1])] += count
        ours = {
            _function(f)
            for f in frames
            if _component(f).endswith("(ours)") and not f.startswith("<module>")
        }
        for name in ours:
            inclusive_ours[name] += count
    if not total:
        return "(no samples)"

    def table(counter: Counter[str]) -> list[str]:
        return [f"  {100 * n / total:5.1f}%  {name}" for name, n in counter.most_common(top)]

    return "\n".join(
        [
            f"{total} samples of the GIL-holding thread",
            "CPU by package (innermost frame):",
            *table(by_component),
            "Our code, inclusive (time in a function and everything it calls):",
            *table(inclusive_ours),
            "Hottest innermost functions:",
            *table(by_leaf),
        ]
    )

"""Load generators: closed loop (fixed concurrency) and open loop (fixed arrival rate).

Both call an async function once per key and keep, per key, the wall-clock time the call was
due and the time it returned, so latencies can later be joined with times recorded elsewhere
(SMTP acceptance, workflow close).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from hdrh.histogram import HdrHistogram

from bench.procs import wall
from bench.results import Figure, Recorder

K = TypeVar("K", bound=Hashable)

# Microsecond resolution from 1 µs to 1 hour with 3 significant digits.
_HDR_MAX_US = 3_600_000_000


@dataclass
class LoadRun(Generic[K]):
    """What one load run did: per key, when its call was due and when it returned."""

    sent: dict[K, float] = field(default_factory=dict)
    done: dict[K, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0

    @property
    def ok(self) -> int:
        return len(self.done)

    @property
    def elapsed(self) -> float:
        return max(self.finished - self.started, 1e-9)

    @property
    def rate(self) -> float:
        """Successful calls per second over the run."""
        return self.ok / self.elapsed

    def response_histogram(self) -> HdrHistogram:
        """Call latencies (due → returned)."""
        return histogram(self.done[k] - self.sent[k] for k in self.done)


def check_run(run: LoadRun[K], side: str) -> None:
    """Refuses a run with any failed call, or with no call that succeeded.

    Raises:
        RuntimeError: naming `side` and the first error.
    """
    if run.errors:
        raise RuntimeError(f"{side}: {len(run.errors)} failed calls, first: {run.errors[0]}")
    if not run.ok:
        raise RuntimeError(f"{side}: no call succeeded")


def histogram(seconds: Iterable[float]) -> HdrHistogram:
    """An HdrHistogram of durations given in seconds (recorded in microseconds)."""
    hist = HdrHistogram(1, _HDR_MAX_US, 3)
    for value in seconds:
        hist.record_value(min(max(int(value * 1e6), 1), _HDR_MAX_US))
    return hist


def percentile_ms(hist: HdrHistogram, percentile: float) -> float:
    """The value at `percentile` (0–100), in milliseconds."""
    return hist.get_value_at_percentile(percentile) / 1000.0


async def closed_loop(
    keys: Iterable[K],
    call: Callable[[K], Awaitable[None]],
    *,
    concurrency: int,
    duration: float | None = None,
) -> LoadRun[K]:
    """`concurrency` callers take keys one after another until keys or `duration` run out."""
    run: LoadRun[K] = LoadRun()
    iterator = iter(keys)
    deadline = None if duration is None else time.monotonic() + duration

    async def lane() -> None:
        for key in iterator:  # shared: each key goes to exactly one lane
            if deadline is not None and time.monotonic() > deadline:
                return
            run.sent[key] = wall()
            try:
                await call(key)
            except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
                run.errors.append(repr(exc))
                continue
            run.done[key] = wall()

    run.started = wall()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    run.finished = wall()
    return run


async def open_loop(
    keys: Sequence[K], call: Callable[[K], Awaitable[None]], *, rate: float
) -> LoadRun[K]:
    """Starts one call every 1/`rate` seconds, whether or not earlier calls returned.

    A call's latency counts from when it was due, not when it was sent, so a driver that
    falls behind cannot hide queueing (no coordinated omission).
    """
    run: LoadRun[K] = LoadRun()
    tasks: list[asyncio.Task[None]] = []

    async def one(key: K, due: float) -> None:
        run.sent[key] = due
        try:
            await call(key)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            run.errors.append(repr(exc))
            return
        run.done[key] = wall()

    start_mono, start_wall = time.monotonic() + 0.05, wall() + 0.05
    for i, key in enumerate(keys):
        offset = i / rate
        pause = start_mono + offset - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)  # the arrival schedule itself, not a synchronisation
        tasks.append(asyncio.create_task(one(key, start_wall + offset)))
    run.started = start_wall
    await asyncio.gather(*tasks)
    run.finished = wall()
    return run


def add_fire_lateness(
    rec: Recorder,
    bench: str,
    mine: HdrHistogram,
    base: HdrHistogram,
    baseline_label: str,
    params: dict[str, Any],
) -> dict[str, Figure]:
    """Records how late timers fired, ours against raw Temporal's, at p50, p99 and the worst.

    Args:
        rec: Where the figures go.
        bench: The benchmark.
        mine: Our lateness per contact, in seconds.
        base: Raw Temporal's lateness per workflow, in seconds.
        baseline_label: What the raw side ran, in words.
        params: What distinguishes these figures (cohort size, delay).

    Returns:
        The figures by label (`p50`, `p99`, `max`), named `fire_lateness_<label>_ms`.
    """
    return {
        label: rec.add(
            Figure(
                bench,
                f"fire_lateness_{label}_ms",
                percentile_ms(mine, pct),
                "ms",
                percentile_ms(base, pct),
                baseline_label,
                "lower",
                params,
            )
        )
        for label, pct in (("p50", 50.0), ("p99", 99.0), ("max", 100.0))
    }

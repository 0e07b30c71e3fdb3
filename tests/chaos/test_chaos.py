"""The small crash test of `make chaos`, run by `make test`: 50 contacts, 2 kills."""

from __future__ import annotations

from pathlib import Path

from bench.chaos import ChaosConfig, run_chaos


async def test_worker_killed_at_random_and_mid_send_loses_and_duplicates_no_email(
    tmp_path: Path,
) -> None:
    report = await run_chaos(
        ChaosConfig(
            contacts=50,
            kills=2,
            mid_send_kills=1,
            delay="5s",
            workers=1,
            timeout=240,
            root=tmp_path,
        )
    )
    summary = "\n" + report.render()
    print(summary)
    assert report.complete and not report.problems, summary
    assert (report.random_kills, report.mid_send_kills) == (1, 1), summary
    assert report.expected == 100, summary
    assert report.duplicates == 0 and report.missing == 0, summary
    # The send the mid-send kill cut off had reached the sink: recorded uncertain, not resent.
    assert report.uncertain_received >= 1, summary
    # Interrupted sends were retried after the 10 s heartbeat timeout, not the 2-minute one
    # (the margin is for restarting the worker on a busy machine).
    assert report.recovery and max(report.recovery) < 90, summary

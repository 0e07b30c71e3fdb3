from datetime import UTC, datetime, timedelta

from journeys.domain.reentry import admits

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


def test_first_entry_is_always_admitted() -> None:
    assert admits(last_started_at=None, allowed=False, min_interval=None, now=NOW) is None


def test_second_entry_needs_reentry_on() -> None:
    refusal = admits(
        last_started_at=NOW - timedelta(days=9),
        allowed=False,
        min_interval=None,
        now=NOW,
    )
    assert refusal and "re-entry is off" in refusal
    assert (
        admits(
            last_started_at=NOW - timedelta(days=9),
            allowed=True,
            min_interval=None,
            now=NOW,
        )
        is None
    )


def test_min_interval_counts_from_previous_start() -> None:
    week = timedelta(days=7)
    assert admits(
        last_started_at=NOW - timedelta(days=6),
        allowed=True,
        min_interval=week,
        now=NOW,
    )
    assert (
        admits(
            last_started_at=NOW - timedelta(days=7),
            allowed=True,
            min_interval=week,
            now=NOW,
        )
        is None
    )

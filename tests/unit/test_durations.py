from datetime import timedelta

import pytest

from journeys.domain.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("3d", timedelta(days=3)),
        ("1w", timedelta(weeks=1)),
        ("P3D", timedelta(days=3)),
        ("PT90M", timedelta(minutes=90)),
        ("P1DT12H", timedelta(days=1, hours=12)),
        ("P2W", timedelta(weeks=2)),
    ],
)
def test_parses_short_and_iso_forms(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "2", "2x", "0d", "P", "PT", "P1Y", "P1M", "-3d", "3 days", "P1DT"]
)
def test_rejects_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("text", ["999999999w", "3651d", "P522W", "9" * 5000 + "s"])
def test_rejects_durations_longer_than_ten_years(text: str) -> None:
    # These used to overflow timedelta (OverflowError, a 500) instead of failing validation.
    with pytest.raises(ValueError):
        parse_duration(text)


def test_ten_years_is_the_longest_duration() -> None:
    assert parse_duration("3650d") == timedelta(days=3650)

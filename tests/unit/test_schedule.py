from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from journeys.domain.flow import QuietHours
from journeys.domain.schedule import quiet_until, wait_until
from journeys.domain.steps import WaitUntil

PARIS = ZoneInfo("Europe/Paris")


def _rule(**kwargs: object) -> WaitUntil:
    return WaitUntil(id="w", **kwargs)


def test_quiet_hours_spanning_midnight() -> None:
    quiet = QuietHours(start="21:00", end="08:00")
    late = datetime(2026, 11, 27, 22, 30, tzinfo=PARIS)
    assert quiet_until(late, quiet, PARIS) == datetime(2026, 11, 28, 8, 0, tzinfo=PARIS)
    early = datetime(2026, 11, 28, 6, 0, tzinfo=PARIS)
    assert quiet_until(early, quiet, PARIS) == datetime(2026, 11, 28, 8, 0, tzinfo=PARIS)
    assert quiet_until(datetime(2026, 11, 28, 12, 0, tzinfo=PARIS), quiet, PARIS) is None


def test_quiet_hours_within_a_day_use_local_time() -> None:
    quiet = QuietHours(start="12:00", end="14:00")
    noon_utc = datetime(2026, 11, 27, 11, 30, tzinfo=UTC)  # 12:30 in Paris
    assert quiet_until(noon_utc, quiet, PARIS) == datetime(2026, 11, 27, 14, 0, tzinfo=PARIS)
    assert quiet_until(noon_utc, quiet, ZoneInfo("UTC")) is None


def test_time_of_day_later_today_or_tomorrow() -> None:
    friday_8 = datetime(2026, 11, 27, 8, 0, tzinfo=PARIS)
    assert wait_until(friday_8, _rule(time_of_day="09:30"), PARIS) == datetime(
        2026, 11, 27, 9, 30, tzinfo=PARIS
    )
    friday_10 = datetime(2026, 11, 27, 10, 0, tzinfo=PARIS)
    assert wait_until(friday_10, _rule(time_of_day="09:30"), PARIS) == datetime(
        2026, 11, 28, 9, 30, tzinfo=PARIS
    )


def test_weekdays_skip_the_weekend() -> None:
    saturday = datetime(2026, 11, 28, 15, 0, tzinfo=PARIS)
    rule = _rule(time_of_day="09:00", days=["mon", "tue", "wed", "thu", "fri"])
    assert wait_until(saturday, rule, PARIS) == datetime(2026, 11, 30, 9, 0, tzinfo=PARIS)
    assert wait_until(saturday, _rule(days=["sat"]), PARIS) == saturday
    assert wait_until(saturday, _rule(days=["mon"]), PARIS) == datetime(
        2026, 11, 30, 0, 0, tzinfo=PARIS
    )


def test_date_field_with_offset_and_past_dates() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    rule = _rule(date_field="renewal", offset_days=-7, time_of_day="10:00")
    assert wait_until(now, rule, PARIS, "2026-12-15") == datetime(2026, 12, 8, 10, 0, tzinfo=PARIS)
    assert wait_until(now, rule, PARIS, "2026-01-01") == now
    assert wait_until(now, rule, PARIS, "not a date") == now


def test_dst_change_keeps_the_local_clock() -> None:
    before = datetime(2027, 3, 27, 12, 0, tzinfo=PARIS)  # the clocks go forward that night
    target = wait_until(before, _rule(time_of_day="09:00"), PARIS)
    assert target.astimezone(UTC) == datetime(2027, 3, 28, 7, 0, tzinfo=UTC)

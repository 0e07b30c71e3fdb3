"""The local-time policy of the date triggers: when a birthday, a date field or a signup fires."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from journeys.domain.firing import (
    DATE_TRIGGER_MODELS,
    YEARLY_TRIGGERS,
    FireAt,
    NoFire,
    fire_after,
    next_fire,
)
from journeys.domain.triggers import Birthday, RecurringDate, SignupDate, SpecificDate

MARCH_1 = datetime(2027, 3, 1, tzinfo=UTC)


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def _fires(result: FireAt | NoFire) -> FireAt:
    assert isinstance(result, FireAt), result
    return result


def _wall(fire: FireAt) -> str:
    """The contact's wall clock at the fire instant, with its UTC offset."""
    return fire.local.isoformat(timespec="minutes")


# --- Daylight saving: the skipped hour and the repeated hour ------------------------------------


@pytest.mark.parametrize(
    ("zone", "month_day", "clock", "utc", "wall"),
    [
        # 2027-03-14 02:00 EST → 03:00 EDT: 02:30 fires as if still EST, i.e. at 03:30 EDT.
        ("America/New_York", "03-14", "02:30", _utc(2027, 3, 14, 7, 30), "2027-03-14T03:30-04:00"),
        # 2027-03-28 02:00 CET → 03:00 CEST.
        ("Europe/Paris", "03-28", "02:30", _utc(2027, 3, 28, 1, 30), "2027-03-28T03:30+02:00"),
        # Southern hemisphere, 2027-10-03 02:00 AEST → 03:00 AEDT.
        ("Australia/Sydney", "10-03", "02:30", _utc(2027, 10, 2, 16, 30), "2027-10-03T03:30+11:00"),
        # Half-hour zone with DST, 2027-10-03 02:00 ACST (+09:30) → 03:00 ACDT (+10:30).
        (
            "Australia/Adelaide",
            "10-03",
            "02:30",
            _utc(2027, 10, 2, 17, 0),
            "2027-10-03T03:30+10:30",
        ),
        # Lord Howe moves its clocks by 30 minutes only: 02:00 → 02:30 (+10:30 → +11:00).
        (
            "Australia/Lord_Howe",
            "10-03",
            "02:15",
            _utc(2027, 10, 2, 15, 45),
            "2027-10-03T02:45+11:00",
        ),
        # Quarter-hour zone with DST, 2027-09-26 02:45 (+12:45) → 03:45 (+13:45).
        ("Pacific/Chatham", "09-26", "03:00", _utc(2027, 9, 25, 14, 15), "2027-09-26T04:00+13:45"),
    ],
)
def test_a_skipped_wall_time_fires_as_if_the_clocks_had_not_moved(
    zone: str, month_day: str, clock: str, utc: datetime, wall: str
) -> None:
    fire = _fires(
        next_fire(Birthday(time_of_day=clock), date_value=month_day, zone=zone, now=MARCH_1)
    )
    assert fire.utc == utc
    assert _wall(fire) == wall
    assert fire.zone == zone
    assert "does not exist" in fire.notes[0]


@pytest.mark.parametrize(
    ("zone", "month_day", "clock", "first", "second"),
    [
        # 2027-11-07 02:00 EDT → 01:00 EST: 01:30 happens at 05:30Z, then again at 06:30Z.
        ("America/New_York", "11-07", "01:30", _utc(2027, 11, 7, 5, 30), _utc(2027, 11, 7, 6, 30)),
        # 2027-10-31 03:00 CEST → 02:00 CET.
        ("Europe/Paris", "10-31", "02:30", _utc(2027, 10, 31, 0, 30), _utc(2027, 10, 31, 1, 30)),
        # 2027-04-04 03:00 AEDT → 02:00 AEST.
        ("Australia/Sydney", "04-04", "02:30", _utc(2027, 4, 3, 15, 30), _utc(2027, 4, 3, 16, 30)),
        # 2027-04-04 03:00 ACDT (+10:30) → 02:00 ACST (+09:30).
        ("Australia/Adelaide", "04-04", "02:30", _utc(2027, 4, 3, 16, 0), _utc(2027, 4, 3, 17, 0)),
    ],
)
def test_a_repeated_wall_time_fires_at_its_first_occurrence(
    zone: str, month_day: str, clock: str, first: datetime, second: datetime
) -> None:
    fire = _fires(
        next_fire(Birthday(time_of_day=clock), date_value=month_day, zone=zone, now=MARCH_1)
    )
    assert fire.utc == first
    assert fire.local.strftime("%H:%M") == clock
    assert "occurs twice" in fire.notes[0]
    # Asked between the two occurrences, the first has passed: next year's, not the second one.
    between = next_fire(Birthday(time_of_day=clock), date_value=month_day, zone=zone, now=second)
    assert _fires(between).utc.year == 2028


def test_a_normal_day_has_no_note() -> None:
    fire = _fires(next_fire(Birthday(), date_value="03-14", zone="America/New_York", now=MARCH_1))
    assert fire.utc == _utc(2027, 3, 14, 13, 0)  # 09:00 EDT, the day the clocks moved
    assert fire.notes == ()
    assert fire.describe() == "2027-03-14 09:00 America/New_York (13:00 UTC)"


# --- Half-hour and quarter-hour zones ----------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "utc"),
    [
        ("Asia/Kolkata", _utc(2027, 6, 15, 3, 30)),  # +05:30
        ("Asia/Kathmandu", _utc(2027, 6, 15, 3, 15)),  # +05:45
        ("Australia/Eucla", _utc(2027, 6, 15, 0, 15)),  # +08:45
        ("America/St_Johns", _utc(2027, 6, 15, 11, 30)),  # -02:30 in summer
        ("Australia/Adelaide", _utc(2027, 6, 14, 23, 30)),  # +09:30 in its winter
    ],
)
def test_fractional_hour_zones_keep_their_minutes(zone: str, utc: datetime) -> None:
    trigger = RecurringDate(field="renewal", time_of_day="09:00")
    fire = _fires(next_fire(trigger, date_value="2019-06-15", zone=zone, now=MARCH_1))
    assert fire.utc == utc
    assert fire.local.strftime("%Y-%m-%d %H:%M") == "2027-06-15 09:00"


# --- Offsets across a month and a year -------------------------------------------------------


def test_an_offset_crosses_a_month_and_counts_leap_days() -> None:
    trigger = RecurringDate(field="renewal", offset_days=-5, time_of_day="10:00")
    in_2027 = _fires(next_fire(trigger, date_value="03-02", zone="Europe/Paris", now=MARCH_1))
    assert in_2027.local.date() == date(2028, 2, 26)  # 2027's (25 Feb) is already past
    january = _utc(2027, 1, 10)
    early = _fires(next_fire(trigger, date_value="03-02", zone="Europe/Paris", now=january))
    assert early.local.date() == date(2027, 2, 25)
    assert early.utc == _utc(2027, 2, 25, 9, 0)
    forward = RecurringDate(field="renewal", offset_days=5)
    assert _fires(
        next_fire(forward, date_value="01-29", zone="Europe/Paris", now=january)
    ).local.date() == date(2027, 2, 3)


def test_a_negative_offset_crosses_into_the_previous_year() -> None:
    # A week before a 3 January birthday is 27 December of the year before.
    trigger = Birthday(offset_days=-7, time_of_day="09:00")
    december = _utc(2027, 12, 1)
    fire = _fires(next_fire(trigger, date_value="01-03", zone="Asia/Kathmandu", now=december))
    assert fire.utc == _utc(2027, 12, 27, 3, 15)
    after = _utc(2027, 12, 28)
    later = _fires(next_fire(trigger, date_value="01-03", zone="Asia/Kathmandu", now=after))
    assert later.local.date() == date(2028, 12, 27)


def test_a_positive_offset_crosses_into_the_next_year() -> None:
    # Five days after 30 December: 4 January, still due from last year's date on 2 January.
    trigger = RecurringDate(field="renewal", offset_days=5, time_of_day="08:00")
    fire = _fires(
        next_fire(trigger, date_value="12-30", zone="America/New_York", now=_utc(2028, 1, 2))
    )
    assert fire.utc == _utc(2028, 1, 4, 13, 0)
    once = SpecificDate(field="renewal", offset_days=3, time_of_day="08:00")
    one_shot = _fires(
        next_fire(once, date_value="2027-12-30", zone="America/New_York", now=MARCH_1)
    )
    assert one_shot.utc == _utc(2028, 1, 2, 13, 0)


# --- 29 February and yearly re-arming ---------------------------------------------------------


def test_29_february_fires_on_the_28th_in_2027_and_the_29th_in_2028() -> None:
    trigger = Birthday(time_of_day="09:00")
    first = _fires(
        next_fire(trigger, date_value="1996-02-29", zone="Europe/Paris", now=_utc(2027, 1, 1))
    )
    assert first.utc == _utc(2027, 2, 28, 8, 0)
    assert first.notes == ("29 February falls on 28 February in 2027 (not a leap year)",)
    second = _fires(fire_after(trigger, date_value="02-29", zone="Europe/Paris", fired=first.utc))
    assert second.utc == _utc(2028, 2, 29, 8, 0)
    assert second.notes == ()
    third = _fires(fire_after(trigger, date_value="02-29", zone="Europe/Paris", fired=second.utc))
    assert third.local.date() == date(2029, 2, 28)


def test_a_yearly_moment_passed_this_year_arms_for_next_year() -> None:
    trigger = Birthday(time_of_day="09:00")  # 09:00 in Paris is 08:00 UTC on 14 March 2027
    due = _utc(2027, 3, 14, 8, 0)
    before = next_fire(trigger, date_value="03-14", zone="Europe/Paris", now=_utc(2027, 3, 14, 7))
    assert _fires(before).utc == due
    assert _fires(next_fire(trigger, date_value="03-14", zone="Europe/Paris", now=due)).utc == due
    passed = next_fire(trigger, date_value="03-14", zone="Europe/Paris", now=_utc(2027, 3, 14, 9))
    assert _fires(passed).utc == _utc(2028, 3, 14, 8, 0)


def test_fire_after_is_strictly_after_the_fire_just_done() -> None:
    trigger = RecurringDate(field="renewal", time_of_day="09:00")
    fired = _utc(2027, 3, 14, 8, 0)
    again = fire_after(trigger, date_value="03-14", zone="Europe/Paris", fired=fired)
    assert _fires(again).utc == _utc(2028, 3, 14, 8, 0)


# --- One-shot triggers ------------------------------------------------------------------------


def test_a_specific_date_in_the_past_is_not_armed() -> None:
    trigger = SpecificDate(field="webinar", time_of_day="18:00")
    passed = next_fire(trigger, date_value="2027-02-28", zone="Europe/Paris", now=MARCH_1)
    assert isinstance(passed, NoFire)
    assert passed.code == "passed"
    assert "2027-02-28 18:00 Europe/Paris" in passed.message
    ahead = _fires(next_fire(trigger, date_value="2027-03-01", zone="Europe/Paris", now=MARCH_1))
    assert ahead.utc == _utc(2027, 3, 1, 17, 0)
    done = fire_after(trigger, date_value="2027-03-01", zone="Europe/Paris", fired=ahead.utc)
    assert isinstance(done, NoFire)
    assert done.code == "one_shot"


def test_signup_date_fires_on_each_anniversary_of_the_local_signup_day() -> None:
    trigger = SignupDate(offset_days=2, time_of_day="09:00")
    # 03:00 UTC on 1 March is still 28 February, 22:00 in New York: two days later is 2 March.
    signup = _utc(2027, 3, 1, 3, 0)
    fire = _fires(next_fire(trigger, date_value=signup, zone="America/New_York", now=signup))
    assert fire.utc == _utc(2027, 3, 2, 14, 0)
    # In Paris the same instant is already 1 March: the fire moves a day.
    paris = _fires(next_fire(trigger, date_value=signup, zone="Europe/Paris", now=signup))
    assert paris.utc == _utc(2027, 3, 3, 8, 0)
    # Every year after: the anniversary of 28 February (local), plus two days.
    again = _fires(fire_after(trigger, date_value=signup, zone="America/New_York", fired=fire.utc))
    assert again.utc == _utc(2028, 3, 1, 14, 0)  # 2028 is a leap year: 28 Feb + 2 = 1 March
    # A signup long ago fires on its next anniversary.
    old = _fires(next_fire(SignupDate(), date_value="2026-01-01", zone="Europe/Paris", now=MARCH_1))
    assert old.utc == _utc(2028, 1, 1, 8, 0)


# --- Zones, inputs, payloads ------------------------------------------------------------------


def test_a_contact_changing_zone_moves_the_same_date_to_another_instant() -> None:
    trigger = Birthday(time_of_day="09:00")
    paris = _fires(next_fire(trigger, date_value="07-01", zone="Europe/Paris", now=MARCH_1))
    tokyo = _fires(next_fire(trigger, date_value="07-01", zone="Asia/Tokyo", now=MARCH_1))
    assert paris.utc == _utc(2027, 7, 1, 7, 0)
    assert tokyo.utc == _utc(2027, 7, 1, 0, 0)
    assert paris.local.strftime("%m-%d %H:%M") == tokyo.local.strftime("%m-%d %H:%M")
    # Re-armed after the move with the time now past in Tokyo but not in Los Angeles: still today.
    moved = next_fire(
        trigger, date_value="07-01", zone="America/Los_Angeles", now=_utc(2027, 7, 1, 1, 0)
    )
    assert _fires(moved).utc == _utc(2027, 7, 1, 16, 0)


@pytest.mark.parametrize(
    ("trigger", "value", "code"),
    [
        (Birthday(), None, "no_date"),
        (Birthday(), "", "no_date"),
        (Birthday(), "13-01", "invalid_date"),
        (Birthday(), "02-30", "invalid_date"),
        (Birthday(), "soon", "invalid_date"),
        (RecurringDate(field="renewal"), 20270314, "invalid_date"),
        (SpecificDate(field="webinar"), "03-14", "invalid_date"),  # no year: not one day
        (SpecificDate(field="webinar"), "2027-02-29", "invalid_date"),
        (SpecificDate(field="webinar"), "20270314", "invalid_date"),
    ],
)
def test_a_missing_or_unreadable_date_says_why(
    trigger: SpecificDate | Birthday | RecurringDate, value: object, code: str
) -> None:
    result = next_fire(trigger, date_value=value, zone="Europe/Paris", now=MARCH_1)
    assert isinstance(result, NoFire)
    assert result.code == code
    if isinstance(trigger, SpecificDate):
        assert "`webinar`" in result.message


def test_a_field_holding_an_instant_counts_on_its_local_date() -> None:
    trigger = SpecificDate(field="webinar", time_of_day="18:00")
    instant = "2027-06-01T23:30:00+00:00"  # already 2 June in Paris
    assert _fires(
        next_fire(trigger, date_value=instant, zone="Europe/Paris", now=MARCH_1)
    ).local.date() == date(2027, 6, 2)
    written = "2027-06-01T23:30:00"  # no offset: a date as written
    assert _fires(
        next_fire(trigger, date_value=written, zone="Europe/Paris", now=MARCH_1)
    ).local.date() == date(2027, 6, 1)


def test_naive_now_and_unknown_zones_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_fire(Birthday(), date_value="03-14", zone="UTC", now=datetime(2027, 3, 1))
    with pytest.raises(ValueError, match="Mars/Olympus"):
        next_fire(Birthday(), date_value="03-14", zone="Mars/Olympus", now=MARCH_1)


def test_the_fire_instant_survives_a_workflow_payload_round_trip() -> None:
    fire = _fires(
        next_fire(Birthday(time_of_day="02:30"), date_value="03-14", zone="America/New_York",
                  now=MARCH_1)
    )  # fmt: skip
    back = FireAt.model_validate_json(fire.model_dump_json())
    assert back.utc == fire.utc
    assert _wall(back) == "2027-03-14T03:30-04:00"
    assert back.describe() == fire.describe() == "2027-03-14 03:30 America/New_York (07:30 UTC)"


def test_the_yearly_catalog_fact_matches_the_policy() -> None:
    yearly = {t for t, model in DATE_TRIGGER_MODELS.items() if model.yearly}
    assert yearly == {model.model_fields["type"].default for model in YEARLY_TRIGGERS}
    assert yearly == {"birthday", "recurring_date", "signup_date"}  # TRIGGERS.md

"""Local-time schedule math of the steps (quiet hours, wait_until): pure functions of an aware
`now`, a time zone and a rule. Date triggers have theirs in `journeys.domain.firing`.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo

from journeys.domain.flow import QuietHours
from journeys.domain.steps import WEEKDAYS, WaitUntil


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _at(day: date, clock: time, zone: tzinfo) -> datetime:
    return datetime.combine(day, clock, tzinfo=zone)


def quiet_until(now: datetime, quiet: QuietHours, zone: tzinfo) -> datetime | None:
    """The end of the quiet window `now` falls in (aware, local), or None if sends may go now.

    A window whose end is before its start spans midnight (e.g. 21:00–08:00).
    """
    local = now.astimezone(zone)
    start, end = _clock(quiet.start), _clock(quiet.end)
    clock = local.time().replace(tzinfo=None, second=0, microsecond=0)
    if start < end:
        inside = start <= clock < end
        end_day = local.date()
    else:
        inside = clock >= start or clock < end
        end_day = local.date() + timedelta(days=1) if clock >= start else local.date()
    return _at(end_day, end, zone) if inside else None


def parse_date(value: object) -> date | None:
    """A date from a field value (`YYYY-MM-DD`, or an ISO datetime); None if it is not one."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def wait_until(
    now: datetime, rule: WaitUntil, zone: tzinfo, field_value: object = None
) -> datetime:
    """The first instant at or after `now` that satisfies the rule (aware).

    Args:
        now: Aware current time.
        rule: The wait_until step.
        zone: The contact's (or audience's) time zone.
        field_value: The value of `rule.date_field`, when the rule waits for a date.

    Returns:
        `now` itself when the moment has already passed or the date field holds no date:
        waiting for a date that will never come would strand the contact.
    """
    local = now.astimezone(zone)
    clock = _clock(rule.time_of_day) if rule.time_of_day else None
    if rule.date_field is not None:
        day = parse_date(field_value)
        if day is None:
            return now
        target = _at(day + timedelta(days=rule.offset_days), clock or time(0, 0), zone)
        return max(target, now)
    allowed = set(rule.days or WEEKDAYS)
    for ahead in range(8):
        day = local.date() + timedelta(days=ahead)
        if WEEKDAYS[day.weekday()] not in allowed:
            continue
        if clock is None:
            return now if ahead == 0 else _at(day, time(0, 0), zone)
        candidate = _at(day, clock, zone)
        if candidate >= local:
            return candidate
    raise AssertionError("a week always holds an allowed day")  # pragma: no cover

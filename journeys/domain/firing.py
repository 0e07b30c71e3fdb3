"""When a date trigger fires: the local-time policy of the four date triggers.

`specific_date`, `signup_date`, `birthday` and `recurring_date` fire at `time_of_day` on a day
derived from a date the contact holds, shifted by `offset_days`, in the contact's zone (else the
audience's: the caller picks). Everything here is a pure function of its arguments (no I/O, no
clock, no randomness), so the contact-flow workflow computes its timer with it inside the sandbox,
where zoneinfo lookups are allowed, and `journeys schedule next` previews the very same instant.

The policy:
- `offset_days` is plain calendar arithmetic on the local date: it may cross a month or a year.
- A wall time that does not exist (the hour the clocks skip) fires as if they had not moved yet:
  02:30 on a spring-forward night is 03:30 local. A wall time that occurs twice (the hour the clocks
  repeat) fires at its first occurrence. Both are Python's `fold=0` (PEP 495).
- Yearly triggers (`birthday`, `recurring_date`, and `signup_date`: the anniversary of the day
  the contact joined, as TRIGGERS.md says) fire every year on the month/day; 29 February
  fires on 28 February in non-leap years. A moment already passed this year arms for next year.
- The one-shot trigger (`specific_date`) whose moment has passed does not arm: the answer is a
  `NoFire` with the reason.
- A date value that is an instant (an aware datetime, e.g. the signup time) counts on its local
  date in the zone; a plain date (`YYYY-MM-DD`, `MM-DD`) counts as written.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict

from journeys.domain.triggers import Birthday, RecurringDate, SignupDate, SpecificDate

DateTrigger: TypeAlias = SpecificDate | SignupDate | Birthday | RecurringDate
"""The triggers whose moment this module computes."""

DATE_TRIGGER_MODELS: dict[str, type[DateTrigger]] = {
    "specific_date": SpecificDate,
    "signup_date": SignupDate,
    "birthday": Birthday,
    "recurring_date": RecurringDate,
}
YEARLY_TRIGGERS = (Birthday, RecurringDate, SignupDate)
"""The date triggers that fire every year (their `yearly` catalog fact); the others fire once."""

_FULL_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_MONTH_DAY = re.compile(r"^(\d{2})-(\d{2})$")
# |offset_days| ≤ 365 and a zone moves the local year by at most one, so the anniversary whose
# shifted day lands next is within three years of the bound's own year.
_YEARS_AROUND = 3


class FireAt(BaseModel):
    """The instant a date trigger fires.

    Attributes:
        utc: The instant, in UTC.
        local: The same instant on the wall clock of `zone` (what the contact's clock shows).
        zone: The IANA zone the time of day was read in.
        notes: Why the wall time differs from what was asked, if it does (skipped or repeated
            hour, 29 February in a non-leap year), in words for the run's details.
    """

    model_config = ConfigDict(frozen=True)

    utc: AwareDatetime
    local: AwareDatetime
    zone: str
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        """The moment in words, e.g. `2027-03-14 09:00 America/New_York (13:00 UTC)`."""
        utc = self.utc.astimezone(UTC)
        same_day = utc.date() == self.local.date()
        at_utc = f"{utc:%H:%M}" if same_day else f"{utc:%Y-%m-%d %H:%M}"
        return f"{self.local:%Y-%m-%d %H:%M} {self.zone} ({at_utc} UTC)"


NoFireCode = Literal["passed", "no_date", "invalid_date", "one_shot", "out_of_range"]


class NoFire(BaseModel):
    """Why a date trigger will not fire for this contact.

    Attributes:
        code: `passed` (a one-shot moment is in the past), `no_date` (the contact holds no date),
            `invalid_date` (what it holds is not a date), `one_shot` (no occurrence after the
            first), `out_of_range` (beyond the calendar: year 9999).
        message: The reason in words, naming the date or field.
    """

    model_config = ConfigDict(frozen=True)

    code: NoFireCode
    message: str


def next_fire(
    trigger: DateTrigger, *, date_value: object, zone: str, now: datetime
) -> FireAt | NoFire:
    """The first moment at or after `now` when the trigger fires for this contact.

    Args:
        trigger: The flow's date trigger (its `offset_days` and `time_of_day` apply).
        date_value: The contact's date: for `birthday` and `recurring_date` `MM-DD` or
            `YYYY-MM-DD` (only month and day count); for `specific_date` the field's
            `YYYY-MM-DD`; for `signup_date` the signup time. A `date`, an aware `datetime` or
            an ISO string; None or `""` when the contact has none.
        zone: IANA name of the contact's zone, else the audience's.
        now: Aware current time (`workflow.now()` in a workflow).

    Returns:
        The fire instant, or why there is none.

    Raises:
        ValueError: `now` is naive, or `zone` is not a known IANA zone.
    """
    return _fire(trigger, date_value=date_value, zone=zone, bound=_aware(now, "now"), after=False)


def fire_after(
    trigger: DateTrigger, *, date_value: object, zone: str, fired: datetime
) -> FireAt | NoFire:
    """The next moment strictly after a fire instant: where a yearly run re-arms once it fired.

    Args:
        trigger: The flow's date trigger.
        date_value: The contact's date, as for `next_fire` (it may have changed since).
        zone: IANA name of the contact's zone, else the audience's (it may have changed too).
        fired: Aware instant of the fire just done.

    Returns:
        Next year's instant for yearly triggers; `NoFire(code="one_shot")` for one-shot ones.

    Raises:
        ValueError: `fired` is naive, or `zone` is not a known IANA zone.
    """
    bound = _aware(fired, "fired")
    if not isinstance(trigger, YEARLY_TRIGGERS):
        return NoFire(code="one_shot", message=f"{trigger.type} fires once: it does not re-arm")
    return _fire(trigger, date_value=date_value, zone=zone, bound=bound, after=True)


def _fire(
    trigger: DateTrigger, *, date_value: object, zone: str, bound: datetime, after: bool
) -> FireAt | NoFire:
    tz = _zone(zone)
    clock = time(int(trigger.time_of_day[:2]), int(trigger.time_of_day[3:]))
    what = _what(trigger)
    if date_value is None or date_value == "":
        return NoFire(code="no_date", message=f"the contact has no {what}")
    if isinstance(trigger, YEARLY_TRIGGERS):
        month_day = _month_day(date_value, tz)
        if month_day is None:
            return _invalid(date_value, what, "MM-DD or YYYY-MM-DD")
        return _yearly(month_day, trigger.offset_days, clock, tz, bound=bound, after=after)
    day = _full_date(date_value, tz)
    if day is None:
        return _invalid(date_value, what, "YYYY-MM-DD")
    try:
        fire = _at(day + timedelta(days=trigger.offset_days), clock, tz)
    except OverflowError:
        return NoFire(code="out_of_range", message=f"{what} {day} is beyond the calendar")
    if fire.utc < bound:
        return NoFire(code="passed", message=f"{fire.describe()} has passed")
    return fire


def _yearly(
    month_day: tuple[int, int],
    offset_days: int,
    clock: time,
    tz: ZoneInfo,
    *,
    bound: datetime,
    after: bool,
) -> FireAt | NoFire:
    month, day = month_day
    this_year = bound.year  # not converted: at the calendar's ends the conversion overflows
    # Candidates rise with the year, so the first one not before the bound is the next.
    for year in range(this_year - _YEARS_AROUND, this_year + _YEARS_AROUND + 1):
        try:
            anniversary, moved = _anniversary(year, month, day)
            fire = _at(anniversary + timedelta(days=offset_days), clock, tz)
        except (OverflowError, ValueError):  # before year 1 or after 9999
            continue
        if fire.utc > bound or (fire.utc == bound and not after):
            if moved:
                note = f"29 February falls on 28 February in {year} (not a leap year)"
                return fire.model_copy(update={"notes": (note, *fire.notes)})
            return fire
    return NoFire(code="out_of_range", message="the next occurrence is beyond the calendar")


def _anniversary(year: int, month: int, day: int) -> tuple[date, bool]:
    """The month/day in `year`, and whether 29 February had to move to the 28th."""
    if (month, day) == (2, 29) and not calendar.isleap(year):
        return date(year, 2, 28), True
    return date(year, month, day), False


def _at(day: date, clock: time, tz: ZoneInfo) -> FireAt:
    """`clock` on `day` in `tz`, with the gap and fold policy of this module."""
    wall = datetime.combine(day, clock, tzinfo=tz)  # fold=0: the offset before any transition
    utc = wall.astimezone(UTC)
    local = utc.astimezone(tz)
    notes: tuple[str, ...] = ()
    if local.replace(tzinfo=None) != wall.replace(tzinfo=None):
        notes = (
            f"{clock:%H:%M} does not exist on {day} in {tz.key} (the clocks go forward):"
            f" fires at {local:%H:%M}",
        )
    elif wall.replace(fold=1).utcoffset() != wall.utcoffset():
        notes = (
            f"{clock:%H:%M} occurs twice on {day} in {tz.key} (the clocks go back):"
            " fires at the first",
        )
    return FireAt(utc=utc, local=local, zone=tz.key, notes=notes)


def _what(trigger: DateTrigger) -> str:
    if isinstance(trigger, SpecificDate | RecurringDate):
        return f"date in field `{trigger.field}`"
    if isinstance(trigger, SignupDate):
        return "signup date"
    return "birthday"


def _invalid(value: object, what: str, forms: str) -> NoFire:
    return NoFire(code="invalid_date", message=f"{what} {value!r} is not a date (use {forms})")


def _month_day(value: object, tz: ZoneInfo) -> tuple[int, int] | None:
    """Month and day of a yearly date (`MM-DD`, or any full date), or None."""
    if isinstance(value, str) and (match := _MONTH_DAY.match(value)):
        month, day = int(match[1]), int(match[2])
        try:
            date(2000, month, day)  # a leap year: 02-29 is a real birthday
        except ValueError:
            return None
        return month, day
    full = _full_date(value, tz)
    return None if full is None else (full.month, full.day)


def _full_date(value: object, tz: ZoneInfo) -> date | None:
    """A calendar date from a date, an instant (its local date) or an ISO string, or None."""
    if isinstance(value, datetime):
        return value.astimezone(tz).date() if value.tzinfo is not None else value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        return None
    try:
        if _FULL_DATE.match(value):
            return date.fromisoformat(value)
        if len(value) > 10 and _FULL_DATE.match(value[:10]) and value[10] in "T ":
            return _full_date(datetime.fromisoformat(value), tz)
    except ValueError:
        return None
    return None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"`{name}` must be an aware datetime")
    return moment

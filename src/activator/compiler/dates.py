"""Dates and windows of segment conditions, resolved against the run's as-of time.

Everything here is plain Python on the one clock (``as_of``) and the workspace time zone; the
results are constants that the compiler turns into literals, so the SQL never calls ``now()``.
"""

from __future__ import annotations

__all__ = [
    "Bounds",
    "Moment",
    "add_months",
    "day_start",
    "last_start",
    "parse_date_value",
    "parse_window_last",
    "window_bounds",
]

import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

_RELATIVE = re.compile(r"^(\d+)\s+(day|week|month|year)s?\s+ago$")
_LAST = re.compile(r"^(\d+)([hdwmy])$")


@dataclass(frozen=True)
class Moment:
    """A resolved date value: a whole day (``day``) or an instant (``instant``, aware UTC)."""

    day: date | None = None
    instant: datetime | None = None

    def start(self, zone: ZoneInfo) -> datetime:
        """The first instant the value covers (UTC)."""
        if self.instant is not None:
            return self.instant
        assert self.day is not None
        return day_start(self.day, zone)

    def end_exclusive(self, zone: ZoneInfo) -> datetime | None:
        """For a day, the start of the next day (UTC); None for an instant."""
        if self.day is None:
            return None
        return day_start(self.day + timedelta(days=1), zone)


@dataclass(frozen=True)
class Bounds:
    """A time interval on instants (aware, UTC); ``None`` means unbounded on that side."""

    lower: datetime | None
    lower_inclusive: bool
    upper: datetime | None
    upper_inclusive: bool


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """Midnight at the start of ``day`` in ``zone``, as an aware UTC datetime."""
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` moved by whole calendar months; the day is clamped (31 March − 1m = 28/29 Feb)."""
    total = moment.year * 12 + (moment.month - 1) + months
    year, month = divmod(total, 12)
    day = min(moment.day, monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def _local_shift(as_of: datetime, zone: ZoneInfo, *, days: int = 0, months: int = 0) -> datetime:
    # Days, weeks, months and years move the local wall time (so "90 days ago" is the same
    # clock time on the calendar, whatever daylight saving did in between); hours do not.
    local = as_of.astimezone(zone).replace(tzinfo=None)
    shifted = add_months(local, months) - timedelta(days=days)
    return shifted.replace(tzinfo=zone).astimezone(UTC)


def parse_window_last(text: str) -> tuple[int, str]:
    """``90d`` → ``(90, 'd')``.

    Raises:
        ValueError: not ``N`` followed by one of ``h d w m y``.
    """
    found = _LAST.match(text.strip())
    if not found:
        raise ValueError(f"{text!r} is not a window length; use e.g. 48h, 90d, 12w, 6m, 1y")
    return int(found.group(1)), found.group(2)


def last_start(text: str, as_of: datetime, zone: ZoneInfo) -> datetime:
    """The (exclusive) start of the window ``last: text`` ending at ``as_of``."""
    amount, unit = parse_window_last(text)
    if unit == "h":
        return as_of - timedelta(hours=amount)
    if unit == "d":
        return _local_shift(as_of, zone, days=amount)
    if unit == "w":
        return _local_shift(as_of, zone, days=7 * amount)
    if unit == "m":
        return _local_shift(as_of, zone, months=-amount)
    return _local_shift(as_of, zone, months=-12 * amount)


def window_bounds(
    last: str | None,
    between: tuple[date, date] | None,
    as_of: datetime,
    zone: ZoneInfo,
) -> Bounds:
    """The interval of a window, capped at ``as_of`` (events after it never count).

    ``last: N<unit>`` is ``(as_of − N units, as_of]``; ``between: [d1, d2]`` covers both days
    whole, from the start of ``d1`` to the end of ``d2`` in the workspace time zone. No window
    is everything up to ``as_of``.
    """
    if last is not None:
        return Bounds(last_start(last, as_of, zone), False, as_of, True)
    if between is not None:
        first, final = between
        upper = day_start(final + timedelta(days=1), zone)
        if upper <= as_of:
            return Bounds(day_start(first, zone), True, upper, False)
        return Bounds(day_start(first, zone), True, as_of, True)
    return Bounds(None, False, as_of, True)


def parse_date_value(value: Any, as_of: datetime, zone: ZoneInfo) -> Moment:
    """Resolve a date value of an attribute condition.

    Accepted: a date (``2026-03-01``), a timestamp (``2026-03-01T09:30``, without an offset
    meaning the workspace time zone), ``now`` (the as-of instant), and whole days relative to
    the as-of date in the workspace time zone: ``today``, ``yesterday``, ``start of day`` (the
    same as ``today``: a day value is compared from its start), ``N days ago``,
    ``N weeks ago``, ``N months ago``, ``N years ago``.

    Raises:
        ValueError: the value is none of those.
    """
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=zone)
        return Moment(instant=moment.astimezone(UTC))
    if isinstance(value, date):
        return Moment(day=value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a date; use 2026-03-01, 'today' or '30 days ago'")
    text = " ".join(value.strip().lower().split())
    today = as_of.astimezone(zone).date()
    if text == "now":
        return Moment(instant=as_of)
    if text in ("today", "start of day"):
        return Moment(day=today)
    if text == "yesterday":
        return Moment(day=today - timedelta(days=1))
    relative = _RELATIVE.match(text)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        if unit == "day":
            return Moment(day=today - timedelta(days=amount))
        if unit == "week":
            return Moment(day=today - timedelta(days=7 * amount))
        local = datetime(today.year, today.month, today.day)
        months = amount if unit == "month" else 12 * amount
        return Moment(day=add_months(local, -months).date())
    try:
        if len(value.strip()) == 10:
            return Moment(day=date.fromisoformat(value.strip()))
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{value!r} is not a date; use 2026-03-01, 2026-03-01T09:30, 'today', "
            "'N days ago', 'N weeks ago', 'N months ago' or 'N years ago'"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return Moment(instant=parsed.astimezone(UTC))

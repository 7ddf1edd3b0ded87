"""Relative dates and windows, resolved against the as-of time in the workspace zone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from activator.compiler.dates import (
    Moment,
    add_months,
    parse_date_value,
    window_bounds,
)

PARIS = ZoneInfo("Europe/Paris")


def test_months_are_calendar_months_clamped_to_the_month_end() -> None:
    assert add_months(datetime(2026, 3, 31, 9), -1) == datetime(2026, 2, 28, 9)
    assert add_months(datetime(2024, 3, 31), -1) == datetime(2024, 2, 29)
    assert add_months(datetime(2026, 1, 15), -13) == datetime(2024, 12, 15)


def test_last_days_keep_the_wall_clock_across_daylight_saving() -> None:
    # Paris moved to summer time on 2026-03-29: 7 days before 2026-04-01 12:00 local is
    # 2026-03-25 12:00 local, which is 11:00 UTC, not 10:00.
    as_of = datetime(2026, 4, 1, 10, tzinfo=UTC)  # 12:00 in Paris
    bounds = window_bounds("7d", None, as_of, PARIS)
    assert bounds.lower == datetime(2026, 3, 25, 11, tzinfo=UTC)
    assert (bounds.lower_inclusive, bounds.upper, bounds.upper_inclusive) == (False, as_of, True)
    # Hours are exact durations.
    assert window_bounds("48h", None, as_of, PARIS).lower == datetime(2026, 3, 30, 10, tzinfo=UTC)


def test_between_covers_whole_days_and_stops_at_as_of() -> None:
    as_of = datetime(2026, 3, 15, 12, tzinfo=UTC)
    past = window_bounds(None, (date(2026, 1, 1), date(2026, 1, 31)), as_of, PARIS)
    assert (past.lower, past.lower_inclusive) == (datetime(2025, 12, 31, 23, tzinfo=UTC), True)
    assert (past.upper, past.upper_inclusive) == (datetime(2026, 1, 31, 23, tzinfo=UTC), False)
    running = window_bounds(None, (date(2026, 3, 1), date(2026, 3, 31)), as_of, PARIS)
    assert (running.upper, running.upper_inclusive) == (as_of, True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("today", Moment(day=date(2026, 3, 16))),  # 23:30 UTC is already the 16th in Paris
        ("Start of day", Moment(day=date(2026, 3, 16))),
        ("yesterday", Moment(day=date(2026, 3, 15))),
        ("3 days ago", Moment(day=date(2026, 3, 13))),
        ("2 weeks ago", Moment(day=date(2026, 3, 2))),
        ("1 month ago", Moment(day=date(2026, 2, 16))),
        ("2 years ago", Moment(day=date(2024, 3, 16))),
        ("now", Moment(instant=datetime(2026, 3, 15, 23, 30, tzinfo=UTC))),
        ("2026-01-02", Moment(day=date(2026, 1, 2))),
        ("2026-01-02T10:00", Moment(instant=datetime(2026, 1, 2, 9, tzinfo=UTC))),
        ("2026-01-02T10:00Z", Moment(instant=datetime(2026, 1, 2, 10, tzinfo=UTC))),
        (date(2026, 1, 2), Moment(day=date(2026, 1, 2))),
    ],
)
def test_date_values(value: object, expected: Moment) -> None:
    as_of = datetime(2026, 3, 15, 23, 30, tzinfo=UTC)
    assert parse_date_value(value, as_of, PARIS) == expected


@pytest.mark.parametrize("value", ["soon", "2026-02-31", "3 fortnights ago", 42, "-1 days ago"])
def test_invalid_date_values(value: object) -> None:
    with pytest.raises(ValueError, match="is not a date"):
        parse_date_value(value, datetime(2026, 3, 15, tzinfo=UTC), PARIS)

from datetime import UTC, date, datetime

import pytest

from activator.definitions.common import CronSchedule, OnceSchedule, RecurringSchedule
from activator.runtime.schedule import cron_of, next_run

NOON = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)  # a Sunday


@pytest.mark.parametrize(
    ("every", "cron"),
    [
        ("daily", "30 6 * * *"),
        ("weekly", "30 6 * * 1"),
        ("monthly", "30 6 1 * *"),
        ("quarterly", "30 6 1 1,4,7,10 *"),
        ("3h", "30 */3 * * *"),
        ("12h", "30 6,18 * * *"),
    ],
)
def test_recurrences_as_cron(every: str, cron: str) -> None:
    assert cron_of(RecurringSchedule(every=every, at="06:30")) == cron  # type: ignore[arg-type]


def test_next_weekly_run_in_a_time_zone() -> None:
    schedule = RecurringSchedule(every="weekly", at="06:00", timezone="America/New_York")
    # Monday 06:00 in New York is 11:00 UTC in November (EST, UTC-5).
    assert next_run(schedule, after=NOON, timezone="UTC") == datetime(
        2026, 11, 30, 11, 0, tzinfo=UTC
    )


def test_cron_uses_the_workspace_zone_when_none_given() -> None:
    schedule = CronSchedule(cron="0 2 * * *")
    assert next_run(schedule, after=NOON, timezone="Europe/Paris") == datetime(
        2026, 11, 30, 1, 0, tzinfo=UTC
    )


def test_start_and_end_dates() -> None:
    schedule = CronSchedule(cron="0 2 * * *", start=date(2026, 12, 5), end=date(2026, 12, 6))
    assert next_run(schedule, after=NOON, timezone="UTC") == datetime(2026, 12, 5, 2, tzinfo=UTC)
    after_end = datetime(2026, 12, 6, 3, tzinfo=UTC)
    assert next_run(schedule, after=after_end, timezone="UTC") is None


def test_once() -> None:
    assert next_run(OnceSchedule(), after=NOON, timezone="UTC") is None
    later = OnceSchedule(at=datetime(2026, 12, 1, 9, 0))
    assert next_run(later, after=NOON, timezone="UTC") == datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert next_run(later, after=datetime(2026, 12, 2, tzinfo=UTC), timezone="UTC") is None

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from activator.definitions.common import CronSchedule, OnceSchedule, RecurringSchedule
from activator.runtime.schedule import cron_of, next_run, slots, wall_to_utc

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
    assert cron_of(RecurringSchedule(every=every, at="06:30")) == cron


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


# -- daylight-saving time -------------------------------------------------------------------
# Europe/Paris: clocks jump 02:00 → 03:00 on 2027-03-28, and go back 03:00 → 02:00 on
# 2026-10-25. New York: 2027-03-14 and 2026-11-01.

PARIS = ZoneInfo("Europe/Paris")


def _local(instants: list[datetime], zone: ZoneInfo = PARIS) -> list[str]:
    return [i.astimezone(zone).strftime("%m-%d %H:%M%z") for i in instants]


def _slots(cron: str, after: datetime, until: datetime, zone: str = "Europe/Paris") -> list[str]:
    found = list(
        slots(CronSchedule(cron=cron, timezone=zone), after=after, until=until, timezone="UTC")
    )
    assert found == sorted(set(found))  # strictly increasing
    return _local(found, ZoneInfo(zone))


def test_a_time_that_does_not_exist_runs_once_at_the_next_valid_time() -> None:
    days = (datetime(2027, 3, 26, 12, tzinfo=UTC), datetime(2027, 3, 30, tzinfo=UTC))
    assert _slots("30 2 * * *", *days) == [
        "03-27 02:30+0100",
        "03-28 03:00+0200",  # 02:30 does not exist that night
        "03-29 02:30+0200",
    ]


def test_several_slots_in_one_gap_make_one_run() -> None:
    night = (datetime(2027, 3, 27, 12, tzinfo=UTC), datetime(2027, 3, 28, 12, tzinfo=UTC))
    assert _slots("*/20 2 * * *", *night) == ["03-28 03:00+0200"]
    # An hourly job skips nothing else: 01:00, then 03:00 (for 02:00), then 04:00.
    assert _slots("0 1-4 * * *", *night) == [
        "03-28 01:00+0100",
        "03-28 03:00+0200",
        "03-28 04:00+0200",
    ]


def test_a_time_that_happens_twice_runs_once_at_its_first_occurrence() -> None:
    days = (datetime(2026, 10, 24, 12, tzinfo=UTC), datetime(2026, 10, 26, 12, tzinfo=UTC))
    assert _slots("30 2 * * *", *days) == ["10-25 02:30+0200", "10-26 02:30+0100"]
    night = (datetime(2026, 10, 24, 22, tzinfo=UTC), datetime(2026, 10, 25, 3, tzinfo=UTC))
    assert _slots("0 * * * *", *night) == [
        "10-25 01:00+0200",
        "10-25 02:00+0200",  # not again at 02:00+0100
        "10-25 03:00+0100",
        "10-25 04:00+0100",
    ]


def test_a_tick_inside_the_repeated_hour_does_not_run_its_slots_again() -> None:
    # After the first 02:30 (00:30 UTC), from 02:40 CEST to 02:40 CET: nothing is due.
    after = datetime(2026, 10, 25, 0, 40, tzinfo=UTC)
    assert _slots("*/30 * * * *", after, after + timedelta(hours=1)) == []


def test_new_york_weekly_across_both_changes() -> None:
    schedule = RecurringSchedule(every="weekly", at="02:30", timezone="America/New_York")
    found = list(
        slots(
            schedule,
            after=datetime(2026, 10, 20, tzinfo=UTC),
            until=datetime(2027, 3, 20, tzinfo=UTC),
            timezone="UTC",
        )
    )
    local = [f.astimezone(ZoneInfo("America/New_York")) for f in found]
    assert all(t.strftime("%a") == "Mon" for t in local)
    assert all(t.strftime("%H:%M") == "02:30" for t in local)
    assert len(found) == 21


def test_wall_to_utc() -> None:
    assert wall_to_utc(datetime(2027, 3, 28, 2, 30), PARIS) == datetime(2027, 3, 28, 1, tzinfo=UTC)
    assert wall_to_utc(datetime(2026, 10, 25, 2, 30), PARIS) == datetime(
        2026, 10, 25, 0, 30, tzinfo=UTC
    )
    assert wall_to_utc(datetime(2026, 7, 1, 12), PARIS) == datetime(2026, 7, 1, 10, tzinfo=UTC)


def test_slots_respect_start_end_and_until() -> None:
    schedule = CronSchedule(cron="0 6 * * *", start=date(2026, 12, 1), end=date(2026, 12, 3))
    found = list(slots(schedule, after=NOON, timezone="UTC"))
    assert found == [datetime(2026, 12, d, 6, tzinfo=UTC) for d in (1, 2, 3)]
    until = datetime(2026, 12, 2, 6, tzinfo=UTC)
    assert list(slots(schedule, after=NOON, until=until, timezone="UTC")) == found[:2]

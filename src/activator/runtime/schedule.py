"""When an activation runs: the slots of its schedule, with the daylight-saving rules.

A schedule's slots are wall-clock times in its time zone (the schedule's own, else the
workspace's). Cron matches wall-clock times, so at daylight-saving changes:

* a slot that does not exist that day (02:30 when clocks jump from 02:00 to 03:00) runs once,
  at the first valid time after the gap (03:00); several slots inside one gap make one run;
* a slot that happens twice (01:30 when clocks go back from 02:00 to 01:00) runs once, at its
  first occurrence.

Slots are returned in UTC, strictly increasing.
"""

from __future__ import annotations

__all__ = ["cron_of", "next_run", "slots", "wall_to_utc"]

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from activator.definitions.common import CronSchedule, OnceSchedule, RecurringSchedule

_EVERY = {
    "3h": "{m} */3 * * *",
    "6h": "{m} */6 * * *",
    "12h": "{m} {h},{h12} * * *",
    "daily": "{m} {h} * * *",
    "weekly": "{m} {h} * * 1",  # Mondays, as in the reference products
    "monthly": "{m} {h} 1 * *",
    "quarterly": "{m} {h} 1 1,4,7,10 *",
}

AnySchedule = OnceSchedule | RecurringSchedule | CronSchedule


def cron_of(schedule: RecurringSchedule) -> str:
    """The five-field cron expression a recurring schedule stands for."""
    hours, minutes = (int(part) for part in schedule.at.split(":"))
    return _EVERY[schedule.every].format(m=minutes, h=hours, h12=(hours + 12) % 24)


def wall_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of a naive wall-clock time in ``zone``.

    A time that happens twice is its first occurrence; a time that does not exist (inside a
    spring-forward gap) is the first valid time after the gap.
    """
    local = wall.replace(tzinfo=zone, fold=0)
    if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
        return local.astimezone(UTC)
    # In a gap: walk forward a minute at a time to where the clock resumes (gaps are whole
    # minutes, at most a few hours).
    probe = wall.replace(second=0, microsecond=0)
    while True:
        probe += timedelta(minutes=1)
        local = probe.replace(tzinfo=zone, fold=0)
        if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == probe:
            return local.astimezone(UTC)


def slots(
    schedule: AnySchedule | None,
    *,
    after: datetime,
    timezone: str,
    until: datetime | None = None,
) -> Iterator[datetime]:
    """The schedule's slots strictly after ``after`` (UTC), up to ``until`` inclusive.

    Args:
        schedule: the activation's schedule; None or a once-schedule without a time has none.
        after: an aware time; slots at it or before are not returned.
        timezone: the workspace's time zone, used when the schedule names none.
        until: stop after this time (aware); None runs on for as long as the caller takes.
    """
    if schedule is None:
        return
    if isinstance(schedule, OnceSchedule):
        if schedule.at is None:
            return
        at = schedule.at if schedule.at.tzinfo else schedule.at.replace(tzinfo=ZoneInfo(timezone))
        at = at.astimezone(UTC)
        if at > after and (until is None or at <= until):
            yield at
        return
    zone = ZoneInfo(schedule.timezone or timezone)
    expression = schedule.cron if isinstance(schedule, CronSchedule) else cron_of(schedule)
    # Cron runs on naive wall-clock time; each match is then placed on the UTC line. Start an
    # hour early in wall time so that slots in a repeated hour after ``after`` are not missed.
    wall = after.astimezone(zone).replace(tzinfo=None) - timedelta(hours=1)
    if schedule.start is not None:
        wall = max(wall, datetime.combine(schedule.start, time.min) - timedelta(seconds=1))
    matches = croniter(expression, wall)
    last: datetime | None = None
    while True:
        found: datetime = matches.get_next(datetime)
        if schedule.end is not None and found.date() > schedule.end:
            return
        instant = wall_to_utc(found, zone)
        if until is not None and instant > until:
            return
        if instant <= after or (last is not None and instant <= last):
            continue  # before the window, or the second occurrence / same gap as the last
        last = instant
        yield instant


def next_run(
    schedule: AnySchedule | None,
    *,
    after: datetime,
    timezone: str,
) -> datetime | None:
    """The first scheduled time strictly after ``after`` (UTC), or None when none remains."""
    return next(slots(schedule, after=after, timezone=timezone), None)

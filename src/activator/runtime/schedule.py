"""When an activation runs next, from its schedule and an as-of time."""

from __future__ import annotations

__all__ = ["cron_of", "next_run"]

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


def cron_of(schedule: RecurringSchedule) -> str:
    """The five-field cron expression a recurring schedule stands for."""
    hours, minutes = (int(part) for part in schedule.at.split(":"))
    return _EVERY[schedule.every].format(m=minutes, h=hours, h12=(hours + 12) % 24)


def next_run(
    schedule: OnceSchedule | RecurringSchedule | CronSchedule | None,
    *,
    after: datetime,
    timezone: str,
) -> datetime | None:
    """The first scheduled time strictly after ``after`` (UTC), or None when none remains.

    Args:
        schedule: the activation's schedule; None or a once-schedule without a time means it
            runs only when launched.
        after: the as-of time (aware).
        timezone: the workspace's time zone, used when the schedule names none.
    """
    if schedule is None:
        return None
    if isinstance(schedule, OnceSchedule):
        if schedule.at is None:
            return None
        at = schedule.at if schedule.at.tzinfo else schedule.at.replace(tzinfo=ZoneInfo(timezone))
        return at.astimezone(UTC) if at > after else None
    zone = ZoneInfo(schedule.timezone or timezone)
    expression = schedule.cron if isinstance(schedule, CronSchedule) else cron_of(schedule)
    start = after.astimezone(zone)
    if schedule.start is not None:
        # croniter gives times strictly after its start: step back so midnight of the start
        # day itself can be the first slot.
        first = datetime.combine(schedule.start, time.min, zone) - timedelta(seconds=1)
        start = max(start, first)
    found: datetime = croniter(expression, start).get_next(datetime)
    if schedule.end is not None and found.date() > schedule.end:
        return None
    return found.astimezone(UTC)

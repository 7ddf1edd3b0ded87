"""The one clock: every run and every command that evaluates data has one as-of time.

Only the outermost layer (the CLI, the API, the scheduler) calls :func:`wall_clock`; everything
below receives the resulting as-of time as an argument, so tests, simulations and backtests are
exact and repeatable.
"""

from __future__ import annotations

__all__ = ["parse_as_of", "wall_clock"]

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from activator.errors import ConfigError


def wall_clock() -> datetime:
    """Now, in UTC. Call this only at the edge of the program."""
    return datetime.now(UTC)


def parse_as_of(value: str | None, *, timezone: str = "UTC") -> datetime:
    """Turn an ``--as-of`` value into an aware UTC datetime.

    Args:
        value: a date (``2026-03-01``, meaning the end of that day) or an ISO timestamp
            (``2026-03-01T09:30``, with or without an offset). ``None`` means now.
        timezone: the workspace time zone, used when the value carries no offset.

    Raises:
        ConfigError: the value is neither a date nor an ISO timestamp.
    """
    if value is None:
        return wall_clock()
    zone = ZoneInfo(timezone)
    text = value.strip()
    try:
        if len(text) == 10:
            # A bare date means "as of the end of that day", so the whole day's data counts.
            day = date.fromisoformat(text)
            return datetime.combine(day, time.max, zone).astimezone(UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--as-of: {value!r} is not a date or an ISO timestamp",
            hint="use 2026-03-01 or 2026-03-01T09:30:00+01:00",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)

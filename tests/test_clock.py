from datetime import UTC, datetime

import pytest

from activator.clock import parse_as_of
from activator.errors import ConfigError


def test_a_date_means_the_end_of_that_day_in_the_workspace_zone() -> None:
    moment = parse_as_of("2026-03-01", timezone="Europe/Paris")
    assert moment == datetime(2026, 3, 1, 22, 59, 59, 999999, tzinfo=UTC)


def test_timestamps_with_and_without_offset() -> None:
    assert parse_as_of("2026-03-01T09:30:00+01:00") == datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    assert parse_as_of("2026-03-01T09:30:00Z") == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    assert parse_as_of("2026-03-01T09:30", timezone="UTC") == datetime(
        2026, 3, 1, 9, 30, tzinfo=UTC
    )


def test_bad_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--as-of: 'yesterday' is not a date"):
        parse_as_of("yesterday")

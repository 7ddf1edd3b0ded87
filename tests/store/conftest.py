"""A metadata store on every supported database: SQLite in a temporary folder, and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from activator.store.store import MetadataStore


class FixedClock:
    """A clock that only moves when told to, so stored timestamps are exact."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 1, 9, 30, tzinfo=UTC))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a new, empty store; relative SQLite paths resolve against ``tmp_path``."""
    if request.param == "sqlite":
        return "sqlite:///.activator/metadata.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(store_url: str, tmp_path: Path, clock: FixedClock) -> Iterator[MetadataStore]:
    with MetadataStore.open(store_url, workspace_root=tmp_path, clock=clock) as opened:
        yield opened

"""Run history: one run per scheduled slot, last runs, aware UTC timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from activator.errors import StoreError
from activator.store.models import RunRow
from activator.store.store import MetadataStore, RunSlotTakenError
from tests.store.conftest import FixedClock

AS_OF = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SLOT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _count_runs(store: MetadataStore) -> int:
    with store.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(RunRow)).scalar_one()


def test_run_lifecycle_and_last_run(store: MetadataStore, clock: FixedClock) -> None:
    assert store.last_run("campaign", "weekly") is None
    run = store.create_run(
        kind="campaign", name="weekly", definition_version=2, trigger="manual", as_of=AS_OF
    )
    assert (run.status, run.created_at, run.counts, run.is_test) == ("queued", clock.now, {}, False)
    started = store.start_run(run.run_id)
    assert (started.status, started.started_at) == ("running", clock.now)
    finished_at = clock.advance(minutes=5)
    finished = store.finish_run(
        run.run_id,
        status="failed",
        counts={"customers": 10},
        error="bucket not found",
        error_kind="configuration",
    )
    assert store.last_run("campaign", "weekly") == finished
    assert (finished.status, finished.finished_at, finished.counts) == (
        "failed",
        finished_at,
        {"customers": 10},
    )
    assert (finished.error, finished.error_kind) == ("bucket not found", "configuration")
    with pytest.raises(StoreError, match="already finished"):
        store.finish_run(run.run_id, status="succeeded")


def test_last_run_is_the_newest_and_skips_test_runs(
    store: MetadataStore, clock: FixedClock
) -> None:
    store.create_run(kind="journey", name="j", definition_version=1, trigger="manual", as_of=AS_OF)
    clock.advance(hours=1)
    newest = store.create_run(
        kind="journey", name="j", definition_version=1, trigger="retry", as_of=AS_OF
    )
    clock.advance(hours=1)
    test_run = store.create_run(
        kind="journey", name="j", definition_version=1, trigger="manual", as_of=AS_OF, is_test=True
    )
    assert store.last_run("journey", "j") == newest
    assert store.last_run("journey", "j", include_tests=True) == test_run
    assert store.last_run("journey", "other") is None


def test_a_scheduled_slot_runs_at_most_once(store: MetadataStore) -> None:
    first = store.create_run(
        kind="campaign",
        name="weekly",
        definition_version=1,
        trigger="schedule",
        as_of=AS_OF,
        scheduled_for=SLOT,
    )
    with pytest.raises(RunSlotTakenError) as raised:
        store.create_run(
            kind="campaign",
            name="weekly",
            definition_version=1,
            trigger="schedule",
            as_of=AS_OF,
            scheduled_for=SLOT.astimezone(timezone(timedelta(hours=-5))),
        )
    assert raised.value.existing_run_id == first.run_id
    assert _count_runs(store) == 1
    # Another slot, another activation, and unscheduled runs are all free.
    store.create_run(
        kind="campaign",
        name="weekly",
        definition_version=1,
        trigger="schedule",
        as_of=AS_OF,
        scheduled_for=SLOT + timedelta(days=7),
    )
    store.create_run(
        kind="campaign",
        name="daily",
        definition_version=1,
        trigger="schedule",
        as_of=AS_OF,
        scheduled_for=SLOT,
    )
    for _ in range(2):
        store.create_run(
            kind="campaign", name="weekly", definition_version=1, trigger="manual", as_of=AS_OF
        )
    assert _count_runs(store) == 5


def test_run_timestamps_come_back_aware_utc(store: MetadataStore) -> None:
    plus_two = timezone(timedelta(hours=2))
    run = store.create_run(
        kind="orchestration",
        name="feed",
        definition_version=1,
        trigger="schedule",
        as_of=datetime(2026, 3, 1, 11, 0, tzinfo=plus_two),
        scheduled_for=datetime(2026, 3, 1, 12, 0, tzinfo=plus_two),
    )
    stored = store.get_run(run.run_id)
    assert stored is not None
    assert stored.as_of == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    assert stored.scheduled_for == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    for moment in (stored.as_of, stored.scheduled_for, stored.created_at):
        assert moment is not None
        assert moment.tzinfo is UTC


def test_naive_timestamps_are_refused(store: MetadataStore) -> None:
    with pytest.raises(StoreError, match="has no time zone"):
        store.create_run(
            kind="campaign",
            name="weekly",
            definition_version=1,
            trigger="manual",
            as_of=datetime(2026, 3, 1, 9, 0),
        )
    assert _count_runs(store) == 0


@pytest.mark.parametrize(
    ("status", "error_kind", "message"),
    [("running", None, "not a final status"), ("failed", "network", "unknown error kind")],
)
def test_finish_run_refuses_bad_values(
    store: MetadataStore, status: str, error_kind: str | None, message: str
) -> None:
    run = store.create_run(
        kind="campaign", name="weekly", definition_version=1, trigger="manual", as_of=AS_OF
    )
    with pytest.raises(StoreError, match=message):
        store.finish_run(run.run_id, status=status, error_kind=error_kind)
    assert store.get_run(run.run_id) == run


def test_unknown_run_is_an_error(store: MetadataStore) -> None:
    with pytest.raises(StoreError, match="no run nope"):
        store.start_run("nope")

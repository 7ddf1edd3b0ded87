"""What a run records while it works: leases, tasks, ledger units, rejected records, events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from activator.errors import StoreError
from activator.store import LedgerEntry, RunClaimedError
from activator.store.store import MetadataStore
from tests.store.conftest import FixedClock

AS_OF = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
TTL = timedelta(minutes=2)


def _run(store: MetadataStore) -> str:
    run = store.create_run(
        kind="orchestration", name="feed", definition_version=1, trigger="manual", as_of=AS_OF
    )
    return run.run_id


def test_a_live_lease_keeps_other_owners_out_until_it_lapses(
    store: MetadataStore, clock: FixedClock
) -> None:
    run_id = _run(store)
    store.claim_run(run_id, "host:1", TTL)
    summary = store.get_run(run_id)
    assert summary is not None
    assert summary.status == "running"
    with pytest.raises(RunClaimedError, match="host:1"):
        store.claim_run(run_id, "host:2", TTL)
    clock.advance(minutes=1)
    store.renew_lease(run_id, "host:1", TTL)
    clock.advance(minutes=1, seconds=59)
    with pytest.raises(RunClaimedError):
        store.claim_run(run_id, "host:2", TTL)  # renewed: still live
    clock.advance(seconds=1)
    store.claim_run(run_id, "host:2", TTL)  # lapsed: the owner is presumed dead
    with pytest.raises(RunClaimedError, match="lost"):
        store.renew_lease(run_id, "host:1", TTL)


def test_finished_runs_cannot_be_claimed_and_finishing_drops_the_lease(
    store: MetadataStore,
) -> None:
    run_id = _run(store)
    store.claim_run(run_id, "host:1", TTL)
    store.finish_run(run_id, status="failed", error="down", error_kind="platform")
    store.claim_run(run_id, "host:2", TTL)  # a failed run can be resumed by anyone
    store.finish_run(run_id, status="succeeded")
    with pytest.raises(StoreError, match="already finished"):
        store.claim_run(run_id, "host:3", TTL)


def test_tasks_keep_their_order_status_and_counts(store: MetadataStore, clock: FixedClock) -> None:
    run_id = _run(store)
    store.ensure_task(run_id, "deliver:feed", position=1, destination="feed")
    store.ensure_task(run_id, "evaluate", position=0)
    again = store.ensure_task(run_id, "evaluate", position=0)
    assert again.status == "queued"
    store.update_task(run_id, "evaluate", status="running")
    started = clock.now
    clock.advance(seconds=3)
    store.update_task(run_id, "evaluate", status="succeeded", counts={"rows": 5})
    tasks = store.tasks(run_id)
    assert [t.task for t in tasks] == ["evaluate", "deliver:feed"]
    assert tasks[0].counts == {"rows": 5}
    assert (tasks[0].started_at, tasks[0].finished_at) == (started, clock.now)
    assert tasks[1].destination == "feed"
    assert tasks[1].status == "queued"
    with pytest.raises(StoreError, match="no task"):
        store.update_task(run_id, "deliver:other", status="running")


def test_ledger_units_move_from_sending_to_delivered_and_can_be_forgotten(
    store: MetadataStore,
) -> None:
    run_id = _run(store)
    task = "deliver:feed"

    def entry(idx: int, state: str) -> LedgerEntry:
        return LedgerEntry(
            idx=idx,
            unit_id=f"{run_id}:{task}:{idx}",
            state=state,
            first_row=idx * 10,
            end_row=idx * 10 + 10,
            rows=10,
            rejected=0,
            detail={"files": [{"name": f"part-{idx}.csv"}]},
        )

    store.record_unit(run_id, task, entry(0, "sending"))
    store.record_unit(run_id, task, entry(0, "delivered"))
    store.record_unit(run_id, task, entry(1, "sending"))
    store.record_unit(run_id, task, entry(-1, "sending"))
    units = store.ledger(run_id, task)
    assert [(u.idx, u.state) for u in units] == [(-1, "sending"), (0, "delivered"), (1, "sending")]
    assert units[1].detail == {"files": [{"name": "part-0.csv"}]}
    store.forget_unit(run_id, task, 1)
    store.forget_unit(run_id, task, 0)  # delivered units are never forgotten
    assert [(u.idx, u.state) for u in store.ledger(run_id, task)] == [
        (-1, "sending"),
        (0, "delivered"),
    ]
    assert store.ledger(run_id, "deliver:other") == []


def test_rejected_records_are_kept_per_unit_and_marked_when_retried(
    store: MetadataStore,
) -> None:
    first, second = _run(store), _run(store)
    args = {"activation_kind": "orchestration", "activation": "feed", "destination": "hook"}
    store.add_rejected(
        first,
        "deliver:hook",
        "u0",
        records=[{"id": 1}, {"id": 2}],
        reasons=["400 a", "400 b"],
        **args,
    )
    # The same unit recorded again (a resumed attempt) replaces, never doubles.
    store.add_rejected(
        first,
        "deliver:hook",
        "u0",
        records=[{"id": 1}, {"id": 2}],
        reasons=["400 a", "400 b"],
        **args,
    )
    pending = store.rejected_records(
        activation=("orchestration", "feed", "hook"), pending_only=True
    )
    assert [(r.record, r.reason) for r in pending] == [({"id": 1}, "400 a"), ({"id": 2}, "400 b")]
    store.mark_retried([pending[0].id], second)
    left = store.rejected_records(activation=("orchestration", "feed", "hook"), pending_only=True)
    assert [r.record for r in left] == [{"id": 2}]
    assert len(store.rejected_records(run_id=first)) == 2
    assert store.rejected_records(run_id=second) == []


def test_events_are_read_in_order_after_a_position(store: MetadataStore) -> None:
    run_id = _run(store)
    store.add_event(run_id, "evaluating")
    store.add_event(run_id, "unit delivered", task="deliver:feed", fields={"rows": 10})
    store.add_event(run_id, "retrying", level="warning", task="deliver:feed")
    events = store.events(run_id)
    assert [e.message for e in events] == ["evaluating", "unit delivered", "retrying"]
    assert events[1].fields == {"rows": 10}
    assert events[2].level == "warning"
    assert [e.message for e in store.events(run_id, after=events[0].id)] == [
        "unit delivered",
        "retrying",
    ]

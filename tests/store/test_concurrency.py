"""Several processes share one store: first use migrates once, a slot still runs once."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from threading import Barrier
from typing import TypeVar

from activator.store.migrate import head_revision
from activator.store.store import DefinitionInput, MetadataStore, RunSlotTakenError, RunSummary

T = TypeVar("T")
WORKERS = 6
SLOT = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def _at_once(work: Callable[[], T]) -> list[T | BaseException]:
    """Run ``work`` in several threads released together; return results or exceptions."""
    barrier = Barrier(WORKERS)

    def attempt() -> T | BaseException:
        barrier.wait()
        try:
            return work()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(lambda _: attempt(), range(WORKERS)))


def test_stores_opened_at_once_migrate_once(store_url: str, tmp_path: Path) -> None:
    def open_and_read() -> str:
        # Each thread is its own "process": its own engine and connection pool.
        with MetadataStore.open(store_url, workspace_root=tmp_path) as store:
            return store.revision()

    assert _at_once(open_and_read) == [head_revision()] * WORKERS


def test_concurrent_runs_for_one_slot_make_one_run(store_url: str, tmp_path: Path) -> None:
    MetadataStore.open(store_url, workspace_root=tmp_path).close()

    def create() -> RunSummary:
        with MetadataStore.open(store_url, workspace_root=tmp_path) as store:
            return store.create_run(
                kind="campaign",
                name="weekly",
                definition_version=1,
                trigger="schedule",
                as_of=SLOT,
                scheduled_for=SLOT,
            )

    outcomes = _at_once(create)
    created = [o for o in outcomes if isinstance(o, RunSummary)]
    taken = [o for o in outcomes if isinstance(o, RunSlotTakenError)]
    assert len(created) == 1, outcomes
    assert len(taken) == WORKERS - 1, outcomes
    assert {t.existing_run_id for t in taken} == {created[0].run_id}


def test_concurrent_applies_make_consecutive_versions(store_url: str, tmp_path: Path) -> None:
    MetadataStore.open(store_url, workspace_root=tmp_path).close()
    counter = iter(range(WORKERS))

    def apply() -> int:
        spec = {"n": next(counter)}
        with MetadataStore.open(store_url, workspace_root=tmp_path) as store:
            [result] = store.apply([DefinitionInput("segment", "s", spec, "api")])
            return result.version

    outcomes = _at_once(apply)
    assert sorted(o for o in outcomes if isinstance(o, int)) == list(range(1, WORKERS + 1)), (
        outcomes
    )

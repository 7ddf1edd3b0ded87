"""The run executor: the snapshot streamed in bounded sort windows, every row once, in order."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import ibis
import pytest

from activator.definitions.config import DuckDBEngineConfig
from activator.definitions.files import FileDestination
from activator.destinations.files import FileConnector
from activator.destinations.secrets import SecretResolver
from activator.engines.registry import open_engine
from activator.runtime.runner import DeliveryPlan, RunExecutor, RunPlan
from activator.store import MetadataStore

ROWS = 2_345


@pytest.mark.parametrize(("window", "split"), [(1_000, 300), (700, 1000), (10_000, 7)])
def test_the_snapshot_streams_in_windows_every_row_once_in_order(
    tmp_path: Path, window: int, split: int
) -> None:
    engine = open_engine(
        DuckDBEngineConfig(type="duckdb", path="shop.duckdb"),
        workspace_root=tmp_path,
        dataplane_schema="activator",
    )
    definition = FileDestination.model_validate(
        {"name": "drop", "type": "local", "path": "out", "filename": "feed_{part}",
         "format": {"type": "ndjson"}, "split": {"rows": split}}
    )  # fmt: skip
    connector = FileConnector(definition, SecretResolver(tmp_path, {}), tmp_path)
    plan = RunPlan(
        # Shuffled on purpose: the snapshot numbers rows as they come, and the stream must
        # give them back in that order, window after window.
        rows=lambda e: ibis.memtable({"id": [(i * 7919) % ROWS for i in range(ROWS)]}),
        deliveries=[DeliveryPlan(destination="drop", connector=connector)],
    )
    with MetadataStore.open("sqlite:///meta.db", workspace_root=tmp_path) as store, engine:
        run = store.create_run(
            kind="orchestration",
            name="feed",
            definition_version=1,
            trigger="manual",
            as_of=datetime(2026, 3, 1, tzinfo=UTC),
        )
        executor = RunExecutor(
            store, engine, workspace_root=tmp_path, timezone="UTC", sort_window=window
        )
        done = executor.execute(run, plan)
        assert done.status == "succeeded", done.error
    ids: list[int] = []
    for part in sorted((tmp_path / "out").glob("feed_*.ndjson")):
        ids.extend(json.loads(line)["id"] for line in part.read_text().splitlines())
    assert ids == [(i * 7919) % ROWS for i in range(ROWS)]

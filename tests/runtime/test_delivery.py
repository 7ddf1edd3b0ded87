"""The runner loop for one deliver task: a stream cut short never passes for complete."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from activator.definitions.files import FileDestination
from activator.destinations.base import DeliveryContext
from activator.destinations.files import FileConnector
from activator.destinations.secrets import SecretResolver
from activator.errors import EngineError
from activator.runtime.delivery import deliver_task
from tests.fixtures.ledger import MemoryLedger, table_source


def _connector(tmp_path: Path) -> FileConnector:
    definition = FileDestination.model_validate(
        {"name": "drop", "type": "local", "path": "out", "filename": "feed_{part}",
         "split": {"rows": 100}}
    )  # fmt: skip
    return FileConnector(definition, SecretResolver(tmp_path, {}), tmp_path)


def _context(tmp_path: Path) -> DeliveryContext:
    return DeliveryContext(
        run_id="r1",
        task="deliver:drop",
        as_of=datetime(2026, 3, 1, tzinfo=UTC),
        timezone="UTC",
        activation_kind="orchestration",
        activation="feed",
        workspace_root=tmp_path,
    )


def test_a_stream_that_ends_early_fails_before_publishing(tmp_path: Path) -> None:
    table = pa.table({"id": list(range(1000))})
    full = table_source(table)

    def short(start: int, batch_rows: int) -> Iterator[pa.RecordBatch]:
        for batch in full(start, batch_rows):
            if batch.column("_seq")[0].as_py() >= 500:
                return  # the engine's stream stopped: no error, just no more rows
            yield batch

    ledger = MemoryLedger()
    with pytest.raises(EngineError, match="ended at row 500 of 1,000"):
        deliver_task(_connector(tmp_path), _context(tmp_path), ledger, short, expected_rows=1000)
    out = tmp_path / "out"
    assert not list(out.glob("*.manifest.json"))
    assert not list(out.glob("*.DONE"))
    # The parts delivered so far are kept, and a resume with the whole stream completes.
    assert len(ledger.units()) == 5
    result = deliver_task(
        _connector(tmp_path), _context(tmp_path), ledger, full, expected_rows=1000
    )
    assert result.resumed_from == 500
    assert result.rows == 1000
    assert (out / "feed.DONE").exists()

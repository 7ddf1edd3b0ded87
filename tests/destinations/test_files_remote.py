"""File drops on every remote store (S3, GCS, Azure Blob, SFTP) through the real servers:
parts, manifest and ``.DONE`` read back with independent readers, and a crash then resume."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from activator.destinations.base import DeliveryContext
from activator.destinations.files import FileConnector
from activator.destinations.filestores import FileStore, open_store
from activator.destinations.secrets import SecretResolver
from activator.runtime.delivery import deliver_task
from tests.fixtures.filestores import StoreServer
from tests.fixtures.ledger import MemoryLedger, SimulatedCrash, table_source

ROWS = 2_500


def _table() -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(ROWS), pa.int64()),
            "email": [f"c{i}@example.com" if i % 11 else None for i in range(ROWS)],
            "note": [f'say "hi", {i}\nbye' for i in range(ROWS)],
        }
    )


def _context(tmp_path: Path, run_id: str) -> DeliveryContext:
    return DeliveryContext(
        run_id=run_id,
        task="deliver:drop",
        as_of=datetime(2026, 3, 1, 8, 30, tzinfo=UTC),
        timezone="Europe/Paris",
        activation_kind="orchestration",
        activation="feed",
        names={"orchestration": "feed"},
        workspace_root=tmp_path,
    )


def _prefix(request: pytest.FixtureRequest) -> str:
    return "f-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:10]


def _setup(
    server: StoreServer, tmp_path: Path, prefix: str, **settings: object
) -> tuple[FileConnector, FileStore]:
    definition = server.destination(prefix=prefix, **settings)
    secrets = SecretResolver(tmp_path, environ=server.environ)
    return FileConnector(definition, secrets, tmp_path), open_store(definition, secrets, tmp_path)


def test_gzip_csv_parts_with_manifest_on_every_store(
    store_server: StoreServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    connector, store = _setup(
        store_server,
        tmp_path,
        _prefix(request),
        filename="{orchestration}_{run_time:%Y%m%d}_{part}",
        format={"type": "csv", "compression": "gzip"},
        split={"rows": 1000},
    )
    result = deliver_task(
        connector, _context(tmp_path, "run-1"), MemoryLedger(), table_source(_table())
    )
    assert result.rows == ROWS
    names = store.list()
    parts = sorted(n for n in names if n.endswith(".csv.gz"))
    assert parts == [f"feed_20260301_0000{i}.csv.gz" for i in (1, 2, 3)]
    assert "feed_20260301.DONE" in names
    assert not [n for n in names if n.split("/")[-1].startswith(".")]
    manifest = json.loads(store.read_bytes("feed_20260301.manifest.json"))
    assert manifest["rows"] == ROWS
    rows: list[dict[str, str]] = []
    for entry, part in zip(manifest["files"], parts, strict=True):
        data = store.read_bytes(part)
        assert entry["name"] == part
        assert entry["bytes"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        rows.extend(csv.DictReader(io.StringIO(gzip.decompress(data).decode())))
    assert [int(r["id"]) for r in rows] == list(range(ROWS))
    assert rows[7]["note"] == 'say "hi", 7\nbye'
    assert rows[11]["email"] == ""
    store.close()


@pytest.mark.parametrize("crash_at", [("sending", 2), ("delivered", 2), ("delivered", 4)])
def test_parquet_parts_resume_after_a_crash_without_duplicates(
    store_server: StoreServer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    crash_at: tuple[str, int],
) -> None:
    settings = {"filename": "feed_{part}", "format": {"type": "parquet"}, "split": {"rows": 500}}
    prefix = _prefix(request)
    ledger = MemoryLedger(crash_at=crash_at)
    connector, store = _setup(store_server, tmp_path, prefix, **settings)
    with pytest.raises(SimulatedCrash):
        deliver_task(connector, _context(tmp_path, "run-2"), ledger, table_source(_table()))
    connector, store = _setup(store_server, tmp_path, prefix, **settings)
    deliver_task(connector, _context(tmp_path, "run-2"), ledger, table_source(_table()))
    parts = sorted(n for n in store.list() if n.endswith(".parquet"))
    assert len(parts) == ROWS // 500
    ids: list[int] = []
    for part in parts:
        ids.extend(pq.read_table(io.BytesIO(store.read_bytes(part))).column("id").to_pylist())
    assert ids == list(range(ROWS))
    assert not [n for n in store.list() if n.split("/")[-1].startswith(".")]
    store.close()

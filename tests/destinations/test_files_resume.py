"""Atomic publish and resume of the file connector: crashes at every ledger point.

A crash is :class:`SimulatedCrash` (like ``kill -9``: no clean-up runs). After each one, the
folder must show only complete files, and a resumed task with a new connector must end with
every source row exactly once, no temporary files, parts delivered before the crash untouched,
and a manifest that matches the files.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from activator.destinations.files import FileConnector
from activator.destinations.secrets import SecretResolver
from activator.runtime.delivery import deliver_task
from tests.destinations.test_files import (
    context,
    csv_rows,
    deliver,
    destination,
    manifest,
    source_table,
    unpack,
)
from tests.fixtures.ledger import MemoryLedger, SimulatedCrash, table_source

ROWS = 50
PART = 10
UNITS = ROWS // PART + 1  # five parts and the publish step
BASE = "spring_20240502"
CRASHES = [(what, n) for what in ("sending", "delivered") for n in range(1, UNITS + 1)]


def _visible(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")}


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


def _ids(path: Path, compression: str) -> list[int]:
    return [int(r[0]) for r in csv_rows(unpack(path, compression), ",")]


def _assert_consistent(folder: Path, compression: str) -> None:
    """What a reader may see at any moment: complete parts; a manifest only over present,
    matching parts; .DONE only after the manifest."""
    visible = _visible(folder)
    parts = sorted(n for n in visible if not n.startswith(f"{BASE}."))
    for name in parts:
        ids = _ids(visible[name], compression)  # a truncated gzip or CSV fails here
        number = int(name.split("_")[-1].split(".")[0])
        assert ids == list(range((number - 1) * PART + 1, number * PART + 1))
    if f"{BASE}.DONE" in visible:
        assert f"{BASE}.manifest.json" in visible
    if f"{BASE}.manifest.json" in visible:
        assert [f["name"] for f in manifest(folder, BASE)["files"]] == parts


@pytest.mark.parametrize("compression", ["none", "gzip"])
@pytest.mark.parametrize("crash", CRASHES, ids=[f"{w}-{n}" for w, n in CRASHES])
def test_resume_after_a_crash_at_every_ledger_point(
    tmp_path: Path, crash: tuple[str, int], compression: str
) -> None:
    table = source_table(ROWS)
    definition = destination(tmp_path, split={"rows": PART}, format={"compression": compression})
    ledger = MemoryLedger(crash_at=crash)
    with pytest.raises(SimulatedCrash):
        deliver(definition, table, ledger)
    _assert_consistent(tmp_path, compression)
    before = {n: p.stat().st_ino for n, p in _visible(tmp_path).items()}
    delivered_before = {f["name"] for u in ledger.units() for f in u.detail.get("files", [])}

    result = deliver(definition, table, ledger)

    assert _temps(tmp_path) == []
    _assert_consistent(tmp_path, compression)
    data = manifest(tmp_path, BASE)
    ids = [i for f in data["files"] for i in _ids(tmp_path / f["name"], compression)]
    assert ids == list(range(1, ROWS + 1))
    assert data["rows"] == ROWS
    assert len(data["files"]) == ROWS // PART
    assert (tmp_path / f"{BASE}.DONE").exists()
    # Parts the ledger had as delivered were kept, not written again.
    after = {n: p.stat().st_ino for n, p in _visible(tmp_path).items()}
    assert all(after[name] == before[name] for name in delivered_before)
    assert [u.index for u in ledger.units()] == [-1, 0, 1, 2, 3, 4]
    assert result.rows == ROWS


def test_a_crash_while_writing_a_part_leaves_no_temporary_file(tmp_path: Path) -> None:
    calls = {"n": 0}

    def crash_on_third(batch: pa.RecordBatch) -> pa.RecordBatch:
        calls["n"] += 1
        if calls["n"] == 3:
            raise SimulatedCrash("killed mid-part")
        return batch

    definition = destination(tmp_path, split={"bytes": "100KB", "batch_rows": 10})
    ledger = MemoryLedger()
    with pytest.raises(SimulatedCrash):
        deliver(definition, source_table(ROWS), ledger, mapper=crash_on_third)
    assert _temps(tmp_path) != []  # like kill -9: the partial temporary file is left
    assert _visible(tmp_path) == {}  # but no reader sees it
    deliver(definition, source_table(ROWS), ledger)
    assert _temps(tmp_path) == []
    (entry,) = manifest(tmp_path, BASE)["files"]
    assert _ids(tmp_path / entry["name"], "none") == list(range(1, ROWS + 1))


def test_an_error_while_writing_removes_the_temporary_file(tmp_path: Path) -> None:
    def fail(batch: pa.RecordBatch) -> pa.RecordBatch:
        if batch.column("id")[0].as_py() > 20:
            raise ValueError("mapping failed")
        return batch

    definition = destination(tmp_path, split={"bytes": "1MB", "batch_rows": 10})
    with pytest.raises(ValueError, match="mapping failed"):
        deliver(definition, source_table(ROWS), MemoryLedger(), mapper=fail)
    assert _temps(tmp_path) == []
    assert _visible(tmp_path) == {}


def _crashed_before_rename(folder: Path) -> tuple[MemoryLedger, dict[str, Any]]:
    """A ledger with unit 0 *sending* and its file back under the temporary name, as if the
    process had died between ``sending`` and the rename."""
    ledger = MemoryLedger(crash_at=("delivered", 1))
    with pytest.raises(SimulatedCrash):
        deliver(destination(folder, split={"rows": PART}), source_table(ROWS), ledger)
    (unit,) = ledger.pending()
    (entry,) = unit.detail["files"]
    (folder / entry["name"]).rename(folder / entry["temp"])
    return ledger, entry


def test_settle_finishes_the_rename_of_a_complete_temporary_file(tmp_path: Path) -> None:
    ledger, entry = _crashed_before_rename(tmp_path)
    inode = (tmp_path / entry["temp"]).stat().st_ino
    deliver(destination(tmp_path, split={"rows": PART}), source_table(ROWS), ledger)
    assert (tmp_path / entry["name"]).stat().st_ino == inode  # renamed, not rewritten
    assert not any(m == "unit resent after an interruption" for m, _ in ledger.events)
    assert _temps(tmp_path) == []


def test_settle_rewrites_a_unit_whose_file_is_damaged(tmp_path: Path) -> None:
    ledger, entry = _crashed_before_rename(tmp_path)
    temp = tmp_path / entry["temp"]
    temp.write_bytes(temp.read_bytes()[:-5])  # incomplete
    deliver(destination(tmp_path, split={"rows": PART}), source_table(ROWS), ledger)
    assert any(m == "unit resent after an interruption" for m, _ in ledger.events)
    content = (tmp_path / entry["name"]).read_bytes()
    assert hashlib.sha256(content).hexdigest() == entry["sha256"]  # same bytes again
    assert _temps(tmp_path) == []
    assert manifest(tmp_path, BASE)["rows"] == ROWS


def test_publish_again_is_idempotent(tmp_path: Path) -> None:
    definition = destination(tmp_path, split={"rows": PART})
    ledger = MemoryLedger()
    deliver(definition, source_table(ROWS), ledger)
    first = (tmp_path / f"{BASE}.manifest.json").read_bytes()
    inode = (tmp_path / f"{BASE}.manifest.json").stat().st_ino
    connector = FileConnector(definition, SecretResolver(tmp_path, environ={}), tmp_path)
    delivery = connector.open(context(), ledger)
    summary = delivery.publish([u for u in ledger.units() if u.index >= 0])
    delivery.close()
    assert (tmp_path / f"{BASE}.manifest.json").read_bytes() == first
    assert (tmp_path / f"{BASE}.manifest.json").stat().st_ino == inode
    assert summary["rows"] == ROWS
    assert json.loads(first)["files"][0]["name"] == f"{BASE}_00001.csv"


def test_the_resumed_task_continues_part_numbers(tmp_path: Path) -> None:
    ledger = MemoryLedger(crash_at=("sending", 3))
    definition = destination(tmp_path, split={"rows": PART})
    with pytest.raises(SimulatedCrash):
        deliver(definition, source_table(ROWS), ledger)
    connector = FileConnector(definition, SecretResolver(tmp_path, environ={}), tmp_path)
    result = deliver_task(connector, context(), ledger, table_source(source_table(ROWS)))
    assert any(m == "resuming" and f["from_row"] == 20 for m, f in ledger.events)
    assert result.rows == ROWS
    names = [f["name"] for u in ledger.units() if u.index >= 0 for f in u.detail["files"]]
    assert names == [f"{BASE}_{n:05d}.csv" for n in range(1, 6)]

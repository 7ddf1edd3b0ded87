"""The orchestrations of ``make demo``: the scheduler runs the nightly customer-360 feed at its
slot as gzip CSV, then as Parquet after it, into the bucket folder with manifests and .DONE."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from activator.services.scheduler import Scheduler
from activator.services.workspace import apply_workspace, init_workspace, status

pytestmark = pytest.mark.slow

DATA_DAY = date(2026, 3, 1)
SLOT = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def test_the_nightly_feed_in_both_formats(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    init_workspace(root, demo=True, customers=3000, seed=42, as_of=DATA_DAY)
    apply_workspace(root)
    assert Scheduler(root).tick(datetime(2026, 3, 1, 1, 0, tzinfo=UTC)).runs == []
    report = Scheduler(root).tick(datetime(2026, 3, 1, 2, 0, 30, tzinfo=UTC))
    assert [(r.name, r.trigger, r.status) for r in report.runs] == [
        ("customer-360", "schedule", "succeeded"),
        ("customer-360-parquet", "after", "succeeded"),
    ]
    assert report.runs[0].scheduled_for == SLOT
    assert report.runs[1].as_of == SLOT
    assert report.runs[1].inputs == {"after": {"customer-360": report.runs[0].run_id}}

    bucket = root / "bucket" / "customer-360"
    assert sorted(p.name for p in bucket.iterdir()) == [
        "customer-360_20260301.DONE",
        "customer-360_20260301.manifest.json",
        "customer-360_20260301_00001.csv.gz",
        "customer-360_20260301_parquet.DONE",
        "customer-360_20260301_parquet.manifest.json",
        "customer-360_20260301_parquet_00001.parquet",
    ]
    con = duckdb.connect(str(root / "data" / "retail.duckdb"), read_only=True)
    expected = con.execute(
        "SELECT c.customer_id, count(o.order_id), coalesce(sum(o.total), 0) FROM customers c "
        "LEFT JOIN orders o ON o.customer_id = c.customer_id AND NOT o.is_returned "
        "GROUP BY ALL ORDER BY 1"
    ).fetchall()
    con.close()
    assert len(expected) == 3000
    with gzip.open(bucket / "customer-360_20260301_00001.csv.gz", "rt") as file:
        lines = file.read().splitlines()
    assert lines[0] == "customer_id,loyalty_tier,country,orders,revenue,last_order_at"
    from_csv = sorted((int(f[0]), int(f[3]), f[4]) for f in (line.split(",") for line in lines[1:]))
    assert from_csv == [(i, n, f"{total:.2f}") for i, n, total in expected]
    table = pq.read_table(bucket / "customer-360_20260301_parquet_00001.parquet")
    assert table.num_rows == 3000
    assert sorted(table.column("customer_id").to_pylist()) == [i for i, _, _ in expected]
    for base in ("customer-360_20260301", "customer-360_20260301_parquet"):
        manifest = json.loads((bucket / f"{base}.manifest.json").read_text())
        assert manifest["rows"] == 3000
    rows = {r.name: r for r in status(root, as_of=datetime(2026, 3, 1, 2, 0, 30, tzinfo=UTC))}
    assert rows["customer-360"].next_run == datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    assert rows["customer-360"].last_run is not None
    assert rows["customer-360"].last_run.status == "succeeded"

"""Orchestrations: ``plan`` (what a run would write, writing nothing) and ``only_if_changed``
(a run skipped while the source fingerprint stays what the last successful run recorded)."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from activator.services.orchestration import plan_orchestration
from activator.services.run import list_runs, resume_run, run_activation, show_run
from activator.services.workspace import apply_workspace

AS_OF = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CUSTOMERS = 2_500

CONFIG = """\
engine: {type: duckdb, path: data/shop.duckdb}
timezone: Europe/Paris
data_model:
  customers: {table: customers, key: customer_id}
"""

# 2,000 rows (every 5th customer left out); every 7th has no e-mail and is shrunk.
FEED = """\
query: SELECT customer_id, email, first_name FROM customers WHERE customer_id % 5 <> 0
destination: drop
mapping:
  id: customer_id
  email: {source: email, transforms: [trim, lowercase], required: true}
  name: {source: first_name, transforms: [uppercase]}
  feed: run.orchestration
"""

DROP = """\
type: local
path: out
filename: "feed_{run_time:%Y%m%d}_{part}"
format: {type: csv, compression: gzip}
split: {rows: 1000}
"""

# No mapping: the query's columns as they are; 400-row parts of 1,000 rows.
EXPORT = """\
query: SELECT customer_id, first_name FROM customers WHERE customer_id < 1000
destination: parquet-drop
"""

PARQUET_DROP = """\
type: local
path: lake
filename: "{orchestration}/{run_time:%Y-%m-%d}/part-{part:03d}"
format: {type: parquet, codec: zstd}
split: {rows: 400}
done_marker: false
"""

SYNC = """\
table: customers
destination: crm-table
"""

CRM_TABLE = """\
type: engine
table: crm_customers
mode: upsert
keys: [customer_id]
"""

# Changed-only feeds: with a watermark, and without one.
CHANGED = """\
query: >
  SELECT c.customer_id, c.email, c.updated_at
  FROM customers AS c WHERE c.customer_id < 50
destination: changed-drop
only_if_changed: true
watermark: updated_at
"""

CHANGED_BARE = """\
query: SELECT customer_id, email FROM customers WHERE customer_id < 50
destination: bare-drop
only_if_changed: true
"""

CHANGED_DROP = """\
type: local
path: changed
filename: "changed_{run_id}"
format: {type: ndjson}
"""

BARE_DROP = """\
type: local
path: bare
filename: "bare_{run_id}"
format: {type: ndjson}
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    con = duckdb.connect(str(tmp_path / "data" / "shop.duckdb"))
    con.execute(
        f"CREATE TABLE customers AS SELECT range AS customer_id, "
        f"CASE WHEN range % 7 = 0 THEN NULL ELSE '  C' || range || '@Example.com ' END AS email, "
        f"'ann' || range AS first_name, TIMESTAMP '2026-01-01' AS updated_at "
        f"FROM range({CUSTOMERS})"
    )
    con.close()
    (tmp_path / "activator.yaml").write_text(CONFIG)
    files = {
        "destinations": {
            "drop": DROP,
            "parquet-drop": PARQUET_DROP,
            "crm-table": CRM_TABLE,
            "changed-drop": CHANGED_DROP,
            "bare-drop": BARE_DROP,
        },
        "orchestrations": {
            "feed": FEED,
            "export": EXPORT,
            "sync": SYNC,
            "changed": CHANGED,
            "changed-bare": CHANGED_BARE,
        },
    }
    for folder, named in files.items():
        (tmp_path / folder).mkdir()
        for name, text in named.items():
            (tmp_path / folder / f"{name}.yml").write_text(text)
    apply_workspace(tmp_path)
    return tmp_path


def _sql(workspace: Path, statement: str) -> None:
    con = duckdb.connect(str(workspace / "data" / "shop.duckdb"))
    con.execute(statement)
    con.close()


def _engine_tables(workspace: Path) -> set[str]:
    con = duckdb.connect(str(workspace / "data" / "shop.duckdb"), read_only=True)
    names = {
        f"{schema}.{name}"
        for schema, name in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
        ).fetchall()
    }
    con.close()
    return names


def _runs(workspace: Path, name: str) -> list[str]:
    return [r.run_id for r in list_runs(workspace, name)]


# -- plan -----------------------------------------------------------------------------------


def test_plan_of_a_split_file_drop_names_the_parts_a_run_then_writes(workspace: Path) -> None:
    tables = _engine_tables(workspace)
    plan = plan_orchestration(workspace, "feed", as_of=AS_OF)

    evaluated = CUSTOMERS - CUSTOMERS // 5
    sent = len([i for i in range(CUSTOMERS) if i % 5 != 0 and i % 7 != 0])
    assert (plan.rows, plan.sent, plan.shrink, plan.expansion) == (
        evaluated,
        sent,
        evaluated - sent,
        0,
    )
    assert plan.columns == [
        ("id", "int64"),
        ("email", "string"),
        ("name", "string"),
        ("feed", "string"),
    ]
    target = plan.target
    # The run time in the workspace's zone; two batches of 1,000 source rows, each shrunk
    # below 1,000, make two parts.
    assert target["files"] == ["feed_20260301_00001.csv.gz", "feed_20260301_00002.csv.gz"]
    assert target["parts"] == 2
    assert sum(target["part_rows"]) == sent
    assert (target["format"], target["compression"], target["estimated"]) == ("csv", "gzip", False)
    assert target["manifest"] == "feed_20260301.manifest.json"
    assert target["done"] == "feed_20260301.DONE"

    # Nothing written: no folder, no table, no run.
    assert not (workspace / "out").exists()
    assert _engine_tables(workspace) == tables
    assert _runs(workspace, "feed") == []

    # The run writes exactly what the plan said.
    run = run_activation(workspace, "feed", as_of=AS_OF)
    assert run.status == "succeeded", run.error
    manifest = json.loads((workspace / "out" / "feed_20260301.manifest.json").read_text())
    assert [f["name"] for f in manifest["files"]] == target["files"]
    assert [f["rows"] for f in manifest["files"]] == target["part_rows"]
    assert (workspace / "out" / target["done"]).exists()


def test_plan_without_mapping_gives_the_query_columns_and_every_part(workspace: Path) -> None:
    plan = plan_orchestration(workspace, "export", as_of=AS_OF)
    assert (plan.rows, plan.sent) == (1000, 1000)
    assert plan.columns == [("customer_id", "int64"), ("first_name", "string")]
    assert plan.target["files"] == [f"export/2026-03-01/part-{i:03d}.parquet" for i in (1, 2, 3)]
    assert plan.target["part_rows"] == [400, 400, 200]
    assert plan.target["codec"] == "zstd"
    assert plan.target["manifest"] == "export/2026-03-01/part.manifest.json"
    assert plan.target["done"] is None

    run = run_activation(workspace, "export", as_of=AS_OF)
    assert run.status == "succeeded", run.error
    written = sorted(
        str(p.relative_to(workspace / "lake")) for p in (workspace / "lake").rglob("*.parquet")
    )
    assert written == plan.target["files"]


def test_plan_of_a_table_sync_names_the_table_mode_and_keys(workspace: Path) -> None:
    tables = _engine_tables(workspace)
    plan = plan_orchestration(workspace, "sync", as_of=AS_OF)
    assert plan.rows == plan.sent == CUSTOMERS
    assert [name for name, _ in plan.columns] == [
        "customer_id",
        "email",
        "first_name",
        "updated_at",
    ]
    assert plan.target == {
        "type": "engine",
        "table": "crm_customers",
        "mode": "upsert",
        "keys": ["customer_id"],
        "create": True,
    }
    assert _engine_tables(workspace) == tables  # no crm_customers, no staging table
    assert _runs(workspace, "sync") == []


def test_plan_json_has_a_stable_shape(workspace: Path) -> None:
    doc = plan_orchestration(workspace, "changed", as_of=AS_OF).to_json()
    assert list(doc) == [
        "orchestration",
        "version",
        "as_of",
        "destination",
        "rows",
        "sent",
        "shrink",
        "expansion",
        "columns",
        "target",
        "only_if_changed",
        "source",
        "last_run",
        "would_skip",
        "notes",
    ]
    assert doc["orchestration"] == "changed"
    assert doc["version"] == 1
    assert doc["as_of"] == "2026-03-01T12:00:00+00:00"
    assert doc["columns"][0] == {"name": "customer_id", "type": "int64"}
    assert doc["target"]["files"] == ["changed_{run_id}.ndjson"]
    assert doc["only_if_changed"] is True
    assert doc["source"]["always"] is None
    assert doc["source"]["sources"] == [
        {
            "table": "customers",
            "signal": "count",
            "rows": CUSTOMERS,
            "watermark": "2026-01-01 00:00:00",
        }
    ]
    assert len(doc["source"]["digest"]) == 16
    assert (doc["last_run"], doc["would_skip"], doc["notes"]) == (None, False, [])
    json.dumps(doc)  # JSON as it is


# -- only_if_changed ------------------------------------------------------------------------


def _delivered(workspace: Path, folder: str) -> list[str]:
    return sorted(p.name for p in (workspace / folder).iterdir())


def test_an_unchanged_source_skips_the_run_and_a_change_runs_it(workspace: Path) -> None:
    first = run_activation(workspace, "changed", as_of=AS_OF)
    assert first.status == "succeeded", first.error
    assert first.counts["rows"] == 50
    fingerprint = first.counts["source"]
    files = _delivered(workspace, "changed")
    assert files == [f"changed_{first.run_id}.DONE", f"changed_{first.run_id}.manifest.json",
                     f"changed_{first.run_id}.ndjson"]  # fmt: skip

    # Same data: succeeded at once, nothing sent, nothing written.
    second = run_activation(workspace, "changed", as_of=AS_OF + timedelta(days=1))
    assert second.status == "succeeded"
    assert second.counts == {"unchanged": True, "rows": 0, "source": fingerprint}
    detail = show_run(workspace, second.run_id)
    assert detail.tasks == []
    assert f"source unchanged since run {first.run_id}: nothing sent" in [
        e.message for e in detail.events
    ]
    assert _delivered(workspace, "changed") == files
    plan = plan_orchestration(workspace, "changed", as_of=AS_OF + timedelta(days=1))
    assert (plan.would_skip, plan.last_run) == (True, second.run_id)

    # Still unchanged: the message names the run that sent the data, not the skipped one.
    third = run_activation(workspace, "changed", as_of=AS_OF + timedelta(days=2))
    assert third.counts["unchanged"] is True
    assert f"source unchanged since run {first.run_id}: nothing sent" in [
        e.message for e in show_run(workspace, third.run_id).events
    ]

    # An insert changes the row count: the run sends.
    _sql(workspace, "INSERT INTO customers VALUES (9999, 'new@x.io', 'new', '2026-01-01')")
    assert plan_orchestration(workspace, "changed", as_of=AS_OF).would_skip is False
    fourth = run_activation(workspace, "changed", as_of=AS_OF + timedelta(days=3))
    assert fourth.status == "succeeded", fourth.error
    assert "unchanged" not in fourth.counts
    assert fourth.counts["rows"] == 50
    assert fourth.counts["source"] != fingerprint
    assert (workspace / "changed" / f"changed_{fourth.run_id}.ndjson").exists()

    # An UPDATE that moves the watermark is seen although the count stays.
    again = run_activation(workspace, "changed", as_of=AS_OF + timedelta(days=4))
    assert again.counts["unchanged"] is True
    _sql(
        workspace, "UPDATE customers SET email = 'x@y.z', updated_at = now() WHERE customer_id = 3"
    )
    fifth = run_activation(workspace, "changed", as_of=AS_OF + timedelta(days=5))
    assert fifth.counts.get("unchanged") is None
    assert fifth.counts["rows"] == 50
    lines = (workspace / "changed" / f"changed_{fifth.run_id}.ndjson").read_text().splitlines()
    assert {"customer_id": 3, "email": "x@y.z"}.items() <= json.loads(lines[3]).items()


def test_without_a_watermark_an_update_is_not_seen_as_documented(workspace: Path) -> None:
    first = run_activation(workspace, "changed-bare", as_of=AS_OF)
    assert first.status == "succeeded", first.error
    # An UPDATE keeps DuckDB's row count: without a watermark it goes unnoticed.
    _sql(workspace, "UPDATE customers SET email = 'changed@x.io' WHERE customer_id = 1")
    second = run_activation(workspace, "changed-bare", as_of=AS_OF + timedelta(days=1))
    assert second.counts == {"unchanged": True, "rows": 0, "source": first.counts["source"]}
    assert _delivered(workspace, "bare") == [
        f"bare_{first.run_id}.DONE",
        f"bare_{first.run_id}.manifest.json",
        f"bare_{first.run_id}.ndjson",
    ]
    # A DELETE changes the count: seen.
    _sql(workspace, "DELETE FROM customers WHERE customer_id = 2000")
    third = run_activation(workspace, "changed-bare", as_of=AS_OF + timedelta(days=2))
    assert third.counts.get("unchanged") is None
    assert third.counts["rows"] == 50


def test_a_new_version_of_the_orchestration_always_runs(workspace: Path) -> None:
    first = run_activation(workspace, "changed-bare", as_of=AS_OF)
    assert first.status == "succeeded", first.error
    (workspace / "orchestrations" / "changed-bare.yml").write_text(
        CHANGED_BARE.replace("< 50", "< 60")
    )
    apply_workspace(workspace)
    second = run_activation(workspace, "changed-bare", as_of=AS_OF + timedelta(days=1))
    assert second.counts.get("unchanged") is None
    assert second.counts["rows"] == 60


def test_a_resumed_run_keeps_the_fingerprint_taken_before_its_rows(workspace: Path) -> None:
    (workspace / "bare").write_text("a file where the folder should be")
    failed = run_activation(workspace, "changed-bare", as_of=AS_OF)
    assert failed.status == "failed"
    taken = failed.counts["source"]

    # Rows inserted after the snapshot was taken are not in this run...
    _sql(workspace, "INSERT INTO customers VALUES (10, 'late@x.io', 'late', '2026-01-01')")
    (workspace / "bare").unlink()
    resumed = resume_run(workspace, failed.run_id)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.counts["source"] == taken
    assert resumed.counts["rows"] == 50

    # ...so the next run, seeing a different source, sends them.
    after = run_activation(workspace, "changed-bare", as_of=AS_OF + timedelta(days=1))
    assert after.counts.get("unchanged") is None
    assert after.counts["rows"] == 51


def test_a_query_reading_the_clock_always_runs(workspace: Path) -> None:
    (workspace / "orchestrations" / "changed-bare.yml").write_text(
        CHANGED_BARE.replace(
            "customer_id < 50", "customer_id < 50 AND current_date > DATE '2000-01-01'"
        )
    )
    apply_workspace(workspace)
    plan = plan_orchestration(workspace, "changed-bare", as_of=AS_OF)
    assert plan.fingerprint is not None
    assert plan.fingerprint.always == "the query reads the clock (CURRENT_DATE)"
    assert plan.notes == [
        "only_if_changed: the query reads the clock (CURRENT_DATE); every run sends"
    ]
    first = run_activation(workspace, "changed-bare", as_of=AS_OF)
    second = run_activation(workspace, "changed-bare", as_of=AS_OF + timedelta(days=1))
    assert (first.counts["rows"], second.counts["rows"]) == (50, 50)
    assert second.counts.get("unchanged") is None


def test_views_over_files_are_fingerprinted_by_their_files(tmp_path: Path) -> None:
    (tmp_path / "exports").mkdir()
    orders = tmp_path / "exports" / "orders.csv"
    orders.write_text("order_id,customer_id\n1,1\n2,1\n")
    (tmp_path / "data").mkdir()
    con = duckdb.connect(str(tmp_path / "data" / "shop.duckdb"))
    con.execute("CREATE TABLE customers AS SELECT range AS customer_id FROM range(3)")
    con.execute("CREATE VIEW buyers AS SELECT DISTINCT customer_id FROM customers")
    con.execute("CREATE VIEW today AS SELECT * FROM customers WHERE current_date > '2000-01-01'")
    con.close()
    (tmp_path / "activator.yaml").write_text(
        CONFIG.replace(
            "path: data/shop.duckdb}",
            "path: data/shop.duckdb, sources: {orders: exports/orders.csv}}",
        )
    )
    for folder, name, text in [
        ("destinations", "drop", "type: local\npath: out\n"),
        (
            "orchestrations",
            "orders-feed",
            "query: SELECT o.* FROM orders AS o JOIN buyers AS b USING (customer_id)\n"
            "destination: drop\nonly_if_changed: true\n",
        ),
    ]:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / f"{name}.yml").write_text(text)
    apply_workspace(tmp_path)

    first = plan_orchestration(tmp_path, "orders-feed", as_of=AS_OF).fingerprint
    assert first is not None
    files, table = first.sources
    # The source view reads the file's size and time, no rows; the view is followed to its
    # table.
    assert (files["table"], files["signal"], files["files"], files["bytes"]) == (
        "orders",
        "files",
        1,
        orders.stat().st_size,
    )
    assert table == {"table": "customers", "signal": "count", "rows": 3}

    orders.write_text("order_id,customer_id\n1,1\n2,2\n")  # same size, rewritten
    os.utime(orders, ns=(orders.stat().st_atime_ns, orders.stat().st_mtime_ns + 10**9))
    second = plan_orchestration(tmp_path, "orders-feed", as_of=AS_OF).fingerprint
    assert second is not None
    assert second.digest != first.digest
    assert second.sources[1] == table

    # A view that reads the clock cannot be fingerprinted: such a feed always runs.
    (tmp_path / "orchestrations" / "today.yml").write_text(
        "table: today\ndestination: drop\nonly_if_changed: true\n"
    )
    apply_workspace(tmp_path)
    today = plan_orchestration(tmp_path, "today", as_of=AS_OF).fingerprint
    assert today is not None
    assert today.sources == [{"table": "today", "signal": "clock"}]
    assert today.always == "view today reads the clock"


@pytest.mark.postgres
def test_postgres_tables_are_fingerprinted_by_their_statistics(
    tmp_path: Path, postgres_url: str
) -> None:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE customers AS SELECT g AS customer_id, 'c' || g AS email "
            "FROM generate_series(1, 40) AS g"
        )
        conn.execute("CREATE VIEW reachable AS SELECT * FROM customers WHERE email IS NOT NULL")
    (tmp_path / "activator.yaml").write_text(
        CONFIG.replace(
            "{type: duckdb, path: data/shop.duckdb}", f"{{type: postgres, url: '{postgres_url}'}}"
        )
    )
    for folder, name, text in [
        ("destinations", "drop", "type: local\npath: out\nfilename: 'f_{run_id}'\n"),
        (
            "orchestrations",
            "pg-feed",
            "table: reachable\ndestination: drop\nonly_if_changed: true\n",
        ),
    ]:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / f"{name}.yml").write_text(text)
    apply_workspace(tmp_path)

    def stats_settled(updated: int) -> None:
        # The server publishes a session's counters shortly after its transactions end.
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            for _ in range(200):
                row = conn.execute(
                    "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'customers'"
                ).fetchone()
                if row is not None and row[0] == updated:
                    return
                time.sleep(0.05)
        raise AssertionError("the statistics never showed the update")

    stats_settled(0)
    plan = plan_orchestration(tmp_path, "pg-feed", as_of=AS_OF)
    assert plan.fingerprint is not None
    [signal] = plan.fingerprint.sources
    assert {k: signal[k] for k in ("table", "signal", "inserted", "updated", "deleted")} == {
        "table": "public.customers",
        "signal": "pg_stat",
        "inserted": 40,
        "updated": 0,
        "deleted": 0,
    }
    first = run_activation(tmp_path, "pg-feed", as_of=AS_OF)
    assert first.status == "succeeded", first.error
    second = run_activation(tmp_path, "pg-feed", as_of=AS_OF + timedelta(days=1))
    assert second.counts["unchanged"] is True

    # An UPDATE moves the update counter: seen without a watermark.
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE customers SET email = 'new' WHERE customer_id = 1")
    stats_settled(1)
    third = run_activation(tmp_path, "pg-feed", as_of=AS_OF + timedelta(days=2))
    assert third.counts.get("unchanged") is None
    assert third.counts["rows"] == 40

"""``activator plan`` for an orchestration, as a user runs it: text and ``--json``."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.cli.runner import activator, as_json

pytestmark = pytest.mark.e2e

CONFIG = """\
engine: {type: duckdb, path: data/shop.duckdb}
data_model:
  customers: {table: customers, key: customer_id}
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    con = duckdb.connect(str(tmp_path / "data" / "shop.duckdb"))
    con.execute(
        "CREATE TABLE customers AS SELECT range AS customer_id, 'c' || range || '@x.io' AS email "
        "FROM range(300)"
    )
    con.close()
    (tmp_path / "activator.yaml").write_text(CONFIG)
    (tmp_path / "destinations").mkdir()
    (tmp_path / "destinations" / "drop.yml").write_text(
        "type: local\npath: out\nfilename: 'feed_{run_time:%Y%m%d}'\n"
        "format: {type: csv, compression: gzip}\nsplit: {rows: 40}\n"
    )
    (tmp_path / "orchestrations").mkdir()
    (tmp_path / "orchestrations" / "feed.yml").write_text(
        "query: SELECT * FROM customers WHERE customer_id < 100\ndestination: drop\n"
        "only_if_changed: true\n"
    )
    assert activator("-w", str(tmp_path), "apply").returncode == 0
    return tmp_path


@pytest.mark.slow
def test_plan_json_names_the_files_and_the_skip_decision(workspace: Path) -> None:
    result = activator("-w", str(workspace), "plan", "feed", "--json", "--as-of", "2026-03-01")
    assert result.returncode == 0, result.stderr
    plan = as_json(result)
    assert plan["orchestration"] == "feed"
    assert (plan["rows"], plan["sent"]) == (100, 100)
    assert plan["columns"] == [
        {"name": "customer_id", "type": "int64"},
        {"name": "email", "type": "string"},
    ]
    assert plan["target"]["files"] == [f"feed_20260301_{i:05d}.csv.gz" for i in (1, 2, 3)]
    assert plan["target"]["part_rows"] == [40, 40, 20]
    assert plan["would_skip"] is False
    assert plan["source"]["sources"] == [{"table": "customers", "signal": "count", "rows": 300}]
    assert not (workspace / "out").exists()

    # After a run, the same data would be skipped.
    assert activator("-w", str(workspace), "run", "feed").returncode == 0
    again = as_json(activator("-w", str(workspace), "plan", "feed", "--json"))
    assert again["would_skip"] is True
    assert again["last_run"] is not None


def test_plan_text_shows_rows_columns_files_and_the_fingerprint(workspace: Path) -> None:
    result = activator("-w", str(workspace), "plan", "feed", "--as-of", "2026-03-01")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert (
        "Orchestration feed v1 as of 2026-03-01 23:59: 100 rows; 100 sent to drop (local)" in text
    )
    for expected in (
        "customer_id",
        "int64",
        "feed_20260301_00001.csv.gz",
        "feed_20260301_00003.csv.gz",
        "Format csv, compression gzip; then manifest feed_20260301.manifest.json, marker "
        "feed_20260301.DONE",
        "versus no earlier run: would send",
        "customers: signal=count, rows=300",
    ):
        assert expected in text, expected


def test_plan_of_an_unknown_name_is_bad_input(workspace: Path) -> None:
    result = activator("-w", str(workspace), "plan", "nope", "--json")
    assert result.returncode == 2
    assert as_json(result)["error"]["message"] == "no applied campaign named 'nope'"

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from activator.errors import DefinitionError
from activator.services.workspace import apply_workspace, status, validate_workspace
from activator.store.store import MetadataStore

CONFIG = """\
engine: {type: duckdb, path: data/shop.duckdb}
data_model:
  customers: {table: customers, key: customer_id}
  events:
    orders: {table: orders, customer_key: customer_id, timestamp: ordered_at, amount: total}
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    con = duckdb.connect(str(tmp_path / "data" / "shop.duckdb"))
    con.execute("CREATE TABLE customers AS SELECT range AS customer_id FROM range(10)")
    con.execute(
        "CREATE TABLE orders AS SELECT range % 10 AS customer_id, "
        "TIMESTAMP '2026-01-01' + INTERVAL (range) DAY AS ordered_at, "
        "CAST(range * 1.5 AS DOUBLE) AS total FROM range(30)"
    )
    con.close()
    (tmp_path / "activator.yaml").write_text(CONFIG)
    (tmp_path / "segments").mkdir()
    (tmp_path / "segments" / "buyers.yml").write_text(
        "rules: {behavior: has_purchased, table: orders, window: {last: 30d}}\n"
    )
    (tmp_path / "destinations").mkdir()
    (tmp_path / "destinations" / "drop.yml").write_text("type: local\npath: out\n")
    (tmp_path / "orchestrations").mkdir()
    (tmp_path / "orchestrations" / "feed.yml").write_text(
        "query: SELECT * FROM customers\ndestination: drop\nstatus: active\n"
        "schedule: {type: cron, cron: '30 1 * * *'}\n"
    )
    return tmp_path


def test_floating_point_money_is_a_warning_with_the_reason(workspace: Path) -> None:
    report = validate_workspace(workspace)
    assert report.counts == {"destination": 1, "orchestration": 1, "segment": 1}
    (warning,) = report.warnings
    assert warning.severity == "warning"
    assert (warning.file, warning.line, warning.path) == (
        "activator.yaml",
        5,
        "data_model.events.orders.amount",
    )
    assert "not deterministic" in warning.message


def test_apply_is_all_or_nothing(workspace: Path) -> None:
    (workspace / "orchestrations" / "broken.yml").write_text(
        "query: SELECT 1\ndestination: nowhere\n"
    )
    with pytest.raises(DefinitionError, match="unknown destination 'nowhere'"):
        apply_workspace(workspace)
    with MetadataStore.open("sqlite:///.activator/metadata.db", workspace_root=workspace) as store:
        assert store.current() == []

    (workspace / "orchestrations" / "broken.yml").unlink()
    _, results = apply_workspace(workspace)
    assert sorted((r.kind, r.name, r.version, r.change) for r in results) == [
        ("destination", "drop", 1, "created"),
        ("orchestration", "feed", 1, "created"),
        ("segment", "buyers", 1, "created"),
    ]


def test_status_lists_applied_activations_with_last_and_next_run(workspace: Path) -> None:
    apply_workspace(workspace)
    as_of = datetime(2026, 3, 1, 12, tzinfo=UTC)
    with MetadataStore.open("sqlite:///.activator/metadata.db", workspace_root=workspace) as store:
        run = store.create_run(
            kind="orchestration", name="feed", definition_version=1, trigger="manual", as_of=as_of
        )
        store.start_run(run.run_id)
        store.finish_run(run.run_id, status="succeeded", counts={"rows": 10})
    (row,) = status(workspace, as_of=as_of)
    assert (row.type, row.name, row.status, row.version) == ("orchestration", "feed", "active", 1)
    assert row.next_run == datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
    assert row.last_run is not None
    assert (row.last_run.run_id, row.last_run.status) == (run.run_id, "succeeded")
    assert row.to_json()["last_run"]["counts"] == {"rows": 10}


SHOP_CONFIG = """\
engine: {type: duckdb, path: data/shop.duckdb}
data_model:
  customers: {table: customers, key: customer_id}
  events:
    orders: {table: orders, customer_key: customer_id, timestamp: ordered_at, amount: total}
"""

BAD_SEGMENTS = {
    "unknown-column.yml": "rules:\n  all:\n    - {attribute: customers.emial, op: not_empty}\n",
    "wrong-op.yml": "rules:\n  any:\n    - {attribute: customers.email, op: '>', value: 3}\n",
    "bad-date.yml": "rules: {attribute: customers.signup_at, op: after, value: 31 February}\n",
    "backwards.yml": (
        "rules:\n  behavior: has_purchased\n  table: orders\n"
        "  window: {between: [2026-02-01, 2026-01-01]}\n"
    ),
    "no-id.yml": "sql: SELECT email FROM customers\n",
    "engine-rejects.yml": "sql: SELECT customer_id FROM customers WHERE no_such_fn(email)\n",
    "fine.yml": (
        "rules:\n  all:\n    - {attribute: customers.email, op: ends_with, value: '@example.com'}\n"
        "    - {behavior: total_value, table: orders, value: {op: '>=', value: 10}}\n"
    ),
}


@pytest.fixture
def shop_workspace(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    con = duckdb.connect(str(tmp_path / "data" / "shop.duckdb"))
    con.execute(
        "CREATE TABLE customers AS SELECT range AS customer_id, 'c' || range || '@example.com' "
        "AS email, TIMESTAMP '2026-01-01' AS signup_at FROM range(10)"
    )
    con.execute(
        "CREATE TABLE orders AS SELECT range % 10 AS customer_id, "
        "TIMESTAMP '2026-01-01' + INTERVAL (range) DAY AS ordered_at, "
        "CAST(range AS DECIMAL(12, 2)) AS total FROM range(30)"
    )
    con.close()
    (tmp_path / "activator.yaml").write_text(SHOP_CONFIG)
    (tmp_path / "segments").mkdir()
    for name, text in BAD_SEGMENTS.items():
        (tmp_path / "segments" / name).write_text(text)
    return tmp_path


def test_validate_reports_every_bad_segment_with_file_line_path_and_reason(
    shop_workspace: Path,
) -> None:
    with pytest.raises(DefinitionError) as caught:
        validate_workspace(shop_workspace)
    lines = sorted(str(issue) for issue in caught.value.issues)
    assert lines[0] == (
        "segments/backwards.yml:4 rules.window.between: the window ends (2026-01-01) before "
        "it starts (2026-02-01)"
    )
    assert lines[1].startswith("segments/bad-date.yml:1 rules.value: '31 February' is not a date")
    assert lines[2].startswith("segments/engine-rejects.yml:1 sql: the duckdb engine rejects it:")
    assert "no_such_fn" in lines[2]
    assert lines[3] == (
        "segments/no-id.yml:1 sql: the SELECT must return the activation ID column "
        "'customer_id'; it returns email"
    )
    assert lines[4] == (
        "segments/unknown-column.yml:3 rules.all[0].attribute: table 'customers' has no "
        "column 'emial' (did you mean 'email'?)"
    )
    assert lines[5].startswith(
        "segments/wrong-op.yml:3 rules.any[0].op: '>' does not apply to string column "
        "customers.email (string); use one of:"
    )
    assert len(lines) == 6


def test_validate_without_engine_still_checks_segment_shapes(shop_workspace: Path) -> None:
    with pytest.raises(DefinitionError) as caught:
        validate_workspace(shop_workspace, check_engine=False)
    paths = sorted((issue.file, issue.path) for issue in caught.value.issues)
    # Columns and their types need the engine's schemas (so an attribute's date value is
    # only checked with them); windows and the SQL's output columns do not.
    assert paths == [
        ("segments/backwards.yml", "rules.window.between"),
        ("segments/no-id.yml", "sql"),
    ]


def test_a_paused_activation_has_no_next_run(workspace: Path) -> None:
    apply_workspace(workspace)
    feed = workspace / "orchestrations" / "feed.yml"
    feed.write_text(feed.read_text().replace("status: active", "status: paused"))
    apply_workspace(workspace)
    (row,) = status(workspace, as_of=datetime(2026, 3, 1, 12, tzinfo=UTC))
    assert (row.status, row.version, row.next_run) == ("paused", 2, None)

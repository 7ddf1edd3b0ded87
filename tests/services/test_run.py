"""Running an orchestration end to end: evaluate in the engine, map, deliver, record; resume."""

from __future__ import annotations

import csv
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from activator.errors import ConfigError
from activator.services import destination as destination_service
from activator.services.run import list_runs, resume_run, run_activation, show_run
from activator.services.workspace import apply_workspace
from activator.store.store import MetadataStore
from tests.fixtures.receiver import Receiver

AS_OF = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CUSTOMERS = 2_500

CONFIG = """\
engine: {type: duckdb, path: data/shop.duckdb}
timezone: Europe/Paris
data_model:
  customers: {table: customers, key: customer_id}
"""

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


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    con = duckdb.connect(str(tmp_path / "data" / "shop.duckdb"))
    # Every 7th customer has no e-mail: the required field drops them (shrink).
    con.execute(
        f"CREATE TABLE customers AS SELECT range AS customer_id, "
        f"CASE WHEN range % 7 = 0 THEN NULL ELSE '  C' || range || '@Example.com ' END AS email, "
        f"'ann' || range AS first_name FROM range({CUSTOMERS})"
    )
    con.close()
    (tmp_path / "activator.yaml").write_text(CONFIG)
    for folder, name, text in [
        ("destinations", "drop", DROP),
        ("orchestrations", "feed", FEED),
    ]:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / f"{name}.yml").write_text(text)
    apply_workspace(tmp_path)
    return tmp_path


def _expected() -> list[dict[str, str]]:
    return [
        {"id": str(i), "email": f"c{i}@example.com", "name": f"ANN{i}", "feed": "feed"}
        for i in range(CUSTOMERS)
        if i % 5 != 0 and i % 7 != 0
    ]


def _read_parts(folder: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for part in sorted(folder.glob("feed_*.csv.gz")):
        with gzip.open(part, "rt", newline="") as handle:
            rows.extend(csv.DictReader(handle))
    return rows


def test_a_run_evaluates_maps_delivers_and_records_everything(workspace: Path) -> None:
    run = run_activation(workspace, "feed", as_of=AS_OF)
    assert run.status == "succeeded", run.error
    evaluated = CUSTOMERS - CUSTOMERS // 5
    expected = _expected()
    assert run.counts["customers"] == evaluated
    assert run.counts["rows"] == len(expected)
    assert run.counts["shrink"] == evaluated - len(expected)
    assert run.counts["expansion"] == 0
    assert run.counts["deliveries"]["drop"]["rows"] == len(expected)

    out = workspace / "out"
    delivered = _read_parts(out)
    assert sorted(delivered, key=lambda r: int(r["id"])) == expected
    # The run time is rendered in the workspace's zone; parts of at most 1,000 source rows.
    assert (out / "feed_20260301.DONE").exists()
    manifest = json.loads((out / "feed_20260301.manifest.json").read_text())
    assert manifest["run_id"] == run.run_id
    assert manifest["rows"] == len(expected)
    assert len(manifest["files"]) == 2
    assert not [p for p in out.iterdir() if p.name.startswith(".")]

    detail = show_run(workspace, run.run_id)
    assert [t.task for t in detail.tasks] == ["evaluate", "deliver:drop"]
    assert all(t.status == "succeeded" for t in detail.tasks)
    assert detail.tasks[1].counts["units"] == 2
    assert detail.to_json()["tasks"][1]["detail"]["rows"] == len(expected)
    assert [r.run_id for r in list_runs(workspace, "feed")] == [run.run_id]

    # The run's snapshot is dropped once it succeeded.
    con = duckdb.connect(str(workspace / "data" / "shop.duckdb"), read_only=True)
    tables = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'activator'"
    ).fetchall()
    con.close()
    assert not [t for (t,) in tables if t.startswith("run_")]


def test_a_failed_delivery_is_attributed_and_resumes_without_sending_twice(
    workspace: Path,
) -> None:
    # The folder cannot be created: a file sits where it should be.
    (workspace / "out").write_text("not a folder")
    run = run_activation(workspace, "feed", as_of=AS_OF)
    assert run.status == "failed"
    assert run.error is not None
    assert "drop" in run.error
    detail = show_run(workspace, run.run_id)
    assert detail.tasks[0].status == "succeeded"
    assert detail.tasks[1].status == "failed"
    assert any(e.level == "error" for e in detail.events)

    (workspace / "out").unlink()
    resumed = resume_run(workspace, run.run_id)
    assert resumed.status == "succeeded", resumed.error
    assert sorted(_read_parts(workspace / "out"), key=lambda r: int(r["id"])) == _expected()
    with pytest.raises(ConfigError, match="already finished"):
        resume_run(workspace, run.run_id)


def test_runs_use_the_applied_version_and_unknown_names_are_explained(workspace: Path) -> None:
    with pytest.raises(ConfigError, match="no applied activation named 'fed'") as missing:
        run_activation(workspace, "fed", as_of=AS_OF)
    assert missing.value.hint is not None
    assert "did you mean 'feed'" in missing.value.hint
    # An unapplied edit does not run: the run records the applied version.
    (workspace / "orchestrations" / "feed.yml").write_text(FEED.replace("% 5", "% 2"))
    run = run_activation(workspace, "feed", as_of=AS_OF)
    assert run.definition_version == 1
    assert run.counts["customers"] == CUSTOMERS - CUSTOMERS // 5
    with MetadataStore.open("sqlite:///.activator/metadata.db", workspace_root=workspace) as store:
        assert store.get("orchestration", "feed") is not None


def _add_orders(workspace: Path) -> None:
    con = duckdb.connect(str(workspace / "data" / "shop.duckdb"))
    # Customer 1 bought b then a; customer 2 bought c; customer 3 bought nothing.
    con.execute(
        "CREATE TABLE orders AS SELECT * FROM (VALUES "
        "(1, 'b', TIMESTAMP '2026-01-01'), (1, 'a', TIMESTAMP '2026-01-02'), "
        "(2, 'c', TIMESTAMP '2026-01-01')) t(customer_id, sku, ordered_at)"
    )
    con.close()
    (workspace / "activator.yaml").write_text(
        CONFIG + "  events:\n    orders: {table: orders, customer_key: customer_id, "
        "timestamp: ordered_at}\n"
    )


def test_related_table_sources_expand_rows_in_event_order(workspace: Path) -> None:
    _add_orders(workspace)
    (workspace / "destinations" / "items.yml").write_text(
        "type: local\npath: items\nfilename: items\nformat: {type: ndjson}\n"
    )
    (workspace / "orchestrations" / "items.yml").write_text(
        "query: SELECT customer_id FROM customers WHERE customer_id BETWEEN 1 AND 3\n"
        "destination: items\n"
        "mapping:\n  id: customer_id\n  sku: orders.sku\n"
        "  bought: {source: orders.sku, required: true}\n"
    )
    apply_workspace(workspace)
    run = run_activation(workspace, "items", as_of=AS_OF)
    assert run.status == "succeeded", run.error
    lines = (workspace / "items" / "items.ndjson").read_text().splitlines()
    rows = sorted((json.loads(line)["id"], json.loads(line)["sku"]) for line in lines)
    # One row per element; a customer without orders gets one row with a null, which the
    # required field then drops.
    assert rows == [(1, "a"), (1, "b"), (2, "c")]
    ordered = [json.loads(line)["sku"] for line in lines if json.loads(line)["id"] == 1]
    assert ordered == ["b", "a"]  # event order, not alphabetical
    assert run.counts["expansion"] == 1
    assert run.counts["shrink"] == 1
    assert run.counts["rows"] == 3


def test_related_sources_need_the_customer_key_in_the_rows(workspace: Path) -> None:
    (workspace / "orchestrations" / "nokey.yml").write_text(
        "query: SELECT email FROM customers\ndestination: drop\nmapping:\n  sku: orders.sku\n"
    )
    _add_orders(workspace)
    apply_workspace(workspace)
    run = run_activation(workspace, "nokey", as_of=AS_OF)
    assert run.status == "failed"
    assert run.error_kind == "configuration"
    assert run.error is not None
    assert "hint: select customer_id in the query" in run.error


def test_rejected_records_are_kept_and_resent_by_a_later_run_on_request(
    workspace: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_HOOK_SECRET", receiver.secret)
    (workspace / "destinations" / "hook.yml").write_text(
        f"type: webhook\nurl: {receiver.url}\nallow_private: true\nbatch_size: 100\n"
        "credentials: {signing_secret: {env: TEST_HOOK_SECRET}}\n"
    )
    (workspace / "orchestrations" / "push.yml").write_text(
        "query: SELECT customer_id, email FROM customers WHERE customer_id < 500\n"
        "destination: hook\n"
    )
    apply_workspace(workspace)
    bad = {3, 250, 499}
    receiver.refuse = lambda record: record["customer_id"] in bad
    first = run_activation(workspace, "push", as_of=AS_OF)
    assert first.status == "warning"
    assert first.counts["rejected"] == 3
    assert first.counts["rows"] == 497
    sample = show_run(workspace, first.run_id).rejected
    assert sorted(r.record["customer_id"] for r in sample) == sorted(bad)
    assert all(r.reason.startswith("HTTP 400") for r in sample)

    # The receiver is fixed; a plain run does not resend, a run asked to does, once.
    receiver.refuse = None
    second = run_activation(workspace, "push", as_of=AS_OF, retry_rejected=True)
    assert second.status == "succeeded", second.error
    assert second.counts["deliveries"]["hook"]["retried"] == {"rows": 3, "rejected": 0}
    ids = [int(r["customer_id"]) for r in receiver.records()]
    # Run 1 (all but the refused), run 2 (everyone again: an orchestration sends its whole
    # result) and the three resent records.
    assert sorted(ids) == sorted([*range(500), *range(500)])
    third = run_activation(workspace, "push", as_of=AS_OF, retry_rejected=True)
    assert "retried" not in third.counts["deliveries"]["hook"]


def test_an_orchestration_can_replace_a_table_in_the_engine(workspace: Path) -> None:
    (workspace / "destinations" / "mart.yml").write_text(
        "type: engine\ntable: customer_feed\nmode: replace\n"
    )
    # More rows than one load unit (50,000): the stream must survive the loads committed on
    # the engine while it is being read.
    (workspace / "orchestrations" / "mart.yml").write_text(
        "query: SELECT range AS customer_id, 'x' || range AS first_name FROM range(120000)\n"
        "destination: mart\n"
    )
    apply_workspace(workspace)
    checks = destination_service.test_destination(workspace, "mart", definition=None)
    assert all(c.ok for c in checks)
    for _ in range(2):  # replacing twice leaves one copy
        run = run_activation(workspace, "mart", as_of=AS_OF)
        assert run.status == "succeeded", run.error
    con = duckdb.connect(str(workspace / "data" / "shop.duckdb"), read_only=True)
    rows = con.execute("SELECT count(*), count(DISTINCT customer_id) FROM customer_feed").fetchone()
    con.close()
    assert rows == (120_000, 120_000)


@pytest.mark.postgres
def test_an_engine_table_on_a_postgres_engine_gets_every_row(
    tmp_path: Path, postgres_url: str
) -> None:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute(
            "CREATE TABLE customers AS SELECT g AS customer_id, 'x' || g AS first_name "
            "FROM generate_series(0, 119999) g"
        )
    (tmp_path / "activator.yaml").write_text(
        f"engine: {{type: postgres, url: '{postgres_url}'}}\n"
        "data_model:\n  customers: {table: customers, key: customer_id}\n"
    )
    (tmp_path / "destinations").mkdir()
    (tmp_path / "destinations" / "mart.yml").write_text("type: engine\ntable: feed_out\n")
    (tmp_path / "orchestrations").mkdir()
    (tmp_path / "orchestrations" / "mart.yml").write_text(
        "query: SELECT * FROM customers\ndestination: mart\n"
    )
    apply_workspace(tmp_path)
    run = run_activation(tmp_path, "mart", as_of=AS_OF)
    assert run.status == "succeeded", run.error
    with psycopg.connect(postgres_url) as con:
        counts = con.execute(
            "SELECT count(*), count(DISTINCT customer_id) FROM feed_out"
        ).fetchone()
    assert counts == (120_000, 120_000)


def test_a_410_disables_the_destination_until_it_is_enabled(
    workspace: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_HOOK_SECRET", receiver.secret)
    (workspace / "destinations" / "hook.yml").write_text(
        f"type: webhook\nurl: {receiver.url}\nallow_private: true\n"
        "credentials: {signing_secret: {env: TEST_HOOK_SECRET}}\n"
    )
    (workspace / "orchestrations" / "push.yml").write_text(
        "query: SELECT customer_id FROM customers WHERE customer_id < 10\ndestination: hook\n"
    )
    apply_workspace(workspace)
    receiver.fail_next(1, 410)
    gone = run_activation(workspace, "push", as_of=AS_OF)
    assert gone.status == "failed"
    assert gone.error_kind == "configuration"
    with pytest.raises(ConfigError, match="'hook' is disabled") as refused:
        run_activation(workspace, "push", as_of=AS_OF)
    assert "activator destination enable hook" in str(refused.value.hint)
    destination_service.enable_destination(workspace, "hook")
    again = run_activation(workspace, "push", as_of=AS_OF)
    assert again.status == "succeeded", again.error
    assert len(receiver.records()) == 10

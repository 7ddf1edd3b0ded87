"""`activator scheduler --once` and `activator runs cancel|retry` as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from activator.store.store import MetadataStore
from tests.cli.runner import activator, as_json

CONFIG = """\
engine: {type: duckdb, path: data/shop.duckdb}
timezone: UTC
data_model:
  customers: {table: customers, key: customer_id}
"""

DROP = """\
type: local
path: out
filename: "{activation}_{run_time:%Y%m%dT%H%M}_{part}"
format: {type: csv}
split: {rows: 10}
"""

FEED = """\
query: SELECT customer_id, 'x' || customer_id AS label FROM customers
destination: drop
schedule: {type: cron, cron: "0 2 * * *", timezone: UTC}
status: active
"""


def _workspace(root: Path, customers: int) -> Path:
    (root / "data").mkdir(parents=True)
    con = duckdb.connect(str(root / "data" / "shop.duckdb"))
    con.execute(f"CREATE TABLE customers AS SELECT range AS customer_id FROM range({customers})")
    con.close()
    (root / "activator.yaml").write_text(CONFIG)
    for folder, name, text in [("destinations", "drop", DROP), ("orchestrations", "feed", FEED)]:
        (root / folder).mkdir()
        (root / folder / f"{name}.yml").write_text(text)
    assert activator("-w", str(root), "apply").returncode == 0
    return root


def test_scheduler_once_runs_the_due_slot_and_status_shows_the_next(tmp_path: Path) -> None:
    root = _workspace(tmp_path, 25)
    first = as_json(activator("-w", str(root), "scheduler", "--once", "--as-of",
                              "2026-03-02T01:00:00Z", "--json"))  # fmt: skip
    assert first["runs"] == []
    second = as_json(activator("-w", str(root), "scheduler", "--once", "--as-of",
                               "2026-03-02T02:00:30Z", "--json"))  # fmt: skip
    assert [(r["name"], r["status"], r["scheduled_for"]) for r in second["runs"]] == [
        ("feed", "succeeded", "2026-03-02T02:00:00+00:00")
    ]
    assert second["runs"][0]["as_of"] == "2026-03-02T02:00:00+00:00"
    assert sorted(p.name for p in (root / "out").iterdir()) == [
        "feed_20260302T0200.DONE",
        "feed_20260302T0200.manifest.json",
        "feed_20260302T0200_00001.csv",
        "feed_20260302T0200_00002.csv",
        "feed_20260302T0200_00003.csv",
    ]
    status = as_json(activator("-w", str(root), "status", "--as-of", "2026-03-02T02:00:30Z",
                               "--json"))  # fmt: skip
    (feed,) = status["activations"]
    assert feed["next_run"] == "2026-03-03T02:00:00+00:00"
    assert feed["last_run"]["status"] == "succeeded"


def test_scheduler_rejects_an_unknown_catch_up(tmp_path: Path) -> None:
    root = _workspace(tmp_path, 5)
    result = activator("-w", str(root), "scheduler", "--once", "--catch-up", "sometimes")
    assert result.returncode != 0
    assert "--catch-up 'sometimes': use latest, all or none" in result.stderr


def _store(root: Path) -> MetadataStore:
    return MetadataStore.open("sqlite:///.activator/metadata.db", workspace_root=root)


@pytest.mark.slow
def test_cancel_a_running_run_stops_it_after_the_unit_in_flight(tmp_path: Path) -> None:
    # 5,000 files of 10 rows: many seconds of units, so the cancel (seen by the run's
    # heartbeat within a few seconds) lands well before the last one even on a fast machine.
    root = _workspace(tmp_path, 50_000)
    env = {k: v for k, v in os.environ.items() if k != "ACTIVATOR_WORKSPACE"}
    with subprocess.Popen(
        [sys.executable, "-m", "activator", "-w", str(root), "run", "feed", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as process:
        try:
            run_id = None
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with _store(root) as store:
                    runs = store.list_runs("orchestration", "feed")
                    if runs and len(store.ledger(runs[0].run_id, "deliver:drop")) >= 20:
                        run_id = runs[0].run_id
                        break
                time.sleep(0.2)
            assert run_id is not None, "the run never got going"
            asked = as_json(activator("-w", str(root), "runs", "cancel", run_id, "--json"))
            assert asked["status"] == "canceling"
            shown = activator("-w", str(root), "runs", "show", run_id)
            assert "canceling" in shown.stdout or "canceled" in shown.stdout
            _out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 0, err
    with _store(root) as store:
        run = store.get_run(run_id)
        assert run is not None
        assert (run.status, run.error) == ("canceled", "canceled on request")
        units = store.ledger(run_id, "deliver:drop")
    parts = sorted((root / "out").glob("*.csv"))
    assert 20 <= len(parts) < 5_000
    # Every unit the ledger calls delivered is a complete file; nothing is published.
    assert len(parts) == sum(u.state == "delivered" for u in units) + sum(
        u.state == "sending" and (root / "out" / u.detail.get("name", "?")).exists() for u in units
    )
    assert not list((root / "out").glob("*.DONE"))
    assert not list((root / "out").glob("*.manifest.json"))
    # A canceled run is over: retry refuses, restart runs the whole thing again.
    retry = activator("-w", str(root), "runs", "retry", run_id)
    assert retry.returncode == 2
    assert "runs restart" in retry.stderr

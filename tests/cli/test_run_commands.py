"""``activator run``, ``runs``, ``destination test`` and ``secrets`` as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from cryptography.fernet import Fernet

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
        "type: local\npath: out\nfilename: feed\nformat: {type: ndjson}\n"
    )
    (tmp_path / "destinations" / "blocked.yml").write_text("type: local\npath: blocker/out\n")
    (tmp_path / "blocker").write_text("a file where a folder should be")
    (tmp_path / "orchestrations").mkdir()
    (tmp_path / "orchestrations" / "feed.yml").write_text(
        "query: SELECT * FROM customers WHERE customer_id < 100\ndestination: drop\n"
    )
    assert activator("-w", str(tmp_path), "apply").returncode == 0
    return tmp_path


def test_run_reports_one_json_document_and_runs_show_the_details(workspace: Path) -> None:
    result = activator("-w", str(workspace), "run", "feed", "--json", "--as-of", "2026-03-01")
    assert result.returncode == 0, result.stderr
    run = as_json(result)
    assert run["status"] == "succeeded"
    assert run["counts"]["rows"] == 100
    assert run["as_of"].startswith("2026-03-01T23:59:59")
    lines = (workspace / "out" / "feed.ndjson").read_text().splitlines()
    assert len(lines) == 100

    shown = as_json(activator("-w", str(workspace), "runs", "show", run["run_id"], "--json"))
    assert [t["task"] for t in shown["tasks"]] == ["evaluate", "deliver:drop"]
    assert shown["tasks"][1]["counts"]["rows"] == 100
    assert any(e["message"] == "run succeeded" for e in shown["events"])
    listed = as_json(activator("-w", str(workspace), "runs", "list", "feed", "--json"))
    assert [r["run_id"] for r in listed["runs"]] == [run["run_id"]]

    human = activator("-w", str(workspace), "runs", "show", run["run_id"])
    assert "deliver:drop" in human.stdout
    # A finished run cannot be resumed; an unknown one is bad input.
    again = activator("-w", str(workspace), "runs", "resume", run["run_id"], "--json")
    assert again.returncode == 2
    assert "already finished" in as_json(again)["error"]["message"]
    assert activator("-w", str(workspace), "runs", "show", "nope").returncode == 2


def test_a_failed_run_exits_1_and_says_what_to_do(workspace: Path) -> None:
    (workspace / "out").write_text("a file where the folder should be")
    result = activator("-w", str(workspace), "run", "feed")
    assert result.returncode == 1
    assert "failed" in result.stdout
    assert "runs retry" in result.stdout


def test_destination_test_passes_and_fails_naming_the_step(workspace: Path) -> None:
    ok = activator("-w", str(workspace), "destination", "test", "drop", "--json")
    assert ok.returncode == 0, ok.stderr
    report = as_json(ok)
    assert report["ok"] is True
    assert report["checks"]
    assert all(c["ok"] for c in report["checks"])
    assert not list((workspace / "out").iterdir())  # the probe was deleted

    bad = activator("-w", str(workspace), "destination", "test", "blocked")
    assert bad.returncode == 1
    assert "FAILED" in bad.stdout
    assert "does not work" in bad.stdout
    unknown = activator("-w", str(workspace), "destination", "test", "drp")
    assert unknown.returncode == 2
    assert "did you mean 'drop'" in unknown.stderr


def test_secrets_are_read_from_stdin_listed_by_name_and_never_printed(workspace: Path) -> None:
    key = Fernet.generate_key().decode()
    env = {**os.environ, "ACTIVATOR_SECRETS_KEY": key}
    env.pop("ACTIVATOR_WORKSPACE", None)
    value = "hunter2-very-secret"
    base = [sys.executable, "-m", "activator", "-w", str(workspace), "secrets"]

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args], input=stdin, capture_output=True, text=True, env=env, check=False
        )

    stored = run("set", "hook", stdin=value + "\n")
    assert stored.returncode == 0, stored.stderr
    listed = run("list", "--json")
    assert listed.stdout.count("hook") == 1
    for result in (stored, listed):
        assert value not in result.stdout + result.stderr
    assert value not in (workspace / ".activator" / "secrets.json").read_text()
    assert run("delete", "hook").returncode == 0
    assert run("delete", "hook").returncode == 2
    new_key = run("key")
    assert len(new_key.stdout.strip()) == 44

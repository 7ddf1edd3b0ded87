"""The workspace commands run as a user runs them: a separate ``activator`` process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.runner import activator, as_json

pytestmark = pytest.mark.e2e

AS_OF = "2026-11-01"


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("template") / "w"
    result = activator(
        "init", str(target), "--demo", "--customers", "2000", "--seed", "7",
        "--as-of", AS_OF, "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    made = as_json(result)
    assert made["demo"] is True
    assert made["tables"]["customers"] == 2000
    assert made["tables"]["orders"] > 2000
    return target


@pytest.fixture
def demo(demo_template: Path, tmp_path: Path) -> Path:
    target = tmp_path / "w"
    shutil.copytree(demo_template, target)
    return target


def test_init_refuses_an_existing_workspace(demo: Path) -> None:
    result = activator("init", str(demo))
    assert result.returncode == 2
    assert "already exists" in result.stderr


def test_empty_workspace_has_folders_and_config(tmp_path: Path) -> None:
    result = activator("init", str(tmp_path / "empty"))
    assert result.returncode == 0, result.stderr
    for folder in ("segments", "destinations", "campaigns", "journeys", "orchestrations"):
        assert (tmp_path / "empty" / folder).is_dir()
    assert (tmp_path / "empty" / "activator.yaml").is_file()


def test_apply_then_status(demo: Path) -> None:
    before = as_json(activator("-w", str(demo), "status", "--as-of", AS_OF, "--json"))
    assert before["activations"] == []

    first = activator("-w", str(demo), "apply", "--json")
    assert first.returncode == 0, first.stderr
    applied = as_json(first)["applied"]
    assert {(a["kind"], a["name"]) for a in applied} >= {
        ("campaign", "winback-spring"),
        ("journey", "welcome-series"),
        ("orchestration", "customer-360"),
        ("segment", "lapsing-high-value"),
        ("destination", "local-drop"),
    }
    assert {(a["version"], a["change"]) for a in applied} == {(1, "created")}

    again = as_json(activator("-w", str(demo), "apply", "--json"))["applied"]
    assert {(a["version"], a["change"]) for a in again} == {(1, "unchanged")}

    status = activator("-w", str(demo), "status", "--as-of", "2026-11-01T12:00:00Z", "--json")
    assert status.returncode == 0, status.stderr
    rows = {(r["type"], r["name"]): r for r in as_json(status)["activations"]}
    assert set(rows) == {
        ("campaign", "winback-spring"),
        ("campaign", "vip-thank-you"),
        ("campaign", "first-order-follow-up"),
        ("journey", "welcome-series"),
        ("journey", "churn-prevention"),
        ("orchestration", "customer-360"),
        ("orchestration", "customer-360-parquet"),
    }
    assert rows[("orchestration", "customer-360")]["next_run"] == "2026-11-02T02:00:00+00:00"
    # Weekly on Mondays at 06:00 London time (GMT in November).
    assert rows[("campaign", "winback-spring")]["next_run"] == "2026-11-02T06:00:00+00:00"
    assert all(r["last_run"] is None for r in rows.values())
    # An active campaign with a recurrence and no run yet is scheduled.
    assert rows[("campaign", "winback-spring")]["status"] == "scheduled"
    assert rows[("orchestration", "customer-360")]["status"] == "active"


def test_a_changed_file_makes_a_new_version(demo: Path) -> None:
    assert activator("-w", str(demo), "apply").returncode == 0
    segment = demo / "segments" / "new-customers.yml"
    segment.write_text(segment.read_text().replace("30 days ago", "14 days ago"))
    applied = as_json(activator("-w", str(demo), "apply", "--json"))["applied"]
    changed = [(a["name"], a["version"], a["change"]) for a in applied if a["version"] > 1]
    assert changed == [("new-customers", 2, "updated")]


def test_bad_reference_stores_nothing(demo: Path) -> None:
    campaign = demo / "campaigns" / "winback-spring.yml"
    text = campaign.read_text().replace("include: [lapsing-high-value]", "include: [vip]")
    campaign.write_text(text)
    result = activator("-w", str(demo), "apply")
    assert result.returncode == 2
    assert "campaigns/winback-spring.yml:3 audience.include[0]: unknown segment 'vip'" in (
        " ".join(result.stderr.split())
    )
    assert as_json(activator("-w", str(demo), "status", "--json"))["activations"] == []


def test_errors_in_json_mode_are_one_document(demo: Path) -> None:
    (demo / "segments" / "broken.yml").write_text("rules:\n  all: [\n")
    result = activator("-w", str(demo), "validate", "--json")
    assert result.returncode == 2
    error = as_json(result)["error"]
    assert error["type"] == "DefinitionError"
    assert error["issues"][0]["file"] == "segments/broken.yml"
    assert error["issues"][0]["line"] == 3


def test_data_model_mismatch_names_table_and_column(demo: Path) -> None:
    config = demo / "activator.yaml"
    config.write_text(config.read_text().replace("amount: total", "amount: totl"))
    result = activator("-w", str(demo), "validate")
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "activator.yaml" in message
    assert "data_model.events.orders.amount" in message
    assert "'orders'" in message
    assert "'totl'" in message


def test_missing_table_is_named(demo: Path) -> None:
    config = demo / "activator.yaml"
    config.write_text(config.read_text().replace("table: email_events", "table: email_log"))
    result = activator("-w", str(demo), "validate", "--json")
    assert result.returncode == 2
    issues = as_json(result)["error"]["issues"]
    assert any(
        i["path"] == "data_model.events.email_events.table" and "email_log" in i["message"]
        for i in issues
    )


def test_not_a_workspace_and_usage_errors_exit_2(tmp_path: Path) -> None:
    missing = activator("-w", str(tmp_path), "status")
    assert missing.returncode == 2
    assert "not an Activator workspace" in missing.stderr
    assert activator("no-such-command").returncode == 2
    assert activator("init").returncode == 2


def test_workspace_from_environment_and_current_folder(demo: Path, tmp_path: Path) -> None:
    from_cwd = activator("validate", "--json", cwd=demo)
    assert from_cwd.returncode == 0, from_cwd.stderr
    assert as_json(from_cwd)["valid"] is True
    from_env = activator("validate", "--json", cwd=tmp_path, workspace_env=demo)
    assert from_env.returncode == 0, from_env.stderr
    assert as_json(from_env)["definitions"]["campaign"] == 3


HOLD_ENGINE = """
import sys
from pathlib import Path
from activator.services.workspace import load_workspace
from activator.engines.registry import open_engine

ws = load_workspace(Path(sys.argv[1]))
with open_engine(ws.config.engine, workspace_root=ws.root) as engine:
    print("holding", flush=True)
    sys.stdin.read()  # hold the engine until the test closes our stdin
"""


def test_a_second_process_is_told_who_holds_the_engine(demo: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_ENGINE, str(demo)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdin is not None
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        for command in ("validate", "apply"):
            result = activator("-w", str(demo), command)
            assert result.returncode == 2, result.stderr
            message = " ".join(result.stderr.split())
            assert "data/retail.duckdb is in use" in message
            assert f"pid {holder.pid}" in message
        assert as_json(activator("-w", str(demo), "status", "--json"))["activations"] == []
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
    assert activator("-w", str(demo), "apply").returncode == 0


def test_unreachable_metadata_store_stores_nothing_and_exits_2(demo: Path) -> None:
    config = demo / "activator.yaml"
    config.write_text(
        config.read_text().replace(
            "url: sqlite:///.activator/metadata.db",
            "url: postgresql://activator:s3cret@127.0.0.1:1/activator",
        )
    )
    result = activator("-w", str(demo), "apply")
    assert result.returncode == 2
    assert "127.0.0.1:1" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout


def test_unreachable_engine_exits_2(demo: Path) -> None:
    config = demo / "activator.yaml"
    text = config.read_text()
    start = text.index("engine:")
    end = text.index("metadata:")
    engine = (
        "engine:\n  type: postgres\n  url: postgresql://activator@127.0.0.1:1/shop\n"
        "  password_env: SHOP_PASSWORD\n"
    )
    config.write_text(text[:start] + engine + text[end:])
    result = subprocess.run(
        [sys.executable, "-m", "activator", "-w", str(demo), "validate"],
        capture_output=True,
        text=True,
        env={**os.environ, "SHOP_PASSWORD": "hunter2"},
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "postgres" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout

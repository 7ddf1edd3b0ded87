"""``activator plan``, ``run``, ``runs``, ``campaign ...`` and ``status`` on a campaign, as a
user runs them."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.cli.runner import activator, as_json
from tests.services.test_campaign import T1, T2, make_workspace

pytestmark = pytest.mark.e2e


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = make_workspace(tmp_path / "ws")
    con = duckdb.connect(str(root / "data" / "shop.duckdb"))
    # Orders for results: customers 0-599 order one day after T1 (gold ones twice).
    con.execute(
        "CREATE TABLE orders AS SELECT range AS order_id, range % 600 AS customer_id, "
        "TIMESTAMP '2026-03-03 10:00' AS ordered_at, 20.00::DECIMAL(10, 2) AS total "
        "FROM range(600) UNION ALL SELECT 1000 + range, range, TIMESTAMP '2026-03-04 10:00', "
        "5.00 FROM range(0, 600, 9)"
    )
    con.close()
    config = root / "activator.yaml"
    config.write_text(
        config.read_text() + "  events:\n    orders: {table: orders, customer_key: customer_id, "
        "timestamp: ordered_at, amount: total}\n"
    )
    return root


def _run(root: Path, *args: str) -> dict:  # type: ignore[type-arg]
    result = activator("-w", str(root), *args, "--json")
    assert result.returncode == 0, result.stderr
    document: dict = as_json(result)  # type: ignore[type-arg]
    return document


def test_plan_run_runs_and_show(workspace: Path) -> None:
    plan = _run(workspace, "plan", "promo", "--as-of", T1.isoformat())
    assert plan["previous_run"] is None
    assert plan["new"] == plan["audience"] > 0
    assert {s["name"] for s in plan["sub_audiences"]} == {"gold", "others"}

    run = _run(workspace, "run", "promo", "--as-of", T1.isoformat())
    assert {"run_id", "status", "audience", "sent", "deliveries"} <= set(run)
    assert run["status"] == "succeeded"
    assert run["audience"] == plan["audience"]
    planned = {(d["sub_audience"], d["group"]): d for d in plan["deliveries"]}
    for delivery in run["deliveries"]:
        key = (delivery["sub_audience"], delivery["group"])
        assert {k: delivery[k] for k in ("customers", "rows", "shrink", "expansion")} == {
            k: planned[key][k] for k in ("customers", "rows", "shrink", "expansion")
        }
        assert delivery["rejected"] == 0

    second = _run(workspace, "run", "promo", "--as-of", T2.isoformat())
    assert 0 < second["sent"] < run["sent"]

    runs = _run(workspace, "runs", "promo")["runs"]
    assert [r["run_id"] for r in runs] == [second["run_id"], run["run_id"]]
    listed = activator("-w", str(workspace), "runs", "promo")
    assert listed.returncode == 0
    assert run["run_id"] in listed.stdout

    shown = _run(workspace, "runs", "show", run["run_id"])
    assert shown["run_id"] == run["run_id"]
    assert {t["task"] for t in shown["tasks"]} == {
        "evaluate",
        "deliver:drop:gold/offer",
        "deliver:drop:others/reminder",
        "recipients",
    }


def test_test_send_pause_resume_archive_and_status(workspace: Path) -> None:
    test = _run(workspace, "campaign", "test", "promo", "--sample", "7", "--as-of", T1.isoformat())
    assert (test["is_test"], test["sent"]) == (True, 7)

    statuses = _run(workspace, "status", "--as-of", T1.isoformat())["activations"]
    assert [a["status"] for a in statuses if a["name"] == "promo"] == ["scheduled"]

    assert _run(workspace, "campaign", "pause", "promo") == {
        "campaign": "promo",
        "status": "paused",
    }
    refused = activator("-w", str(workspace), "run", "promo")
    assert refused.returncode != 0
    assert "is paused" in refused.stderr
    assert "campaign resume promo" in refused.stderr
    assert _run(workspace, "campaign", "resume", "promo")["status"] == "active"
    assert _run(workspace, "campaign", "archive", "promo")["status"] == "archived"
    table = activator("-w", str(workspace), "status", "--as-of", T1.isoformat())
    assert "Archived" in table.stdout


def test_results(workspace: Path) -> None:
    _run(workspace, "run", "promo", "--as-of", T1.isoformat())
    results = _run(
        workspace, "campaign", "results", "promo", "--conversion", "orders", "--days", "7",
        "--as-of", "2026-03-20T00:00:00Z",
    )  # fmt: skip
    groups = {(g["sub_audience"], g["group"]): g for g in results["groups"]}
    assert set(groups) == {
        ("gold", "offer"), ("gold", "holdout"), ("others", "reminder"), ("others", "holdout"),
    }  # fmt: skip
    total = sum(g["recipients"] for g in groups.values())
    assert total == _run(workspace, "runs", "promo")["runs"][0]["audience"]
    # Every recipient below 600 ordered once (gold ones twice) the day after the send.
    assert sum(g["purchasers"] for g in groups.values()) == sum(1 for c in range(600) if c % 13)
    table = activator("-w", str(workspace), "campaign", "results", "promo", "--conversion",
                      "orders", "--days", "7", "--as-of", "2026-03-20T00:00:00Z")  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "offer" in table.stdout

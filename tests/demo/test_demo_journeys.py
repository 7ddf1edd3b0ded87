"""The journeys of ``make demo`` on 5,000 customers: both simulated over the 30 days before the
data's day, then ``churn-prevention`` run weekly for four weeks, and its overview.

The figures are checked against each other and against the definitions: travellers leave a
delay exactly when it ends, the control is exactly the customers whose hash bucket falls in its
range, what a run sends is what reached its activate nodes, and nothing of a simulation stays.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from activator.clock import parse_as_of
from activator.services.journey import JourneyOverview, Simulation, journey_overview
from activator.services.journey import simulate_journey as simulate
from activator.services.run import run_activation, run_json
from activator.services.workspace import apply_workspace, init_workspace

pytestmark = pytest.mark.slow

DATA_DAY = date(2026, 3, 1)
# As in the Makefile: simulations from 30 days before the data's day; weekly runs after.
START = "2026-01-30"
RUN_DAYS = ["2026-02-01", "2026-02-08", "2026-02-15", "2026-02-22", "2026-03-01"]


@dataclass
class Demo:
    root: Path
    welcome: Simulation
    churn: Simulation
    runs: list[dict[str, Any]]
    overview: JourneyOverview

    def log(self, sql: str) -> list[tuple[Any, ...]]:
        con = duckdb.connect(str(self.root / "data" / "retail.duckdb"), read_only=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()


def _as_of(day: str) -> datetime:
    return parse_as_of(day, timezone="UTC")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    root = tmp_path_factory.mktemp("demo") / "shop"
    init_workspace(root, demo=True, customers=5000, seed=42, as_of=DATA_DAY)
    apply_workspace(root)
    start = _as_of(START)
    welcome = simulate(root, "welcome-series", start=start, days=30, every=timedelta(days=1))
    churn = simulate(root, "churn-prevention", start=start, days=30, every=timedelta(days=1))
    runs = [
        run_json(run_activation(root, "churn-prevention", as_of=_as_of(day))) for day in RUN_DAYS
    ]
    overview = journey_overview(root, "churn-prevention", as_of=_as_of(RUN_DAYS[-1]))
    return Demo(root, welcome, churn, runs, overview)


def test_simulations_have_a_run_per_day_and_keep_nothing(demo: Demo) -> None:
    for simulation in (demo.welcome, demo.churn):
        days = [r["as_of"][:10] for r in simulation.runs]
        assert days == [str(date(2026, 1, 30) + timedelta(days=d)) for d in range(30)]
    assert sum(r["entered"] for r in demo.welcome.runs) > 30
    assert sum(r["entered"] for r in demo.churn.runs) > 30
    tables = {name for (name,) in demo.log("SELECT table_name FROM information_schema.tables")}
    assert not [t for t in tables if t.startswith("journey_sim")]
    # The real log holds the five runs of churn-prevention only.
    journeys = demo.log("SELECT DISTINCT journey FROM activator.journey_log")
    assert journeys == [("churn-prevention",)]


def test_welcome_travellers_leave_the_delay_exactly_three_days_later(demo: Demo) -> None:
    runs = demo.welcome.runs
    for day, run in enumerate(runs):
        nodes = run["nodes"]
        # The welcome email is the first node: every entry reaches it in its run and moves on.
        assert nodes["welcome"]["entered"] == run["entered"] == nodes["welcome"]["left"]
        assert nodes["wait-3d"]["entered"] == run["entered"]
        expected = runs[day - 3]["entered"] if day >= 3 else 0
        assert nodes["wait-3d"]["left"] == expected
        # Everyone leaving the delay is split at once: buyers are thanked, the others nudged.
        assert nodes["bought"]["entered"] == nodes["bought"]["left"] == expected
        assert nodes["thanks"]["entered"] + nodes["nudge"]["entered"] == expected
    # Whoever waits for a first order leaves by a purchase (met) or after 7 days (timed out).
    waited = sum(r["nodes"]["wait-order"]["left"] for r in runs)
    reminded = sum(r["nodes"]["reminder"]["entered"] for r in runs)
    assert 0 < reminded <= waited


def test_churn_prevention_holds_out_exactly_the_control_buckets(demo: Demo) -> None:
    paths = demo.log(
        "SELECT traveller, path FROM activator.journey_log "
        "WHERE node = 'holdout' AND stage = 'complete'"
    )
    assert len(paths) > 30
    for traveller, path in paths:
        digest = hashlib.md5(f"churn-prevention:holdout:{traveller}".encode()).hexdigest()
        bucket = int(digest[:8], 16) % 10_000
        assert path == ("offer" if bucket < 9000 else "control")
    sent_to_control = demo.log(
        "SELECT count(*) FROM activator.journey_log "
        "WHERE control AND node IN ('offer', 'second-offer')"
    )
    assert sent_to_control == [(0,)]


def test_each_weekly_run_sends_what_reached_its_activate_nodes(demo: Demo) -> None:
    for run in demo.runs:
        assert run["status"] == "succeeded"
        reached = demo.log(
            "SELECT node, count(*) FROM activator.journey_log WHERE run_id = "
            f"'{run['run_id']}' AND stage = 'start' AND node IN ('offer', 'second-offer') "
            "AND NOT control GROUP BY node"
        )
        counts = run["counts"]["deliveries"]
        delivered = {d.split(":")[1]: c["customers"] for d, c in counts.items()}
        assert delivered == {"offer": dict(reached).get("offer", 0)} | {
            "second-offer": dict(reached).get("second-offer", 0)
        }
    assert demo.runs[0]["counts"]["journey"]["entered"] > 0
    # Two weeks after the first run its offer group reaches the second offer.
    second = demo.runs[2]["counts"]["deliveries"]["local-drop:second-offer"]["customers"]
    first = demo.runs[0]["counts"]["deliveries"]["local-drop:offer"]["customers"]
    assert 0 < second <= first


def test_the_overview_adds_up(demo: Demo) -> None:
    nodes = demo.overview.nodes
    entered = sum(r["counts"]["journey"]["entered"] for r in demo.runs)
    assert nodes["holdout"]["total"] == entered
    assert nodes["offer"]["total"] + nodes["control-wait"]["total"] == entered
    assert nodes["holdout"]["run"] == demo.runs[-1]["counts"]["journey"]["entered"]
    (split,) = demo.overview.splits
    travellers = {p["path"]: p["travellers"] for p in split["paths"]}
    assert travellers == {
        "offer": nodes["offer"]["total"],
        "control": nodes["control-wait"]["total"],
    }
    milestones = {(m["kind"], m["name"]): m for m in demo.overview.milestones}
    goal = milestones[("goal", "purchased-this-week")]
    assert goal["last_7_days"] <= goal["last_30_days"] <= goal["all_time"]
    done = milestones[("exit", "exit-node")]
    # The control waits 21 days, the offer path 14 + 7: exits come three weeks after entry.
    assert done["median_days"] == 21.0

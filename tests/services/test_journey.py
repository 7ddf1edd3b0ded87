"""Journeys end to end on DuckDB: runs that step travellers and deliver what reaches activate
nodes into files, run counts, pause/resume/end, versions with orphans, counters and milestones,
the control comparison, the travel log, simulation (nothing sent, nothing kept), and a run
whose delivery failed resumed without stepping or sending anything twice."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from activator.errors import ConfigError
from activator.services import journey as journeys
from activator.services.run import resume_run, run_activation, run_json, show_run
from activator.services.workspace import apply_workspace, status
from tests.fixtures.receiver import Receiver

DAY0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
"""Customers ``100 d`` to ``100 d + 99`` join on day ``d`` after DAY0's midnight."""

CONFIG = """\
engine: {type: duckdb, path: data/shop.duckdb}
data_model:
  customers: {table: customers, key: customer_id}
"""

SEGMENTS = {
    "joined": "rules: {attribute: customers.joined_at, op: before, value: now}\n",
    "bought": "rules: {attribute: customers.bought_at, op: before, value: now}\n",
    "gold": "rules: {attribute: customers.tier, op: equals, value: gold}\n",
    "opted-out": "rules: {attribute: customers.opted_out, op: is_true}\n",
}

DROP = """\
type: local
path: out
filename: "{journey}_{node}_{run_time:%Y%m%d}"
format: {type: csv}
"""

ONBOARDING = """\
start:
  entry: [joined]
  exclude: [opted-out]
  goals: [bought]
nodes:
  - id: welcome
    type: activate
    destinations: [{destination: drop, mapping: {id: customer_id, email: email, step: run.node}}]
    next: wait
  - {id: wait, type: delay, wait: 2d, next: tier}
  - id: tier
    type: conditional_split
    paths: [{name: gold, segment: gold, next: gold-offer}]
    otherwise: test
  - id: gold-offer
    type: activate
    destinations: [{destination: drop, mapping: {id: customer_id, step: run.node}}]
  - id: test
    type: percent_split
    paths:
      - {name: offer, percent: 50, next: offer}
      - {name: holdout, percent: 50, control: true, next: offer}
  - id: offer
    type: activate
    destinations: [{destination: drop, mapping: {id: customer_id, step: run.node}}]
    next: done
  - {id: done, type: exit}
schedule: {type: recurring, every: daily, at: "12:00"}
status: active
"""


def _customers(con: duckdb.DuckDBPyConnection, n: int) -> None:
    # Every 4th is gold, every 10th opted out, every 3rd buys two days after joining.
    con.execute(
        f"""CREATE OR REPLACE TABLE customers AS SELECT range AS customer_id,
        'c' || range || '@x.com' AS email,
        CASE WHEN range % 4 = 0 THEN 'gold' ELSE 'basic' END AS tier,
        range % 10 = 0 AS opted_out,
        TIMESTAMP '2026-03-01' + INTERVAL (range // 100) DAY AS joined_at,
        CASE WHEN range % 3 = 0
             THEN TIMESTAMP '2026-03-01' + INTERVAL (range // 100 + 2) DAY END AS bought_at
        FROM range({n})"""
    )


def make_workspace(root: Path, *, extra: dict[str, str] | None = None) -> Path:
    (root / "data").mkdir(parents=True)
    con = duckdb.connect(str(root / "data" / "shop.duckdb"))
    _customers(con, 1000)
    con.close()
    (root / "activator.yaml").write_text(CONFIG)
    files = {
        **{f"segments/{name}": text for name, text in SEGMENTS.items()},
        "destinations/drop": DROP,
        "journeys/onboarding": ONBOARDING,
        **(extra or {}),
    }
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / f"{path}.yml").write_text(text)
    apply_workspace(root)
    return root


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws")


def _ids(root: Path, node: str, day: int) -> list[int]:
    path = root / "out" / f"onboarding_{node}_{(DAY0 + timedelta(days=day)):%Y%m%d}.csv"
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert all(row["step"] == node for row in rows)
    return [int(row["id"]) for row in rows]


def _joined(day: int) -> list[int]:
    """Customers who qualify by day ``day`` (joined, not opted out)."""
    return [i for i in range(100 * (day + 1)) if i % 10]


def _run(root: Path, day: int) -> dict[str, Any]:
    run = run_activation(root, "onboarding", as_of=DAY0 + timedelta(days=day))
    document = run_json(run)
    assert document["status"] == "succeeded", document
    return document


def _bucket(customer: int, salt: str) -> int:
    import hashlib

    return int(hashlib.md5(f"{salt}:{customer}".encode()).hexdigest()[:8], 16) % 10_000


def test_runs_step_travellers_and_send_what_reaches_activate_nodes(workspace: Path) -> None:
    first = _run(workspace, 0)
    assert _ids(workspace, "welcome", 0) == _joined(0)
    assert first["counts"]["journey"]["entered"] == 90
    welcome = first["counts"]["deliveries"]["drop:welcome"]
    assert (welcome["node"], welcome["rows"]) == ("welcome", 90)

    _run(workspace, 1)  # the second cohort enters; the first waits
    assert _ids(workspace, "welcome", 1) == [i for i in _joined(1) if i >= 100]
    assert _ids(workspace, "gold-offer", 1) == []

    third = _run(workspace, 2)  # the first cohort's two days are over
    cohort = [i for i in range(100) if i % 10]
    assert _ids(workspace, "gold-offer", 2) == [i for i in cohort if i % 4 == 0]
    rest = [i for i in cohort if i % 4]
    offer = [i for i in rest if _bucket(i, "onboarding:test") < 5000]
    assert _ids(workspace, "offer", 2) == offer  # the holdout half is never sent
    counts = third["counts"]["journey"]
    assert counts["entered"] == 90
    # gold-offer has no next: those travellers leave there; the others leave at `done`.
    assert counts["exited"] == len(cohort)
    assert counts["goals"] == len([i for i in range(300) if i % 10 and i % 3 == 0 and i < 100])


def test_the_overview_counts_nodes_milestones_and_the_control(workspace: Path) -> None:
    for day in range(4):
        _run(workspace, day)
    overview = journeys.journey_overview(workspace, "onboarding", as_of=DAY0 + timedelta(days=3))
    nodes = overview.nodes
    qualified = _joined(3)  # 360 travellers, cohorts of 90 on days 0..3
    assert nodes["welcome"]["total"] == len(qualified)
    assert nodes["welcome"]["run"] == 90
    assert nodes["welcome"]["waiting"] == 0
    assert nodes["wait"]["waiting"] == 180  # the cohorts of days 2 and 3
    cohorts = [i for i in range(200) if i % 10]
    assert nodes["tier"]["total"] == len(cohorts)
    gold = [i for i in cohorts if i % 4 == 0]
    assert nodes["gold-offer"]["total"] == len(gold)
    assert nodes["offer"]["total"] == len(cohorts) - len(gold)  # control travellers too
    # Milestones: the goal `bought` (every 3rd customer, two days after joining: seen by the
    # runs of days 2 and 3 for the cohorts of days 0 and 1... and at once for later ones).
    goal = next(m for m in overview.milestones if m["kind"] == "goal")
    reached = [i for i in qualified if i % 3 == 0 and i // 100 + 2 <= 3]
    assert (goal["name"], goal["all_time"]) == ("bought", len(reached))
    assert goal["median_days"] == 2.0
    # The percent split against its control on the goal.
    (split,) = overview.splits
    paths = {p["path"]: p for p in split["paths"]}
    took = [i for i in cohorts if i % 4]
    holdout = [i for i in took if _bucket(i, "onboarding:test") >= 5000]
    assert paths["holdout"]["travellers"] == len(holdout)
    assert paths["holdout"]["converted"] == len([i for i in holdout if i % 3 == 0])
    offer = [i for i in took if i not in holdout]
    assert paths["offer"]["travellers"] == len(offer)
    assert paths["offer"]["converted"] == len([i for i in offer if i % 3 == 0])
    rate = paths["offer"]["converted"] / len(offer)
    base = paths["holdout"]["converted"] / len(holdout)
    assert paths["offer"]["lift"]["relative"] == pytest.approx(rate / base - 1)
    assert "lift" not in paths["holdout"]


def test_the_travel_log_of_one_customer(workspace: Path) -> None:
    for day in range(3):
        _run(workspace, day)
    rows = journeys.journey_log(workspace, "onboarding", customer="4")
    seen = {(r["stage"], r["node"]) for r in rows}
    assert seen == {
        ("start", "welcome"), ("complete", "welcome"), ("start", "wait"), ("complete", "wait"),
        ("start", "tier"), ("complete", "tier"), ("start", "gold-offer"), ("exit", "gold-offer"),
    }  # fmt: skip
    assert {r["traveller"] for r in rows} == {4}


def test_paused_journeys_keep_travellers_and_ended_ones_do_not_run(workspace: Path) -> None:
    _run(workspace, 0)
    assert journeys.set_journey_status(workspace, "onboarding", "pause") == "paused"
    with pytest.raises(ConfigError, match="is paused: it does not run"):
        run_activation(workspace, "onboarding", as_of=DAY0 + timedelta(days=1))
    rows = {(r.type, r.name): r for r in status(workspace, as_of=DAY0)}
    assert rows[("journey", "onboarding")].status == "paused"
    assert rows[("journey", "onboarding")].next_run is None
    assert journeys.set_journey_status(workspace, "onboarding", "resume") == "active"
    # Resumed three days later: the first cohort's wait is over, the missed cohorts enter.
    _run(workspace, 3)
    assert _ids(workspace, "gold-offer", 3) == [i for i in range(100) if i % 10 and i % 4 == 0]
    assert _ids(workspace, "welcome", 3) == [i for i in _joined(3) if i >= 100]
    assert journeys.set_journey_status(workspace, "onboarding", "end") == "ended"
    with pytest.raises(ConfigError, match="is ended: it does not run"):
        run_activation(workspace, "onboarding", as_of=DAY0 + timedelta(days=4))
    with pytest.raises(ConfigError, match="is ended: it cannot resume"):
        journeys.set_journey_status(workspace, "onboarding", "resume")


def test_a_new_version_keeps_travellers_and_orphans_those_at_removed_nodes(
    workspace: Path,
) -> None:
    _run(workspace, 0)
    _run(workspace, 1)  # two cohorts waiting at `wait`
    # Version 2: no splits any more; `wait` leads straight to `offer`.
    start = ONBOARDING.index("  - id: tier")
    end = ONBOARDING.index("  - id: offer")
    edited = ONBOARDING[:start] + ONBOARDING[end:]
    edited = edited.replace("wait: 2d, next: tier", "wait: 2d, next: offer")
    (workspace / "journeys" / "onboarding.yml").write_text(edited)
    apply_workspace(workspace)
    third = _run(workspace, 2)
    assert third["version"] == 2
    assert third["counts"]["journey"]["orphaned"] == 0  # nobody was at a removed node
    assert _ids(workspace, "offer", 2) == [i for i in range(100) if i % 10]  # no split now
    # Version 3: `wait` is gone; the cohorts of days 1 and 2 were there: orphans, who leave.
    again = edited.replace("  - {id: wait, type: delay, wait: 2d, next: offer}\n", "")
    again = again.replace("next: wait", "next: offer")
    (workspace / "journeys" / "onboarding.yml").write_text(again)
    apply_workspace(workspace)
    fourth = _run(workspace, 3)
    assert fourth["counts"]["journey"]["orphaned"] == 180
    assert _ids(workspace, "offer", 3) == [i for i in _joined(3) if i >= 300]
    log = journeys.journey_log(workspace, "onboarding", customer="101")
    assert [(r["stage"], r["node"], r["version"]) for r in log if r["stage"] == "orphan"] == [
        ("orphan", "wait", 3)
    ]
    overview = journeys.journey_overview(workspace, "onboarding", as_of=DAY0 + timedelta(days=3))
    assert overview.nodes["wait"]["waiting"] == 0


def test_simulation_sends_nothing_and_keeps_nothing(workspace: Path) -> None:
    found = journeys.simulate_journey(
        workspace, "onboarding", start=DAY0, days=4, every=timedelta(days=1)
    )
    document = found.to_json()
    assert [r["as_of"] for r in document["runs"]] == [
        (DAY0 + timedelta(days=d)).isoformat() for d in range(4)
    ]
    per_day = [r["nodes"] for r in document["runs"]]
    assert [n["welcome"]["entered"] for n in per_day] == [90, 90, 90, 90]
    assert [n["wait"]["waiting"] for n in per_day] == [90, 180, 180, 180]
    assert per_day[2]["wait"]["left"] == 90
    gold = [i for i in range(100) if i % 10 and i % 4 == 0]
    assert per_day[2]["gold-offer"]["entered"] == len(gold)
    assert document["runs"][0]["sends"] == 90
    assert not (workspace / "out").exists()
    with pytest.raises(ConfigError, match="no applied journey"):
        journeys.simulate_journey(workspace, "nope", start=DAY0, days=1, every=timedelta(days=1))
    # No run was recorded, and the real travel log holds nothing of the simulation.
    overview = journeys.journey_overview(workspace, "onboarding", as_of=DAY0)
    assert overview.last_run is None
    assert all(n["total"] == 0 for n in overview.nodes.values())


HOOKED = ONBOARDING.replace(
    "destinations: [{destination: drop, mapping: {id: customer_id, email: email, step: run.node}}]",
    "destinations: [{destination: hook, mapping: {id: customer_id, email: email}}]",
)


def test_a_failed_delivery_resumes_without_stepping_or_sending_twice(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNEY_HOOK_SECRET", receiver.secret)
    hook = (
        f"type: webhook\nurl: {receiver.url}\nallow_private: true\nbatch_size: 20\n"
        "retries: {max_attempts: 1}\n"
        "credentials: {signing_secret: {env: JOURNEY_HOOK_SECRET}}\n"
    )
    root = make_workspace(
        tmp_path / "ws", extra={"destinations/hook": hook, "journeys/onboarding": HOOKED}
    )
    receiver.fail_next(3, 503)
    run = run_activation(root, "onboarding", as_of=DAY0)
    assert run.status == "failed"
    detail = show_run(root, run.run_id)
    tasks = {t.task: t.status for t in detail.tasks}
    assert tasks["step"] == "succeeded"
    with receiver.lock:  # the receiver is back
        receiver.script.clear()
    resumed = resume_run(root, run.run_id)
    assert resumed.status == "succeeded"
    ids = sorted(int(r["id"]) for r in receiver.records())
    assert ids == _joined(0)
    # The step ran once: one entry per traveller in the log.
    rows = journeys.journey_log(root, "onboarding", limit=10_000)
    starts = [r for r in rows if r["stage"] == "start" and r["node"] == "welcome"]
    assert sorted(r["traveller"] for r in starts) == _joined(0)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("{type: once, at: '2026-03-05T08:00:00Z'}", "2026-03-05T08:00:00+00:00"),
        ("{type: recurring, every: 3h}", "2026-03-01T15:00:00+00:00"),
        ("{type: recurring, every: 6h}", "2026-03-01T18:00:00+00:00"),
        ("{type: recurring, every: 12h, at: '06:00'}", "2026-03-01T18:00:00+00:00"),
        ("{type: recurring, every: daily, at: '12:00'}", "2026-03-02T12:00:00+00:00"),
        ("{type: recurring, every: weekly, at: '12:00'}", "2026-03-02T12:00:00+00:00"),
        ("{type: recurring, every: monthly}", "2026-04-01T00:00:00+00:00"),
        ("{type: recurring, every: quarterly}", "2026-04-01T00:00:00+00:00"),
        (
            # 12:00 UTC is 07:00 in New York (EST): 09:30 there is still to come that day.
            "{type: cron, cron: '30 9 * * *', timezone: America/New_York}",
            "2026-03-01T14:30:00+00:00",
        ),
    ],
)
def test_each_recurrence_gives_the_next_run(tmp_path: Path, schedule: str, expected: str) -> None:
    journey = ONBOARDING.replace(
        'schedule: {type: recurring, every: daily, at: "12:00"}', f"schedule: {schedule}"
    )
    root = make_workspace(tmp_path / "ws", extra={"journeys/onboarding": journey})
    rows = {(r.type, r.name): r for r in status(root, as_of=DAY0)}
    found = rows[("journey", "onboarding")].next_run
    assert found is not None
    assert found.isoformat() == expected

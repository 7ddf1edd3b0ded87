"""``activator run``, ``runs``, ``status`` and ``journey show|simulate|pause|resume|end|log`` on a
journey, as a user runs them: a run's travel counts and its deliveries per activate node, the
graph with exact counters, milestones and the control comparison (JSON and text), simulation
that sends and keeps nothing, status changes that stop runs, the travel log of one customer,
and clear errors for unknown journeys, goals and steps.

The data (tests/services/test_journey.py): customers ``100 d`` to ``100 d + 99`` join on day
``d``; every 10th opted out (never enters), every 4th gold, every 3rd buys two days after
joining. The journey: welcome (activate) → wait 2d → tier (gold → gold-offer, which leaves;
everyone else → test: 50% offer / 50% holdout control) → offer (activate) → done (exit)."""

from __future__ import annotations

import csv
import hashlib
import math
from datetime import datetime, timedelta
from pathlib import Path
from statistics import NormalDist
from subprocess import CompletedProcess
from typing import Any, NamedTuple

import duckdb
import pytest

from tests.cli.runner import activator, as_json
from tests.services.test_journey import DAY0, make_workspace

pytestmark = pytest.mark.e2e

JOURNEY = "onboarding"
Z = NormalDist().inv_cdf(0.975)


# -- the dataset, worked out independently of activator ----------------------------------------


def _at(day: int | float) -> str:
    return (DAY0 + timedelta(days=day)).isoformat()


def _cohort(day: int) -> list[int]:
    """Who enters at the run of day ``day``: that day's joiners, less the opted out (90)."""
    return [i for i in range(100 * day, 100 * day + 100) if i % 10]


def _gold(ids: list[int]) -> list[int]:
    return [i for i in ids if i % 4 == 0]


def _buyers(ids: list[int]) -> list[int]:
    return [i for i in ids if i % 3 == 0]


def _bucket(customer: int) -> int:
    """docs/journeys.md: stable_bucket(traveller, "<salt>:<node id>"), salt = the name."""
    digest = hashlib.md5(f"{JOURNEY}:test:{customer}".encode()).hexdigest()
    return int(digest[:8], 16) % 10_000


def _offer(ids: list[int]) -> list[int]:
    """The non-gold travellers the percent split sends down `offer` (the first 50%)."""
    return [i for i in ids if i % 4 and _bucket(i) < 5000]


def _holdout(ids: list[int]) -> list[int]:
    return [i for i in ids if i % 4 and _bucket(i) >= 5000]


# -- running the CLI ----------------------------------------------------------------------------


def _cli(root: Path, *args: str) -> Any:
    """``activator -w ROOT ARGS --json``, which must succeed; its JSON document."""
    result = activator("-w", str(root), *args, "--json")
    assert result.returncode == 0, result.stderr
    return as_json(result)


def _text(root: Path, *args: str) -> str:
    result = activator("-w", str(root), *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _refused(root: Path, *args: str) -> CompletedProcess[str]:
    """A command that must fail as bad input (exit code 2)."""
    result = activator("-w", str(root), *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    return result


def _table_rows(text: str) -> list[list[str]]:
    """The cells of every body row of the Rich tables in ``text``."""
    return [
        [cell.strip() for cell in line[1:-1].split("│")]
        for line in text.splitlines()
        if line.startswith("│") and line.endswith("│")
    ]


def _delivered(root: Path, node: str, day: int) -> list[int]:
    """The customer ids in the file a run of day ``day`` wrote for ``node`` ([] if none)."""
    path = root / "out" / f"{JOURNEY}_{node}_{(DAY0 + timedelta(days=day)):%Y%m%d}.csv"
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [int(row["id"]) for row in csv.DictReader(handle)]


class Travelled(NamedTuple):
    root: Path
    runs: list[dict[str, Any]]
    """The JSON of the runs of days 0, 1, 2 and 3 (at DAY0's 12:00)."""


@pytest.fixture(scope="module")
def travelled(tmp_path_factory: pytest.TempPathFactory) -> Travelled:
    """A workspace whose journey ran, through the CLI, on days 0 to 3; only read afterwards."""
    root = make_workspace(tmp_path_factory.mktemp("journey") / "ws")
    return Travelled(root, [_cli(root, "run", JOURNEY, "--as-of", _at(day)) for day in range(4)])


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws")


# -- activator run ------------------------------------------------------------------------------


def _deliveries(run: dict[str, Any]) -> dict[str, tuple[str, str, int, int, int]]:
    return {
        label: (d["node"], d["destination"], d["customers"], d["rows"], d["rejected"])
        for label, d in run["counts"]["deliveries"].items()
    }


def test_a_run_reports_travellers_moved_and_deliveries_per_node(travelled: Travelled) -> None:
    root, runs = travelled
    first = runs[0]
    assert (first["kind"], first["name"], first["version"], first["status"]) == (
        "journey", JOURNEY, 1, "succeeded",
    )  # fmt: skip
    assert first["as_of"] == "2026-03-01T12:00:00+00:00"
    # Day 0: the first cohort enters, is welcomed and waits.
    assert first["counts"]["journey"] == {
        "entered": 90,
        "moved": 90,
        "exited": 0,
        "goals": 0,
        "orphaned": 0,
        "nodes": {"welcome": {"start": 90, "complete": 90}, "wait": {"start": 90}},
    }
    assert _deliveries(first) == {
        "drop:welcome": ("welcome", "drop", 90, 90, 0),
        "drop:gold-offer": ("gold-offer", "drop", 0, 0, 0),
        "drop:offer": ("offer", "drop", 0, 0, 0),
    }
    assert (first["audience"], first["sent"]) == (90, 90)
    assert _delivered(root, "welcome", 0) == _cohort(0)

    # Day 2: the first cohort's wait is over; it goes through both splits and leaves.
    third = runs[2]
    cohort = _cohort(0)
    gold, rest = len(_gold(cohort)), len(cohort) - len(_gold(cohort))
    assert (gold, rest) == (20, 70)
    assert third["counts"]["journey"] == {
        "entered": 90,
        "moved": 90 + 90 + 90 + rest + rest,  # welcome, wait, tier, test, offer
        "exited": gold + rest,  # gold-offer leaves by its empty edge, the rest at `done`
        "goals": len(_buyers(cohort)),  # they bought on day 2: 30
        "orphaned": 0,
        "nodes": {
            "welcome": {"start": 90, "complete": 90},
            "wait": {"start": 90, "complete": 90, "goal": len(_buyers(cohort))},
            "tier": {"start": 90, "complete": 90},
            "gold-offer": {"start": gold, "exit": gold},
            "test": {"start": rest, "complete": rest},
            "offer": {"start": rest, "complete": rest},
            "done": {"start": rest, "exit": rest},
        },
    }
    offer = _offer(cohort)
    assert _deliveries(third) == {
        "drop:welcome": ("welcome", "drop", 90, 90, 0),
        "drop:gold-offer": ("gold-offer", "drop", gold, gold, 0),
        "drop:offer": ("offer", "drop", len(offer), len(offer), 0),  # never the holdout
    }
    assert third["sent"] == 90 + gold + len(offer)
    assert _delivered(root, "gold-offer", 2) == _gold(cohort)
    assert _delivered(root, "offer", 2) == offer
    later = len(_offer(_cohort(1)))
    assert _deliveries(runs[3])["drop:offer"] == ("offer", "drop", later, later, 0)

    listed = _cli(root, "runs", JOURNEY)["runs"]
    assert [r["run_id"] for r in listed] == [r["run_id"] for r in reversed(runs)]
    assert [r["as_of"] for r in listed] == [_at(day) for day in (3, 2, 1, 0)]


def test_each_delivery_in_a_run_names_its_node(travelled: Travelled) -> None:
    # Every delivery of a journey goes to `drop`: only the node tells them apart.
    deliveries = travelled.runs[2]["deliveries"]
    assert [(d.get("node"), d["destination"], d["rows"]) for d in deliveries] == [
        ("welcome", "drop", 90),
        ("gold-offer", "drop", 20),
        ("offer", "drop", len(_offer(_cohort(0)))),
    ]


# -- activator journey show ---------------------------------------------------------------------


def _interval(x: int, n: int) -> dict[str, float]:
    rate = x / n
    half = Z * math.sqrt(rate * (1 - rate) / n)
    return {"low": rate - half, "high": rate + half}


def test_show_gives_the_graph_counters_milestones_and_the_control(travelled: Travelled) -> None:
    root, runs = travelled
    shown = _cli(root, "journey", "show", JOURNEY, "--as-of", _at(3))
    assert {k: shown[k] for k in ("journey", "version", "status", "last_run", "first")} == {
        "journey": JOURNEY,
        "version": 1,
        "status": "active",
        "last_run": runs[3]["run_id"],
        "first": "welcome",
    }
    # Cohorts of days 0 and 1 went through the splits; those of days 2 and 3 wait.
    split = _cohort(0) + _cohort(1)
    gold, rest = len(_gold(split)), len(split) - len(_gold(split))
    assert [
        (n["id"], n["name"], n["type"], [(e["path"], e["node"]) for e in n["next"]],
         n["total"], n["run"], n["waiting"], n["left"])
        for n in shown["nodes"]
    ] == [
        ("welcome", "welcome", "activate", [("", "wait")], 360, 90, 0, 90),
        ("wait", "wait", "delay", [("", "tier")], 360, 90, 180, 90),
        ("tier", "tier", "conditional_split",
         [("gold", "gold-offer"), ("everyone-else", "test")], len(split), 90, 0, 90),
        ("gold-offer", "gold-offer", "activate", [("", None)], gold, gold // 2, 0, gold // 2),
        ("test", "test", "percent_split", [("offer", "offer"), ("holdout", "offer")],
         rest, rest // 2, 0, rest // 2),
        ("offer", "offer", "activate", [("", "done")], rest, rest // 2, 0, rest // 2),
        ("done", "done", "exit", [], rest, rest // 2, 0, rest // 2),
    ]  # fmt: skip
    assert (gold, rest) == (40, 140)
    bought = len(_buyers(split))
    assert shown["milestones"] == [
        {"kind": kind, "name": name, "all_time": n, "last_7_days": n, "last_30_days": n,
         "last_90_days": n, "median_days": 2.0}
        for kind, name, n in [("goal", "bought", bought), ("exit", "end", gold),
                              ("exit", "exit-node", rest)]
    ]  # fmt: skip
    assert bought == 60

    (test,) = shown["splits"]
    assert (test["node"], test["goal"]) == ("test", "bought")
    offer, holdout = test["paths"]
    treated, held = _offer(split), _holdout(split)
    x_t, x_c = len(_buyers(treated)), len(_buyers(held))
    assert (offer["path"], offer["control"], offer["travellers"], offer["converted"]) == (
        "offer", False, len(treated), x_t,
    )  # fmt: skip
    assert (holdout["path"], holdout["control"], holdout["travellers"], holdout["converted"]) == (
        "holdout", True, len(held), x_c,
    )  # fmt: skip
    assert len(treated) + len(held) == rest
    assert offer["rate"] == pytest.approx(x_t / len(treated))
    assert offer["rate_interval"] == pytest.approx(_interval(x_t, len(treated)))
    assert holdout["rate_interval"] == pytest.approx(_interval(x_c, len(held)))
    assert "lift" not in holdout
    ratio = (x_t / len(treated)) / (x_c / len(held))
    spread = Z * math.sqrt(
        (1 - x_t / len(treated)) / x_t + (1 - x_c / len(held)) / x_c
    )  # log-ratio delta method
    lift = offer["lift"]
    assert lift["relative"] == pytest.approx(ratio - 1)
    assert lift["relative_interval"] == pytest.approx(
        {"low": ratio * math.exp(-spread) - 1, "high": ratio * math.exp(spread) - 1}
    )


def test_show_counts_milestones_as_of_the_time_asked(travelled: Travelled) -> None:
    root, _ = travelled
    # As of day 2, only the first cohort had reached a goal or left.
    early = _cli(root, "journey", "show", JOURNEY, "--as-of", _at(2))["milestones"]
    assert [(m["name"], m["all_time"], m["last_7_days"]) for m in early] == [
        ("bought", 30, 30), ("end", 20, 20), ("exit-node", 70, 70),
    ]  # fmt: skip
    # As of day 9 (2026-03-10 12:00) the last 7 days start after 2026-03-03 12:00: the day-2
    # run is out of that window, the day-3 run in it.
    late = _cli(root, "journey", "show", JOURNEY, "--as-of", _at(9))["milestones"]
    assert [
        (m["name"], m["all_time"], m["last_7_days"], m["last_30_days"], m["last_90_days"])
        for m in late
    ] == [("bought", 60, 30, 60, 60), ("end", 40, 20, 40, 40), ("exit-node", 140, 70, 140, 140)]


def test_show_prints_the_tree_the_milestones_and_the_split(travelled: Travelled) -> None:
    root, runs = travelled
    text = _text(root, "journey", "show", JOURNEY, "--as-of", _at(3))
    tree, _, tables = text.partition("Milestones as of 2026-03-04")
    lines = [line for line in tree.splitlines() if line.strip()]
    labels = [
        (len(line) - len(line.lstrip(" │├└─")), line.lstrip(" │├└─").rstrip()) for line in lines
    ]
    assert labels == [
        (0, f"onboarding v1 · Active · latest run {runs[3]['run_id']} as of 2026-03-04 12:00"),
        (4, "welcome (activate)  total 360 · latest run 90 · waiting 0"),
        (8, "wait (delay)  total 360 · latest run 90 · waiting 180"),
        (12, "tier (conditional split)  total 180 · latest run 90 · waiting 0"),
        (16, "gold → gold-offer (activate)  total 40 · latest run 20 · waiting 0"),
        (20, "then → leaves"),  # gold-offer's empty edge
        (16, "everyone-else → test (percent split)  total 140 · latest run 70 · waiting 0"),
        (20, "offer → offer (activate)  total 140 · latest run 70 · waiting 0"),
        (24, "done (exit)  total 140 · latest run 70 · waiting 0"),
        (20, "holdout → offer (activate) see above"),  # reached twice: shown once
    ]
    milestones, _, split = tables.partition("Percent split test on goal bought")
    assert _table_rows(milestones) == [
        ["goal", "bought", "60", "60", "60", "60", "2.0"],
        ["exit", "end", "40", "40", "40", "40", "2.0"],
        ["exit", "exit-node", "140", "140", "140", "140", "2.0"],
    ]
    treated, held = _offer(_cohort(0) + _cohort(1)), _holdout(_cohort(0) + _cohort(1))
    x_t, x_c = len(_buyers(treated)), len(_buyers(held))
    lift = _cli(root, "journey", "show", JOURNEY, "--as-of", _at(3))["splits"][0]["paths"][0]
    span = lift["lift"]["relative_interval"]
    assert _table_rows(split) == [
        ["offer", str(len(treated)), str(x_t), f"{x_t / len(treated):.2%}",
         f"{(x_t / len(treated)) / (x_c / len(held)) - 1:+.1%}",
         f"{span['low']:+.1%} to {span['high']:+.1%}"],
        ["holdout (control)", str(len(held)), str(x_c), f"{x_c / len(held):.2%}", "", ""],
    ]  # fmt: skip


def test_show_refuses_a_goal_the_journey_does_not_have(travelled: Travelled) -> None:
    root, _ = travelled
    refused = _refused(root, "journey", "show", JOURNEY, "--goal", "joined")
    assert "journey onboarding: 'joined' is not one of its goals" in refused.stderr
    assert "its goals: bought" in refused.stderr
    assert refused.stdout == ""
    as_document = activator("-w", str(root), "journey", "show", JOURNEY, "--goal", "joined",
                            "--json")  # fmt: skip
    assert as_document.returncode == 2
    assert as_json(as_document) == {
        "error": {
            "type": "ConfigError",
            "message": "journey onboarding: 'joined' is not one of its goals",
            "hint": "its goals: bought",
        }
    }
    # The goal it has is accepted.
    chosen = _cli(root, "journey", "show", JOURNEY, "--goal", "bought", "--as-of", _at(3))
    assert [s["goal"] for s in chosen["splits"]] == ["bought"]


# -- activator journey log ----------------------------------------------------------------------


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _row(
    stage: str,
    node: str,
    day: int,
    run: str,
    step: int,
    *,
    parent: str | None = None,
    path: str | None = None,
    control: bool = False,
    due: int | None = None,
    qualified: bool | None = None,
) -> dict[str, Any]:
    return {
        "journey": JOURNEY, "version": 1, "traveller": 3, "entry": 1,
        "entry_at": DAY0, "entered_at": DAY0 + timedelta(days=day),
        "stage": stage, "node": node, "parent": parent, "path": path, "control": control,
        "due_at": None if due is None else DAY0 + timedelta(days=due),
        "qualified": qualified, "run_id": run, "step": step,
    }  # fmt: skip


def test_the_log_of_one_customer(travelled: Travelled) -> None:
    root, runs = travelled
    # Customer 3 joined on day 0, is not gold, bought on day 2 and is in the holdout.
    assert 3 in _holdout(_cohort(0))
    assert 3 in _buyers(_cohort(0))
    found = _cli(root, "journey", "log", JOURNEY, "--customer", "3")
    assert found["journey"] == JOURNEY
    rows = [
        {**r, **{k: _when(r[k]) for k in ("entry_at", "entered_at", "due_at")}}
        for r in found["rows"]
    ]
    times = [r["entered_at"] for r in rows]
    assert times == sorted(times, reverse=True)  # newest first
    day0, day2 = runs[0]["run_id"], runs[2]["run_id"]
    # Newest first, in the order things happened within a run: by step (0: goals, entries;
    # k + 1: round k of advancing), and within a step the arrival after the departure.
    expected = [
        # Day 2: the wait is over; the goal is recorded where the traveller stood.
        _row("exit", "done", 2, day2, 5, path="exit-node", control=True, qualified=True),
        _row("start", "done", 2, day2, 4, parent="offer", control=True),
        _row("complete", "offer", 2, day2, 4, control=True),
        _row("start", "offer", 2, day2, 3, parent="test", path="holdout", control=True),
        _row("complete", "test", 2, day2, 3, path="holdout"),
        _row("start", "test", 2, day2, 2, parent="tier", path="everyone-else"),
        _row("complete", "tier", 2, day2, 2, path="everyone-else"),
        _row("start", "tier", 2, day2, 1, parent="wait"),
        _row("complete", "wait", 2, day2, 1),
        _row("goal", "wait", 2, day2, 0, path="bought"),
        # Day 0: entered, welcomed, waiting until day 2.
        _row("start", "wait", 0, day0, 1, parent="welcome", due=2),
        _row("complete", "welcome", 0, day0, 1),
        _row("start", "welcome", 0, day0, 0),
    ]
    assert rows == expected

    latest = _cli(root, "journey", "log", JOURNEY, "--limit", "4")["rows"]
    assert len(latest) == 4
    assert {r["run_id"] for r in latest} == {runs[3]["run_id"]}

    text = _text(root, "journey", "log", JOURNEY, "--customer", "3")
    table = _table_rows(text)
    assert len(table) == len(expected)
    assert ["2026-03-03 12:00", "3", "1", "exit", "done", "", "exit-node", "yes"] in [
        row[:8] for row in table
    ]
    assert ["2026-03-01 12:00", "3", "1", "start", "wait", "welcome", "", ""] in [
        row[:8] for row in table
    ]


# -- activator journey simulate -----------------------------------------------------------------


def _per_node(run: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    return {node: (c["entered"], c["waiting"], c["left"]) for node, c in run["nodes"].items()}


def test_simulate_counts_each_run_and_sends_and_keeps_nothing(workspace: Path) -> None:
    found = _cli(workspace, "journey", "simulate", JOURNEY, "--start", _at(0), "--days", "4")
    assert found["journey"] == JOURNEY
    assert found["nodes"] == ["welcome", "wait", "tier", "gold-offer", "test", "offer", "done"]
    runs = found["runs"]
    assert [r["as_of"] for r in runs] == [_at(day) for day in range(4)]
    quiet = {"tier": (0, 0, 0), "gold-offer": (0, 0, 0), "test": (0, 0, 0),
             "offer": (0, 0, 0), "done": (0, 0, 0)}  # fmt: skip
    assert _per_node(runs[0]) == {"welcome": (90, 0, 90), "wait": (90, 90, 0), **quiet}
    assert _per_node(runs[1]) == {"welcome": (90, 0, 90), "wait": (90, 180, 0), **quiet}
    for day in (2, 3):
        cohort = _cohort(day - 2)
        gold, rest = len(_gold(cohort)), len(cohort) - len(_gold(cohort))
        assert _per_node(runs[day]) == {
            "welcome": (90, 0, 90),
            "wait": (90, 180, 90),
            "tier": (90, 0, 90),
            "gold-offer": (gold, 0, gold),
            "test": (rest, 0, rest),
            "offer": (rest, 0, rest),
            "done": (rest, 0, rest),
        }
        assert (runs[day]["entered"], runs[day]["exited"], runs[day]["goals"]) == (
            90, gold + rest, len(_buyers(cohort)),
        )  # fmt: skip
        # Sends: the welcome, the gold offer and the offer outside the holdout.
        assert runs[day]["sends"] == 90 + gold + len(_offer(cohort))
    assert [(r["entered"], r["exited"], r["goals"], r["sends"]) for r in runs[:2]] == [
        (90, 0, 0, 90), (90, 0, 0, 90),
    ]  # fmt: skip

    # Every 12 hours: twice the runs; nobody new joins at midnight.
    halves = _cli(
        workspace, "journey", "simulate", JOURNEY, "--start", _at(0), "--days", "2",
        "--every", "12h",
    )["runs"]  # fmt: skip
    assert [r["as_of"] for r in halves] == [_at(step / 2) for step in range(4)]
    assert [r["nodes"]["welcome"]["entered"] for r in halves] == [90, 0, 90, 0]
    assert [r["nodes"]["wait"]["waiting"] for r in halves] == [90, 90, 180, 180]

    text = _text(workspace, "journey", "simulate", JOURNEY, "--start", _at(0), "--days", "2")
    assert (
        "Journey onboarding simulated: 2 runs from 2026-03-01 12:00, starting with no "
        "travellers; nothing was sent" in text
    )
    assert _table_rows(text) == [
        ["2026-03-01 12:00", "90", "90", "0", "0", "wait 90"],
        ["2026-03-02 12:00", "90", "90", "0", "0", "wait 180"],
    ]

    # Nothing delivered, no run recorded, no travel log (real or simulated) left behind.
    assert not (workspace / "out").exists()
    assert _cli(workspace, "runs", JOURNEY) == {"runs": []}
    shown = _cli(workspace, "journey", "show", JOURNEY)
    assert shown["last_run"] is None
    assert {n["id"]: n["total"] for n in shown["nodes"]} == dict.fromkeys(found["nodes"], 0)
    con = duckdb.connect(str(workspace / "data" / "shop.duckdb"), read_only=True)
    try:
        tables = con.sql("SELECT table_schema, table_name FROM information_schema.tables")
        assert tables.fetchall() == [("main", "customers")]
    finally:
        con.close()


def test_simulate_refuses_a_step_that_is_not_one(travelled: Travelled) -> None:
    root, runs = travelled
    args = ("journey", "simulate", JOURNEY, "--start", _at(0), "--days", "2", "--every")
    for every in ("0d", "2x", "-1d", "d"):
        refused = _refused(root, *args, every)
        assert f"--every {every!r} is not a step such as 1d, 12h or 1w" in refused.stderr
    as_document = _refused(root, *args, "2x", "--json")
    assert as_json(as_document) == {
        "error": {
            "type": "ConfigError",
            "message": "--every '2x' is not a step such as 1d, 12h or 1w",
            "hint": None,
        }
    }
    assert [r["run_id"] for r in _cli(root, "runs", JOURNEY)["runs"]] == [
        r["run_id"] for r in reversed(runs)
    ]


# -- activator journey pause | resume | end -----------------------------------------------------


def _status(root: Path, at: str) -> tuple[str, str | None]:
    (row,) = [a for a in _cli(root, "status", "--as-of", at)["activations"] if a["name"] == JOURNEY]
    assert row["type"] == "journey"
    return row["status"], row["next_run"]


def test_pause_resume_and_end(workspace: Path) -> None:
    _cli(workspace, "run", JOURNEY, "--as-of", _at(0))
    morning = _at(0.75)  # 2026-03-02 06:00, before the daily 12:00 slot
    assert _status(workspace, morning) == ("active", "2026-03-02T12:00:00+00:00")

    assert _cli(workspace, "journey", "pause", JOURNEY) == {"journey": JOURNEY, "status": "paused"}
    refused = _refused(workspace, "run", JOURNEY, "--as-of", _at(1))
    assert "journey 'onboarding' is paused: it does not run" in refused.stderr
    assert "`activator journey resume onboarding` first" in refused.stderr
    assert _status(workspace, morning) == ("paused", None)
    # Pausing again is harmless; the text says what happened.
    again = _text(workspace, "journey", "pause", JOURNEY)
    assert "Journey onboarding paused: now paused." in again

    assert _cli(workspace, "journey", "resume", JOURNEY) == {"journey": JOURNEY, "status": "active"}
    assert _status(workspace, morning) == ("active", "2026-03-02T12:00:00+00:00")
    # Resumed on day 3: the first cohort's wait is over; the missed cohorts enter at once.
    resumed = _cli(workspace, "run", JOURNEY, "--as-of", _at(3))
    cohort = _cohort(0)
    gold, rest = len(_gold(cohort)), len(cohort) - len(_gold(cohort))
    journey = resumed["counts"]["journey"]
    assert (journey["entered"], journey["exited"], journey["goals"]) == (
        270, gold + rest, len(_buyers(cohort)) + len(_buyers(_cohort(1))),
    )  # fmt: skip
    assert _deliveries(resumed) == {
        "drop:welcome": ("welcome", "drop", 270, 270, 0),
        "drop:gold-offer": ("gold-offer", "drop", gold, gold, 0),
        "drop:offer": ("offer", "drop", len(_offer(cohort)), len(_offer(cohort)), 0),
    }

    assert _cli(workspace, "journey", "end", JOURNEY) == {"journey": JOURNEY, "status": "ended"}
    refused = _refused(workspace, "run", JOURNEY, "--as-of", _at(4), "--json")
    assert as_json(refused) == {
        "error": {
            "type": "ConfigError",
            "message": "journey 'onboarding' is ended: it does not run",
            "hint": "an ended journey moves no one any more",
        }
    }
    for action in ("resume", "pause"):
        refused = _refused(workspace, "journey", action, JOURNEY)
        assert f"journey 'onboarding' is ended: it cannot {action}" in refused.stderr
        assert "an ended journey does not restart: copy it under a new name" in refused.stderr
    assert _status(workspace, morning) == ("ended", None)
    # The refused runs left no trace: two runs, newest first.
    assert [r["as_of"] for r in _cli(workspace, "runs", JOURNEY)["runs"]] == [_at(3), _at(0)]


# -- unknown journeys ---------------------------------------------------------------------------


def test_an_unknown_journey_is_a_clear_error(travelled: Travelled) -> None:
    root, _ = travelled
    journey_commands = [
        ("journey", "show", "nope"),
        ("journey", "simulate", "nope", "--start", _at(0), "--days", "1"),
        ("journey", "pause", "nope"),
        ("journey", "log", "nope"),
    ]
    for args in journey_commands:
        refused = _refused(root, *args)
        assert "no applied journey named 'nope'" in refused.stderr, args
        assert "activator apply" in refused.stderr, args
    refused = _refused(root, "run", "onboardin")
    assert "no applied activation named 'onboardin'" in refused.stderr
    assert "did you mean 'onboarding'?" in refused.stderr
    # Nothing was paused or ended on the way: the journey is still active.
    assert _status(root, _at(3.25)) == ("active", "2026-03-05T12:00:00+00:00")

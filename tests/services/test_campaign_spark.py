"""A whole campaign on a Spark workspace: two runs, the second incremental.

The workspace's engine is Spark (the tests' session, borrowed); customers live in a Spark
database, Activator's tables in another. A campaign with two sub-audiences and the default
*All remaining* sends per-group CSV files to a local folder. Between the runs the as-of time
moves on, so 100 more customers join; the second run must send exactly them, keep everyone
else's group, and add exactly them to ``recipients``.

The numbers are chosen so every quota is a whole number of customers:

====================  ========  ===========  ==================
sub-audience          run 1     run 2        newcomers in run 2
====================  ========  ===========  ==================
gold (80/20 control)  30: 24/6  50: 40/10    20: 16/4
france (50/50)        30: 15/15 50: 25/25    20: 10/10
all-remaining (90/10) 90: 81/9  150: 135/15  60: 54/6
====================  ========  ===========  ==================
"""

from __future__ import annotations

import csv
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from activator.definitions.config import SparkEngineConfig
from activator.engines.base import Engine
from activator.engines.registry import open_engine
from activator.runtime.campaign import RECIPIENTS_TABLE, audience_table
from activator.services.run import run_activation, show_run
from activator.services.workspace import apply_workspace

pytestmark = [pytest.mark.spark, pytest.mark.slow]

CUSTOMERS = 300
START = datetime(2026, 1, 1)
FIRST = datetime(2026, 1, 7, 6, 0, tzinfo=UTC)  # 150 hours in: customers 1..150 joined
SECOND = datetime(2026, 1, 11, 10, 0, tzinfo=UTC)  # 250 hours in: customers 1..250

CONFIG = """\
engine: {{type: spark, master: "local[2]", database: {database}}}
dataplane_schema: {plane}
timezone: UTC
data_model:
  customers: {{table: customers, key: customer_id}}
"""

JOINED = """\
rules: {attribute: customers.joined_at, op: before, value: now}
"""

GOLD = """\
rules: {attribute: customers.tier, op: equals, value: gold}
"""

DROP = """\
type: local
path: out
filename: "{campaign}_{run_time:%Y%m%d}_{sub_audience}_{group}"
format: {type: csv}
"""

CAMPAIGN = """\
audience: {include: [joined]}
destinations:
  - destination: drop
    mapping: {id: customer_id, email: email, sub: run.sub_audience, group: run.group}
sub_audiences:
  - name: gold
    segment: gold
    groups:
      - {name: offer, percent: 80}
      - {name: holdout, percent: 20, control: true}
  - name: france
    rules: {attribute: customers.country, op: equals, value: FR}
    groups:
      - {name: a, percent: 50}
      - {name: b, percent: 50}
mode: incremental
status: active
"""

SIZES = {
    # (sub-audience, group): (run 1, run 2) customers; the control is never in a file.
    ("gold", "offer"): (24, 40),
    ("gold", "holdout"): (6, 10),
    ("france", "a"): (15, 25),
    ("france", "b"): (15, 25),
    ("all-remaining", "treatment"): (81, 135),
    ("all-remaining", "control"): (9, 15),
}
CONTROLS = {("gold", "holdout"), ("all-remaining", "control")}


def _sub_audience(i: int) -> str:
    return {0: "gold", 1: "france"}.get(i % 5, "all-remaining")


def customers() -> pa.Table:
    """Every 5th customer is gold, the next one French; customer ``i`` joined at ``i`` hours
    minus 30 minutes."""
    ids = range(1, CUSTOMERS + 1)
    return pa.table(
        {
            "customer_id": pa.array(ids, pa.int64()),
            "email": pa.array([f"c{i}@example.com" for i in ids], pa.string()),
            "tier": pa.array(["gold" if i % 5 == 0 else "silver" for i in ids], pa.string()),
            "country": pa.array(["FR" if i % 5 == 1 else "DE" for i in ids], pa.string()),
            "joined_at": pa.array(
                [START + timedelta(hours=i, minutes=-30) for i in ids], pa.timestamp("us")
            ),
        }
    )


@pytest.fixture
def workspace(spark_session: Any, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A Spark workspace (its customer database loaded, applied); yields it with the name of
    its data-plane database."""
    database, plane = f"cust_{uuid.uuid4().hex[:8]}", f"plane_{uuid.uuid4().hex[:8]}"
    spark_session.sql(f"CREATE DATABASE {database}")
    spark_session.createDataFrame(customers()).write.saveAsTable(f"{database}.customers")
    (tmp_path / "activator.yaml").write_text(CONFIG.format(database=database, plane=plane))
    for folder, name, text in [
        ("segments", "joined", JOINED),
        ("segments", "gold", GOLD),
        ("destinations", "drop", DROP),
        ("campaigns", "welcome", CAMPAIGN),
    ]:
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / f"{name}.yml").write_text(text)
    apply_workspace(tmp_path)
    try:
        yield tmp_path, plane
    finally:
        for name in (database, plane):
            spark_session.sql(f"DROP DATABASE IF EXISTS {name} CASCADE")


def _files(out: Path, day: str) -> dict[tuple[str, str], list[dict[str, str]]]:
    found: dict[tuple[str, str], list[dict[str, str]]] = {}
    for sub, group in SIZES:
        path = out / f"welcome_{day}_{sub}_{group}.csv"
        if (sub, group) in CONTROLS:
            assert not path.exists(), f"the control {sub}/{group} must not be sent"
            continue
        with path.open(newline="") as handle:
            found[(sub, group)] = list(csv.DictReader(handle))
    return found


def _engine(root: Path, plane: str) -> Engine:
    # The workspace's own engine, on the tests' running session (left running on close).
    config = SparkEngineConfig.model_validate(
        {"type": "spark", "master": "local[2]", "database": "default"}
    )
    return open_engine(config, workspace_root=root, dataplane_schema=plane)


def _audience(root: Path, plane: str, run_id: str) -> dict[int, tuple[str, str, bool]]:
    with _engine(root, plane) as engine:
        rows = engine.to_pyarrow(engine.dataplane_table(audience_table(run_id))).to_pylist()
    return {r["customer_id"]: (r["sub_audience"], r["treatment_group"], r["control"]) for r in rows}


def test_two_runs_on_spark_send_groups_then_only_the_newcomers(
    workspace: tuple[Path, str],
) -> None:
    root, plane = workspace
    first = run_activation(root, "welcome", as_of=FIRST)
    assert first.status == "succeeded", first.error
    # Read now: a run's audience table is dropped once a later run succeeds.
    audiences = {first.run_id: _audience(root, plane, first.run_id)}
    second = run_activation(root, "welcome", as_of=SECOND)
    assert second.status == "succeeded", second.error
    tasks = show_run(root, second.run_id).tasks
    assert tasks[0].task == "evaluate"
    assert all(t.status == "succeeded" for t in tasks)

    # Files: one per treatment group and run, with exactly the group's customers.
    sent: dict[str, dict[int, tuple[str, str]]] = {}
    for run, day, index in [(first, "20260107", 0), (second, "20260111", 1)]:
        files = _files(root / "out", day)
        newcomers = {1: range(1, 151), 2: range(151, 251)}[index + 1]
        expected_sizes = {
            pair: sizes[index] - (sizes[0] if index else 0)
            for pair, sizes in SIZES.items()
            if pair not in CONTROLS
        }
        assert {pair: len(rows) for pair, rows in files.items()} == expected_sizes
        sent[run.run_id] = {}
        for (sub, group), rows in files.items():
            for row in rows:
                assert (row["sub"], row["group"]) == (sub, group)
                assert row["email"] == f"c{row['id']}@example.com"
                assert _sub_audience(int(row["id"])) == sub
                sent[run.run_id][int(row["id"])] = (sub, group)
        # Incremental: run 2 sends only customers who joined since run 1 (and, with the
        # sizes above, every treated one of them).
        assert set(sent[run.run_id]) <= set(newcomers)
        assert run.counts["audience"] == newcomers[-1]
        assert run.counts["sent"] == len(sent[run.run_id])
        assert {
            (g["sub_audience"], g["group"]): (g["customers"], g["sent"])
            for g in run.counts["groups"]
        } == {pair: (sizes[index], expected_sizes.get(pair, 0)) for pair, sizes in SIZES.items()}

    with _engine(root, plane) as engine:
        recipients = engine.to_pyarrow(engine.dataplane_table(RECIPIENTS_TABLE)).to_pylist()
        assert audience_table(first.run_id) not in engine.list_dataplane_tables()
    audiences[second.run_id] = _audience(root, plane, second.run_id)

    # Recipients: every newcomer once per run (the control without a destination), as of the
    # run's time; the treated ones with the group their file had.
    for run, newcomers in [(first, range(1, 151)), (second, range(151, 251))]:
        mine = [r for r in recipients if r["run_id"] == run.run_id]
        assert sorted(r["customer_id"] for r in mine) == list(newcomers)
        assert {r["campaign"] for r in mine} == {"welcome"}
        assert {r["action"] for r in mine} == {"add"}
        assert {r["sent_at"].replace(tzinfo=UTC) for r in mine} == {run.as_of}
        treated = {r["customer_id"]: (r["sub_audience"], r["treatment_group"]) for r in mine}
        assert {k: v for k, v in treated.items() if v not in CONTROLS} == sent[run.run_id]
        for r in mine:
            control = (r["sub_audience"], r["treatment_group"]) in CONTROLS
            assert r["control"] is control
            assert r["destination"] == (None if control else "drop")
        assert Counter((r["sub_audience"], r["treatment_group"]) for r in mine) == {
            pair: sizes[0] if run is first else sizes[1] - sizes[0] for pair, sizes in SIZES.items()
        }
    assert len(recipients) == 250

    # Sticky: run 2 keeps every run-1 customer in their group.
    before, after = audiences[first.run_id], audiences[second.run_id]
    assert len(before) == 150
    assert len(after) == 250
    assert {k: after[k] for k in before} == before

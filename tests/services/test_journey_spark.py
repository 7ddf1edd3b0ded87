"""A journey on a Spark workspace: three daily runs through ``activator run``.

Customers live in a Spark database, Activator's tables (the travel log) in another. Customer
``i`` joins ``i`` hours (less 30 minutes) after 2026-01-01; the journey welcomes who joined,
waits a day, and sends a follow-up. Each run must send exactly the customers who reached each
activate node, and the travel log must hold each step once.
"""

from __future__ import annotations

import csv
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from activator.compiler.journey import LOG_TABLE
from activator.services.run import run_activation
from activator.services.workspace import apply_workspace
from tests.services.test_campaign_spark import CONFIG, JOINED, customers

pytestmark = [pytest.mark.spark, pytest.mark.slow]

FIRST = datetime(2026, 1, 7, 6, 0, tzinfo=UTC)  # 150 hours in: customers 1..150 joined
DAYS = [FIRST + timedelta(days=d) for d in range(3)]  # then 1..174, then 1..198

DROP = """\
type: local
path: out
filename: "{journey}_{node}_{run_time:%Y%m%d}"
format: {type: csv}
"""

JOURNEY = """\
start: {entry: [joined]}
nodes:
  - {id: welcome, type: activate, next: wait,
     destinations: [{destination: drop, mapping: {id: customer_id, email: email}}]}
  - {id: wait, type: delay, wait: 1d, next: follow-up}
  - {id: follow-up, type: activate, next: done,
     destinations: [{destination: drop, mapping: {id: customer_id}}]}
  - {id: done, type: exit}
schedule: {type: recurring, every: daily, at: "06:00"}
status: active
"""


@pytest.fixture
def workspace(spark_session: Any, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    database, plane = f"cust_{uuid.uuid4().hex[:8]}", f"plane_{uuid.uuid4().hex[:8]}"
    spark_session.sql(f"CREATE DATABASE {database}")
    spark_session.createDataFrame(customers()).write.saveAsTable(f"{database}.customers")
    (tmp_path / "activator.yaml").write_text(CONFIG.format(database=database, plane=plane))
    for folder, name, text in [
        ("segments", "joined", JOINED),
        ("destinations", "drop", DROP),
        ("journeys", "welcome", JOURNEY),
    ]:
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / f"{name}.yml").write_text(text)
    apply_workspace(tmp_path)
    try:
        yield tmp_path, plane
    finally:
        for name in (database, plane):
            spark_session.sql(f"DROP DATABASE IF EXISTS {name} CASCADE")


def _ids(out: Path, node: str, day: datetime) -> list[int]:
    path = out / f"welcome_{node}_{day:%Y%m%d}.csv"
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return sorted(int(row["id"]) for row in csv.DictReader(handle))


def test_three_daily_runs_on_spark_step_and_send_each_traveller_once(
    workspace: tuple[Path, str], spark_session: Any
) -> None:
    root, plane = workspace
    runs = []
    for day in DAYS:
        run = run_activation(root, "welcome", as_of=day)
        assert run.status == "succeeded", run.error
        runs.append(run)
    out = root / "out"
    joined = [150, 174, 198]
    assert _ids(out, "welcome", DAYS[0]) == list(range(1, 151))
    assert _ids(out, "welcome", DAYS[1]) == list(range(151, 175))
    assert _ids(out, "welcome", DAYS[2]) == list(range(175, 199))
    # A day's wait: the follow-up goes to whoever was welcomed the day before.
    assert _ids(out, "follow-up", DAYS[0]) == []
    assert _ids(out, "follow-up", DAYS[1]) == list(range(1, 151))
    assert _ids(out, "follow-up", DAYS[2]) == list(range(151, 175))
    assert [r.counts["journey"]["entered"] for r in runs] == [150, 24, 24]
    assert [r.counts["journey"]["exited"] for r in runs] == [0, 150, 24]

    rows = spark_session.table(f"{plane}.{LOG_TABLE}").collect()
    stages = Counter((r["node"], r["stage"]) for r in rows)
    assert stages == {
        ("welcome", "start"): joined[2],
        ("welcome", "complete"): joined[2],
        ("wait", "start"): joined[2],
        ("wait", "complete"): joined[1],
        ("follow-up", "start"): joined[1],
        ("follow-up", "complete"): joined[1],
        ("done", "start"): joined[1],
        ("done", "exit"): joined[1],
    }
    waits = {
        r["traveller"]: r["due_at"] for r in rows if r["node"] == "wait" and r["stage"] == "start"
    }
    assert waits[1].replace(tzinfo=UTC) == DAYS[1]
    assert waits[198].replace(tzinfo=UTC) == DAYS[2] + timedelta(days=1)

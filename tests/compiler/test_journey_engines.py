"""A journey moves every traveller the same way on DuckDB, Spark and PostgreSQL, run after run.

The same 2,000 customers (string IDs, and integer IDs) are loaded into each engine. Their
timestamps (joined, unsubscribed, churned, purchased, opened) fall between the runs, so the
segments flip over time: customers join, unsubscribe, churn, buy and open as the days pass.
A journey with an entry union, an exclusion, an exit segment and a goal, through every kind of
node (activate, a 70/30 percent split with a control, a one-day delay, a conditional split with
a segment path, an inline-rules path and *otherwise*, a merge, a two-day *wait until*, an exit
node), is stepped daily four times with :func:`activator.runtime.journey.step`, which writes
the travel log with the engine's own CREATE and INSERT.

After every run each engine's whole travel log must equal, row for row, the log a plain-Python
reference of docs/journeys.md writes (``hashlib.md5`` buckets for the split): equal to one
reference means equal to each other, to the traveller and the second.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pytest

from activator.compiler import CompileContext
from activator.compiler.journey import LOG_TABLE
from activator.definitions.config import CustomerTable, DataModel, DuckDBEngineConfig
from activator.definitions.journey import JourneyDefinition
from activator.definitions.segment import SegmentDefinition
from activator.engines.base import Engine
from activator.runtime.journey import step
from tests.fixtures.engines import ENGINE_KINDS, empty_engine

CUSTOMERS = 2_000
FIRST_RUN = datetime(2025, 9, 1, 9, 0, tzinfo=UTC)
RUNS = [FIRST_RUN + timedelta(days=n) for n in range(4)]
"""Daily runs at 09:00 UTC."""

_START = FIRST_RUN.replace(tzinfo=None)
"""The customers' timestamps are naive: wall time in UTC."""

DATA_MODEL = DataModel(customers=CustomerTable(table="customers", key="customer_id"))


def _before_now(column: str) -> dict[str, Any]:
    return {"rules": {"attribute": f"customers.{column}", "op": "before", "value": "now"}}


SEGMENTS = {
    "signed-up": _before_now("joined_at"),
    "big-spenders": {"rules": {"attribute": "customers.spend", "op": ">=", "value": 900}},
    "unsubscribed": _before_now("unsubscribed_at"),
    "churned": _before_now("churned_at"),
    "purchased": _before_now("first_order_at"),
    "opened": _before_now("opened_at"),
    "gold": {"rules": {"attribute": "customers.tier", "op": "equals", "value": "gold"}},
}

SALT = "welcome-2025"

JOURNEY = {
    "name": "welcome-series",
    "salt": SALT,
    "start": {
        "entry": ["signed-up", "big-spenders"],
        "exclude": ["unsubscribed"],
        "exit": ["churned"],
        "goals": ["purchased"],
    },
    "nodes": [
        {
            "id": "welcome",
            "type": "activate",
            "destinations": [{"destination": "esp", "mapping": {"email": "email"}}],
            "next": "split",
        },
        {
            "id": "split",
            "type": "percent_split",
            "paths": [
                {"name": "a", "percent": 70, "next": "wait-1d"},
                {"name": "holdout", "percent": 30, "control": True, "next": "join"},
            ],
        },
        {"id": "wait-1d", "type": "delay", "wait": "1d", "next": "route"},
        {
            "id": "route",
            "type": "conditional_split",
            "paths": [
                {"name": "gold", "segment": "gold", "next": "join"},
                {
                    "name": "france",
                    "rules": {"attribute": "customers.country", "op": "equals", "value": "FR"},
                    "next": "join",
                },
            ],
            "otherwise": "join",
        },
        {"id": "join", "type": "merge", "next": "until-opened"},
        # Timing out leaves the edge empty: those travellers exit there.
        {
            "id": "until-opened",
            "type": "wait_until",
            "segment": "opened",
            "timeout": "2d",
            "met": "done",
        },
        {"id": "done", "type": "exit"},
    ],
    "schedule": {"type": "recurring", "every": "daily", "at": "09:00"},
    "status": "active",
}

NODES = ["welcome", "split", "wait-1d", "route", "join", "until-opened", "done"]


def _ident(i: int, key_type: str) -> Any:
    return f"C{i:05d}" if key_type == "string" else i


def _hours_from_start(hours: int) -> datetime:
    return _START + timedelta(hours=hours)


def _row(i: int) -> dict[str, Any]:
    return {
        "country": ("FR", "DE", "US", "ES", "IT")[i % 5],
        "tier": ("gold", "silver", None, "bronze")[(i * 7) % 4],
        "spend": (i * 37) % 1000,
        # Three minutes apart from two days before the first run: about 900 have joined by
        # the first run, 450 more each day; some never join.
        "joined_at": None if i % 17 == 0 else _START + timedelta(minutes=3 * i - 2 * 24 * 60),
        "unsubscribed_at": _hours_from_start(24 * ((i // 11) % 4) - 12) if i % 11 == 0 else None,
        "churned_at": _hours_from_start(24 * ((i // 7) % 4) - 6) if i % 7 == 3 else None,
        "first_order_at": _hours_from_start((i * 13) % 96 - 30) if i % 3 == 0 else None,
        "opened_at": _hours_from_start((i * 5) % 100 - 20) if i % 4 == 1 else None,
    }


def customers(key_type: str) -> pa.Table:
    """The customers: countries, tiers (some NULL), spend, and the times things happened."""
    ids = range(1, CUSTOMERS + 1)
    rows = [_row(i) for i in ids]
    columns: dict[str, pa.Array] = {
        "customer_id": pa.array(
            [_ident(i, key_type) for i in ids],
            pa.string() if key_type == "string" else pa.int64(),
        ),
        "country": pa.array([r["country"] for r in rows], pa.string()),
        "tier": pa.array([r["tier"] for r in rows], pa.string()),
        "spend": pa.array([r["spend"] for r in rows], pa.int64()),
    }
    for column in ("joined_at", "unsubscribed_at", "churned_at", "first_order_at", "opened_at"):
        columns[column] = pa.array([r[column] for r in rows], pa.timestamp("us"))
    return pa.table(columns)


# -- the reference: the same journey worked out in plain Python -----------------------------


class LogRow(NamedTuple):
    """A travel log row (every column but the journey's name), the traveller as text."""

    traveller: str
    entry: int
    entry_at: datetime
    node: str
    parent: str | None
    path: str | None
    control: bool
    stage: str
    entered_at: datetime
    due_at: datetime | None
    qualified: bool | None
    version: int
    run_id: str


def _flags(i: int, as_of: datetime) -> dict[str, bool]:
    row = _row(i)

    def before(column: str) -> bool:
        value = row[column]
        return value is not None and value.replace(tzinfo=UTC) < as_of

    return {
        "signed-up": before("joined_at"),
        "big-spenders": row["spend"] >= 900,
        "unsubscribed": before("unsubscribed_at"),
        "churned": before("churned_at"),
        "purchased": before("first_order_at"),
        "opened": before("opened_at"),
        "gold": row["tier"] == "gold",
        "france": row["country"] == "FR",
    }


def _qualifies(flags: dict[str, bool]) -> bool:
    return (flags["signed-up"] or flags["big-spenders"]) and not flags["unsubscribed"]


def _bucket(traveller: str) -> int:
    return int(hashlib.md5(f"{SALT}:split:{traveller}".encode()).hexdigest()[:8], 16) % 10_000


@dataclass(frozen=True)
class _Position:
    entry: int
    entry_at: datetime
    node: str
    control: bool
    due_at: datetime | None


def _due(node: str, as_of: datetime) -> datetime | None:
    return {"wait-1d": as_of + timedelta(days=1), "until-opened": as_of + timedelta(days=2)}.get(
        node
    )


def _decide(
    traveller: str, at: _Position, flags: dict[str, bool], as_of: datetime
) -> tuple[str | None, str | None, bool] | None:
    """(path, next node, control) of a traveller leaving their node now; None: they stay."""
    node, control = at.node, at.control
    if node == "welcome":
        return None, "split", control
    if node == "split":
        if _bucket(traveller) < 7_000:
            return "a", "wait-1d", control
        return "holdout", "join", True
    if node == "wait-1d":
        assert at.due_at is not None
        return (None, "route", control) if at.due_at <= as_of else None
    if node == "route":
        path = "gold" if flags["gold"] else "france" if flags["france"] else "everyone-else"
        return path, "join", control
    if node == "join":
        return None, "until-opened", control
    if node == "until-opened":
        assert at.due_at is not None
        if flags["opened"]:
            return "met", "done", control
        return ("timed-out", None, control) if at.due_at <= as_of else None
    assert node == "done"
    return "exit-node", None, control


def _log_row(
    traveller: str,
    at: _Position,
    stage: str,
    as_of: datetime,
    run: int,
    *,
    parent: str | None = None,
    path: str | None = None,
    qualified: bool | None = None,
    due_at: datetime | None = None,
) -> LogRow:
    return LogRow(traveller, at.entry, at.entry_at, at.node, parent, path, at.control, stage,
                  as_of, due_at, qualified, _version(run), f"run-{run + 1}")  # fmt: skip


def reference(key_type: str) -> list[list[LogRow]]:
    """The rows each run writes, following docs/journeys.md."""
    journey = _Reference(key_type)
    return [journey.run(n, as_of) for n, as_of in enumerate(RUNS)]


class _Reference:
    """The journey's state between runs: positions, who ever entered, goals reached."""

    def __init__(self, key_type: str) -> None:
        self.key_type = key_type
        self.positions: dict[str, _Position] = {}
        self.entered_ever: set[str] = set()
        self.goals: set[tuple[str, int]] = set()

    def run(self, n: int, as_of: datetime) -> list[LogRow]:
        """Exits, entries (once ever), goals, then rounds of moves until nobody moves."""
        flags = {str(_ident(i, self.key_type)): _flags(i, as_of) for i in range(1, CUSTOMERS + 1)}
        rows: list[LogRow] = []

        def add(traveller: str, at: _Position, stage: str, **values: Any) -> None:
            rows.append(_log_row(traveller, at, stage, as_of, n, **values))

        staying: dict[str, _Position] = {}
        for traveller, at in self.positions.items():
            if flags[traveller]["churned"]:
                add(traveller, at, "exit", path="churned", qualified=_qualifies(flags[traveller]))
            else:
                staying[traveller] = at
        entered: dict[str, _Position] = {}
        for traveller, mine in flags.items():
            if (
                _qualifies(mine)
                and not mine["churned"]
                and traveller not in self.positions
                and traveller not in self.entered_ever
            ):
                entered[traveller] = _Position(1, as_of, "welcome", False, None)
                add(traveller, entered[traveller], "start")
        # Goals: everyone travelling at this run, leaving now or not, before anyone moves.
        for traveller, at in {**self.positions, **entered}.items():
            if flags[traveller]["purchased"] and (traveller, at.entry) not in self.goals:
                self.goals.add((traveller, at.entry))
                add(traveller, at, "goal", path="purchased")
        self.entered_ever |= set(entered)
        self.positions = {}
        frontier = {**staying, **entered}
        while frontier:
            arrived: dict[str, _Position] = {}
            for traveller, at in frontier.items():
                decision = _decide(traveller, at, flags[traveller], as_of)
                if decision is None:
                    self.positions[traveller] = at
                    continue
                path, target, control = decision
                if target is None:
                    qualified = _qualifies(flags[traveller])
                    add(traveller, at, "exit", path=path or "end", qualified=qualified)
                    continue
                add(traveller, at, "complete", path=path)
                moved = replace(at, node=target, control=control, due_at=_due(target, as_of))
                add(traveller, moved, "start", parent=at.node, path=path, due_at=moved.due_at)
                arrived[traveller] = moved
            frontier = arrived
        return rows


def _version(run: int) -> int:
    """Runs 3 and 4 are under version 2: the same graph applied again (nobody is orphaned)."""
    return 1 if run < 2 else 2


# -- the engines --------------------------------------------------------------------------


def _load(engine: Engine, data: pa.Table, session: Any = None) -> None:
    if session is not None:
        session.createDataFrame(data).write.saveAsTable(f"{engine._customer_database}.customers")
        return
    engine.backend.create_table(
        "customers", data, database=engine._customer_database, overwrite=True
    )


@pytest.fixture(params=["string", "integer"])
def key_type(request: pytest.FixtureRequest) -> str:
    """The type of the activation ID: the split hashes it as text either way."""
    return str(request.param)


@pytest.fixture(params=ENGINE_KINDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path, key_type: str) -> Iterator[Engine]:
    """An engine of each kind holding the customers."""
    opened = empty_engine(
        request.param, request, tmp_path, duckdb=DuckDBEngineConfig(path="j.duckdb", threads=2)
    )
    session: Any = request.getfixturevalue("spark_session") if request.param == "spark" else None
    with opened:
        _load(opened, customers(key_type), session)
        yield opened


def _context(engine: Engine, as_of: datetime) -> CompileContext:
    return CompileContext(
        tables=engine.table,
        data_model=DATA_MODEL,
        segments={
            name: SegmentDefinition.model_validate({"name": name, **spec})
            for name, spec in SEGMENTS.items()
        },
        as_of=as_of,
        timezone="UTC",
        dialect=engine.DIALECT,
    )


def _utc(value: datetime | None) -> datetime | None:
    """A log time as an aware UTC datetime (engines without a zoned type give UTC wall time)."""
    if value is None:
        return None
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _log(engine: Engine) -> list[LogRow]:
    rows = engine.to_pyarrow(engine.dataplane_table(LOG_TABLE)).to_pylist()
    assert {r["journey"] for r in rows} == {"welcome-series"}
    times = ("entry_at", "entered_at", "due_at")
    return [
        LogRow(
            **{
                **{c: r[c] for c in LogRow._fields},
                "traveller": str(r["traveller"]),
                **{c: _utc(r[c]) for c in times},
            }
        )
        for r in rows
    ]


def _same(got: list[LogRow], expected: list[LogRow]) -> tuple[list[LogRow], list[LogRow]]:
    """(missing, unexpected) rows, a few of each: both empty when the logs are equal."""
    missing = list((Counter(expected) - Counter(got)).elements())
    unexpected = list((Counter(got) - Counter(expected)).elements())
    return missing[:5], unexpected[:5]


@pytest.mark.slow
def test_travel_log_is_identical_on_every_engine_run_after_run(
    engine: Engine, key_type: str
) -> None:
    definition = JourneyDefinition.model_validate(JOURNEY)
    expected_runs = reference(key_type)
    expected_log: list[LogRow] = []
    for n, as_of in enumerate(RUNS):
        counts = step(
            engine,
            _context(engine, as_of),
            definition,
            version=_version(n),
            run_id=f"run-{n + 1}",
            tag=f"t{n + 1}",
        )
        expected = expected_runs[n]
        expected_log += expected
        got_log = _log(engine)
        assert _same(got_log, expected_log) == ([], []), f"run {n + 1}"
        # What the run reports is what it wrote.
        assert counts.stages == dict(Counter(r.stage for r in expected))
        assert counts.entered == sum(1 for r in expected if r.stage == "start" and r.parent is None)
        nodes: dict[str, Counter[str]] = {}
        for r in expected:
            nodes.setdefault(r.node, Counter())[r.stage] += 1
        assert counts.nodes == {node: dict(stages) for node, stages in nodes.items()}
        # The staging tables are gone: only the travel log is left in the data plane.
        assert engine.list_dataplane_tables() == [LOG_TABLE]

    log = _log(engine)
    # The data exercises what is tested: entries at every run, every node, every path.
    starts = [r for r in log if r.stage == "start"]
    entries = Counter(r.run_id for r in starts if r.parent is None)
    assert set(entries) == {"run-1", "run-2", "run-3", "run-4"}
    assert entries["run-1"] > 800
    assert {r.node for r in starts} == set(NODES)
    assert {r.path for r in starts if r.parent == "route"} == {"gold", "france", "everyone-else"}
    # Leaving the wait: met, timed out, or churned meanwhile.
    waited = [r for r in log if r.node == "until-opened" and r.stage in ("complete", "exit")]
    assert {r.path for r in waited} == {"met", "timed-out", "churned"}
    # An empty edge after a split keeps the path taken as the reason (``end`` is for
    # paths without a name).
    assert {r.path for r in log if r.stage == "exit"} == {"churned", "exit-node", "timed-out"}
    assert {r.path for r in log if r.stage == "goal"} == {"purchased"}
    # Reentry never: each traveller enters once.
    entered = [r.traveller for r in starts if r.parent is None]
    assert len(entered) == len(set(entered))

    # The percent split: 70/30 by hash, the holdout marked control from then on, never delayed.
    split = [r for r in starts if r.parent == "split"]
    holdout = {r.traveller for r in split if r.path == "holdout"}
    assert 0.26 < len(holdout) / len(split) < 0.34
    assert {r.traveller for r in split if r.control} == holdout
    assert all(
        r.control for r in starts if r.traveller in holdout and r.node in ("join", "until-opened")
    )
    assert not any(r.traveller in holdout for r in starts if r.node == "wait-1d")
    assert not any(r.control for r in log if r.node in ("welcome", "split", "wait-1d", "route"))

    # Waits end a calendar day (delay) and two (wait until) after arrival, and no earlier.
    waits = {"wait-1d": timedelta(days=1), "until-opened": timedelta(days=2)}
    for r in starts:
        assert r.due_at == (r.entered_at + waits[r.node] if r.node in waits else None)
    left = {r.traveller: r.entered_at for r in log if r.stage == "complete" and r.node == "wait-1d"}
    arrived = {r.traveller: r.entered_at for r in starts if r.node == "wait-1d"}
    assert len(left) > 500
    assert {left[k] - arrived[k] for k in left} == {timedelta(days=1)}

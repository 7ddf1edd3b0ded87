"""Property: stepping a journey in DuckDB writes the travel log a one-traveller-at-a-time model
of docs/journeys.md ("A run") writes.

Hypothesis draws valid journey graphs (2 to 8 nodes, forward edges only, some left empty:
activate, delay, conditional and percent splits, merges where split paths join, wait until,
exit), a start (entry, exclusion, exit and goal segments, re-entry ``never`` or
``after_exit``), 20 to 60 customers whose segment memberships begin (and, for the entry
segment, end) at random times on an hourly or daily grid, and about ten run times every 12 hours
or every day, some a second or an hour off the beat (so some runs fall exactly at a wait's end
and some one second before it), in UTC or in Europe/Paris across the March 2026 clock change.

The real :func:`activator.runtime.journey.step` runs at each time; the reference below loops
over customers and replays the documented run for each: exits, entries with the re-entry rule
and ``lapse`` rows, goals, then advancing as far as the graph allows. The two travel logs must be
the same multiset of rows.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, assume, example, given, note, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from activator.compiler import CompileContext
from activator.compiler.journey import LOG_TABLE
from activator.definitions.config import DataModel, DuckDBEngineConfig
from activator.definitions.journey import JourneyDefinition
from activator.definitions.segment import SegmentDefinition
from activator.engines.duckdb import DuckDBEngine
from activator.runtime.journey import run_rows, step

JOURNEY = "model-journey"
START = datetime(2026, 3, 24, 9, tzinfo=UTC)
"""The first run; Europe/Paris moves its clocks on 29 March 2026, inside the runs."""

MODEL = DataModel.model_validate({"customers": {"table": "customers", "key": "customer_id"}})

# -- segments: each starts to match at a timestamp column ----------------------------------

COLUMNS = (
    "entry_from",
    "entry_until",
    "again_from",
    "excluded_from",
    "exit_from",
    "goal_from",
    "a_from",
    "b_from",
)
SINCE = {
    "excluded": "excluded_from",
    "leaving": "exit_from",
    "converted": "goal_from",
    "seg-a": "a_from",
    "seg-b": "b_from",
}
"""Segments that match from their column's time on (never while it is NULL)."""


def since(column: str) -> dict[str, Any]:
    """The rule "``column`` is at or before the as-of time" (false on NULL)."""
    return {"attribute": f"customers.{column}", "op": "on_or_before", "value": "now"}


SEGMENTS = {
    "entering": SegmentDefinition.model_validate(
        {
            "name": "entering",
            "rules": {
                "any": [
                    {
                        "all": [
                            since("entry_from"),
                            {
                                "any": [
                                    {"attribute": "customers.entry_until", "op": "is_null"},
                                    {
                                        "attribute": "customers.entry_until",
                                        "op": "after",
                                        "value": "now",
                                    },
                                ]
                            },
                        ]
                    },
                    since("again_from"),
                ]
            },
        }
    ),
    **{
        name: SegmentDefinition.model_validate({"name": name, "rules": since(column)})
        for name, column in SINCE.items()
    },
}

Times = dict[str, datetime | None]
"""A customer's timestamp columns."""


def member(segment: str, times: Times, at: datetime) -> bool:
    """Whether a customer is in a segment as of ``at`` (the documented rules, restated)."""
    if segment == "entering":
        start, until, again = times["entry_from"], times["entry_until"], times["again_from"]
        window = start is not None and start <= at and (until is None or until > at)
        return window or (again is not None and again <= at)
    moment = times[SINCE[segment]]
    return moment is not None and moment <= at


# -- journeys ------------------------------------------------------------------------------

WAITS = ["1h", "12h", "24h", "36h", "1d", "2d", "3d", "0h"]
CONDITIONS = ["seg-a", "seg-b", "converted"]
SPLITS = ("conditional_split", "percent_split", "wait_until")
KINDS = ["activate", "delay", "conditional_split", "percent_split", "wait_until", "exit"]


@st.composite
def graphs(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Nodes n0, n1, ... in order; each later node is the target of 1 to 3 edges still open
    on earlier nodes (so every node is reachable and there is no cycle); a merge only where
    every edge into it comes from a split or from a node after one. Edges never chosen stay
    empty: the path ends there."""
    size = draw(st.integers(2, 8))
    nodes: list[dict[str, Any]] = []
    after_split: list[bool] = []
    open_edges: list[tuple[int, str, int]] = []  # (node, field, path index)
    for i in range(size):
        before: list[int] = []
        if i:
            if not open_edges:
                break
            chosen = draw(
                st.lists(
                    st.integers(0, len(open_edges) - 1),
                    min_size=1,
                    max_size=min(3, len(open_edges)),
                    unique=True,
                )
            )
            for index in sorted(chosen, reverse=True):
                source, slot, p = open_edges.pop(index)
                if slot == "paths":
                    nodes[source]["paths"][p]["next"] = f"n{i}"
                else:
                    nodes[source][slot] = f"n{i}"
                before.append(source)
        joins = bool(before) and all(nodes[m]["type"] in SPLITS or after_split[m] for m in before)
        after_split.append(joins)
        kinds = KINDS[:-1] if i == 0 else KINDS + (["merge"] if joins else [])
        kind = draw(st.sampled_from(kinds))
        node: dict[str, Any] = {"id": f"n{i}", "type": kind}
        slots: list[tuple[str, int]] = []
        if kind == "activate":
            node["destinations"] = [{"destination": "esp"}]
            slots = [("next", 0)]
        elif kind == "delay":
            node["wait"] = draw(st.sampled_from(WAITS))
            slots = [("next", 0)]
        elif kind == "merge":
            slots = [("next", 0)]
        elif kind == "wait_until":
            node["segment"] = draw(st.sampled_from(CONDITIONS))
            node["timeout"] = draw(st.sampled_from(WAITS))
            slots = [("met", 0), ("timed_out", 0)]
        elif kind == "conditional_split":
            count = draw(st.integers(1, 3))
            node["paths"] = []
            for p in range(count):
                condition = draw(st.sampled_from(CONDITIONS))
                inline = draw(st.booleans())
                node["paths"].append(
                    {"name": f"c{p}-{condition}", "rules": since(SINCE[condition])}
                    if inline
                    else {"name": f"c{p}-{condition}", "segment": condition}
                )
            slots = [("paths", p) for p in range(count)] + [("otherwise", 0)]
        elif kind == "percent_split":
            count = draw(st.integers(2, 3))
            cuts = sorted(
                draw(st.lists(st.integers(1, 9_999), min_size=count - 1, max_size=count - 1,
                              unique=True))
            )  # fmt: skip
            bounds = [0, *cuts, 10_000]
            control = draw(st.none() | st.integers(0, count - 1))
            node["paths"] = [
                {
                    "name": f"p{p}",
                    "percent": (bounds[p + 1] - bounds[p]) / 100,
                    "control": p == control,
                }
                for p in range(count)
            ]
            slots = [("paths", p) for p in range(count)]
        open_edges += [(i, slot, p) for slot, p in slots]
        nodes.append(node)
    return nodes


@st.composite
def journeys(draw: st.DrawFn) -> JourneyDefinition:
    spec = {
        "name": JOURNEY,
        "start": {
            "entry": draw(
                st.sampled_from([["entering"], ["entering", "seg-b"], ["seg-b", "entering"]])
            ),
            "exclude": draw(st.sampled_from([[], ["excluded"]])),
            "exit": draw(
                st.sampled_from([[], ["leaving"], ["leaving", "converted"], ["seg-a", "leaving"]])
            ),
            "goals": draw(st.sampled_from([[], ["converted"], ["converted", "seg-a"]])),
            "reentry": draw(st.sampled_from(["never", "after_exit", "after_exit"])),
        },
        "nodes": draw(graphs()),
        "schedule": {"type": "recurring", "every": "daily", "at": "09:00"},
        "salt": draw(st.sampled_from([None, "salty"])),
    }
    try:
        return JourneyDefinition.model_validate(spec)
    except ValidationError:  # pragma: no cover - the graphs above are built valid
        assume(False)
        raise


# -- customers and runs ---------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """The workspace zone, the customers' timestamp columns, and the runs' times."""

    timezone: str
    customers: dict[int, Times]
    runs: list[datetime]

    def __repr__(self) -> str:
        """Compact: hypothesis prints it for a failing example."""
        customers = ", ".join(
            f"{key}: {{{', '.join(f'{c}={clock(t)}' for c, t in times.items() if t)}}}"
            for key, times in self.customers.items()
        )
        runs = ", ".join(clock(at) for at in self.runs)
        return f"Scenario({self.timezone}, runs=[{runs}], customers={{{customers}}})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def clock(moment: datetime | None) -> str:
    """A time in UTC, short: ``03-24 08:59:59``."""
    return "-" if moment is None else moment.astimezone(UTC).strftime("%m-%d %H:%M:%S")


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    every = draw(st.sampled_from([timedelta(hours=12), timedelta(days=1)]))
    count = draw(st.integers(8, 11))
    offsets = [timedelta(0), timedelta(seconds=-1), timedelta(seconds=1), timedelta(hours=-1)]
    runs: list[datetime] = []
    for n in range(count):
        moment = START + n * every + draw(st.sampled_from(offsets))
        if not runs or moment > runs[-1]:
            runs.append(moment)
    grid = draw(st.sampled_from([timedelta(hours=1), timedelta(days=1)]))
    last = int((runs[-1] - START + timedelta(days=1)) / grid)
    steps = st.integers(-int(timedelta(days=2) / grid), last)
    sometimes = st.one_of(st.none(), st.none(), steps)

    @st.composite
    def person(draw: st.DrawFn) -> Times:
        """In the entry segment from a time (or never) for good or for a while, maybe again
        from a later time; the other segments from a time, or never."""
        entry = draw(st.one_of(steps, steps, steps, st.none()))
        until = draw(st.one_of(st.none(), st.integers(0, last // 3)))
        end = None if until is None else (entry or 0) + until
        again = draw(
            sometimes
            if end is None
            else st.one_of(st.none(), st.integers(end + 1, max(end, last) + 1))
        )
        points = [entry, end, again, *(draw(sometimes) for _ in COLUMNS[3:])]
        return {
            c: None if k is None else START + k * grid for c, k in zip(COLUMNS, points, strict=True)
        }

    people = draw(st.lists(person(), min_size=20, max_size=60))
    base = draw(st.integers(0, 10**6))
    customers = {base + n: times for n, times in enumerate(people)}
    return Scenario(draw(st.sampled_from(["UTC", "Europe/Paris"])), customers, runs)


# -- the reference model --------------------------------------------------------------------

Row = tuple[Any, ...]
"""(traveller, entry, entry_at, node, parent, path, control, stage, entered_at, due_at,
qualified): the travel log's columns compared."""


def bucket(salt: str, node_id: str, traveller: int) -> int:
    """``stable_bucket(traveller, "<salt>:<node id>")``: MD5 of ``salt:node:id``, its first
    8 hex digits as a number, modulo 10,000."""
    digest = hashlib.md5(f"{salt}:{node_id}:{traveller}".encode()).hexdigest()
    return int(digest[:8], 16) % 10_000


def wait_end(at: datetime, wait: str, timezone: str) -> datetime:
    """``at`` plus a wait: hours elapsed; days on the zone's wall clock."""
    count, unit = int(wait[:-1]), wait[-1]
    if unit == "h":
        return at + timedelta(hours=count)
    assert unit == "d"
    return (at.astimezone(ZoneInfo(timezone)) + timedelta(days=count)).astimezone(UTC)


@dataclass
class Position:
    node: str
    entry_at: datetime
    control: bool
    due_at: datetime | None


@dataclass
class Traveller:
    entries: int = 0
    position: Position | None = None
    goals: set[str] = field(default_factory=set)
    released: bool = False
    """Their last entry is over and they may enter again (re-entry ``after_exit``)."""


class Reference:
    """docs/journeys.md "A run", one traveller at a time.

    Where the doc leaves room, this model reads it so:

    - *qualifying* (``qualified`` on exit rows, ``lapse``) is the entry rules: an entry segment
      and no exclusion; exit segments only keep customers from entering;
    - a control path marks its travellers from the ``start`` row at the node after the split
      on (the split's own ``complete``/``exit`` row keeps the flag they arrived with);
    - ``lapse`` rows carry only the traveller, their last entry and the run's time;
    - an empty edge ends the journey: the ``exit`` row's path is the split path taken (a
      path's name, ``everyone-else``, ``met``, ``timed-out``), or ``end`` after a linear node
      (docs/journeys.md, "Defining a journey"); an exit node's is ``exit-node``.
    """

    def __init__(self, journey: dict[str, Any], scenario: Scenario) -> None:
        self.journey = journey
        self.start = journey["start"]
        self.nodes = {node["id"]: node for node in journey["nodes"]}
        self.first = journey["nodes"][0]["id"]
        self.salt = journey.get("salt") or journey["name"]
        self.scenario = scenario
        self.travellers = {key: Traveller() for key in scenario.customers}
        self.rows: list[Row] = []

    def due(self, node_id: str, at: datetime) -> datetime | None:
        node = self.nodes[node_id]
        if node["type"] == "delay":
            return wait_end(at, node["wait"], self.scenario.timezone)
        if node["type"] == "wait_until":
            return wait_end(at, node["timeout"], self.scenario.timezone)
        return None

    def run(self, at: datetime) -> None:
        for key, times in self.scenario.customers.items():
            self.step(key, times, at)

    def step(self, key: int, times: Times, at: datetime) -> None:
        """One traveller at one run: steps 4 to 7 (one version, so no orphans)."""
        start, me = self.start, self.travellers[key]

        def flag(segment: str) -> bool:
            return member(segment, times, at)

        def write(stage: str, position: Position | None, node: str | None, **values: Any) -> None:
            self.rows.append(
                (
                    key,
                    me.entries,
                    None if position is None else position.entry_at,
                    node,
                    values.get("parent"),
                    values.get("path"),
                    None if position is None else position.control,
                    stage,
                    at,
                    values.get("due_at"),
                    values.get("qualified"),
                )
            )

        qualifies = any(flag(s) for s in start["entry"]) and not any(
            flag(s) for s in start["exclude"]
        )
        exits = [s for s in start["exit"] if flag(s)]
        here = me.position
        staying = here
        # 4. Exits: the first matching exit segment is the reason.
        if here is not None and exits:
            write("exit", here, here.node, path=exits[0], qualified=qualifies)
            me.released = not qualifies
            staying = None
        # 5. Entries, and lapses (left while qualifying, now seen not qualifying).
        if here is None:
            may_enter = me.entries == 0 or (start["reentry"] == "after_exit" and me.released)
            if qualifies and not exits and may_enter:
                me.entries += 1
                me.goals = set()
                me.released = False
                staying = here = Position(self.first, at, False, self.due(self.first, at))
                write("start", here, here.node, due_at=here.due_at)
            elif (
                start["reentry"] == "after_exit"
                and me.entries
                and not me.released
                and not qualifies
            ):
                write("lapse", None, None)
                me.released = True
        # 6. Goals: first time in this entry, at the node they are at now.
        if here is not None:
            for goal in start["goals"]:
                if flag(goal) and goal not in me.goals:
                    me.goals.add(goal)
                    write("goal", here, here.node, path=goal)
        # 7. Advance as far as the graph lets them go at this run.
        me.position = staying
        while me.position is not None:
            position = me.position
            moves = self.decide(key, position, flag, at)
            if moves is None:
                break
            path, target, control = moves
            if target is None:
                # An exit node says so; an empty edge after a split names the path taken,
                # after a linear node it is "end" (docs: "An edge left empty ends ...").
                if self.nodes[position.node]["type"] == "exit":
                    reason = "exit-node"
                else:
                    reason = path if path is not None else "end"
                write("exit", position, position.node, path=reason, qualified=qualifies)
                me.released = not qualifies
                me.position = None
                break
            write("complete", position, position.node, path=path)
            me.position = Position(
                target, position.entry_at, position.control or control, self.due(target, at)
            )
            write(
                "start",
                me.position,
                target,
                parent=position.node,
                path=path,
                due_at=me.position.due_at,
            )

    def decide(
        self, key: int, position: Position, flag: Callable[[str], bool], at: datetime
    ) -> tuple[str | None, str | None, bool] | None:
        """None: the traveller stays; else (path taken, next node or None, control path)."""
        node = self.nodes[position.node]
        kind = node["type"]
        if kind in ("activate", "merge"):
            return None, node.get("next"), False
        if kind == "delay":
            assert position.due_at is not None
            return (None, node.get("next"), False) if position.due_at <= at else None
        if kind == "exit":
            return "exit-node", None, False
        if kind == "wait_until":
            assert position.due_at is not None
            if flag(node["segment"]):
                return "met", node.get("met"), False
            return ("timed-out", node.get("timed_out"), False) if position.due_at <= at else None
        if kind == "conditional_split":
            for path in node["paths"]:
                # Inline rules restate a segment: the path's name says which.
                condition = path.get("segment") or path["name"].split("-", 1)[1]
                if flag(condition):
                    return path["name"], path.get("next"), False
            return "everyone-else", node.get("otherwise"), False
        assert kind == "percent_split"
        value, low = bucket(self.salt, node["id"], key), 0
        for n, path in enumerate(node["paths"]):
            low += round(path["percent"] * 100)
            if value < low or n == len(node["paths"]) - 1:
                return path["name"], path.get("next"), bool(path.get("control"))
        raise AssertionError("unreachable")


# -- the engine -----------------------------------------------------------------------------


def customers_table(scenario: Scenario) -> pa.Table:
    keys = list(scenario.customers)
    columns: dict[str, pa.Array] = {"customer_id": pa.array(keys, pa.int64())}
    for column in COLUMNS:
        columns[column] = pa.array(
            [scenario.customers[k][column] for k in keys], pa.timestamp("us", tz="UTC")
        )
    return pa.table(columns)


def engine_rows(engine: DuckDBEngine, run_id: str) -> list[Row]:
    """The rows one run wrote to the travel log, as the model's tuples."""
    log = engine.dataplane_table(LOG_TABLE)
    mine = run_rows(log, JOURNEY, run_id)
    found = engine.to_pyarrow(
        mine.select(
            "traveller", "entry", "node", "parent", "path", "control", "stage", "qualified",
            "version", **{c: mine[c].epoch_seconds() for c in ("entry_at", "entered_at", "due_at")},
        )
    ).to_pylist()  # fmt: skip
    assert {r["version"] for r in found} <= {1}

    def moment(value: int | None) -> datetime | None:
        return None if value is None else datetime.fromtimestamp(value, UTC)

    return [
        (
            r["traveller"],
            r["entry"],
            moment(r["entry_at"]),
            r["node"],
            r["parent"],
            r["path"],
            r["control"],
            r["stage"],
            moment(r["entered_at"]),
            moment(r["due_at"]),
            r["qualified"],
        )
        for r in found
    ]


def show(row: Row) -> str:
    traveller, entry, entry_at, node, parent, path, control, stage, at, due, qualified = row
    return (
        f"{clock(at)} #{traveller} e{entry}@{clock(entry_at)} {stage:<8} node={node} "
        f"parent={parent} path={path} control={control} due={clock(due)} qualified={qualified}"
    )


def difference(engine: list[Row], model: list[Row], history: list[Row]) -> str:
    """The rows only one side wrote, then the model's whole log of the first few travellers
    concerned."""
    extra = Counter(engine) - Counter(model)
    missing = Counter(model) - Counter(engine)
    lines = [f"only in the engine's log ({extra.total()}):"]
    lines += [f"  + {show(r)}" for r in sorted(extra.elements(), key=order)]
    lines += [f"only in the model's log ({missing.total()}):"]
    lines += [f"  - {show(r)}" for r in sorted(missing.elements(), key=order)]
    for traveller in sorted({r[0] for r in extra + missing})[:3]:
        lines.append(f"the model's log of #{traveller}:")
        lines += [f"    {show(r)}" for r in history if r[0] == traveller]
    return "\n".join(lines)


def order(row: Row) -> tuple[Any, ...]:
    return row[8], row[0], row[1]


EMPTY_EDGES_AFTER_A_SPLIT = JourneyDefinition.model_validate(
    {
        "name": JOURNEY,
        "start": {"entry": ["entering"]},
        "nodes": [
            {
                "id": "n0",
                "type": "conditional_split",
                "paths": [{"name": "c0-seg-a", "segment": "seg-a"}],
            }
        ],
        "schedule": {"type": "recurring", "every": "daily", "at": "09:00"},
    }
)
"""The smallest journey whose paths end at empty edges: both travellers leave at their first
run, one by the path ``c0-seg-a`` and one by ``everyone-else``, each with ``path: end``."""

TWO_CUSTOMERS = Scenario(
    "UTC",
    {
        1: {c: START if c in ("entry_from", "a_from") else None for c in COLUMNS},
        2: {c: START if c == "entry_from" else None for c in COLUMNS},
    },
    [START],
)


@pytest.mark.slow
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(definition=journeys(), scenario=scenarios())
@example(definition=EMPTY_EDGES_AFTER_A_SPLIT, scenario=TWO_CUSTOMERS)
def test_engine_steps_write_the_models_travel_log(
    definition: JourneyDefinition, scenario: Scenario
) -> None:
    note(definition.model_dump_json(exclude_none=True, exclude_defaults=True))
    reference = Reference(definition.model_dump(exclude_none=True), scenario)
    with DuckDBEngine(
        DuckDBEngineConfig(path=":memory:", threads=1), workspace_root=Path.cwd()
    ) as engine:
        engine.backend.create_table("customers", customers_table(scenario))
        for n, at in enumerate(scenario.runs):
            ctx = CompileContext(
                tables=engine.table,
                data_model=MODEL,
                segments=SEGMENTS,
                as_of=at,
                timezone=scenario.timezone,
                dialect="duckdb",
            )
            step(engine, ctx, definition, version=1, run_id=f"run-{n}", tag=f"r{n}")
            written = len(reference.rows)
            reference.run(at)
            # Every row carries its run's time, so comparing run by run compares the whole
            # log; it stops at the first run that differs.
            expected, found = reference.rows[written:], engine_rows(engine, f"run-{n}")
            if Counter(found) != Counter(expected):
                raise AssertionError(
                    f"run {n} as of {at.isoformat()}:\n"
                    + difference(found, expected, reference.rows)
                )

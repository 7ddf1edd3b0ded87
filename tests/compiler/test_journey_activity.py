"""Journey activity conditions: the travel log (data-plane ``journey_log``) read by segments.

The shop's customers 1–8, as of ``shop.AS_OF`` (2026-03-15 12:00 UTC), and this log
(D1 2026-03-01 09:00, D2 03-05 09:00, D3 03-08 09:00, D4 03-12 09:00, AS the as-of time, LATER
one microsecond after it; welcome: welcome → wait-3d → nudge → done, winback: offer):

- welcome, 1: entry 1 at D1 (welcome, wait-3d; goal first-time-buyers at D3; D4 on through
  nudge to done: exit ``exit-node``), entry 2 at AS (welcome, now at wait-3d);
- welcome, 2: entry 1 at D2, at wait-3d; at LATER on to nudge and goal first-time-buyers;
- welcome, 3: entry 1 at D1, at wait-3d; goal engaged at D2, goal first-time-buyers and exit
  ``first-time-buyers`` at D4;
- welcome, 4: entry 1 at D2, at wait-3d; orphaned there at D3;
- welcome, 5: entry 1 at D3, at wait-3d; exit ``unsubscribed`` at LATER;
- welcome, 8: entry 1 at LATER;
- winback, 6: entry 1 at D2, at offer;
- winback, 7: entry 1 at D1 (exit ``end`` at D1), entry 2 at D4 (goal won-back, exit ``end``).

So as of AS, welcome has 1, 2 and 5 travelling (all at wait-3d), and winback 6.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import pyarrow as pa
import pytest

from activator.compiler import CompileContext, check_segment, explain_customer, segment_members
from activator.compiler.describe import describe
from activator.compiler.journey import LOG_TABLE, log_schema
from activator.definitions.common import JourneyActivityCondition, journey_references
from activator.definitions.config import DuckDBEngineConfig
from activator.engines.duckdb import DuckDBEngine
from activator.errors import CompileError, DefinitionError
from activator.services.segment import activity_tables
from activator.services.workspace import validate_workspace
from activator.workspace.loader import load_workspace
from activator.workspace.references import check_references
from tests.compiler import shop
from tests.compiler.conftest import Evaluator, ids

D1 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
D2 = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)
D3 = datetime(2026, 3, 8, 9, 0, tzinfo=UTC)
D4 = datetime(2026, 3, 12, 9, 0, tzinfo=UTC)
AS = shop.AS_OF
LATER = shop.AS_OF + timedelta(microseconds=1)

FTB = "first-time-buyers"

# (journey, traveller, entry, entry_at, entered_at, stage, node, parent, path)
_Row = tuple[str, int, int, datetime, datetime, str, str, str | None, str | None]


def _entry(journey: str, traveller: int, entry: int, at: datetime, *nodes: str) -> list[_Row]:
    """An entry at ``at`` moving at once through ``nodes``: start, complete, start, ..."""
    rows: list[_Row] = []
    parent = None
    for i, node in enumerate(nodes):
        if i:
            rows.append((journey, traveller, entry, at, at, "complete", nodes[i - 1], None, None))
        rows.append((journey, traveller, entry, at, at, "start", node, parent, None))
        parent = node
    return rows


_LOG: list[_Row] = [
    *_entry("welcome", 1, 1, D1, "welcome", "wait-3d"),
    ("welcome", 1, 1, D1, D3, "goal", "wait-3d", None, FTB),
    ("welcome", 1, 1, D1, D4, "complete", "wait-3d", None, None),
    ("welcome", 1, 1, D1, D4, "start", "nudge", "wait-3d", None),
    ("welcome", 1, 1, D1, D4, "complete", "nudge", None, None),
    ("welcome", 1, 1, D1, D4, "start", "done", "nudge", None),
    ("welcome", 1, 1, D1, D4, "exit", "done", None, "exit-node"),
    *_entry("welcome", 1, 2, AS, "welcome", "wait-3d"),
    *_entry("welcome", 2, 1, D2, "welcome", "wait-3d"),
    ("welcome", 2, 1, D2, LATER, "complete", "wait-3d", None, None),
    ("welcome", 2, 1, D2, LATER, "start", "nudge", "wait-3d", None),
    ("welcome", 2, 1, D2, LATER, "goal", "nudge", None, FTB),
    *_entry("welcome", 3, 1, D1, "welcome", "wait-3d"),
    ("welcome", 3, 1, D1, D2, "goal", "wait-3d", None, "engaged"),
    ("welcome", 3, 1, D1, D4, "goal", "wait-3d", None, FTB),
    ("welcome", 3, 1, D1, D4, "exit", "wait-3d", None, FTB),
    *_entry("welcome", 4, 1, D2, "welcome", "wait-3d"),
    ("welcome", 4, 1, D2, D3, "orphan", "wait-3d", None, None),
    *_entry("welcome", 5, 1, D3, "welcome", "wait-3d"),
    ("welcome", 5, 1, D3, LATER, "exit", "wait-3d", None, "unsubscribed"),
    *_entry("welcome", 8, 1, LATER, "welcome"),
    *_entry("winback", 6, 1, D2, "offer"),
    *_entry("winback", 7, 1, D1, "offer"),
    ("winback", 7, 1, D1, D1, "exit", "offer", None, "end"),
    *_entry("winback", 7, 2, D4, "offer"),
    ("winback", 7, 2, D4, D4, "goal", "offer", None, "won-back"),
    ("winback", 7, 2, D4, D4, "exit", "offer", None, "end"),
]


def travel_log() -> pa.Table:
    """The log above with every column of the travel log (the others NULL or constant)."""
    schema = log_schema(dt.int64).to_pyarrow()
    names = ("journey", "traveller", "entry", "entry_at", "entered_at", "stage", "node")
    columns: dict[str, list[Any]] = {name: [] for name in schema.names}
    for row in _LOG:
        values = dict(zip((*names, "parent", "path"), row, strict=True))
        for name in schema.names:
            default: Any = {"version": 1, "control": False, "run_id": "r"}.get(name)
            columns[name].append(values.get(name, default))
    return pa.table(columns, schema=schema)


@pytest.fixture(scope="module")
def engine() -> Iterator[DuckDBEngine]:
    """The shop in an in-memory DuckDB engine, with ``journey_log`` in its data plane."""
    with DuckDBEngine(
        DuckDBEngineConfig(path=":memory:", threads=2), workspace_root=Path.cwd()
    ) as opened:
        for name, data in shop.tables().items():
            opened.backend.create_table(name, data)
        opened.create_dataplane_table(LOG_TABLE, travel_log())
        yield opened


class ActivityEvaluator(Evaluator):
    """An evaluator whose contexts read activity from the engine's data plane."""

    def __init__(self, engine: DuckDBEngine) -> None:
        super().__init__(engine.backend)
        self.activity = activity_tables(engine)

    def context(self, **changes: Any) -> CompileContext:
        return super().context(**{"activity": self.activity, **changes})


@pytest.fixture
def shop_eval(engine: DuckDBEngine) -> Evaluator:
    return ActivityEvaluator(engine)


def welcome(**spec: Any) -> dict[str, Any]:
    return {"journey": "welcome", **spec}


def entered(**spec: Any) -> dict[str, Any]:
    return welcome(status="entered", **spec)


# --- in the journey, at a node -------------------------------------------------------------


def test_in_the_journey_means_an_open_position(shop_eval: Evaluator) -> None:
    # 3 exited, 4 was orphaned; 1 is there again (entry 2, at the as-of time exactly).
    assert shop_eval.rule(welcome()) == {1, 2, 5}
    assert shop_eval.rule(welcome(status="in")) == {1, 2, 5}
    assert shop_eval.rule({"journey": "winback"}) == {6}
    assert shop_eval.rule({"journey": "never-ran"}) == set()
    assert shop_eval.rule({"not": welcome()}) == shop.ALL - {1, 2, 5}


@pytest.mark.parametrize(
    ("node", "expected"),
    [("wait-3d", {1, 2, 5}), ("welcome", set()), ("nudge", set()), ("done", set())],
)
def test_at_a_node(shop_eval: Evaluator, node: str, expected: set[int]) -> None:
    assert shop_eval.rule(welcome(node=node)) == expected


def test_rows_after_the_as_of_time_are_ignored(shop_eval: Evaluator) -> None:
    # At LATER: 2 moved on to nudge, 5 exited, 8 entered.
    assert shop_eval.rule(welcome(), as_of=LATER) == {1, 2, 8}
    assert shop_eval.rule(welcome(node="nudge"), as_of=LATER) == {2}
    assert shop_eval.rule(welcome(node="welcome"), as_of=LATER) == {8}
    # At D3 exactly: 4's orphan row and 5's entry count; 1 is still in its first entry.
    assert shop_eval.rule(welcome(), as_of=D3) == {1, 2, 3, 5}
    assert shop_eval.rule(welcome(), as_of=D3 - timedelta(microseconds=1)) == {1, 2, 3, 4}
    assert shop_eval.rule(welcome(node="wait-3d"), as_of=D1) == {1, 3}
    assert shop_eval.rule(welcome(), as_of=D1 - timedelta(microseconds=1)) == set()


def test_in_with_window_and_arrival_times(shop_eval: Evaluator) -> None:
    # The window and first/last are about the arrival at the node where the customer is.
    # (as_of − 7 days, as_of]: 5 arrived at 03-08 09:00, before 03-08 12:00.
    assert shop_eval.rule(welcome(window={"last": "7d"})) == {1}
    assert shop_eval.rule(welcome(window={"last": "8d"})) == {1, 5}
    # Waiting since before 3 days ago (2026-03-12): stuck at wait-3d.
    stuck = welcome(node="wait-3d", last={"op": "before", "value": "3 days ago"})
    assert shop_eval.rule(stuck) == {2, 5}
    assert shop_eval.rule(welcome(first={"op": "is", "value": "today"})) == {1}


# --- entries, arrivals at a node -----------------------------------------------------------


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        (None, {1, 2, 3, 4, 5}),
        ({"op": ">=", "value": 2}, {1}),
        ({"op": "=", "value": 1}, {2, 3, 4, 5}),
        ({"op": "<", "value": 1}, {6, 7, 8}),  # never entered (8 only after the as-of time)
        ({"op": "between", "value": [1, 2]}, {1, 2, 3, 4, 5}),
        ({"op": "not_between", "value": [1, 1]}, {1, 6, 7, 8}),
    ],
)
def test_entered_counts_entries(
    shop_eval: Evaluator, times: dict[str, Any] | None, expected: set[int]
) -> None:
    spec = entered() if times is None else entered(times=times)
    assert shop_eval.rule(spec) == expected


def test_entered_another_journey(shop_eval: Evaluator) -> None:
    assert shop_eval.rule({"journey": "winback", "status": "entered"}) == {6, 7}
    winback_twice = {"journey": "winback", "status": "entered", "times": {"op": "=", "value": 2}}
    assert shop_eval.rule(winback_twice) == {7}


def test_entered_after_the_as_of_time_is_ignored(shop_eval: Evaluator) -> None:
    assert shop_eval.rule(entered(), as_of=LATER) == {1, 2, 3, 4, 5, 8}
    # 1's second entry is at the as-of time exactly: a microsecond earlier, it has not happened.
    twice = entered(times={"op": ">=", "value": 2})
    assert shop_eval.rule(twice, as_of=AS - timedelta(microseconds=1)) == set()
    assert shop_eval.rule(entered(), as_of=D2) == {1, 2, 3, 4}


@pytest.mark.parametrize(
    ("node", "times", "expected", "expected_later"),
    [
        ("nudge", None, {1}, {1, 2}),
        ("done", None, {1}, {1}),
        ("welcome", None, {1, 2, 3, 4, 5}, {1, 2, 3, 4, 5, 8}),
        ("wait-3d", {"op": "=", "value": 2}, {1}, {1}),
        ("wait-3d", {"op": "=", "value": 1}, {2, 3, 4, 5}, {2, 3, 4, 5}),
        ("offer", None, set(), set()),  # a node of the other journey
    ],
)
def test_reached_a_node(
    shop_eval: Evaluator,
    node: str,
    times: dict[str, Any] | None,
    expected: set[int],
    expected_later: set[int],
) -> None:
    spec = entered(node=node) if times is None else entered(node=node, times=times)
    assert shop_eval.rule(spec) == expected
    assert shop_eval.rule(spec, as_of=LATER) == expected_later


def test_entered_in_a_window(shop_eval: Evaluator) -> None:
    # (as_of − 7 days, as_of]: only 1's second entry (D3, 03-08 09:00, is just outside).
    assert shop_eval.rule(entered(window={"last": "7d"})) == {1}
    assert shop_eval.rule(entered(window={"last": "10d"})) == {1, 5}
    assert shop_eval.rule(entered(window={"between": ["2026-03-01", "2026-03-05"]})) == {
        1,
        2,
        3,
        4,
    }
    twice = {"op": ">=", "value": 2}
    assert shop_eval.rule(entered(window={"last": "30d"}, times=twice)) == {1}
    assert shop_eval.rule(entered(window={"last": "10d"}, times=twice)) == set()
    # 1 reached nudge at D4 (03-12 09:00).
    assert shop_eval.rule(entered(node="nudge", window={"last": "7d"})) == {1}
    assert shop_eval.rule(entered(node="nudge", window={"last": "3d"})) == set()
    assert shop_eval.rule(entered(node="nudge", window={"last": "3d"}), as_of=LATER) == {2}


def test_first_and_last_entry(shop_eval: Evaluator) -> None:
    assert shop_eval.rule(entered(first={"op": "before", "value": "2026-03-02"})) == {1, 3}
    assert shop_eval.rule(entered(last={"op": "on_or_after", "value": "today"})) == {1}
    assert shop_eval.rule(entered(last={"op": "before", "value": "2026-03-06"})) == {2, 3, 4}
    assert shop_eval.rule(entered(first={"op": "is", "value": "2026-03-08"})) == {5}
    both = entered(
        first={"op": "before", "value": "2026-03-02"}, last={"op": "after", "value": "3 days ago"}
    )
    assert shop_eval.rule(both) == {1}
    # First and last are those of the matching rows: in the window here.
    in_window = entered(window={"last": "7d"}, first={"op": "is", "value": "today"})
    assert shop_eval.rule(in_window) == {1}
    # First arrival at nudge.
    assert shop_eval.rule(entered(node="nudge", first={"op": "is", "value": "2026-03-12"})) == {1}
    # No entry: no first entry, so never met, even with times < 1.
    never = entered(times={"op": "<", "value": 1}, first={"op": "before", "value": "today"})
    assert shop_eval.rule(never) == set()


# --- goals and exits -----------------------------------------------------------------------


def test_reached_a_goal(shop_eval: Evaluator) -> None:
    assert shop_eval.rule(welcome(status="goal")) == {1, 3}
    assert shop_eval.rule(welcome(status="goal", goal=FTB)) == {1, 3}
    assert shop_eval.rule(welcome(status="goal", goal="engaged")) == {3}
    assert shop_eval.rule(welcome(status="goal", goal="won-back")) == set()
    assert shop_eval.rule({"journey": "winback", "status": "goal"}) == {7}
    assert shop_eval.rule(welcome(status="goal", goal=FTB), as_of=LATER) == {1, 2, 3}
    assert shop_eval.rule(welcome(status="goal"), as_of=D3 - timedelta(microseconds=1)) == {3}
    # times counts entries in which a goal was reached: 3's two goals are in one entry.
    assert shop_eval.rule(welcome(status="goal", times={"op": ">=", "value": 2})) == set()
    assert shop_eval.rule(welcome(status="goal", times={"op": "=", "value": 1})) == {1, 3}
    assert shop_eval.rule(welcome(status="goal", window={"last": "7d"})) == {3}
    assert shop_eval.rule(
        welcome(status="goal", first={"op": "before", "value": "2026-03-06"})
    ) == {3}
    assert shop_eval.rule(
        welcome(status="goal", last={"op": "on_or_after", "value": "2026-03-08"})
    ) == {1, 3}
    assert (
        shop_eval.rule(
            welcome(
                status="goal", goal="engaged", last={"op": "on_or_after", "value": "2026-03-08"}
            )
        )
        == set()
    )


def test_exited(shop_eval: Evaluator) -> None:
    # Exits and orphans (4).
    assert shop_eval.rule(welcome(status="exited")) == {1, 3, 4}
    assert shop_eval.rule(welcome(status="exited", reason="exit-node")) == {1}
    assert shop_eval.rule(welcome(status="exited", reason=FTB)) == {3}
    assert shop_eval.rule(welcome(status="exited", reason="unsubscribed")) == set()
    assert shop_eval.rule(welcome(status="exited", reason="unsubscribed"), as_of=LATER) == {5}
    assert shop_eval.rule(welcome(status="exited"), as_of=LATER) == {1, 3, 4, 5}
    assert shop_eval.rule(welcome(status="exited"), as_of=D3) == {4}
    assert shop_eval.rule(welcome(status="exited", window={"last": "5d"})) == {1, 3}
    assert shop_eval.rule(welcome(status="exited", window={"last": "3d"})) == set()
    assert shop_eval.rule(welcome(status="exited", last={"op": "is", "value": "2026-03-08"})) == {4}


def test_exited_another_journey(shop_eval: Evaluator) -> None:
    winback = {"journey": "winback", "status": "exited"}
    assert shop_eval.rule(winback) == {7}
    assert shop_eval.rule({**winback, "reason": "end", "times": {"op": "=", "value": 2}}) == {7}
    assert shop_eval.rule({**winback, "window": {"last": "7d"}}) == {7}
    assert shop_eval.rule(
        {**winback, "window": {"last": "7d"}, "times": {"op": ">=", "value": 2}}
    ) == (set())
    assert shop_eval.rule({**winback, "first": {"op": "is", "value": "2026-03-01"}}) == {7}


def test_conditions_combine(shop_eval: Evaluator) -> None:
    # Entered welcome, not in it now and never reached a goal there: 4.
    members = shop_eval.members(
        rules={"all": [entered(), {"not": welcome()}]},
        exclude=welcome(status="goal"),
    )
    assert members == {4}


# --- no travel log -------------------------------------------------------------------------


def test_no_travel_log_means_nobody_travelled(shop_eval: Evaluator) -> None:
    for activity in (None, lambda name: None):
        assert shop_eval.rule(welcome(), activity=activity) == set()
        assert shop_eval.rule({"not": welcome()}, activity=activity) == shop.ALL
        assert shop_eval.rule(welcome(node="wait-3d"), activity=activity) == set()
        assert shop_eval.rule(entered(), activity=activity) == set()
        assert shop_eval.rule(entered(times={"op": "<", "value": 1}), activity=activity) == (
            shop.ALL
        )
        assert shop_eval.rule(welcome(status="goal"), activity=activity) == set()
        assert shop_eval.rule(welcome(status="exited", reason="end"), activity=activity) == set()
        last = entered(times={"op": "=", "value": 0}, last={"op": "before", "value": "today"})
        assert shop_eval.rule(last, activity=activity) == set()


def test_the_log_is_looked_up_at_each_evaluation(tmp_path: Path) -> None:
    with DuckDBEngine(
        DuckDBEngineConfig(path=":memory:", threads=1), workspace_root=tmp_path
    ) as fresh:
        for name, data in shop.tables().items():
            fresh.backend.create_table(name, data)
        evaluator = Evaluator(fresh.backend)
        activity = activity_tables(fresh)
        assert activity(LOG_TABLE) is None
        assert evaluator.rule(welcome(), activity=activity) == set()
        fresh.create_dataplane_table(LOG_TABLE, travel_log())
        assert evaluator.rule(welcome(), activity=activity) == {1, 2, 5}


def test_a_log_without_a_column_is_an_error(shop_eval: Evaluator) -> None:
    partial = ibis.memtable(travel_log().drop_columns(["parent"]))
    with pytest.raises(CompileError, match="table 'journey_log' has no column 'parent'"):
        shop_eval.rule(welcome(), activity=lambda name: partial)


def test_bad_values_and_combinations_name_their_path(shop_eval: Evaluator) -> None:
    with pytest.raises(CompileError, match=r"^rules\.first\.value: 'soon' is not a date"):
        shop_eval.rule(entered(first={"op": "before", "value": "soon"}))
    with pytest.raises(CompileError, match=r"^rules\.times\.value: 'x' is not a number"):
        shop_eval.rule(entered(times={"op": ">=", "value": "x"}))
    with pytest.raises(
        CompileError, match=r"^rules\.goal: goal applies to status goal, not entered$"
    ):
        shop_eval.rule(entered(goal=FTB))
    with pytest.raises(
        CompileError, match=r"^rules\.node: node applies to status in or entered, not exited$"
    ):
        shop_eval.rule(welcome(status="exited", node="done"))


# --- explanation and words -----------------------------------------------------------------


def test_explanation_shows_the_node_or_the_number_of_entries(shop_eval: Evaluator) -> None:
    shop_eval.segments["returning"] = shop.segment(
        "returning",
        rules={"all": [welcome(), entered(times={"op": ">=", "value": 2})]},
    )
    ctx = shop_eval.context()
    members = ids(segment_members(ctx, "returning"))
    assert members == {1}
    for customer in sorted(shop.ALL):
        assert explain_customer(ctx, "returning", customer).met == (customer in members)
    here, again = explain_customer(ctx, "returning", 1).children[0].children
    assert (here.path, here.description, here.met, here.value) == (
        "rules.all[0]",
        "in journey welcome",
        True,
        "wait-3d",
    )
    assert (again.path, again.description, again.met, again.value) == (
        "rules.all[1]",
        "entered journey welcome at least 2 times",
        True,
        2,
    )
    gone, once = explain_customer(ctx, "returning", 3).children[0].children
    assert (gone.met, gone.value, once.met, once.value) == (False, None, False, 1)
    never = explain_customer(ctx, "returning", 6).children[0].children
    assert [(c.met, c.value) for c in never] == [(False, None), (False, 0)]
    missing = explain_customer(shop_eval.context(activity=None), "returning", 1)
    assert [(c.met, c.value) for c in missing.children[0].children] == [(False, None), (False, 0)]
    assert not missing.met


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        ({}, "in journey welcome"),
        ({"node": "wait-3d"}, "at node wait-3d of journey welcome"),
        (
            {
                "node": "wait-3d",
                "window": {"last": "3d"},
                "first": {"op": "before", "value": "today"},
            },
            "at node wait-3d of journey welcome, arrived in the last 3 days, arrived before today",
        ),
        (
            {"status": "entered", "times": {"op": ">=", "value": 2}, "window": {"last": "90d"}},
            "entered journey welcome at least 2 times in the last 90 days",
        ),
        (
            {
                "status": "entered",
                "first": {"op": "before", "value": "30 days ago"},
                "last": {"op": "after", "value": "7 days ago"},
            },
            "entered journey welcome, first entered before 30 days ago, last entered after "
            "7 days ago",
        ),
        (
            {"status": "entered", "node": "nudge", "times": {"op": "=", "value": 1}},
            "reached node nudge of journey welcome exactly 1 time",
        ),
        ({"status": "goal"}, "reached a goal of journey welcome"),
        (
            {"status": "goal", "goal": FTB, "last": {"op": "on_or_after", "value": "today"}},
            "reached goal first-time-buyers of journey welcome, last reached on or after today",
        ),
        ({"status": "exited"}, "exited journey welcome"),
        (
            {
                "status": "exited",
                "reason": "exit-node",
                "window": {"between": ["2026-01-01", "2026-01-31"]},
            },
            "exited journey welcome (exit-node) between 2026-01-01 and 2026-01-31",
        ),
    ],
)
def test_description(spec: dict[str, Any], text: str) -> None:
    assert describe(JourneyActivityCondition.model_validate(welcome(**spec))) == text


# --- checks and references -----------------------------------------------------------------


def problems(rules: dict[str, Any]) -> list[tuple[str, str]]:
    definition = shop.segment("s", rules=rules)
    return check_segment(definition, data_model=shop.DATA_MODEL, schemas={}, dialect="duckdb")


@pytest.mark.parametrize(
    ("spec", "path", "message"),
    [
        ({"goal": FTB}, "rules.goal", "goal applies to status goal, not in"),
        (
            {"status": "exited", "goal": FTB},
            "rules.goal",
            "goal applies to status goal, not exited",
        ),
        ({"reason": "end"}, "rules.reason", "reason applies to status exited, not in"),
        (
            {"status": "goal", "reason": "end"},
            "rules.reason",
            "reason applies to status exited, not goal",
        ),
        (
            {"status": "goal", "node": "nudge"},
            "rules.node",
            "node applies to status in or entered, not goal",
        ),
        (
            {"status": "exited", "node": "done"},
            "rules.node",
            "node applies to status in or entered, not exited",
        ),
        (
            {"times": {"op": ">=", "value": 1}},
            "rules.times",
            "times does not apply to status in: a traveller is in a journey at most once at a "
            "time (use not for 'not in')",
        ),
        (
            {"status": "entered", "window": {"between": ["2026-02-01", "2026-01-01"]}},
            "rules.window.between",
            "the window ends (2026-01-01) before it starts (2026-02-01)",
        ),
        ({"window": {"last": "0d"}}, "rules.window.last", "a window of length 0 holds nothing"),
        (
            {"status": "goal", "times": {"op": ">=", "value": -1}},
            "rules.times.value",
            "-1 is not a number of times (0, 1, 2...)",
        ),
        (
            {"status": "exited", "times": {"op": "between", "value": [3, 1]}},
            "rules.times.value",
            "between: the low bound 3 is above the high",
        ),
        (
            {"status": "entered", "first": {"op": "before", "value": "soon"}},
            "rules.first.value",
            "'soon' is not a date; use 2026-03-01, 2026-03-01T09:30, 'today', 'N days ago', "
            "'N weeks ago', 'N months ago' or 'N years ago'",
        ),
        (
            {"last": {"op": "between", "value": ["today", "30 days ago"]}},
            "rules.last.value",
            "between: today is after 30 days ago",
        ),
    ],
)
def test_check_problems(spec: dict[str, Any], path: str, message: str) -> None:
    assert problems(welcome(**spec)) == [(path, message)]


def test_check_reports_every_misplaced_field() -> None:
    spec = welcome(node="done", goal=FTB, times={"op": "=", "value": 1})
    assert problems({"not": spec}) == [
        ("rules.not.goal", "goal applies to status goal, not in"),
        (
            "rules.not.times",
            "times does not apply to status in: a traveller is in a journey at most once at a "
            "time (use not for 'not in')",
        ),
    ]


def test_check_accepts_good_conditions() -> None:
    good = [
        welcome(),
        welcome(node="wait-3d", window={"last": "3d"}, last={"op": "before", "value": "today"}),
        entered(times={"op": "between", "value": [1, "3"]}, window={"last": "30d"}),
        entered(node="nudge", first={"op": "between", "value": ["2026-01-01", "30 days ago"]}),
        welcome(status="goal", goal=FTB, times={"op": ">=", "value": 1}),
        welcome(status="exited", reason="exit-node", last={"op": "after", "value": "7 days ago"}),
    ]
    assert problems({"all": [*good, {"not": {"any": good}}]}) == []


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match=r"rules\.journey\.status"):
        shop.segment("s", rules=welcome(status="left"))
    with pytest.raises(ValueError, match=r"rules\.journey\.node"):
        shop.segment("s", rules=welcome(node="no spaces"))
    with pytest.raises(ValueError, match=r"rules\.journey\.first\.op"):
        shop.segment("s", rules=entered(first={"op": ">=", "value": "today"}))
    with pytest.raises(ValueError, match=r"a rule starts with exactly one of: .*campaign, journey"):
        shop.segment("s", rules={"journey": "welcome", "campaign": "winback"})


def test_journey_references() -> None:
    rules = shop.segment(
        "s",
        rules={"all": [welcome(), {"not": {"any": [{"campaign": "c"}, {"journey": "winback"}]}}]},
    ).rules
    assert journey_references(rules, "rules") == [
        ("welcome", "rules.all[0].journey"),
        ("winback", "rules.all[1].not.any[1].journey"),
    ]


def test_unknown_journeys_are_reported_with_file_and_path(tmp_path: Path) -> None:
    (tmp_path / "activator.yaml").write_text(
        "engine: {type: duckdb, path: data/w.duckdb}\n"
        "data_model:\n  customers: {table: customers, key: customer_id}\n"
    )
    (tmp_path / "segments").mkdir()
    (tmp_path / "segments" / "new.yml").write_text(
        "rules: {attribute: customers.customer_id, op: '>', value: 0}\n"
    )
    (tmp_path / "segments" / "travelling.yml").write_text("rules: {journey: welcome}\n")
    (tmp_path / "segments" / "fresh.yml").write_text(
        "rules:\n  all:\n    - {attribute: customers.customer_id, op: '>', value: 0}\n"
        "    - not: {journey: welcom, status: exited}\n"
    )
    (tmp_path / "journeys").mkdir()
    (tmp_path / "journeys" / "welcome.yml").write_text(
        "start: {entry: [new]}\n"
        "nodes:\n"
        "  - id: split\n"
        "    type: conditional_split\n"
        "    paths:\n"
        "      - {name: back, rules: {journey: winback, status: entered}, next: done}\n"
        "    otherwise: done\n"
        "  - {id: done, type: exit}\n"
        "schedule: {type: recurring, every: daily}\n"
    )
    issues = [str(issue) for issue in check_references(load_workspace(tmp_path))]
    assert issues == [
        "segments/fresh.yml:4 rules.all[1].not.journey: unknown journey 'welcom' (known: welcome)",
        "journeys/welcome.yml:6 nodes[0].paths[0].rules.journey: "
        "unknown journey 'winback' (known: welcome)",
    ]
    # `activator validate` reports them, and the fields that do not fit a status.
    (tmp_path / "segments" / "travelling.yml").write_text(
        "rules: {journey: welcome, status: exited, node: done}\n"
    )
    with pytest.raises(DefinitionError) as raised:
        validate_workspace(tmp_path, check_engine=False)
    assert [str(issue) for issue in raised.value.issues] == [
        *issues,
        "segments/travelling.yml:1 rules.node: node applies to status in or entered, not exited",
    ]


# --- golden SQL ----------------------------------------------------------------------------

GOLDEN = Path(__file__).parent / "golden"
DIALECTS = {
    "bigquery": "bigquery",
    "duckdb": "duckdb",
    "postgres": "postgres",
    "snowflake": "snowflake",
    "spark": "pyspark",
    "trino": "trino",
}


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_golden_sql(dialect: str) -> None:
    """Waiting at a node, not yet at a goal, over unbound tables; regenerate with
    ACTIVATOR_UPDATE_GOLDEN=1."""
    if dialect == "spark":
        _ = ibis.pyspark  # registers the options its SQL compiler reads
    unbound = {
        name: ibis.table(ibis.Schema.from_pyarrow(data.schema), name=name)
        for name, data in shop.tables().items()
    }
    dataplane = ibis.table(log_schema(dt.int64), name=LOG_TABLE, database="activator")
    segments = {
        "waiting": shop.segment(
            "waiting",
            rules={
                "all": [
                    welcome(node="wait-3d"),
                    {"not": welcome(status="goal", goal=FTB, window={"last": "30d"})},
                    entered(
                        times={"op": "<", "value": 3}, first={"op": "after", "value": "90 days ago"}
                    ),
                ]
            },
        )
    }
    ctx = CompileContext(
        tables=unbound.__getitem__,
        data_model=shop.DATA_MODEL,
        segments=segments,
        as_of=shop.AS_OF,
        timezone="Europe/Paris",
        dialect=dialect,
        activity={LOG_TABLE: dataplane}.get,
    )
    sql = str(ibis.to_sql(segment_members(ctx, "waiting"), dialect=DIALECTS[dialect]))
    path = GOLDEN / dialect / "journey-activity.sql"
    text = sql.strip() + "\n"
    if os.environ.get("ACTIVATOR_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with ACTIVATOR_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path} differs: run with ACTIVATOR_UPDATE_GOLDEN=1"

"""Journey definitions: the graph rules, each error's exact text naming the node, waits on the
workspace calendar, and what the model tells the runtime (edges, depth, entry node, segments).

Every validation rule of docs/journeys.md is broken once on purpose and the error asserted word
for word; a valid graph next to it shows the rule lets the legitimate shape through. The last
tests go through ``validate_workspace`` on a DuckDB workspace, as ``activator validate`` does,
for the names a journey refers to.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest
from pydantic import ValidationError

from activator.definitions.journey import (
    ActivateNode,
    ConditionalSplitNode,
    DelayNode,
    JourneyDefinition,
    PercentSplitNode,
    WaitUntilNode,
    add_wait,
    edges,
)
from activator.errors import DefinitionError
from activator.services.workspace import validate_workspace
from activator.workspace.yaml import format_loc

SCHEDULE = {"type": "recurring", "every": "daily", "at": "09:00"}
PARIS = ZoneInfo("Europe/Paris")


def _spec(nodes: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "name": "j",
        "start": {"entry": ["new-customers"]},
        "nodes": nodes,
        "schedule": SCHEDULE,
        **spec,
    }


def _journey(nodes: list[dict[str, Any]], **spec: Any) -> JourneyDefinition:
    return JourneyDefinition.model_validate(_spec(nodes, **spec))


def _errors(nodes: list[dict[str, Any]], **spec: Any) -> list[str]:
    """Each error as ``location: message`` (graph errors have no location but name the node)."""
    with pytest.raises(ValidationError) as caught:
        _journey(nodes, **spec)
    found = []
    for error in caught.value.errors():
        message = error["msg"].removeprefix("Value error, ")
        where = format_loc(error["loc"])
        found.append(f"{where}: {message}" if where else message)
    return found


def _send(node_id: str, next_node: str | None = None, **more: Any) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "activate",
        "destinations": [{"destination": "esp", "mapping": {"email": "email"}}],
        "next": next_node,
        **more,
    }


def _delay(node_id: str, wait: str, next_node: str | None = None) -> dict[str, Any]:
    return {"id": node_id, "type": "delay", "wait": wait, "next": next_node}


def _merge(node_id: str, next_node: str | None = None) -> dict[str, Any]:
    return {"id": node_id, "type": "merge", "next": next_node}


def _exit(node_id: str, **more: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "exit", **more}


def _split(node_id: str, paths: dict[str, str | None], otherwise: str | None) -> dict[str, Any]:
    """A conditional split with one saved-segment path per entry of ``paths``."""
    return {
        "id": node_id,
        "type": "conditional_split",
        "paths": [{"name": p, "segment": f"{p}-segment", "next": t} for p, t in paths.items()],
        "otherwise": otherwise,
    }


def _wait_until(node_id: str, met: str | None, timed_out: str | None) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "wait_until",
        "segment": "buyers",
        "timeout": "7d",
        "met": met,
        "timed_out": timed_out,
    }


# --- Ids, names and edges ---------------------------------------------------------------------


def test_a_node_id_used_twice_is_named_with_the_first_node_holding_it() -> None:
    nodes = [_exit("done", name="First"), _exit("done", name="Second")]
    assert _errors(nodes) == ["nodes[1] (done): the id is also the id of nodes[0]"]


def test_names_are_unique_and_default_to_the_id() -> None:
    assert _errors([_send("a", "b", name="Send"), _exit("b", name="Send")]) == [
        "nodes[1] (b): name 'Send' is also the name of node 'a'"
    ]
    # A name left out is the id, so it clashes with another node named like that id.
    assert _errors([_send("b", "x"), _exit("x", name="b")]) == [
        "nodes[1] (x): name 'b' is also the name of node 'b'"
    ]
    journey = _journey([_send("a", "b", name="Welcome email"), _exit("b")])
    assert [(n.id, n.name) for n in journey.nodes] == [("a", "Welcome email"), ("b", "b")]


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (_send("s", "nowhere"), "nodes[0] (s): next 'nowhere' is not the id of any node"),
        (_delay("s", "1d", "nowhere"), "nodes[0] (s): next 'nowhere' is not the id of any node"),
        (
            _split("s", {"vip": "done", "gold": "nowhere"}, "done"),
            "nodes[0] (s): paths[1].next 'nowhere' is not the id of any node",
        ),
        (
            _split("s", {"vip": "done"}, "nowhere"),
            "nodes[0] (s): otherwise 'nowhere' is not the id of any node",
        ),
        (
            {
                "id": "s",
                "type": "percent_split",
                "paths": [
                    {"name": "treatment", "percent": 90, "next": "done"},
                    {"name": "control", "percent": 10, "control": True, "next": "nowhere"},
                ],
            },
            "nodes[0] (s): paths[1].next 'nowhere' is not the id of any node",
        ),
        (
            _wait_until("s", "nowhere", "done"),
            "nodes[0] (s): met 'nowhere' is not the id of any node",
        ),
        (
            _wait_until("s", "done", "nowhere"),
            "nodes[0] (s): timed_out 'nowhere' is not the id of any node",
        ),
    ],
    ids=["activate", "delay", "split-path", "otherwise", "percent-path", "met", "timed_out"],
)
def test_every_kind_of_edge_must_point_at_a_node(node: dict[str, Any], expected: str) -> None:
    assert _errors([node, _exit("done")]) == [expected]


def test_every_id_name_and_edge_problem_is_reported_at_once() -> None:
    nodes = [
        _send("a", "m", name="Twice"),
        _merge("m", "gone"),
        _exit("done", name="Twice"),
        _exit("done"),
    ]
    assert _errors(nodes, first="missing") == [
        "nodes[2] (done): name 'Twice' is also the name of node 'a'; "
        "nodes[3] (done): the id is also the id of nodes[2]; "
        "first: no node has the id 'missing'; "
        "nodes[1] (m): next 'gone' is not the id of any node"
    ]


def test_first_names_the_entry_node_and_must_exist() -> None:
    assert _errors([_send("a", "b"), _exit("b")], first="b2") == ["first: no node has the id 'b2'"]
    journey = _journey([_exit("done"), _send("welcome", "done")], first="welcome")
    assert journey.entry_node == "welcome"
    assert _journey([_send("welcome", "done"), _exit("done")]).entry_node == "welcome"


# --- Shape: loops, reachability, merges -------------------------------------------------------


def test_a_loop_is_named_at_the_node_that_closes_it() -> None:
    nodes = [_send("a", "b"), _delay("b", "1d", "c"), _send("c", "a")]
    assert _errors(nodes) == [
        "nodes[2] (c): its next node 'a' closes a loop: a journey cannot loop"
    ]
    # A loop through one path of a split, and a node pointing at itself.
    nodes = [_split("s", {"vip": "w"}, "done"), _delay("w", "2d", "s"), _exit("done")]
    assert _errors(nodes) == [
        "nodes[1] (w): its next node 's' closes a loop: a journey cannot loop"
    ]
    assert _errors([_delay("w", "1d", "w")]) == [
        "nodes[0] (w): its next node 'w' closes a loop: a journey cannot loop"
    ]


def test_every_node_must_be_reachable_from_the_start() -> None:
    assert _errors([_send("a", "done"), _exit("done"), _send("stray", "done")]) == [
        "nodes[2] (stray): no path from the start node 'a' reaches it"
    ]
    # With `first`, the nodes before it are not reachable unless an edge leads to them.
    assert _errors([_send("a", "done"), _exit("done")], first="done") == [
        "nodes[0] (a): no path from the start node 'done' reaches it"
    ]


def test_a_merge_must_come_after_a_split() -> None:
    message = "a merge must come after a split (conditional split, percent split or wait until)"
    assert _errors([_send("a", "m"), _merge("m", "done"), _exit("done")]) == [
        f"nodes[1] (m): {message}"
    ]
    # A merge as the entry node has no way into it at all.
    assert _errors([_merge("m", "done"), _exit("done")]) == [f"nodes[0] (m): {message}"]
    # Two merges in a row before any split: both are named.
    assert _errors([_merge("m1", "m2"), _merge("m2")]) == [
        f"nodes[0] (m1): {message}; nodes[1] (m2): {message}"
    ]


def test_a_merge_after_any_kind_of_split_is_fine() -> None:
    after_conditional = _journey(
        [
            _split("tier", {"vip": "vip-offer"}, "offer"),
            _send("vip-offer", "join"),
            _send("offer", "join"),
            _merge("join", "wait"),
            _delay("wait", "3d", "again"),
            _merge("again"),  # after a merge that is after a split
        ]
    )
    assert [n.type for n in after_conditional.nodes][3:] == ["merge", "delay", "merge"]
    after_wait_until = _journey(
        [_wait_until("w", "thanks", "join"), _send("thanks", "join"), _merge("join")]
    )
    assert after_wait_until.entry_node == "w"
    after_percent = _journey(
        [
            {
                "id": "p",
                "type": "percent_split",
                "paths": [
                    {"name": "a", "percent": 50, "next": "join"},
                    {"name": "b", "percent": 50, "next": "send-b"},
                ],
            },
            _send("send-b", "join"),
            _merge("join"),
        ]
    )
    assert after_percent.depth() == 3


def test_a_merge_reached_directly_as_well_as_through_a_split_is_rejected() -> None:
    """The start's own chain reaches the merge without a split. A split also leading into the
    merge is then either upstream of nothing the start reaches (unreachable) or downstream of
    the merge (a loop): each graph is rejected, naming the node that makes it impossible."""
    unreachable_split = [
        _send("a", "m"),
        _split("s", {"vip": "m"}, "m"),
        _merge("m", "done"),
        _exit("done"),
    ]
    assert _errors(unreachable_split) == [
        "nodes[1] (s): no path from the start node 'a' reaches it"
    ]
    split_after_the_merge = [
        _send("a", "m"),
        _merge("m", "s"),
        _split("s", {"vip": "m"}, "done"),
        _exit("done"),
    ]
    assert _errors(split_after_the_merge) == [
        "nodes[2] (s): its next node 'm' closes a loop: a journey cannot loop"
    ]


# --- Splits -----------------------------------------------------------------------------------


def _percent(*shares: float, controls: int = 0) -> dict[str, Any]:
    return {
        "id": "p",
        "type": "percent_split",
        "paths": [
            {"name": f"path-{i}", "percent": share, "control": i < controls}
            for i, share in enumerate(shares)
        ],
    }


def test_percent_paths_add_up_to_exactly_100_to_two_decimals() -> None:
    assert _errors([_percent(90, 5)]) == [
        "nodes[0].percent_split: path percentages add up to 95, not 100"
    ]
    assert _errors([_percent(33.33, 33.33, 33.33)]) == [
        "nodes[0].percent_split: path percentages add up to 99.99, not 100"
    ]
    assert _errors([_percent(60, 50)]) == [
        "nodes[0].percent_split: path percentages add up to 110, not 100"
    ]
    thirds = _journey([_percent(33.33, 33.33, 33.34)]).nodes[0]
    assert isinstance(thirds, PercentSplitNode)
    assert [p.percent for p in thirds.paths] == [33.33, 33.33, 33.34]


def test_a_percent_with_more_than_two_decimals_is_rejected() -> None:
    # 50.004 + 49.996 rounds to 5,000 + 5,000 basis points: without the check the split
    # would silently run 50/50 while the file says otherwise (campaign groups reject it).
    assert _errors([_percent(50.004, 49.996)]) == [
        "nodes[0].percent_split.paths[0].percent: 50.004% has more than two decimals",
        "nodes[0].percent_split.paths[1].percent: 49.996% has more than two decimals",
    ]


def test_a_percent_split_has_at_most_one_control() -> None:
    assert _errors([_percent(80, 10, 10, controls=2)]) == [
        "nodes[0].percent_split: at most one path can be the control"
    ]
    split = _journey([_percent(90, 10, controls=1)]).nodes[0]
    assert isinstance(split, PercentSplitNode)
    assert [(p.name, p.control) for p in split.paths] == [("path-0", True), ("path-1", False)]


def test_a_conditional_path_has_exactly_one_of_segment_and_rules() -> None:
    rules = {"attribute": "customers.loyalty_tier", "op": "in", "value": ["gold"]}
    both = {"name": "gold", "segment": "vip", "rules": rules}
    neither = {"name": "gold"}
    for path in (both, neither):
        node = {"id": "s", "type": "conditional_split", "paths": [path]}
        assert _errors([node]) == [
            "nodes[0].conditional_split.paths[0]: path 'gold' needs exactly one of segment or rules"
        ]
    split = _journey(
        [{"id": "s", "type": "conditional_split", "paths": [{"name": "gold", "rules": rules}]}]
    ).nodes[0]
    assert isinstance(split, ConditionalSplitNode)
    assert (split.paths[0].segment, split.paths[0].next, split.otherwise) == (None, None, None)


# --- Waits ------------------------------------------------------------------------------------

WAIT_PATTERN = "String should match pattern '^\\d{1,4}[hdwm]$'"


@pytest.mark.parametrize("wait", ["3 days", "0x", "3D", "12345h", "1y", "d"])
def test_a_wait_is_a_number_and_a_unit(wait: str) -> None:
    assert _errors([_delay("w", wait)]) == [f"nodes[0].delay.wait: {WAIT_PATTERN}"]
    timeout = {**_wait_until("w", None, None), "timeout": wait}
    assert _errors([timeout]) == [f"nodes[0].wait_until.timeout: {WAIT_PATTERN}"]
    assert _journey([_delay("w", "9999h")]).nodes[0].type == "delay"


@pytest.mark.parametrize("wait", ["3 days", "0x", "1y", "d", ""])
def test_add_wait_rejects_what_is_not_a_wait(wait: str) -> None:
    with pytest.raises(ValueError, match=r"is not a wait such as 12h, 3d, 2w or 1m") as caught:
        add_wait(datetime(2026, 1, 1, tzinfo=UTC), wait, "UTC")
    assert str(caught.value) == f"{wait!r} is not a wait such as 12h, 3d, 2w or 1m"


def test_hours_are_exact_elapsed_hours_across_a_clock_change() -> None:
    # Europe/Paris moves from +01:00 to +02:00 at 02:00 on 29 March 2026. Runs pass UTC times.
    before = datetime(2026, 3, 28, 8, tzinfo=UTC)  # 09:00 in Paris
    assert add_wait(before, "24h", "Europe/Paris") == datetime(2026, 3, 29, 8, tzinfo=UTC)
    assert add_wait(before, "48h", "Europe/Paris") == datetime(2026, 3, 30, 8, tzinfo=UTC)
    assert add_wait(before, "12h", "UTC") == datetime(2026, 3, 28, 20, tzinfo=UTC)


def test_hours_are_exact_for_a_moment_given_in_a_zone_with_a_clock_change() -> None:
    # `moment` may be any aware datetime: 24 hours after 09:00 in Paris on 28 March are
    # 10:00 on the 29th (08:00 UTC), not the same wall-clock time 23 hours later.
    before = datetime(2026, 3, 28, 9, tzinfo=PARIS)
    after = add_wait(before, "24h", "Europe/Paris")
    assert after.astimezone(UTC) == datetime(2026, 3, 29, 8, tzinfo=UTC)
    assert after.astimezone(UTC) - before.astimezone(UTC) == timedelta(hours=24)


def test_days_and_weeks_keep_the_wall_clock_across_a_clock_change() -> None:
    spring = datetime(2026, 3, 28, 8, tzinfo=UTC)  # 09:00 in Paris
    one_day = add_wait(spring, "1d", "Europe/Paris")
    assert one_day == datetime(2026, 3, 29, 7, tzinfo=UTC)  # 09:00 in Paris, 23 hours later
    assert one_day.astimezone(PARIS).hour == 9
    assert one_day.tzinfo is UTC  # returned in the moment's own zone
    assert add_wait(spring, "1w", "Europe/Paris") == datetime(2026, 4, 4, 7, tzinfo=UTC)
    # Back to +01:00 at 03:00 on 25 October 2026: that day has 25 hours.
    autumn = datetime(2026, 10, 24, 7, tzinfo=UTC)  # 09:00 in Paris
    assert add_wait(autumn, "1d", "Europe/Paris") == datetime(2026, 10, 25, 8, tzinfo=UTC)
    # A moment given in Paris time gives the same instant.
    in_paris = add_wait(autumn.astimezone(PARIS), "1d", "Europe/Paris")
    assert in_paris == datetime(2026, 10, 25, 8, tzinfo=UTC)
    # The same wait on the UTC calendar is 24 hours.
    assert add_wait(spring, "1d", "UTC") == datetime(2026, 3, 29, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "wait", "end"),
    [
        (datetime(2026, 1, 31, 9), "1m", datetime(2026, 2, 28, 9)),
        (datetime(2028, 1, 31, 9), "1m", datetime(2028, 2, 29, 9)),
        (datetime(2026, 4, 30, 9), "1m", datetime(2026, 5, 30, 9)),
        (datetime(2026, 3, 31, 9), "1m", datetime(2026, 4, 30, 9)),
        (datetime(2026, 12, 15, 9), "1m", datetime(2027, 1, 15, 9)),
        (datetime(2026, 11, 30, 9), "3m", datetime(2027, 2, 28, 9)),
        (datetime(2028, 2, 29, 9), "12m", datetime(2029, 2, 28, 9)),
        (datetime(2026, 3, 15, 9), "1m", datetime(2026, 4, 15, 9)),  # across the clock change
    ],
)
def test_months_are_calendar_months_with_the_day_clamped(
    start: datetime, wait: str, end: datetime
) -> None:
    moment = start.replace(tzinfo=PARIS)
    assert add_wait(moment, wait, "Europe/Paris") == end.replace(tzinfo=PARIS)


# --- Start lists ------------------------------------------------------------------------------


def test_entry_takes_one_to_ten_segments_and_the_other_lists_up_to_ten() -> None:
    def start(**lists: list[str]) -> list[str]:
        return _errors([_exit("done")], start={"entry": ["new-customers"], **lists})

    assert start(entry=[]) == [
        "start.entry: List should have at least 1 item after validation, not 0"
    ]
    eleven = [f"s{i}" for i in range(11)]
    for part in ("entry", "exclude", "exit", "goals"):
        assert start(**{part: eleven}) == [
            f"start.{part}: List should have at most 10 items after validation, not 11"
        ]
    ten = [f"s{i}" for i in range(10)]
    journey = _journey([_exit("done")], start={"entry": ten, "exit": ten, "reentry": "after_exit"})
    assert (len(journey.start.entry), journey.start.reentry) == (10, "after_exit")
    assert _journey([_exit("done")]).start.reentry == "never"


# --- What the model tells the runtime ---------------------------------------------------------

RULES = {"attribute": "customers.loyalty_tier", "op": "in", "value": ["gold"]}

EVERY_KIND = [
    {
        "id": "ab",
        "type": "percent_split",
        "paths": [
            {"name": "treatment", "percent": 90, "next": "welcome"},
            {"name": "holdout", "percent": 10, "control": True, "next": "welcome"},
        ],
    },
    _send("welcome", "wait-3d"),
    _delay("wait-3d", "3d", "tier"),
    {
        "id": "tier",
        "type": "conditional_split",
        "paths": [
            {"name": "vip", "segment": "vip-customers", "next": "vip-offer"},
            {"name": "gold", "rules": RULES, "next": "join"},
            {"name": "silent", "segment": "sms-only"},
        ],
        "otherwise": "join",
    },
    _send("vip-offer", "join"),
    _merge("join", "bought"),
    {
        "id": "bought",
        "type": "wait_until",
        "segment": "first-time-buyers",
        "timeout": "2w",
        "met": "done",
    },
    _exit("done"),
]


def test_edges_list_each_nodes_outgoing_paths_in_order() -> None:
    journey = _journey(EVERY_KIND)
    assert {node.id: edges(node) for node in journey.nodes} == {
        "ab": [("treatment", "welcome"), ("holdout", "welcome")],
        "welcome": [("", "wait-3d")],
        "wait-3d": [("", "tier")],
        "tier": [
            ("vip", "vip-offer"),
            ("gold", "join"),
            ("silent", None),
            ("everyone-else", "join"),
        ],
        "vip-offer": [("", "join")],
        "join": [("", "bought")],
        "bought": [("met", "done"), ("timed-out", None)],
        "done": [],
    }
    assert [type(n) for n in journey.nodes][:4] == [
        PercentSplitNode,
        ActivateNode,
        DelayNode,
        ConditionalSplitNode,
    ]
    assert isinstance(journey.node("bought"), WaitUntilNode)
    with pytest.raises(KeyError):
        journey.node("nope")


def test_depth_is_the_most_nodes_on_one_path_from_the_start() -> None:
    # ab → welcome → wait-3d → tier → vip-offer → join → bought → done.
    assert _journey(EVERY_KIND).depth() == 8
    assert _journey([_exit("done")]).depth() == 1
    assert _journey([_send("a")]).depth() == 1
    # The longer branch counts, whichever order the paths are in.
    short_first = _journey(
        [
            _split("s", {"short": None}, "long-1"),
            _delay("long-1", "1d", "long-2"),
            _send("long-2", "long-3"),
            _exit("long-3"),
        ]
    )
    assert short_first.depth() == 4
    # Measured from `first`, not from the first node listed.
    from_first = _journey([_exit("done"), _send("a", "b"), _send("b", "done")], first="a")
    assert from_first.depth() == 3


def test_segment_names_lists_every_named_segment_with_its_path() -> None:
    journey = _journey(
        EVERY_KIND,
        start={
            "entry": ["new-customers", "reactivated"],
            "exclude": ["unsubscribed"],
            "exit": ["first-time-buyers"],
            "goals": ["first-time-buyers", "repeat-buyers"],
        },
    )
    # A path's inline rules are not a named segment (references in them are found by the
    # workspace checks through the rules themselves).
    assert journey.segment_names() == [
        ("new-customers", "start.entry[0]"),
        ("reactivated", "start.entry[1]"),
        ("unsubscribed", "start.exclude[0]"),
        ("first-time-buyers", "start.exit[0]"),
        ("first-time-buyers", "start.goals[0]"),
        ("repeat-buyers", "start.goals[1]"),
        ("vip-customers", "nodes[3].paths[0].segment"),
        ("sms-only", "nodes[3].paths[2].segment"),
        ("first-time-buyers", "nodes[6].segment"),
    ]


def test_split_salt_defaults_to_the_journey_name_plus_the_node() -> None:
    assert _journey(EVERY_KIND).split_salt("ab") == "j:ab"
    assert _journey(EVERY_KIND, salt="2026-tests").split_salt("ab") == "2026-tests:ab"


# --- `activator validate`: names a journey refers to ------------------------------------------

CONFIG = """\
engine: {type: duckdb, path: data/shop.duckdb}
timezone: Europe/Paris
data_model:
  customers: {table: customers, key: customer_id}
  events:
    orders: {table: orders, customer_key: customer_id, timestamp: ordered_at, amount: total}
"""

JOURNEY = """\
start:
  entry: [new-customers, new-custmers]
  exit: [first-time-buyer]
  goals: [first-time-buyers]
nodes:
  - id: welcome
    type: activate
    destinations: [{destination: esp}, {destination: sms}]
    next: bought
  - id: bought
    type: conditional_split
    paths:
      - {name: buyers, segment: first-time-buyers, next: done}
      - {name: vip, rules: {segment: vips}, next: done}
    otherwise: wait
  - {id: wait, type: wait_until, segment: buyers-7d, timeout: 7d}
  - {id: done, type: exit}
schedule: {type: recurring, every: daily, at: "09:00"}
"""


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    con = duckdb.connect(str(tmp_path / "data" / "shop.duckdb"))
    con.execute("CREATE TABLE customers AS SELECT range AS customer_id FROM range(10)")
    con.execute(
        "CREATE TABLE orders AS SELECT range % 10 AS customer_id, "
        "TIMESTAMP '2026-01-01' + INTERVAL (range) DAY AS ordered_at, "
        "CAST(range AS DECIMAL(12, 2)) AS total FROM range(30)"
    )
    con.close()
    (tmp_path / "activator.yaml").write_text(CONFIG)
    for folder in ("segments", "destinations", "journeys"):
        (tmp_path / folder).mkdir()
    (tmp_path / "segments" / "new-customers.yml").write_text(
        "rules: {behavior: has_not_purchased, table: orders}\n"
    )
    (tmp_path / "segments" / "first-time-buyers.yml").write_text(
        "rules: {behavior: has_purchased, table: orders, window: {last: 30d}}\n"
    )
    (tmp_path / "destinations" / "esp.yml").write_text("type: local\npath: out\n")
    return tmp_path


def test_validate_reports_every_unknown_segment_and_destination_of_a_journey(shop: Path) -> None:
    (shop / "journeys" / "welcome.yml").write_text(JOURNEY)
    with pytest.raises(DefinitionError) as caught:
        validate_workspace(shop)
    segments = "(known: first-time-buyers, new-customers)"
    assert [str(issue) for issue in caught.value.issues] == [
        f"journeys/welcome.yml:2 start.entry[1]: unknown segment 'new-custmers' {segments}",
        f"journeys/welcome.yml:3 start.exit[0]: unknown segment 'first-time-buyer' {segments}",
        f"journeys/welcome.yml:16 nodes[2].segment: unknown segment 'buyers-7d' {segments}",
        "journeys/welcome.yml:8 nodes[0].destinations[1].destination: unknown destination "
        "'sms' (known: esp)",
        f"journeys/welcome.yml:14 nodes[1].paths[1].rules.segment: unknown segment 'vips' "
        f"{segments}",
    ]

    # Named right, the journey validates and is counted.
    fixed = (
        JOURNEY.replace("new-custmers", "first-time-buyers")
        .replace("first-time-buyer]", "first-time-buyers]")
        .replace("buyers-7d", "first-time-buyers")
        .replace("{destination: esp}, {destination: sms}", "{destination: esp}")
        .replace("vips", "new-customers")
    )
    (shop / "journeys" / "welcome.yml").write_text(fixed)
    report = validate_workspace(shop)
    assert report.counts == {"destination": 1, "journey": 1, "segment": 2}


def test_validate_names_the_file_line_and_node_of_a_graph_error(shop: Path) -> None:
    broken = JOURNEY.replace("otherwise: wait", "otherwise: wiat")
    (shop / "journeys" / "welcome.yml").write_text(broken)
    with pytest.raises(DefinitionError) as caught:
        validate_workspace(shop)
    assert [str(issue) for issue in caught.value.issues] == [
        "journeys/welcome.yml:1: nodes[1] (bought): otherwise 'wiat' is not the id of any node"
    ]


def test_path_names_are_unique_in_a_split_and_everyone_else_is_reserved() -> None:
    twice = {
        "id": "s",
        "type": "percent_split",
        "paths": [
            {"name": "a", "percent": 90, "next": "done"},
            {"name": "a", "percent": 10, "control": True, "next": "done"},
        ],
    }
    assert _errors([twice, _exit("done")]) == [
        "nodes[0].percent_split: path names must be unique in a split: a"
    ]
    reserved = _split("s", {"everyone-else": "done"}, "done")
    assert _errors([reserved, _exit("done")]) == [
        "nodes[0].conditional_split: the path name 'everyone-else' is reserved for `otherwise`"
    ]


def test_an_activate_node_names_each_destination_once() -> None:
    node = {
        "id": "s",
        "type": "activate",
        "destinations": [{"destination": "esp"}, {"destination": "esp", "mapping": {"e": "email"}}],
        "next": "done",
    }
    assert _errors([node, _exit("done")]) == [
        "nodes[0].activate: a destination is listed twice: esp"
    ]

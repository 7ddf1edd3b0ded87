"""Property: compiled segments agree with a plain-Python reference evaluator.

Hypothesis draws small customer and order tables (with NULLs, returned orders, timestamps on
window edges and after the as-of time) and random rule trees (attribute conditions on typed
columns, behaviours with windows and filters, ``all`` / ``any`` / ``not`` nesting, an
``exclude`` part). The reference below restates the documented semantics row by row in
Python; the members DuckDB computes must be exactly the ones it finds.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ibis.backends import BaseBackend

from activator.compiler import CompileContext, segment_members
from activator.definitions.config import CustomerTable, DataModel, EventTable
from tests.compiler import shop
from tests.compiler.conftest import duckdb_with, ids

AS_OF = shop.AS_OF  # 2026-03-15 12:00 UTC; the zone is UTC, so naive = UTC wall time
NOW = AS_OF.replace(tzinfo=None)

MODEL = DataModel(
    customers=CustomerTable(table="people", key="id"),
    events={
        "orders": EventTable(
            table="purchases",
            customer_key="id",
            timestamp="at",
            amount="amount",
            returned="returned",
        )
    },
)

# Instants on and around the edges of the windows drawn below.
MOMENTS = [
    NOW,
    NOW + timedelta(microseconds=1),
    NOW - timedelta(microseconds=1),
    NOW - timedelta(days=1),
    NOW - timedelta(days=7),
    NOW - timedelta(days=7) + timedelta(microseconds=1),
    NOW - timedelta(days=30),
    datetime(2026, 3, 1),
    datetime(2026, 2, 28, 23, 59, 59, 999999),
    datetime(2026, 3, 15),
    datetime(2025, 12, 31, 12),
]
STRINGS = [None, "", "a", "A", "ab", "b", "Ab"]
WINDOWS: list[dict[str, Any] | None] = [
    None,
    {"last": "1d"},
    {"last": "7d"},
    {"last": "30d"},
    {"last": "1w"},
    {"between": ["2026-03-01", "2026-03-15"]},
    {"between": ["2025-12-31", "2026-02-28"]},
]
AMOUNTS = [Decimal("0.10"), Decimal("0.20"), Decimal("1.00"), Decimal("2.50")]

# --- data ----------------------------------------------------------------------------------

customer_rows = st.lists(
    st.tuples(
        st.sampled_from([None, True, False]),
        st.sampled_from([None, -2, 0, 1, 3]),
        st.sampled_from(STRINGS),
        st.sampled_from([None, *MOMENTS]),
    ),
    min_size=1,
    max_size=8,
)


@st.composite
def datasets(draw: st.DrawFn) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    people = draw(customer_rows)
    orders = draw(
        st.lists(
            st.tuples(
                st.integers(1, len(people) + 1),  # an order may belong to no known customer
                st.sampled_from(MOMENTS),
                st.sampled_from(AMOUNTS),
                st.sampled_from([None, False, False, True]),
                st.sampled_from([None, "web", "store"]),
            ),
            min_size=1,
            max_size=16,
        )
    )
    return people, orders


# --- rules ---------------------------------------------------------------------------------

numbers = st.sampled_from([-2, 0, 1, 3])
texts = st.sampled_from(["", "a", "A", "ab", "b"])
days = st.sampled_from(["today", "1 day ago", "2026-03-01", "7 days ago", "1 month ago"])


def _attr(column: str, op: str, value: Any = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"attribute": f"people.{column}", "op": op, **extra}
    if value is not None:
        out["value"] = value
    return out


def _pair(values: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.tuples(values, values).map(sorted).map(list)


boolean_attribute = st.sampled_from(["is_true", "is_false", "is_null", "is_not_null"]).map(
    lambda op: _attr("b", op)
)
number_attribute = st.one_of(
    st.tuples(st.sampled_from(["=", "!=", ">", ">=", "<", "<="]), numbers).map(
        lambda t: _attr("i", t[0], t[1])
    ),
    st.tuples(st.sampled_from(["between", "not_between"]), _pair(numbers)).map(
        lambda t: _attr("i", t[0], t[1])
    ),
    st.tuples(st.sampled_from(["in", "not_in"]), st.lists(numbers, min_size=1, max_size=3)).map(
        lambda t: _attr("i", t[0], t[1])
    ),
    st.sampled_from(["is_null", "is_not_null"]).map(lambda op: _attr("i", op)),
)
string_attribute = st.one_of(
    st.tuples(
        st.sampled_from(
            ["equals", "not_equals", "contains", "not_contains", "starts_with", "ends_with"]
        ),
        texts,
        st.booleans(),
    ).map(lambda t: _attr("s", t[0], t[1], case_sensitive=t[2])),
    st.tuples(st.sampled_from(["in", "not_in"]), st.lists(texts, min_size=1, max_size=3)).map(
        lambda t: _attr("s", t[0], t[1])
    ),
    st.sampled_from(["empty", "not_empty", "is_null"]).map(lambda op: _attr("s", op)),
)
time_attribute = st.one_of(
    st.tuples(st.sampled_from(["is", "before", "after", "on_or_before", "on_or_after"]), days).map(
        lambda t: _attr("t", t[0], t[1])
    ),
    st.tuples(
        st.sampled_from(["between", "not_between"]),
        _pair(st.sampled_from(["2026-02-28", "2026-03-01", "2026-03-14", "2026-03-15"])),
    ).map(lambda t: _attr("t", t[0], t[1])),
)
# One type at a time, each equally likely (``one_of`` over all branches would favour the
# types with more operator shapes).
attribute = st.sampled_from(
    [boolean_attribute, number_attribute, string_attribute, time_attribute]
).flatmap(lambda family: family)


@st.composite
def behavior(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(
            ["has_purchased", "has_not_purchased", "repeat_purchase", "total_value",
             "first_purchase"]
        )
    )  # fmt: skip
    out: dict[str, Any] = {"behavior": kind, "table": "orders"}
    window = draw(st.sampled_from(WINDOWS))
    if kind == "first_purchase" and window is None:
        window = {"last": "7d"}
    if window is not None:
        out["window"] = window
    if kind == "has_purchased" and draw(st.booleans()):
        out["count"] = {
            "op": draw(st.sampled_from([">=", "=", "<", "!="])),
            "value": draw(st.integers(0, 3)),
        }
    if kind == "total_value":
        out["value"] = {
            "op": draw(st.sampled_from([">=", ">", "<", "="])),
            "value": str(draw(st.sampled_from(["0", "0.10", "0.30", "1.00", "2.60"]))),
        }
    if draw(st.booleans()):
        out["where"] = [
            {
                "attribute": "orders.channel",
                "op": "equals",
                "value": draw(st.sampled_from(["web", "store"])),
            }
        ]
    return out


# Half behaviours, half attributes (``one_of`` would flatten the ten attribute branches and
# draw a behaviour one time in eleven).
leaf = st.booleans().flatmap(lambda pick: behavior() if pick else attribute)
rules = st.recursive(
    leaf,
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda c: {"all": c}),
        st.lists(children, min_size=1, max_size=3).map(lambda c: {"any": c}),
        children.map(lambda c: {"not": c}),
    ),
    max_leaves=6,
)

# --- the reference -------------------------------------------------------------------------


def _day_start(text: str) -> datetime:
    today = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
    if text == "today":
        return today
    if text.endswith(("days ago", "day ago")):
        return today - timedelta(days=int(text.split()[0]))
    if text == "1 month ago":
        return today.replace(month=today.month - 1)
    return datetime.fromisoformat(text)


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is None:
        return False
    return {
        "=": left == right, "!=": left != right, ">": left > right, ">=": left >= right,
        "<": left < right, "<=": left <= right,
    }[op]  # fmt: skip


def _attribute(cond: dict[str, Any], row: dict[str, Any]) -> bool:
    column, op, value = cond["attribute"].split(".")[1], cond["op"], cond.get("value")
    x = row[column]
    if op == "is_null":
        return x is None
    if op == "is_not_null":
        return x is not None
    if op == "empty":
        return x is None or x == ""
    if op == "not_empty":
        return x is not None and x != ""
    if x is None:
        return False
    if op == "is_true":
        return x is True
    if op == "is_false":
        return x is False
    if column == "s" and not cond.get("case_sensitive", True):
        x = x.lower()
        value = [v.lower() for v in value] if isinstance(value, list) else value.lower()
    if op in ("between", "not_between") and column == "t":
        inside = _day_start(value[0]) <= x < _day_start(value[1]) + timedelta(days=1)
        return inside if op == "between" else not inside
    if op in ("between", "not_between"):
        inside = value[0] <= x <= value[1]
        return inside if op == "between" else not inside
    if op in ("in", "not_in"):
        return (x in value) == (op == "in")
    if column == "t":
        start = _day_start(value)
        end = start + timedelta(days=1)
        return {
            "is": start <= x < end, "before": x < start, "after": x >= end,
            "on_or_before": x < end, "on_or_after": x >= start,
        }[op]  # fmt: skip
    if op in ("=", "!=", ">", ">=", "<", "<="):
        return _compare(op, x, value)
    return {
        "equals": x == value, "not_equals": x != value, "contains": value in x,
        "not_contains": value not in x, "starts_with": x.startswith(value),
        "ends_with": x.endswith(value),
    }[op]  # fmt: skip


def _in_window(at: datetime, window: dict[str, Any] | None) -> bool:
    if at > NOW:
        return False
    if window is None:
        return True
    if "last" in window:
        text = window["last"]
        length = timedelta(days=int(text[:-1]) * (7 if text[-1] == "w" else 1))
        return NOW - length < at
    start = datetime.fromisoformat(window["between"][0])
    end = datetime.fromisoformat(window["between"][1]) + timedelta(days=1)
    return start <= at < end


def _behavior(cond: dict[str, Any], customer: int, orders: list[tuple[Any, ...]]) -> bool:
    window = cond.get("window")
    wanted = cond["where"][0]["value"] if cond.get("where") else None
    mine = [
        o for o in orders
        if o[0] == customer and o[1] <= NOW and o[3] is not True
        and (wanted is None or o[4] == wanted)
    ]  # fmt: skip
    if cond["behavior"] == "first_purchase":
        return bool(mine) and _in_window(min(o[1] for o in mine), window)
    inside = [o for o in mine if _in_window(o[1], window)]
    if cond["behavior"] == "has_purchased":
        count = cond.get("count", {"op": ">=", "value": 1})
        return _compare(count["op"], len(inside), count["value"])
    if cond["behavior"] == "has_not_purchased":
        return not inside
    if cond["behavior"] == "repeat_purchase":
        return len(inside) >= 2
    total = sum((o[2] for o in inside), Decimal(0))
    return _compare(cond["value"]["op"], total, Decimal(cond["value"]["value"]))


def _evaluate(node: dict[str, Any], customer: int, row: dict[str, Any], orders: Any) -> bool:
    if "all" in node:
        return all(_evaluate(c, customer, row, orders) for c in node["all"])
    if "any" in node:
        return any(_evaluate(c, customer, row, orders) for c in node["any"])
    if "not" in node:
        return not _evaluate(node["not"], customer, row, orders)
    if "attribute" in node:
        return _attribute(node, row)
    return _behavior(node, customer, orders)


def reference(
    people: list[tuple[Any, ...]],
    orders: list[tuple[Any, ...]],
    rule: dict[str, Any],
    exclude: dict[str, Any] | None,
) -> set[int]:
    members = set()
    for index, (b, i, s, t) in enumerate(people, start=1):
        row = {"b": b, "i": i, "s": s, "t": t}
        if _evaluate(rule, index, row, orders) and not (
            exclude is not None and _evaluate(exclude, index, row, orders)
        ):
            members.add(index)
    return members


# --- the property --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def backend() -> Iterator[BaseBackend]:
    con = duckdb_with({})
    yield con
    con.disconnect()


@pytest.mark.slow
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=datasets(), rule=rules, exclude=st.none() | leaf)
def test_compiled_segments_match_the_reference(
    backend: BaseBackend,
    data: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]],
    rule: dict[str, Any],
    exclude: dict[str, Any] | None,
) -> None:
    people, orders = data
    backend.create_table(
        "people",
        pa.table(
            {
                "id": pa.array(range(1, len(people) + 1), pa.int64()),
                "b": pa.array([p[0] for p in people], pa.bool_()),
                "i": pa.array([p[1] for p in people], pa.int64()),
                "s": pa.array([p[2] for p in people], pa.string()),
                "t": pa.array([p[3] for p in people], pa.timestamp("us")),
            }
        ),
        overwrite=True,
    )
    backend.create_table(
        "purchases",
        pa.table(
            {
                "id": pa.array([o[0] for o in orders], pa.int64()),
                "at": pa.array([o[1] for o in orders], pa.timestamp("us")),
                "amount": pa.array([o[2] for o in orders], pa.decimal128(12, 2)),
                "returned": pa.array([o[3] for o in orders], pa.bool_()),
                "channel": pa.array([o[4] for o in orders], pa.string()),
            }
        ),
        overwrite=True,
    )
    spec: dict[str, Any] = {"rules": rule}
    if exclude is not None:
        spec["exclude"] = exclude
    definition = shop.segment("random", **spec)
    ctx = CompileContext(
        tables=backend.table,
        data_model=MODEL,
        segments={"random": definition},
        as_of=AS_OF,
        timezone="UTC",
        dialect="duckdb",
    )
    assert ids(segment_members(ctx, "random")) == reference(people, orders, rule, exclude)

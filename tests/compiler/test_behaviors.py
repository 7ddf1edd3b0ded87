"""Purchase behaviours, RFM scores, membership, exclusion and SQL segments over the shop.

As of 2026-03-15 12:00 UTC. The orders (tests/compiler/shop.py) sit on the edges: exactly at
the as-of time, one microsecond after it, exactly 90 days before it and one microsecond
inside, the first and last instants of 2025; customer 3 has a returned order, customer 8 only
an order after the as-of time, customer 6 none.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import ibis
import pyarrow as pa
import pytest

from activator.compiler import explain_customer, segment_members
from activator.definitions.config import CustomerTable, DataModel, EventTable
from activator.errors import CompileError
from tests.compiler import shop
from tests.compiler.conftest import Evaluator, duckdb_with, ids


def orders(behavior: str, **extra: Any) -> dict[str, Any]:
    return {"behavior": behavior, "table": "orders", **extra}


LAST_90 = {"last": "90d"}
YEAR_2025 = {"between": ["2025-01-01", "2025-12-31"]}

CASES: list[tuple[dict[str, Any], set[int]]] = [
    # (as_of − 90 days, as_of]: 1's order at as_of counts, its order at exactly −90d does
    # not; 2's order 1 µs inside counts, its order 1 µs after as_of does not; 3's returned
    # order does not count but its order with an unknown flag does; 8's only order is later.
    (orders("has_purchased", window=LAST_90), {1, 2, 3, 4, 5, 7}),
    (orders("has_purchased", window={"last": "2160h"}), {1, 2, 3, 4, 5, 7}),
    (orders("has_purchased", window={"last": "13w"}), {1, 2, 3, 4, 5, 7}),
    (orders("has_purchased", count={"op": ">=", "value": 2}, window=LAST_90), {4, 7}),
    (orders("has_purchased", count={"op": "=", "value": 0}, window=LAST_90), {6, 8}),
    (orders("has_purchased", count={"op": "<", "value": 2}, window=LAST_90), {1, 2, 3, 5, 6, 8}),
    (orders("has_purchased", count={"op": "between", "value": [2, 3]}), {1, 4, 5, 7}),
    (orders("has_purchased"), {1, 2, 3, 4, 5, 7}),
    (orders("has_not_purchased", window=LAST_90), {6, 8}),
    (orders("has_not_purchased"), {6, 8}),
    (orders("repeat_purchase"), {1, 4, 5, 7}),
    (orders("repeat_purchase", window=LAST_90), {4, 7}),
    (orders("total_value", value={"op": ">=", "value": 100}, window=LAST_90), {4}),
    (orders("total_value", value={"op": ">=", "value": 30}, window=LAST_90), {2, 4}),
    # Customers without purchases have a total of 0.
    (orders("total_value", value={"op": "<", "value": 10}, window=LAST_90), {3, 5, 6, 8}),
    (orders("total_value", value={"op": "=", "value": "300.01"}, window=LAST_90), {4}),
    # between: both days whole: 7's orders at 2025-01-01 00:00 and 2025-12-31 23:59:59.999999
    (orders("total_value", value={"op": "=", "value": 15}, window=YEAR_2025), {7}),
    (orders("total_value", value={"op": ">=", "value": 15}, window=YEAR_2025), {1, 2, 7}),
    (orders("has_purchased", window={"between": ["2026-03-15", "2026-03-16"]}), {1}),
    # The first purchase ever (not returned, up to as_of) falls in the window.
    (orders("first_purchase", window={"last": "30d"}), {4}),
    (orders("first_purchase", window={"last": "100d"}), {1, 2, 3, 4}),
    (orders("first_purchase", window=YEAR_2025), {1, 2, 7}),
    # Most frequent channel; 1 has one web and one store order: the tie goes to 'store'.
    (orders("most_frequent", column="channel", value="web"), {2, 5}),
    (orders("most_frequent", column="channel", value="store"), {1, 4}),
    (orders("most_frequent", column="channel", value=["app", "store"]), {1, 3, 4, 7}),
    (orders("most_frequent", column="channel", value="web", window=LAST_90), {1, 2, 5}),
    # where: filters on the event table.
    (
        orders(
            "has_purchased",
            where=[{"attribute": "orders.channel", "op": "equals", "value": "web"}],
        ),
        {1, 2, 4, 5},
    ),
    (
        orders(
            "total_value",
            value={"op": ">", "value": 0},
            window=LAST_90,
            where=[{"attribute": "orders.channel", "op": "in", "value": ["store", "app"]}],
        ),
        {3, 4, 7},
    ),
    # An event table's attribute: at least one row (up to as_of, returns included).
    ({"attribute": "orders.channel", "op": "equals", "value": "app"}, {3, 7}),
    ({"attribute": "orders.total", "op": ">=", "value": 500}, {3}),
    # RFM deciles over (as_of − 12 months, as_of], 6 scored customers: rank r (0-based,
    # ascending, ties by ID) gives floor(10·r/6)+1 = 1, 2, 4, 6, 7, 9.
    # monetary: 5 (1.00), 3 (5.00), 7 (17.00), 1 (30.00), 2 (30.00: tie, higher ID), 4
    ({"score": "rfm_monetary", "op": ">=", "value": 7}, {2, 4}),
    ({"score": "rfm_monetary", "op": "=", "value": 6}, {1}),
    ({"score": "rfm_monetary", "op": "in", "value": [1, 2]}, {5, 3}),
    # frequency: 2, 3, 5 (1 order), 1, 7 (2), 4 (3)
    ({"score": "rfm_frequency", "op": ">=", "value": 6}, {1, 4, 7}),
    ({"score": "rfm_frequency", "op": "=", "value": 4}, {5}),
    # recency: 2, 7, 3, 4, 5, 1 (at as_of)
    ({"score": "rfm_recency", "op": ">=", "value": 9}, {1}),
    ({"score": "rfm_recency", "op": "between", "value": [2, 6]}, {3, 4, 7}),
    # No purchase in the 12 months: no score, never satisfies a score condition.
    ({"score": "rfm_recency", "op": "<=", "value": 10}, {1, 2, 3, 4, 5, 7}),
    ({"score": "rfm_recency", "op": "!=", "value": 9}, {2, 3, 4, 5, 7}),
]


@pytest.mark.parametrize(
    ("condition", "expected"),
    CASES,
    ids=[str(i) for i in range(len(CASES))],
)
def test_condition(shop_eval: Evaluator, condition: dict[str, Any], expected: set[int]) -> None:
    assert shop_eval.rule(condition) == expected


def test_window_moves_with_as_of(shop_eval: Evaluator) -> None:
    # One microsecond later, 2's order 1 µs inside the 90 days falls out of the window and
    # its order 1 µs after the old as_of comes in: each as_of sees the data as it was then.
    later = shop.AS_OF + timedelta(microseconds=1)
    condition = orders("has_purchased", window=LAST_90)
    assert 2 in shop_eval.rule(condition, as_of=later)
    assert shop_eval.rule(
        orders("total_value", value={"op": ">=", "value": 1000}), as_of=later
    ) == {2}
    assert shop_eval.rule(orders("total_value", value={"op": ">=", "value": 1000})) == set()
    assert (
        shop_eval.rule(
            orders("has_purchased", window={"last": "1h"}), as_of=later + timedelta(days=1)
        )
        == set()
    )


def test_groups_and_exclude(shop_eval: Evaluator) -> None:
    buyers = orders("has_purchased", window=LAST_90)
    flag = {"attribute": "customers.flag", "op": "is_true"}
    assert shop_eval.members(rules={"all": [buyers, flag]}) == {1, 4}
    assert shop_eval.members(rules={"any": [buyers, flag]}) == {1, 2, 3, 4, 5, 6, 7}
    assert shop_eval.members(rules={"not": buyers}) == {6, 8}
    assert shop_eval.members(rules=buyers, exclude=flag) == {2, 3, 5, 7}
    assert shop_eval.members(rules=buyers, exclude={"not": flag}) == {1, 4}


def test_membership_and_sql_segments_compose(shop_eval: Evaluator) -> None:
    segments = {
        "buyers": shop.segment("buyers", rules=orders("has_purchased", window=LAST_90)),
        "flagged": shop.segment("flagged", rules={"attribute": "customers.flag", "op": "is_true"}),
        "web": shop.segment("web", sql="SELECT customer_id FROM orders WHERE channel = 'web'"),
        "recent": shop.segment(
            "recent",
            sql="SELECT customer_id, order_id FROM orders "
            "WHERE ordered_at >= CURRENT_DATE - INTERVAL 1 DAY",
        ),
        "web-not-flagged": shop.segment(
            "web-not-flagged", rules={"segment": "web"}, exclude={"segment": "flagged"}
        ),
        "buyers-minus-web": shop.segment(
            "buyers-minus-web", rules={"all": [{"segment": "buyers"}, {"not": {"segment": "web"}}]}
        ),
    }
    shop_eval.segments.update(segments)
    ctx = shop_eval.context()
    assert ids(segment_members(ctx, "buyers")) == {1, 2, 3, 4, 5, 7}
    # A SQL segment is evaluated as written (returns and later orders included).
    assert ids(segment_members(ctx, "web")) == {1, 2, 3, 4, 5, 8}
    # ... except that the current date is the as-of date: 2026-03-15.
    assert ids(segment_members(ctx, "recent")) == {1, 2, 8}
    assert ids(segment_members(ctx, "web-not-flagged")) == {2, 3, 5, 8}
    assert ids(segment_members(ctx, "buyers-minus-web")) == {7}
    result = segment_members(ctx, "recent")
    assert result.columns == ("customer_id",)


def test_sql_segment_activation_id_column(shop_eval: Evaluator) -> None:
    shop_eval.segments["by-other-name"] = shop.segment(
        "by-other-name",
        sql="SELECT customer_id AS cid FROM customers WHERE flag",
        activation_id="cid",
    )
    shop_eval.segments["no-id"] = shop.segment("no-id", sql="SELECT order_id FROM orders")
    ctx = shop_eval.context()
    members = segment_members(ctx, "by-other-name")
    assert members.columns == ("customer_id",)
    assert ids(members) == {1, 4, 6}
    with pytest.raises(CompileError, match="not the activation ID column 'customer_id'"):
        segment_members(ctx, "no-id")


def test_cycles_and_unknown_segments_are_compile_errors(shop_eval: Evaluator) -> None:
    shop_eval.segments["a"] = shop.segment("a", rules={"segment": "b"})
    shop_eval.segments["b"] = shop.segment("b", rules={"not": {"segment": "a"}})
    with pytest.raises(CompileError, match="cycle: a -> b -> a"):
        segment_members(shop_eval.context(), "a")
    with pytest.raises(CompileError, match="unknown segment 'zzz'"):
        segment_members(shop_eval.context(), "zzz")


def test_as_of_must_be_aware(shop_eval: Evaluator) -> None:
    with pytest.raises(CompileError, match="aware"):
        shop_eval.context(as_of=shop.AS_OF.replace(tzinfo=None))


def test_date_event_timestamps() -> None:
    # A DATE timestamp column: a day counts from its start (midnight in the workspace zone).
    visits = pa.table(
        {
            "customer_id": pa.array([1, 2, 3], pa.int64()),
            "day": pa.array(
                [date(2026, 3, 15), date(2026, 3, 14), date(2025, 12, 16)], pa.date32()
            ),
        }
    )
    people = pa.table({"customer_id": pa.array([1, 2, 3], pa.int64())})
    model = DataModel(
        customers=CustomerTable(table="people", key="customer_id"),
        events={"visits": EventTable(table="visits", customer_key="customer_id", timestamp="day")},
    )
    con = duckdb_with({"people": people, "visits": visits})
    evaluator = Evaluator(con, data_model=model)
    # (2025-12-15 12:00, 2026-03-15 12:00]: the 16th's midnight is inside, the 15th's too.
    assert evaluator.rule({"behavior": "has_purchased", "table": "visits", "window": LAST_90}) == {
        1,
        2,
        3,
    }
    assert evaluator.rule(
        {"behavior": "has_purchased", "table": "visits", "window": {"last": "1d"}}
    ) == {1}
    assert evaluator.rule(
        {
            "behavior": "has_purchased",
            "table": "visits",
            "window": {"between": ["2026-03-14", "2026-03-14"]},
        }
    ) == {2}


# Conditions that share the orders table's one aggregate (scores and most_frequent have their
# own): together in one segment, each must still select exactly what it selects alone.
SHARED = [
    (condition, expected)
    for condition, expected in CASES
    if "score" not in condition and condition.get("behavior") != "most_frequent"
]


def test_conditions_on_one_table_share_one_scan(shop_eval: Evaluator) -> None:
    shop_eval.segments["under-test"] = shop.segment(
        "under-test", rules={"any": [condition for condition, _ in SHARED]}
    )
    sql = str(ibis.to_sql(segment_members(shop_eval.context(), "under-test"), dialect="duckdb"))
    assert sql.count('FROM "orders"') == 1
    for customer in range(1, 9):
        result = explain_customer(shop_eval.context(), "under-test", customer)
        leaves = result.children[0].children
        assert len(leaves) == len(SHARED)
        for leaf, (condition, expected) in zip(leaves, SHARED, strict=True):
            assert leaf.met == (customer in expected), (customer, condition)


def test_merged_conditions_combine_like_separate_ones(shop_eval: Evaluator) -> None:
    # Different windows, a filter, returns counted or not, and first ever: pairwise.
    picked = [SHARED[i] for i in (0, 3, 10, 12, 16, 19, 21, 23, 24)]
    for a, (first, first_expected) in enumerate(picked):
        for second, second_expected in picked[a + 1 :]:
            both = shop_eval.members(rules={"all": [first, second]})
            assert both == first_expected & second_expected, (first, second)
            neither = shop_eval.members(rules={"not": {"any": [first, second]}})
            assert neither == set(range(1, 9)) - first_expected - second_expected


def test_flags_of_many_segments_equal_their_members(shop_eval: Evaluator) -> None:
    from activator.compiler.segment import segment_flags

    segments = {
        "buyers": shop.segment("buyers", rules=orders("has_purchased", window=LAST_90)),
        "big": shop.segment(
            "big", rules=orders("total_value", value={"op": ">=", "value": 30}, window=LAST_90)
        ),
        "flagged": shop.segment("flagged", rules={"attribute": "customers.flag", "op": "is_true"}),
        "web": shop.segment("web", sql="SELECT customer_id FROM orders WHERE channel = 'web'"),
        "repeat-not-flagged": shop.segment(
            "repeat-not-flagged",
            rules=orders("repeat_purchase"),
            exclude={"attribute": "customers.flag", "op": "is_true"},
        ),
        "buyers-minus-web": shop.segment(
            "buyers-minus-web", rules={"all": [{"segment": "buyers"}, {"not": {"segment": "web"}}]}
        ),
    }
    shop_eval.segments.update(segments)
    ctx = shop_eval.context()
    # The same definition under two columns, and every kind of segment, in one plan.
    wanted = {f"c_{name}": segments[name] for name in segments} | {"again": segments["buyers"]}
    flags = segment_flags(ctx, wanted).to_pyarrow().to_pylist()
    assert sorted(r["customer_id"] for r in flags) == list(range(1, 9))
    for column, definition in wanted.items():
        flagged = {r["customer_id"] for r in flags if r[column]}
        assert flagged == ids(segment_members(ctx, definition.name)), column

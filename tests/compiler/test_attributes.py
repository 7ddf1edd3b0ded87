"""Attribute conditions: every operator of every column type, with NULLs and edges.

The shop's rows (tests/compiler/shop.py) are built around the edges; each expected set was
worked out by hand from them. As of 2026-03-15 12:00 UTC, so "today" is 2026-03-15.
"""

from __future__ import annotations

from typing import Any

import pytest

from activator.errors import CompileError
from tests.compiler.conftest import Evaluator


def attr(column: str, op: str, value: Any = None, **extra: Any) -> dict[str, Any]:
    condition: dict[str, Any] = {"attribute": f"customers.{column}", "op": op, **extra}
    if value is not None:
        condition["value"] = value
    return condition


CASES: list[tuple[dict[str, Any], set[int]]] = [
    # boolean: flag = T F NULL T F T NULL F
    (attr("flag", "is_true"), {1, 4, 6}),
    (attr("flag", "is_false"), {2, 5, 8}),
    (attr("flag", "is_null"), {3, 7}),
    (attr("flag", "is_not_null"), {1, 2, 4, 5, 6, 8}),
    # integer: n = 1 5 10 NULL -3 0 5 7
    (attr("n", "=", 5), {2, 7}),
    (attr("n", "!=", 5), {1, 3, 5, 6, 8}),  # NULL (4) satisfies no comparison
    (attr("n", ">", 5), {3, 8}),
    (attr("n", ">=", 5), {2, 3, 7, 8}),
    (attr("n", "<", 0), {5}),
    (attr("n", "<=", 0), {5, 6}),
    (attr("n", "between", [0, 5]), {1, 2, 6, 7}),  # both ends inclusive
    (attr("n", "not_between", [0, 5]), {3, 5, 8}),
    (attr("n", "in", [1, 10]), {1, 3}),
    (attr("n", "not_in", [1, 10]), {2, 5, 6, 7, 8}),
    (attr("n", "is_null"), {4}),
    (attr("n", "is_not_null"), {1, 2, 3, 5, 6, 7, 8}),
    (attr("n", ">", 4.5), {2, 3, 7, 8}),
    # decimal: amount = 10.00 20.50 99.99 NULL 0.00 5.05 20.50 100.00
    (attr("amount", ">=", 20.5), {2, 3, 7, 8}),
    (attr("amount", "=", "20.50"), {2, 7}),
    (attr("amount", "between", [5.05, 20.50]), {1, 2, 6, 7}),
    (attr("amount", "<", 0.01), {5}),
    (attr("amount", "=", 99.99), {3}),
    (attr("amount", "not_in", [0, 100]), {1, 2, 3, 6, 7}),
    # float: ratio = 0.5 1.5 NULL 2.0 -1.0 0.0 1.5 2.5
    (attr("ratio", ">", 1.5), {4, 8}),
    (attr("ratio", "between", [0, 1.5]), {1, 2, 6, 7}),
    (attr("ratio", "is_null"), {3}),
    # string: name = 'Alice' 'alice' 'Bob%' '' NULL 'b_o' 'ALICE SMITH' ' bob'
    (attr("name", "equals", "Alice"), {1}),
    (attr("name", "equals", "alice", case_sensitive=False), {1, 2}),
    (attr("name", "not_equals", "Alice"), {2, 3, 4, 6, 7, 8}),
    (attr("name", "not_equals", "ALICE", case_sensitive=False), {3, 4, 6, 7, 8}),
    (attr("name", "contains", "lic"), {1, 2}),
    (attr("name", "contains", "LIC", case_sensitive=False), {1, 2, 7}),
    (attr("name", "contains", "%"), {3}),  # wildcards are plain characters
    (attr("name", "contains", "_"), {6}),
    (attr("name", "not_contains", "lic"), {3, 4, 6, 7, 8}),
    (attr("name", "starts_with", "A"), {1, 7}),
    (attr("name", "starts_with", "b_"), {6}),
    (attr("name", "starts_with", "B", case_sensitive=False), {3, 6}),
    (attr("name", "ends_with", "%"), {3}),
    (attr("name", "ends_with", "bob"), {8}),
    (attr("name", "ends_with", "SMITH", case_sensitive=False), {7}),
    (attr("name", "in", ["Alice", "b_o"]), {1, 6}),
    (attr("name", "in", ["ALICE"], case_sensitive=False), {1, 2}),
    (attr("name", "not_in", ["Alice"]), {2, 3, 4, 6, 7, 8}),
    (attr("name", "empty"), {4, 5}),
    (attr("name", "not_empty"), {1, 2, 3, 6, 7, 8}),
    (attr("name", "is_null"), {5}),
    # date: born = 1990-01-01 2000-06-15 2026-03-15 NULL 2026-02-15 2025-03-15 2026-03-14
    #              2026-03-16
    (attr("born", "is", "today"), {3}),
    (attr("born", "is", "2026-03-14"), {7}),
    (attr("born", "is", "yesterday"), {7}),
    (attr("born", "before", "today"), {1, 2, 5, 6, 7}),
    (attr("born", "on_or_before", "today"), {1, 2, 3, 5, 6, 7}),
    (attr("born", "after", "today"), {8}),
    (attr("born", "on_or_after", "start of day"), {3, 8}),
    (attr("born", "after", "1 day ago"), {3, 8}),
    (attr("born", "between", ["2026-02-15", "2026-03-14"]), {5, 7}),
    (attr("born", "not_between", ["2026-02-15", "2026-03-14"]), {1, 2, 3, 6, 8}),
    (attr("born", "on_or_after", "1 month ago"), {3, 5, 7, 8}),
    (attr("born", "after", "1 month ago"), {3, 7, 8}),
    (attr("born", "on_or_after", "4 weeks ago"), {3, 5, 7, 8}),
    (attr("born", "is", "1 year ago"), {6}),
    (attr("born", "before", "2000-06-15"), {1}),
    (attr("born", "is_null"), {4}),
    # timestamp (naive = wall time in the workspace zone, UTC here): seen_at =
    #   1: as_of  2: 03-14 23:59:59.999999  3: 03-14 00:00  4: NULL  5: 02-15 00:00
    #   6: 03-16 00:00  7: 03-15 00:00  8: as_of + 1 µs
    (attr("seen_at", "is", "today"), {1, 7, 8}),
    (attr("seen_at", "before", "today"), {2, 3, 5}),
    (attr("seen_at", "after", "today"), {6}),
    (attr("seen_at", "on_or_after", "today"), {1, 6, 7, 8}),
    (attr("seen_at", "on_or_before", "yesterday"), {2, 3, 5}),
    (attr("seen_at", "is", "now"), {1}),
    (attr("seen_at", "after", "now"), {6, 8}),
    (attr("seen_at", "on_or_before", "now"), {1, 2, 3, 5, 7}),
    (attr("seen_at", "before", "2026-03-15T00:00:00"), {2, 3, 5}),
    (attr("seen_at", "between", ["yesterday", "today"]), {1, 2, 3, 7, 8}),
    (attr("seen_at", "between", ["2026-03-14T00:00:00", "2026-03-15T12:00:00"]), {1, 2, 3, 7}),
    (attr("seen_at", "between", ["2026-03-14T01:00:00+01:00", "now"]), {1, 2, 3, 7}),
    (attr("seen_at", "on_or_after", "1 month ago"), {1, 2, 3, 5, 6, 7, 8}),
    (attr("seen_at", "is_null"), {4}),
]


@pytest.mark.parametrize(
    ("condition", "expected"),
    CASES,
    ids=[f"{c['attribute'].split('.')[1]}-{c['op']}-{c.get('value')}" for c, _ in CASES],
)
def test_operator(shop_eval: Evaluator, condition: dict[str, Any], expected: set[int]) -> None:
    assert shop_eval.rule(condition) == expected


def test_not_of_a_comparison_includes_nulls(shop_eval: Evaluator) -> None:
    # Conditions are two-valued: NULL makes a comparison false, so its negation is true.
    assert shop_eval.rule({"not": attr("n", ">", 5)}) == {1, 2, 4, 5, 6, 7}


def test_relative_dates_use_the_workspace_time_zone(shop_eval: Evaluator) -> None:
    # 2026-03-15 12:00 UTC is 2026-03-16 01:00 in Auckland (UTC+13): "today" is the 16th,
    # and naive timestamps are Auckland wall time.
    zone = "Pacific/Auckland"
    assert shop_eval.rule(attr("born", "is", "today"), timezone=zone) == {8}
    assert shop_eval.rule(attr("seen_at", "is", "today"), timezone=zone) == {6}
    # Now is 01:00 on the 16th there: every non-NULL wall time in the data is before it.
    assert shop_eval.rule(attr("seen_at", "before", "now"), timezone=zone) == {1, 2, 3, 5, 6, 7, 8}


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (attr("name", ">", 3), "does not apply to string column"),
        (attr("flag", "=", True), "does not apply to boolean column"),
        (attr("born", "is", "someday"), "is not a date"),
        (attr("n", "between", [1]), "between takes two values"),
        (attr("n", "in", [1, None]), "cannot hold null"),
        (attr("n", "=", "many"), "is not a number"),
        (attr("nope", "is_null"), "has no column 'nope'"),
    ],
)
def test_bad_conditions_fail_to_compile(
    shop_eval: Evaluator, condition: dict[str, Any], message: str
) -> None:
    with pytest.raises(CompileError, match=message):
        shop_eval.rule(condition)

"""``explain_customer``: the rule tree for one customer, agreeing with ``segment_members``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from activator.compiler import ConditionResult, explain_customer, segment_members
from activator.errors import CompileError
from tests.compiler import shop
from tests.compiler.conftest import Evaluator, ids

SEGMENTS: dict[str, dict[str, Any]] = {
    "buyers": {
        "rules": {"behavior": "has_purchased", "table": "orders", "window": {"last": "90d"}}
    },
    "lapsing-high-value": {
        "rules": {
            "all": [
                {"attribute": "customers.amount", "op": ">=", "value": 5},
                {
                    "behavior": "has_purchased",
                    "table": "orders",
                    "count": {"op": ">=", "value": 1},
                    "window": {"last": "365d"},
                },
                {"not": {"behavior": "has_purchased", "table": "orders", "window": {"last": "7d"}}},
                {"score": "rfm_monetary", "op": ">=", "value": 2},
            ]
        },
        "exclude": {"any": [{"attribute": "customers.flag", "op": "is_false"}]},
    },
    "mixed": {
        "rules": {
            "any": [
                {"segment": "buyers"},
                {
                    "attribute": "customers.name",
                    "op": "contains",
                    "value": "b",
                    "case_sensitive": False,
                },
                {
                    "behavior": "most_frequent",
                    "table": "orders",
                    "column": "channel",
                    "value": "web",
                },
                {"behavior": "total_value", "table": "orders", "value": {"op": ">", "value": 100}},
            ]
        },
        "exclude": {"segment": "web"},
    },
    "web": {"sql": "SELECT customer_id FROM orders WHERE channel = 'web'"},
}


@pytest.fixture
def explained(shop_eval: Evaluator) -> Evaluator:
    for name, spec in SEGMENTS.items():
        shop_eval.segments[name] = shop.segment(name, **spec)
    return shop_eval


@pytest.mark.parametrize("name", sorted(SEGMENTS))
def test_explain_agrees_with_members_for_every_customer(explained: Evaluator, name: str) -> None:
    ctx = explained.context()
    members = ids(segment_members(ctx, name))
    for customer in sorted(shop.ALL):
        result = explain_customer(ctx, name, customer)
        assert result.met == (customer in members), (name, customer)
        _check_groups(result)


def _check_groups(node: ConditionResult) -> None:
    """Each group's result is its children's, combined as the compiler combines them."""
    for child in node.children:
        _check_groups(child)
    if node.description == "all of":
        assert node.met == all(c.met for c in node.children)
    elif node.description == "any of":
        assert node.met == any(c.met for c in node.children)
    elif node.description == "not":
        assert node.met == (not node.children[0].met)


def test_explanation_carries_paths_descriptions_and_deciding_values(explained: Evaluator) -> None:
    result = explain_customer(explained.context(), "lapsing-high-value", "4")
    assert result.path == ""
    rules, exclude = result.children
    assert (rules.path, rules.description, rules.met) == ("rules", "all of", False)
    amount, bought, recent_not, score = rules.children
    assert (amount.path, amount.description, amount.value) == (
        "rules.all[0]",
        "customers.amount >= 5",
        None,
    )
    assert not amount.met  # customer 4's amount is NULL: never satisfies a comparison
    assert bought.description == "orders: has_purchased count >= 1 in the last 365 days"
    assert (bought.met, bought.value) == (True, 3)
    assert recent_not.children[0].value == 0
    assert (score.path, score.value) == ("rules.all[3]", 9)
    assert exclude.children[0].value is True
    assert not result.met


def test_total_value_is_exact_decimal(explained: Evaluator) -> None:
    result = explain_customer(explained.context(), "mixed", 4)
    total = result.children[0].children[3]
    assert total.value == Decimal("300.01")
    assert total.met


def test_membership_explains_the_inner_segment(explained: Evaluator) -> None:
    result = explain_customer(explained.context(), "mixed", 7)
    membership = result.children[0].children[0]
    assert membership.description == "in segment buyers"
    (inner,) = membership.children
    assert inner.met == membership.met
    assert inner.children[0].value == 2  # two orders of 7 in the last 90 days


def test_unknown_customer_is_an_error(explained: Evaluator) -> None:
    with pytest.raises(CompileError, match="not in table 'customers'"):
        explain_customer(explained.context(), "buyers", 99)
    with pytest.raises(CompileError, match="not a customer ID"):
        explain_customer(explained.context(), "buyers", "x1")

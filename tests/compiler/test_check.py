"""``check_segment``: problems found without running anything, with paths and suggestions."""

from __future__ import annotations

from typing import Any

import ibis
import pytest

from activator.compiler import check_segment
from activator.definitions.config import CustomerTable, DataModel, EventTable
from tests.compiler import shop

SCHEMAS = {
    "customers": ibis.schema(
        {"customer_id": "int64", "email": "string", "signup_at": "timestamp", "vip": "boolean"}
    ),
    "orders": ibis.schema(
        {
            "customer_id": "int64",
            "ordered_at": "timestamp",
            "total": "decimal(12,2)",
            "channel": "string",
        }
    ),
    "visits": ibis.schema({"customer_id": "int64", "at": "timestamp"}),
}
MODEL = DataModel(
    customers=CustomerTable(table="customers", key="customer_id"),
    events={
        "orders": EventTable(
            table="orders", customer_key="customer_id", timestamp="ordered_at", amount="total"
        ),
        "visits": EventTable(table="visits", customer_key="customer_id", timestamp="at"),
    },
)


def problems(dialect: str = "duckdb", **spec: Any) -> list[tuple[str, str]]:
    definition = shop.segment("s", **spec)
    return check_segment(definition, data_model=MODEL, schemas=SCHEMAS, dialect=dialect)


@pytest.mark.parametrize(
    ("rules", "path", "message"),
    [
        (
            {"attribute": "customer.email", "op": "empty"},
            "rules.attribute",
            "table 'customer' is not in the data model (did you mean 'customers'?)",
        ),
        (
            {"all": [{"attribute": "customers.signup", "op": "is_null"}]},
            "rules.all[0].attribute",
            "table 'customers' has no column 'signup' (did you mean 'signup_at'?)",
        ),
        ({"attribute": "customers.vip", "op": "=", "value": True}, "rules.op", "use one of"),
        ({"attribute": "customers.email", "op": "is_null", "value": 3}, "rules.value", "takes no"),
        (
            {"attribute": "customers.email", "op": "in", "value": "x"},
            "rules.value",
            "non-empty list",
        ),
        (
            {
                "attribute": "customers.signup_at",
                "op": "between",
                "value": ["2026-02-01", "2026-01-01"],
            },
            "rules.value",
            "between: 2026-02-01 is after 2026-01-01",
        ),
        (
            {"attribute": "customers.signup_at", "op": "is", "value": "tomorrow"},
            "rules.value",
            "is not a date",
        ),
        (
            {"not": {"behavior": "has_purchased", "table": "order", "window": {"last": "9d"}}},
            "rules.not.table",
            "did you mean 'orders'?",
        ),
        (
            {"behavior": "total_value", "table": "visits", "value": {"op": ">", "value": 1}},
            "rules.table",
            "declares no amount",
        ),
        ({"behavior": "total_value", "table": "orders"}, "rules.value", "total_value needs"),
        (
            {"behavior": "most_frequent", "table": "orders", "value": "web"},
            "rules",
            "needs 'column'",
        ),
        (
            {"behavior": "most_frequent", "table": "orders", "column": "chanel", "value": "web"},
            "rules.column",
            "did you mean 'channel'?",
        ),
        ({"behavior": "first_purchase", "table": "orders"}, "rules", "needs a window"),
        (
            {"behavior": "repeat_purchase", "table": "orders", "count": {"op": ">", "value": 3}},
            "rules.count",
            "count applies to has_purchased",
        ),
        (
            {"behavior": "has_purchased", "table": "orders", "window": {"last": "0d"}},
            "rules.window.last",
            "length 0",
        ),
        (
            {
                "behavior": "has_purchased",
                "table": "orders",
                "where": [{"attribute": "visits.at", "op": "is_null"}],
            },
            "rules.where[0].attribute",
            "on its own table 'orders'",
        ),
        ({"score": "rfm_monetary", "op": ">=", "value": 11}, "rules.value", "deciles 1 to 10"),
        ({"score": "rfm_recency", "op": "between", "value": [3]}, "rules.value", "two deciles"),
        (
            {"score": "rfm_monetary", "op": ">=", "value": 5, "table": "visits"},
            "rules.table",
            "needs an amount",
        ),
    ],
)
def test_problem(rules: dict[str, Any], path: str, message: str) -> None:
    found = problems(rules=rules)
    assert len(found) == 1, found
    assert found[0][0] == path
    assert message in found[0][1]


def test_a_good_segment_has_no_problem() -> None:
    assert (
        problems(
            rules={
                "all": [
                    {"attribute": "customers.email", "op": "ends_with", "value": "@x.com"},
                    {"attribute": "customers.signup_at", "op": "after", "value": "3 months ago"},
                    {
                        "behavior": "total_value",
                        "table": "orders",
                        "value": {"op": ">=", "value": 9},
                    },
                    {"behavior": "has_purchased", "table": "visits", "window": {"last": "48h"}},
                    {"score": "rfm_frequency", "op": "in", "value": [9, 10]},
                    {"segment": "other"},
                ]
            },
            exclude={"attribute": "customers.vip", "op": "is_false"},
        )
        == []
    )


def test_without_schemas_columns_are_not_checked() -> None:
    definition = shop.segment("s", rules={"attribute": "customers.anything", "op": "is_null"})
    assert check_segment(definition, data_model=MODEL, schemas={}, dialect="duckdb") == []


def test_sql_must_return_the_activation_id() -> None:
    assert problems(sql="SELECT customer_id FROM orders") == []
    assert problems(sql="SELECT * FROM orders") == []
    assert problems(sql="SELECT o.customer_id AS id FROM orders o") == [
        (
            "sql",
            "the SELECT must return the activation ID column 'customer_id'; it returns id",
        )
    ]
    assert problems(sql="SELECT * FROM visits", activation_id="visitor") == [
        (
            "sql",
            "the SELECT must return the activation ID column 'visitor'; it returns customer_id, at",
        )
    ]


def test_sql_functions_unknown_for_another_engine() -> None:
    sql = "SELECT customer_id FROM customers WHERE my_udf(email)"
    assert problems(sql=sql) == []  # same dialect: the engine itself is asked at validate
    ((path, message),) = problems(dialect="postgres", sql=sql)
    assert path == "sql"
    assert "function my_udf is not known to be available on the postgres engine" in message


def test_rule_segments_use_the_customer_key() -> None:
    found = problems(rules={"segment": "x"}, activation_id="email")
    assert found == [
        ("activation_id", "rule segments select the customer key 'customer_id'; activation_id "
         "applies to SQL segments")
    ]  # fmt: skip

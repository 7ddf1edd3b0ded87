"""Golden SQL per dialect: what the compiler sends to engines that cannot run here.

Segments are compiled over unbound tables (``ibis.table(schema, name=...)``) at a fixed as-of
time, and the SQL of each dialect is compared with ``tests/compiler/golden/<dialect>/``.
Regenerate after an intended change with ``ACTIVATOR_UPDATE_GOLDEN=1 pytest
tests/compiler/test_golden.py`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path
from zoneinfo import ZoneInfo

import ibis
import pytest

from activator.compiler import CompileContext, segment_members
from activator.compiler.sqlseg import prepare_sql
from activator.definitions.config import CustomerTable, DataModel, EventTable
from tests.compiler import shop

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("ACTIVATOR_UPDATE_GOLDEN") == "1"

# Engine dialect (SQLGlot's name, as in Engine.DIALECT) → Ibis compiler name.
DIALECTS = {
    "duckdb": "duckdb",
    "postgres": "postgres",
    "spark": "pyspark",
    "trino": "trino",
    "bigquery": "bigquery",
    "snowflake": "snowflake",
}

SCHEMAS = {
    "customers": {
        "customer_id": "int64",
        "email": "string",
        "loyalty_tier": "string",
        "email_opt_in": "boolean",
        "signup_at": "timestamp",
        "birth_date": "date",
    },
    "orders": {
        "order_id": "int64",
        "customer_id": "int64",
        "ordered_at": "timestamp",
        "channel": "string",
        "total": "decimal(12, 2)",
        "is_returned": "boolean",
    },
    "order_items": {
        "customer_id": "int64",
        "ordered_at": "timestamp",
        "category": "string",
        "price": "float64",
    },
}

MODEL = DataModel(
    customers=CustomerTable(table="customers", key="customer_id"),
    events={
        "orders": EventTable(
            table="orders",
            customer_key="customer_id",
            timestamp="ordered_at",
            amount="total",
            returned="is_returned",
        ),
        "order_items": EventTable(
            table="order_items", customer_key="customer_id", timestamp="ordered_at", amount="price"
        ),
    },
)

SEGMENTS = {
    "lapsing-high-value": shop.segment(
        "lapsing-high-value",
        rules={
            "all": [
                {"attribute": "customers.loyalty_tier", "op": "in", "value": ["gold", "platinum"]},
                {
                    "behavior": "has_purchased",
                    "table": "orders",
                    "count": {"op": ">=", "value": 3},
                    "window": {"last": "365d"},
                },
                {
                    "behavior": "total_value",
                    "table": "orders",
                    "value": {"op": ">=", "value": 500},
                    "window": {"between": ["2025-01-01", "2025-12-31"]},
                },
                {
                    "not": {
                        "behavior": "has_purchased",
                        "table": "orders",
                        "window": {"last": "90d"},
                    }
                },
                {"score": "rfm_monetary", "op": ">=", "value": 8},
            ]
        },
        exclude={"any": [{"attribute": "customers.email_opt_in", "op": "is_false"}]},
    ),
    "new-customers": shop.segment(
        "new-customers",
        rules={
            "all": [
                {"attribute": "customers.signup_at", "op": "on_or_after", "value": "30 days ago"},
                {"attribute": "customers.birth_date", "op": "before", "value": "2008-03-15"},
                {"attribute": "customers.email", "op": "not_empty"},
            ]
        },
    ),
    "category-fans": shop.segment(
        "category-fans",
        rules={
            "any": [
                {
                    "behavior": "most_frequent",
                    "table": "order_items",
                    "column": "category",
                    "value": ["Shoes", "Bags"],
                    "window": {"last": "6m"},
                },
                {
                    "behavior": "first_purchase",
                    "table": "orders",
                    "window": {"last": "2w"},
                    "where": [{"attribute": "orders.channel", "op": "equals", "value": "app"}],
                },
                {
                    "behavior": "total_value",
                    "table": "order_items",
                    "value": {"op": "between", "value": [100, 250.5]},
                },
            ]
        },
    ),
    "vip-members": shop.segment(
        "vip-members",
        rules={
            "all": [
                {"segment": "new-customers"},
                {
                    "attribute": "customers.email",
                    "op": "ends_with",
                    "value": "@Example.com",
                    "case_sensitive": False,
                },
                {"score": "rfm_recency", "op": "between", "value": [9, 10]},
            ]
        },
    ),
}

SQL_SEGMENT = (
    "SELECT customer_id FROM orders WHERE ordered_at >= CURRENT_DATE - INTERVAL 30 DAY "
    "AND NOT is_returned GROUP BY customer_id HAVING SUM(total) > 100"
)


def _unbound(name: str) -> ibis.Table:
    return ibis.table(SCHEMAS[name], name=name)


def _compare(path: Path, sql: str) -> None:
    text = sql.strip() + "\n"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"{path} missing: run with ACTIVATOR_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path} differs: run with ACTIVATOR_UPDATE_GOLDEN=1"


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
@pytest.mark.parametrize("name", sorted(SEGMENTS))
def test_golden_rule_segment(name: str, dialect: str) -> None:
    if dialect == "spark":
        # Loading the backend registers the options its SQL compiler reads.
        _ = ibis.pyspark
    ctx = CompileContext(
        tables=_unbound,
        data_model=MODEL,
        segments=SEGMENTS,
        as_of=shop.AS_OF,
        timezone="Europe/Paris",
        dialect=dialect,
    )
    sql = ibis.to_sql(segment_members(ctx, name), dialect=DIALECTS[dialect])
    _compare(GOLDEN / dialect / f"{name}.sql", str(sql))


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_golden_sql_segment(dialect: str) -> None:
    sql = prepare_sql(
        SQL_SEGMENT,
        read="duckdb",
        write=dialect,
        tables=_unbound,
        as_of=shop.AS_OF,
        zone=ZoneInfo("Europe/Paris"),
    )
    _compare(GOLDEN / dialect / "recent-spenders-sql.sql", sql)

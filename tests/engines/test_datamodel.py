"""check_data_model: tables, columns and types, named against activator.yaml."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from activator.definitions.config import DataModel
from activator.engines.datamodel import check_data_model
from activator.engines.duckdb import DuckDBEngine
from activator.errors import Issue
from tests.engines.conftest import customers_table, load_customer_data, orders_table


def _model(**orders: object) -> DataModel:
    event = {
        "table": "orders",
        "customer_key": "customer_id",
        "timestamp": "ordered_at",
        "amount": "total",
        "returned": "returned",
        **orders,
    }
    return DataModel.model_validate(
        {
            "customers": {"table": "customers", "key": "customer_id", "pii": ["email"]},
            "events": {"orders": event},
        }
    )


@pytest.fixture
def engine(duckdb_engine: DuckDBEngine) -> DuckDBEngine:
    load_customer_data(duckdb_engine, {"customers": customers_table(), "orders": orders_table()})
    return duckdb_engine


def test_matching_model_has_no_issues(engine: DuckDBEngine) -> None:
    assert check_data_model(engine, _model()) == []


def test_missing_column_names_table_column_and_path(engine: DuckDBEngine) -> None:
    issues = check_data_model(engine, _model(amount="totl"), file="shop/activator.yaml")
    assert issues == [
        Issue(
            file="shop/activator.yaml",
            line=None,
            path="data_model.events.orders.amount",
            message="table 'orders' has no column 'totl' (columns: order_id, customer_id, "
            "ordered_at, total, returned)",
        )
    ]
    assert str(issues[0]).startswith("shop/activator.yaml data_model.events.orders.amount:")


def test_missing_table_and_pii_column(engine: DuckDBEngine) -> None:
    model = DataModel.model_validate(
        {
            "customers": {"table": "customers", "key": "customer_id", "pii": ["phone"]},
            "events": {"visits": {"table": "web_visits", "customer_key": "cid", "timestamp": "at"}},
        }
    )
    issues = check_data_model(engine, model)
    assert [(i.path, i.message) for i in issues] == [
        (
            "data_model.customers.pii[0]",
            "table 'customers' has no column 'phone' (columns: customer_id, email, country)",
        ),
        (
            "data_model.events.visits.table",
            "table 'web_visits' not found in the duckdb engine (tables: customers, orders)",
        ),
    ]
    assert all(i.severity == "error" for i in issues)


def test_wrong_types_are_errors(engine: DuckDBEngine) -> None:
    issues = check_data_model(
        engine, _model(timestamp="total", amount="returned", returned="total")
    )
    assert {i.path: i.message for i in issues} == {
        "data_model.events.orders.timestamp": "column orders.total is decimal(12, 2); it must "
        "be a date or a timestamp (cast it in a view if it is text)",
        "data_model.events.orders.amount": "column orders.returned is boolean; an amount must "
        "be a number, preferably DECIMAL",
        "data_model.events.orders.returned": "column orders.total is decimal(12, 2); it must "
        "be a boolean",
    }


def test_customer_key_type_must_match(engine: DuckDBEngine) -> None:
    issues = check_data_model(engine, _model(customer_key="order_id"))
    assert issues == []  # both integers
    issues = check_data_model(
        engine,
        DataModel.model_validate(
            {
                "customers": {"table": "customers", "key": "email"},
                "events": {
                    "orders": {
                        "table": "orders",
                        "customer_key": "customer_id",
                        "timestamp": "ordered_at",
                    }
                },
            }
        ),
    )
    assert len(issues) == 1
    assert issues[0].path == "data_model.events.orders.customer_key"
    assert "orders.customer_id is int64" in issues[0].message
    assert "customer key customers.email (string)" in issues[0].message


def test_float_amount_is_a_warning_that_says_why(tmp_path: Path, engine: DuckDBEngine) -> None:
    floats = pa.table(
        {
            "customer_id": pa.array([1], pa.int64()),
            "ordered_at": pa.array([pa.scalar(0, pa.timestamp("us")).as_py()]),
            "total": pa.array([float(Decimal("9.99"))], pa.float64()),
        }
    )
    load_customer_data(engine, {"float_orders": floats})
    issues = check_data_model(engine, _model(table="float_orders", returned=None))
    assert len(issues) == 1
    (issue,) = issues
    assert issue.severity == "warning"
    assert issue.path == "data_model.events.orders.amount"
    assert "not deterministic under parallel aggregation" in issue.message
    assert "DECIMAL" in issue.message
    assert str(issue).startswith("activator.yaml data_model.events.orders.amount: warning: ")


def test_a_customer_key_on_several_rows_is_an_error(duckdb_engine: DuckDBEngine) -> None:
    customers = customers_table()
    twice = pa.concat_tables([customers, customers.slice(1, 2)])
    load_customer_data(duckdb_engine, {"customers": twice, "orders": orders_table()})
    repeated = sorted(customers.column("customer_id").to_pylist()[1:3])
    [issue] = check_data_model(duckdb_engine, _model())
    assert issue.path == "data_model.customers.key"
    assert issue.message == (
        f"customers.customer_id is not unique: 2 activation IDs are on several rows "
        f"(e.g. {repeated[0]!r}); the customer table needs one row per customer "
        "(deduplicate it in a view)"
    )

"""The same Ibis expressions on DuckDB, Spark and PostgreSQL give the same results."""

from __future__ import annotations

import hashlib
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pytest

from activator.compiler.functions import stable_bucket
from activator.engines.base import Engine
from tests.engines.conftest import customers_table, load_customer_data, orders_table


def _queries(customers: ir.Table, orders: ir.Table) -> dict[str, ir.Table]:
    kept = orders.filter(~orders.returned)
    by_customer = ibis.window(
        group_by=orders.customer_id, order_by=[orders.ordered_at, orders.order_id]
    )
    latest = ibis.window(
        group_by=orders.customer_id,
        order_by=[orders.ordered_at.desc(), orders.order_id.desc()],
    )
    return {
        "filter": kept.filter(kept.ordered_at >= ibis.timestamp("2026-03-01 00:00:00"))
        .select("order_id", "total")
        .order_by("order_id"),
        "join_aggregate": kept.join(customers, "customer_id")
        .group_by("country")
        .aggregate(
            revenue=lambda t: t.total.sum(),
            orders=lambda t: t.count(),
            biggest=lambda t: t.total.max(),
            buyers=lambda t: t.customer_id.nunique(),
        )
        .order_by("country"),
        "window": orders.mutate(
            running=orders.total.sum().over(by_customer),
            recency=ibis.row_number().over(latest),
        )
        .filter(lambda t: t.recency == 0)
        .select("customer_id", "order_id", "running")
        .order_by("customer_id"),
        "threshold": kept.group_by("customer_id")
        .aggregate(spent=lambda t: t.total.sum())
        .filter(lambda t: t.spent >= 1000)
        .select("customer_id")
        .order_by("customer_id"),
    }


def _expected() -> dict[str, list[dict[str, Any]]]:
    """Results computed in Python from the same rows, exactly (Decimal arithmetic)."""
    customers = {row["customer_id"]: row for row in customers_table().to_pylist()}
    orders = orders_table().to_pylist()
    kept = [o for o in orders if not o["returned"]]
    march = __import__("datetime").datetime(2026, 3, 1)
    groups: dict[str, list[dict[str, Any]]] = {}
    for order in kept:
        groups.setdefault(customers[order["customer_id"]]["country"], []).append(order)
    per_customer: dict[int, list[dict[str, Any]]] = {}
    for order in sorted(orders, key=lambda o: (o["ordered_at"], o["order_id"])):
        per_customer.setdefault(order["customer_id"], []).append(order)
    spent: dict[int, Any] = {}
    for order in kept:
        spent[order["customer_id"]] = spent.get(order["customer_id"], 0) + order["total"]
    return {
        "filter": [
            {"order_id": o["order_id"], "total": o["total"]}
            for o in kept
            if o["ordered_at"] >= march
        ],
        "join_aggregate": [
            {
                "country": country,
                "revenue": sum(o["total"] for o in rows),
                "orders": len(rows),
                "biggest": max(o["total"] for o in rows),
                "buyers": len({o["customer_id"] for o in rows}),
            }
            for country, rows in sorted(groups.items())
        ],
        "window": [
            {
                "customer_id": cid,
                "order_id": rows[-1]["order_id"],
                "running": sum(o["total"] for o in rows),
            }
            for cid, rows in sorted(per_customer.items())
        ],
        "threshold": [
            {"customer_id": cid} for cid, total in sorted(spent.items()) if total >= 1000
        ],
    }


def test_same_expressions_same_results(any_engine: Engine) -> None:
    load_customer_data(any_engine, {"customers": customers_table(), "orders": orders_table()})
    queries = _queries(any_engine.table("customers"), any_engine.table("orders"))
    expected = _expected()
    assert expected["threshold"], "the threshold query must select someone to mean anything"
    for name, expr in queries.items():
        got = any_engine.to_pyarrow(expr).to_pylist()
        # Decimal equality ignores the scale, so 10.50 == 10.5 whatever each engine returns;
        # ints and strings must match exactly.
        assert got == expected[name], f"{any_engine.NAME}: {name}"


def test_sums_stay_decimal(any_engine: Engine) -> None:
    load_customer_data(any_engine, {"orders": orders_table()})
    orders = any_engine.table("orders")
    assert orders.schema()["total"].is_decimal()
    result = any_engine.to_pyarrow(orders.aggregate(revenue=orders.total.sum()))
    assert pa.types.is_decimal(result.schema.field("revenue").type)


def test_stable_bucket_matches_python_md5(any_engine: Engine) -> None:
    ids = [f"cust-{i}" for i in range(2500)] + [str(i) for i in range(500)]
    load_customer_data(any_engine, {"ids": pa.table({"id": ids})})
    table = any_engine.table("ids")
    expr = table.mutate(bucket=stable_bucket(table.id, "spring-sale")).order_by("id")
    got = {row["id"]: row["bucket"] for row in any_engine.to_pyarrow(expr).to_pylist()}
    # Python's hashlib is the reference: equal to it on every engine means equal everywhere.
    want = {
        i: int(hashlib.md5(f"spring-sale:{i}".encode()).hexdigest()[:8], 16) % 10_000 for i in ids
    }
    assert got == want
    assert len(set(got.values())) > 2000, "buckets must spread"


def test_stable_bucket_integer_ids_hash_as_text(any_engine: Engine) -> None:
    load_customer_data(
        any_engine, {"nums": pa.table({"n": pa.array([7, 42, 1234567], pa.int64())})}
    )
    table = any_engine.table("nums")
    expr = table.mutate(bucket=stable_bucket(table.n, "s")).order_by("n")
    got = [row["bucket"] for row in any_engine.to_pyarrow(expr).to_pylist()]
    assert got == [
        int(hashlib.md5(f"s:{n}".encode()).hexdigest()[:8], 16) % 10_000 for n in (7, 42, 1234567)
    ]


def test_dataplane_is_separate_from_customer_tables(any_engine: Engine) -> None:
    load_customer_data(any_engine, {"customers": customers_table()})
    assert any_engine.list_dataplane_tables() == []
    any_engine.ensure_dataplane()
    any_engine.ensure_dataplane()  # idempotent
    customers = any_engine.table("customers")
    snapshot = customers.filter(customers.country == "FR").select("customer_id")
    any_engine.create_dataplane_table("snapshot", snapshot)
    any_engine.create_dataplane_table("ledger", pa.table({"id": pa.array([1, 2], pa.int64())}))

    any_engine.ensure_dataplane()  # must keep what is there
    assert any_engine.list_tables() == ["customers"]
    assert any_engine.list_dataplane_tables() == ["ledger", "snapshot"]
    assert any_engine.to_pyarrow(any_engine.dataplane_table("snapshot").count()).as_py() == 66
    with pytest.raises(Exception, match=r"(?i)exist"):
        any_engine.create_dataplane_table("ledger", pa.table({"id": [3]}))
    any_engine.create_dataplane_table(
        "ledger", pa.table({"id": pa.array([3], pa.int64())}), overwrite=True
    )
    assert any_engine.to_pyarrow(any_engine.dataplane_table("ledger")).to_pylist() == [{"id": 3}]


def test_to_batches_streams_in_bounded_batches(any_engine: Engine) -> None:
    load_customer_data(any_engine, {"orders": orders_table()})
    orders = any_engine.table("orders")
    expr = orders.select("order_id", "total", "ordered_at").order_by("order_id")
    reader = any_engine.to_batches(expr, rows_per_batch=128)
    sizes = []
    rows = []
    for batch in reader:
        sizes.append(batch.num_rows)
        rows.extend(batch.to_pylist())
    assert max(sizes) <= 128
    assert sum(sizes) == 1000
    assert [r["order_id"] for r in rows] == list(range(1, 1001))
    assert rows == any_engine.to_pyarrow(expr).to_pylist()


def test_compile_gives_the_engine_sql(any_engine: Engine) -> None:
    load_customer_data(any_engine, {"customers": customers_table()})
    sql = any_engine.compile(any_engine.table("customers").filter(lambda t: t.country == "FR"))
    assert "SELECT" in sql.upper()
    assert "customers" in sql

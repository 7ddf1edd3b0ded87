"""Deterministic audiences: a money threshold on a DOUBLE column gives the same exact answer.

Floating-point sums depend on the order rows are added in, which parallel aggregation does not
fix. Here every customer's exact total is 25.00 or 24.99 (many small amounts stored as DOUBLE);
a threshold at exactly 25 splits them. Summing the doubles would put customers on the wrong
side (100 × 0.1 is not 10 in binary floating point) and could change between runs; the
compiler casts to DECIMAL before summing, so the answer is exact and the same every time.
"""

from __future__ import annotations

import ibis
import pytest

from activator.compiler import CompileContext, segment_members
from activator.definitions.config import CustomerTable, DataModel, EventTable
from tests.compiler import shop
from tests.compiler.conftest import ids

CUSTOMERS = 2_000
ORDERS_EACH = 100

MODEL = DataModel(
    customers=CustomerTable(table="customers", key="customer_id"),
    events={
        "orders": EventTable(
            table="orders", customer_key="customer_id", timestamp="ordered_at", amount="total"
        )
    },
)


@pytest.mark.slow
def test_threshold_on_double_amounts_is_exact_and_stable() -> None:
    con = ibis.duckdb.connect(threads=2)
    con.raw_sql(f"CREATE TABLE customers AS SELECT range AS customer_id FROM range({CUSTOMERS})")
    # Amounts cycle 0.1, 0.2, 0.3, 0.4 (25 cycles: exactly 25.00); every seventh customer has
    # one 0.1 replaced by 0.09 (exactly 24.99). Rows are shuffled so threads see them mixed.
    con.raw_sql(
        f"""
        CREATE TABLE orders AS
        SELECT c AS customer_id,
               TIMESTAMP '2026-01-01' + INTERVAL (k) MINUTE AS ordered_at,
               CAST(CASE WHEN k = 0 AND c % 7 = 0 THEN 0.09
                         ELSE [0.1, 0.2, 0.3, 0.4][k % 4 + 1] END AS DOUBLE) AS total
        FROM range({CUSTOMERS}) AS a(c), range({ORDERS_EACH}) AS b(k)
        ORDER BY hash(c * 1000 + k)
        """
    )
    definition = shop.segment(
        "spenders",
        rules={"behavior": "total_value", "table": "orders", "value": {"op": ">=", "value": 25}},
    )
    ctx = CompileContext(
        tables=con.table,
        data_model=MODEL,
        segments={"spenders": definition},
        as_of=shop.AS_OF,
        timezone="UTC",
        dialect="duckdb",
    )
    expected = {c for c in range(CUSTOMERS) if c % 7 != 0}
    for _ in range(10):
        assert ids(segment_members(ctx, "spenders")) == expected
    con.disconnect()

"""A small shop, the same everywhere: customers with typed columns (NULLs, edges) and orders.

The values are chosen around the edges the semantics define: timestamps exactly at the as-of
time and one microsecond after it, exactly 90 days before it, the first and last instants of a
``between`` window, returned orders, ties in RFM metrics and in most frequent values, strings
with LIKE wildcards. Expected members in the tests are worked out by hand from these rows.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from activator.definitions.config import CustomerTable, DataModel, EventTable
from activator.definitions.segment import SegmentDefinition

AS_OF = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
"""The one clock of these tests: 2026-03-15 12:00 UTC."""

DATA_MODEL = DataModel(
    customers=CustomerTable(table="customers", key="customer_id"),
    events={
        "orders": EventTable(
            table="orders",
            customer_key="customer_id",
            timestamp="ordered_at",
            amount="total",
            returned="is_returned",
        )
    },
)

ALL = set(range(1, 9))


def customers() -> pa.Table:
    """Eight customers; see the module docstring."""
    d = Decimal
    return pa.table(
        {
            "customer_id": pa.array(range(1, 9), pa.int64()),
            "flag": pa.array([True, False, None, True, False, True, None, False], pa.bool_()),
            "n": pa.array([1, 5, 10, None, -3, 0, 5, 7], pa.int64()),
            "amount": pa.array(
                [
                    d("10.00"),
                    d("20.50"),
                    d("99.99"),
                    None,
                    d("0.00"),
                    d("5.05"),
                    d("20.50"),
                    d("100.00"),
                ],
                pa.decimal128(12, 2),
            ),
            "ratio": pa.array([0.5, 1.5, None, 2.0, -1.0, 0.0, 1.5, 2.5], pa.float64()),
            "name": pa.array(
                ["Alice", "alice", "Bob%", "", None, "b_o", "ALICE SMITH", " bob"], pa.string()
            ),
            "born": pa.array(
                [
                    date(1990, 1, 1),
                    date(2000, 6, 15),
                    date(2026, 3, 15),
                    None,
                    date(2026, 2, 15),
                    date(2025, 3, 15),
                    date(2026, 3, 14),
                    date(2026, 3, 16),
                ],
                pa.date32(),
            ),
            "seen_at": pa.array(
                [
                    datetime(2026, 3, 15, 12, 0),
                    datetime(2026, 3, 14, 23, 59, 59, 999999),
                    datetime(2026, 3, 14, 0, 0),
                    None,
                    datetime(2026, 2, 15, 0, 0),
                    datetime(2026, 3, 16, 0, 0),
                    datetime(2026, 3, 15, 0, 0),
                    datetime(2026, 3, 15, 12, 0, 0, 1),
                ],
                pa.timestamp("us"),
            ),
        }
    )


_ORDERS: list[tuple[int, datetime, str, bool | None, str]] = [
    (1, datetime(2026, 3, 15, 12, 0), "10.00", False, "web"),  # exactly at as_of: counts
    (1, datetime(2025, 12, 15, 12, 0), "20.00", False, "store"),  # exactly as_of − 90 days
    (2, datetime(2025, 12, 15, 12, 0, 0, 1), "30.00", False, "web"),  # 1 µs inside 90 days
    (2, datetime(2026, 3, 15, 12, 0, 0, 1), "1000.00", False, "web"),  # 1 µs after as_of
    (3, datetime(2026, 3, 1), "500.00", True, "web"),  # returned
    (3, datetime(2026, 1, 10), "5.00", None, "app"),  # flag unknown: stands
    (4, datetime(2026, 3, 1), "100.00", False, "store"),
    (4, datetime(2026, 3, 2), "100.00", False, "store"),
    (4, datetime(2026, 3, 3), "100.01", False, "web"),
    (5, datetime(2024, 1, 1), "50.00", False, "web"),
    (5, datetime(2026, 3, 10), "1.00", False, "web"),
    (7, datetime(2025, 1, 1, 0, 0), "7.00", False, "app"),  # first instant of 2025
    (7, datetime(2025, 12, 31, 23, 59, 59, 999999), "8.00", False, "app"),  # last of 2025
    (7, datetime(2026, 1, 1, 0, 0), "9.00", False, "app"),
    (8, datetime(2026, 3, 16), "15.00", False, "web"),  # only after as_of
]


def orders() -> pa.Table:
    """Fifteen orders; customer 6 has none."""
    return pa.table(
        {
            "order_id": pa.array(range(1, len(_ORDERS) + 1), pa.int64()),
            "customer_id": pa.array([o[0] for o in _ORDERS], pa.int64()),
            "ordered_at": pa.array([o[1] for o in _ORDERS], pa.timestamp("us")),
            "total": pa.array([Decimal(o[2]) for o in _ORDERS], pa.decimal128(12, 2)),
            "is_returned": pa.array([o[3] for o in _ORDERS], pa.bool_()),
            "channel": pa.array([o[4] for o in _ORDERS], pa.string()),
        }
    )


def tables() -> dict[str, pa.Table]:
    """The shop's tables by name."""
    return {"customers": customers(), "orders": orders()}


def segment(name: str, **spec: Any) -> SegmentDefinition:
    """A segment definition from keyword arguments, as a YAML file would give them."""
    return SegmentDefinition.model_validate({"name": name, **spec})

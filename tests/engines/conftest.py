"""Fixtures for the engine tests: engines of each kind (Spark's session: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from activator.definitions.config import (
    DuckDBEngineConfig,
)
from activator.engines.base import Engine
from activator.engines.duckdb import DuckDBEngine
from activator.engines.registry import open_engine
from tests.fixtures.engines import ENGINE_KINDS, empty_engine


def customers_table() -> pa.Table:
    """200 customers in three countries."""
    ids = list(range(1, 201))
    return pa.table(
        {
            "customer_id": pa.array(ids, pa.int64()),
            "email": pa.array([f"c{i}@example.com" for i in ids], pa.string()),
            "country": pa.array([("FR", "DE", "US")[i % 3] for i in ids], pa.string()),
        }
    )


def orders_table() -> pa.Table:
    """1,000 orders with DECIMAL totals, distinct timestamps and some returns."""
    from datetime import datetime, timedelta

    start = datetime(2026, 1, 1)
    n = 1000
    return pa.table(
        {
            "order_id": pa.array(range(1, n + 1), pa.int64()),
            "customer_id": pa.array([(i * 7) % 200 + 1 for i in range(n)], pa.int64()),
            "ordered_at": pa.array(
                [start + timedelta(hours=i * 5, minutes=i % 60) for i in range(n)],
                pa.timestamp("us"),
            ),
            # Cents chosen so a float sum would drift; DECIMAL must give exact totals.
            "total": pa.array(
                [Decimal(f"{(i * 37) % 500}.{(i * 13) % 100:02d}") for i in range(n)],
                pa.decimal128(12, 2),
            ),
            "returned": pa.array([i % 11 == 0 for i in range(n)], pa.bool_()),
        }
    )


def load_customer_data(engine: Engine, tables: dict[str, pa.Table]) -> None:
    """Create customer tables in the engine's customer schema (test setup only)."""
    for name, data in tables.items():
        engine.backend.create_table(  # type: ignore[attr-defined]
            name, data, database=engine._customer_database, overwrite=True
        )


def _duckdb(tmp_path: Path) -> Engine:
    return open_engine(
        DuckDBEngineConfig(path="data/retail.duckdb"),
        workspace_root=tmp_path,
        dataplane_schema="activator",
    )


@pytest.fixture(params=ENGINE_KINDS)
def any_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine of each kind, empty, with its data-plane schema not yet created."""
    engine = empty_engine(
        request.param, request, tmp_path, duckdb=DuckDBEngineConfig(path="data/retail.duckdb")
    )
    with engine:
        yield engine


@pytest.fixture
def duckdb_engine(tmp_path: Path) -> Iterator[DuckDBEngine]:
    """A DuckDB engine on a fresh workspace file."""
    engine = _duckdb(tmp_path)
    assert isinstance(engine, DuckDBEngine)
    with engine:
        yield engine

"""The same segments give the same members on DuckDB, Spark and PostgreSQL.

The shop (tests/compiler/shop.py) is loaded into each engine; a set of segments covering
every condition kind (attributes of each type, behaviours with windows on their edges,
returned orders, RFM deciles with ties, membership, a SQL segment, exclusion) is evaluated
through each engine's own tables and dialect, and must give the members DuckDB gives, which
are also checked against the hand-worked answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from activator.compiler import CompileContext, explain_customer, segment_members
from activator.definitions.config import (
    DuckDBEngineConfig,
)
from activator.engines.base import Engine
from tests.compiler import shop
from tests.compiler.conftest import ids
from tests.fixtures.engines import ENGINE_KINDS, empty_engine

LAST_90 = {"last": "90d"}

SEGMENTS: dict[str, dict[str, Any]] = {
    "buyers": {"rules": {"behavior": "has_purchased", "table": "orders", "window": LAST_90}},
    "lapsing": {
        "rules": {
            "all": [
                {"behavior": "has_purchased", "table": "orders", "count": {"op": ">=", "value": 2}},
                {"not": {"behavior": "has_purchased", "table": "orders", "window": {"last": "7d"}}},
            ]
        }
    },
    "spenders-2025": {
        "rules": {
            "behavior": "total_value",
            "table": "orders",
            "value": {"op": "=", "value": 15},
            "window": {"between": ["2025-01-01", "2025-12-31"]},
        }
    },
    "new": {"rules": {"behavior": "first_purchase", "table": "orders", "window": {"last": "100d"}}},
    "web-lovers": {
        "rules": {
            "behavior": "most_frequent",
            "table": "orders",
            "column": "channel",
            "value": "web",
        }
    },
    "store-buyers": {
        "rules": {
            "behavior": "has_purchased",
            "table": "orders",
            "where": [{"attribute": "orders.channel", "op": "in", "value": ["store", "app"]}],
        }
    },
    "top-spend": {"rules": {"score": "rfm_monetary", "op": ">=", "value": 6}},
    "top-frequency": {"rules": {"score": "rfm_frequency", "op": ">=", "value": 6}},
    "recent-by-rfm": {"rules": {"score": "rfm_recency", "op": "between", "value": [2, 6]}},
    "names": {
        "rules": {
            "any": [
                {
                    "attribute": "customers.name",
                    "op": "contains",
                    "value": "LIC",
                    "case_sensitive": False,
                },
                {"attribute": "customers.name", "op": "starts_with", "value": "b_"},
                {"attribute": "customers.name", "op": "ends_with", "value": "%"},
            ]
        }
    },
    "numbers-and-dates": {
        "rules": {
            "all": [
                {"attribute": "customers.amount", "op": "between", "value": [5.05, 100]},
                {"attribute": "customers.born", "op": "on_or_after", "value": "1 year ago"},
                {"not": {"attribute": "customers.seen_at", "op": "after", "value": "now"}},
            ]
        }
    },
    "web-sql": {"sql": "SELECT customer_id FROM orders WHERE channel = 'web'"},
    "composed": {
        "rules": {"any": [{"segment": "buyers"}, {"segment": "web-sql"}]},
        "exclude": {"attribute": "customers.flag", "op": "is_true"},
    },
}

EXPECTED = {
    "buyers": {1, 2, 3, 4, 5, 7},
    "lapsing": {4, 7},
    "spenders-2025": {7},
    "new": {1, 2, 3, 4},
    "web-lovers": {2, 5},
    "store-buyers": {1, 3, 4, 7},
    "top-spend": {1, 2, 4},
    "top-frequency": {1, 4, 7},
    "recent-by-rfm": {3, 4, 7},
    "names": {1, 2, 3, 6, 7},
    "numbers-and-dates": {3, 7},
    "web-sql": {1, 2, 3, 4, 5, 8},
    "composed": {2, 3, 5, 7, 8},
}


def _load(engine: Engine, session: Any = None) -> None:
    for name, data in shop.tables().items():
        if session is not None:
            # Through Spark itself: Ibis 12's PySpark create_table fails on NULL decimals.
            frame = session.createDataFrame(data)
            frame.write.saveAsTable(f"{engine._customer_database}.{name}")
            continue
        engine.backend.create_table(  # type: ignore[attr-defined]
            name, data, database=engine._customer_database, overwrite=True
        )


@pytest.fixture(params=ENGINE_KINDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine of each kind holding the shop."""
    opened = empty_engine(
        request.param, request, tmp_path, duckdb=DuckDBEngineConfig(path="shop.duckdb", threads=2)
    )
    session: Any = request.getfixturevalue("spark_session") if request.param == "spark" else None
    with opened:
        _load(opened, session)
        yield opened


@pytest.mark.slow
def test_same_members_on_every_engine(engine: Engine) -> None:
    definitions = {name: shop.segment(name, **spec) for name, spec in SEGMENTS.items()}
    ctx = CompileContext(
        tables=engine.table,
        data_model=shop.DATA_MODEL,
        segments=definitions,
        as_of=shop.AS_OF,
        timezone="UTC",
        dialect=engine.DIALECT,
    )
    found = {name: ids(segment_members(ctx, name)) for name in SEGMENTS}
    assert found == EXPECTED
    # Explanations agree with the members on every engine too.
    for customer in sorted(shop.ALL):
        result = explain_customer(ctx, "composed", customer)
        assert result.met == (customer in EXPECTED["composed"])

"""A campaign assigns every customer the same sub-audience and group on DuckDB, Spark and
PostgreSQL, run after run.

The same 5,000 customers (string IDs, and integer IDs) are loaded into each engine. A campaign
with an include union, an exclusion, three first-match sub-audiences (a saved segment and two
inline rules) and groups with a control runs twice through
:func:`activator.runtime.campaign.evaluate_audience`, which writes the data-plane tables with
the engine's own CREATE and INSERT. Between the runs the as-of time moves on, so more
customers qualify. Every engine must give exactly the assignment a plain-Python reference
gives (``hashlib.md5`` ranks, the same quotas): equal to one reference means equal to each
other, to the customer.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from activator.compiler import CompileContext
from activator.compiler.campaign import ASSIGNMENTS_TABLE, changes, quotas
from activator.definitions.campaign import CampaignDefinition
from activator.definitions.config import CustomerTable, DataModel, DuckDBEngineConfig
from activator.definitions.segment import SegmentDefinition
from activator.engines.base import Engine
from activator.runtime.campaign import audience_table, evaluate_audience
from tests.fixtures.engines import ENGINE_KINDS, empty_engine

CUSTOMERS = 5_000
JOINED_FROM = datetime(2025, 6, 1)
"""Customer ``i`` joined ``i`` hours after this (naive: wall time in UTC)."""

FIRST_RUN = datetime(2025, 9, 1, tzinfo=UTC)  # 2,208 hours in: customers 1..2,207 joined
SECOND_RUN = datetime(2025, 10, 1, tzinfo=UTC)  # 2,928 hours in: customers 1..2,927

DATA_MODEL = DataModel(customers=CustomerTable(table="customers", key="customer_id"))

SEGMENTS = {
    "joined": {"rules": {"attribute": "customers.joined_at", "op": "before", "value": "now"}},
    "big-spenders": {"rules": {"attribute": "customers.spend", "op": ">=", "value": 900}},
    "unsubscribed": {"rules": {"attribute": "customers.unsubscribed", "op": "is_true"}},
    "gold": {"rules": {"attribute": "customers.tier", "op": "equals", "value": "gold"}},
}

CAMPAIGN = {
    "name": "spring-offer",
    "salt": "spring-2026",
    "audience": {"include": ["joined", "big-spenders"], "exclude": ["unsubscribed"]},
    "sub_audiences": [
        {
            "name": "gold",
            "segment": "gold",
            "groups": [
                {"name": "offer-a", "percent": 70},
                {"name": "offer-b", "percent": 20},
                {"name": "holdout", "percent": 10, "control": True},
            ],
        },
        {
            "name": "france",
            "rules": {"attribute": "customers.country", "op": "equals", "value": "FR"},
            "groups": [
                {"name": "treatment", "percent": 80},
                {"name": "control", "percent": 20, "control": True},
            ],
        },
        {
            "name": "spenders",
            "rules": {"attribute": "customers.spend", "op": ">=", "value": 500},
            "groups": [
                {"name": "a", "percent": 33.33},
                {"name": "b", "percent": 33.33},
                {"name": "c", "percent": 33.34},
            ],
        },
    ],
}

Assignment = tuple[str, str, bool]
"""(sub_audience, treatment_group, control) of one customer."""


def _ident(i: int, key_type: str) -> Any:
    return f"C{i:05d}" if key_type == "string" else i


def _row(i: int) -> dict[str, Any]:
    return {
        "country": ("FR", "DE", "US", "ES", "IT")[i % 5],
        "tier": ("gold", "silver", None, "bronze")[(i * 7) % 4],
        "spend": (i * 37) % 1000,
        "joined_at": JOINED_FROM + timedelta(hours=i),
        "unsubscribed": i % 13 == 0,
    }


def customers(key_type: str) -> pa.Table:
    """The customers: countries, tiers (some NULL), spend, join times, unsubscribes."""
    ids = range(1, CUSTOMERS + 1)
    rows = [_row(i) for i in ids]
    return pa.table(
        {
            "customer_id": pa.array(
                [_ident(i, key_type) for i in ids],
                pa.string() if key_type == "string" else pa.int64(),
            ),
            "country": pa.array([r["country"] for r in rows], pa.string()),
            "tier": pa.array([r["tier"] for r in rows], pa.string()),
            "spend": pa.array([r["spend"] for r in rows], pa.int64()),
            "joined_at": pa.array([r["joined_at"] for r in rows], pa.timestamp("us")),
            "unsubscribed": pa.array([r["unsubscribed"] for r in rows], pa.bool_()),
        }
    )


# -- the reference: the same campaign worked out in plain Python ----------------------------


def _sub_audience(row: dict[str, Any]) -> str:
    if row["tier"] == "gold":
        return "gold"
    if row["country"] == "FR":
        return "france"
    if row["spend"] >= 500:
        return "spenders"
    return "all-remaining"


def _audience(as_of: datetime) -> dict[int, str]:
    """Customer number → sub-audience, for everyone in the audience at ``as_of``."""
    found = {}
    for i in range(1, CUSTOMERS + 1):
        row = _row(i)
        joined = row["joined_at"].replace(tzinfo=UTC) < as_of
        if (joined or row["spend"] >= 900) and not row["unsubscribed"]:
            found[i] = _sub_audience(row)
    return found


def reference(
    definition: CampaignDefinition, key_type: str, runs: list[datetime]
) -> list[dict[Any, Assignment]]:
    """Each run's assignment: earlier customers keep their group; newcomers are ranked by
    ``md5(salt:id)`` hex then ID and fill the quotas in rank order."""
    salt = definition.salt or definition.name
    controls = {(sub, g.name) for sub, groups in definition.parts() for g in groups if g.control}
    kept: dict[Any, Assignment] = {}
    results = []
    for as_of in runs:
        members = {_ident(i, key_type): sub for i, sub in _audience(as_of).items()}
        counts: Counter[tuple[str, str | None]] = Counter()
        for ident, sub in members.items():
            before = kept.get(ident)
            counts[(sub, before[1] if before and before[0] == sub else None)] += 1
        current: dict[Any, Assignment] = {
            ident: kept[ident] for ident, sub in members.items() if ident in kept
        }
        for quota in quotas(definition, counts):
            newcomers = sorted(
                (
                    (hashlib.md5(f"{salt}:{ident}".encode()).hexdigest(), ident)
                    for ident, sub in members.items()
                    if sub == quota.sub_audience and ident not in kept
                ),
            )
            for _, ident in newcomers[quota.first : quota.end]:
                control = (quota.sub_audience, quota.group) in controls
                current[ident] = (quota.sub_audience, quota.group, control)
        assert len(current) == len(members)
        kept = {**kept, **current}
        results.append(current)
    return results


# -- the engines --------------------------------------------------------------------------


def _load(engine: Engine, data: pa.Table, session: Any = None) -> None:
    if session is not None:
        # Through Spark itself, as the compiler's cross-engine test loads the shop.
        session.createDataFrame(data).write.saveAsTable(f"{engine._customer_database}.customers")
        return
    engine.backend.create_table(  # type: ignore[attr-defined]
        "customers", data, database=engine._customer_database, overwrite=True
    )


@pytest.fixture(params=["string", "integer"])
def key_type(request: pytest.FixtureRequest) -> str:
    """The type of the activation ID: it is hashed as text either way."""
    return str(request.param)


@pytest.fixture(params=ENGINE_KINDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path, key_type: str) -> Iterator[Engine]:
    """An engine of each kind holding the customers."""
    opened = empty_engine(
        request.param, request, tmp_path, duckdb=DuckDBEngineConfig(path="c.duckdb", threads=2)
    )
    session: Any = request.getfixturevalue("spark_session") if request.param == "spark" else None
    with opened:
        _load(opened, customers(key_type), session)
        yield opened


def _context(engine: Engine, as_of: datetime) -> CompileContext:
    return CompileContext(
        tables=engine.table,
        data_model=DATA_MODEL,
        segments={
            name: SegmentDefinition.model_validate({"name": name, **spec})
            for name, spec in SEGMENTS.items()
        },
        as_of=as_of,
        timezone="UTC",
        dialect=engine.DIALECT,
    )


def _read(engine: Engine, name: str) -> dict[Any, Assignment]:
    rows = engine.to_pyarrow(engine.dataplane_table(name)).to_pylist()
    found = {
        r["customer_id"]: (r["sub_audience"], r["treatment_group"], r["control"]) for r in rows
    }
    assert len(found) == len(rows), "one row per customer (first match only)"
    return found


@pytest.mark.slow
def test_assignment_is_identical_on_every_engine_and_sticky(engine: Engine, key_type: str) -> None:
    definition = CampaignDefinition.model_validate(CAMPAIGN)
    first_expected, second_expected = reference(definition, key_type, [FIRST_RUN, SECOND_RUN])
    # The data must exercise what is tested: growth, every sub-audience, overlaps.
    assert 2_000 < len(first_expected) < len(second_expected) - 500
    assert {a[0] for a in first_expected.values()} == {
        "gold",
        "france",
        "spenders",
        "all-remaining",
    }

    first = evaluate_audience(
        engine, _context(engine, FIRST_RUN), definition, previous_run=None, run_id="run-1"
    )
    assert first.previous is None
    got_first = _read(engine, audience_table("run-1"))
    assert got_first == first_expected
    sizes = Counter((sub, group) for sub, group, _ in got_first.values())
    assert {(q.sub_audience, q.group): q.target for q in first.quotas} == sizes
    assert all(q.kept == 0 and q.size == q.target for q in first.quotas)

    second = evaluate_audience(
        engine, _context(engine, SECOND_RUN), definition, previous_run="run-1", run_id="run-2"
    )
    got_second = _read(engine, audience_table("run-2"))
    assert got_second == second_expected
    # Sticky: everyone from run 1 is still there, in the same sub-audience and group.
    assert {k: got_second[k] for k in got_first} == got_first
    sizes = Counter((sub, group) for sub, group, _ in got_second.values())
    assert {(q.sub_audience, q.group): q.target for q in second.quotas} == sizes
    assert all(q.size == q.target for q in second.quotas)
    assert sum(q.kept for q in second.quotas) == len(got_first)

    # The assignments table holds each customer once, with the run that assigned them.
    table = engine.to_pyarrow(engine.dataplane_table(ASSIGNMENTS_TABLE)).to_pylist()
    assert len(table) == len(got_second)
    assert {r["customer_id"]: (r["sub_audience"], r["treatment_group"]) for r in table} == {
        k: (s, g) for k, (s, g, _) in got_second.items()
    }
    assert {r["campaign"] for r in table} == {"spring-offer"}
    assert Counter(r["run_id"] for r in table) == {
        "run-1": len(got_first),
        "run-2": len(got_second) - len(got_first),
    }
    # Incremental sends exactly the newcomers.
    assert second.previous is not None
    sent = engine.to_pyarrow(changes(second.current, second.previous, "customer_id", "incremental"))
    assert sorted(sent["customer_id"].to_pylist()) == sorted(set(got_second) - set(got_first))
    assert set(sent["action"].to_pylist()) == {"add"}

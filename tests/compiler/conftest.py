"""Fixtures for the compiler tests: the shop in an in-memory DuckDB, and an evaluator."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

import ibis
import pytest
from ibis.backends import BaseBackend

from activator.compiler import CompileContext, segment_members
from activator.definitions.config import DataModel
from activator.definitions.segment import SegmentDefinition
from tests.compiler import shop


def duckdb_with(tables: Mapping[str, Any], *, threads: int = 2) -> BaseBackend:
    """An in-memory DuckDB (through Ibis) holding ``tables`` (Arrow tables)."""
    con = ibis.duckdb.connect(threads=threads)
    for name, data in tables.items():
        con.create_table(name, data)
    return con


def ids(table: Any) -> set[Any]:
    """The single column of a members table, as a set (tests only: the sets are tiny)."""
    arrow = table.to_pyarrow()
    assert arrow.num_columns == 1
    values = arrow.column(0).to_pylist()
    assert len(values) == len(set(values)), "members must be distinct"
    return set(values)


class Evaluator:
    """Members of ad-hoc segments over one backend."""

    def __init__(
        self,
        backend: BaseBackend,
        *,
        data_model: DataModel = shop.DATA_MODEL,
        segments: Mapping[str, SegmentDefinition] | None = None,
        as_of: datetime = shop.AS_OF,
        timezone: str = "UTC",
        dialect: str = "duckdb",
    ) -> None:
        self.backend = backend
        self.data_model = data_model
        self.segments = dict(segments or {})
        self.as_of = as_of
        self.timezone = timezone
        self.dialect = dialect

    def context(self, **changes: Any) -> CompileContext:
        values: dict[str, Any] = {
            "tables": self.backend.table,
            "data_model": self.data_model,
            "segments": self.segments,
            "as_of": self.as_of,
            "timezone": self.timezone,
            "dialect": self.dialect,
        }
        values.update(changes)
        return CompileContext(**values)

    def members(self, **spec: Any) -> set[Any]:
        """Members of a segment given as keyword arguments (``rules=...``, ``exclude=...``)."""
        definition = shop.segment("under-test", **spec)
        self.segments["under-test"] = definition
        return ids(segment_members(self.context(), "under-test"))

    def rule(self, condition: dict[str, Any], **changes: Any) -> set[Any]:
        """Members of a segment made of one condition."""
        self.segments["under-test"] = shop.segment("under-test", rules=condition)
        return ids(segment_members(self.context(**changes), "under-test"))


@pytest.fixture(scope="module")
def shop_backend() -> Iterator[BaseBackend]:
    """The shop in an in-memory DuckDB, shared by a module's tests (they only read)."""
    con = duckdb_with(shop.tables())
    yield con
    con.disconnect()


@pytest.fixture
def shop_eval(shop_backend: BaseBackend) -> Evaluator:
    """An evaluator over the shop, as of ``shop.AS_OF`` in UTC."""
    return Evaluator(shop_backend)


EvaluatorFactory = Callable[..., Evaluator]

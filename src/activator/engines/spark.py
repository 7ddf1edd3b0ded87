"""Spark, through PySpark: a local session or a cluster master URL.

PySpark is an optional extra, imported only when a Spark engine is opened, so the rest of
Activator never pays for (or needs) it. The data-plane schema is a Spark database.
"""

from __future__ import annotations

__all__ = ["SparkEngine"]

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis.expr.types as ir
import pyarrow as pa
from ibis.backends import BaseBackend

from activator.definitions.config import SparkEngineConfig
from activator.engines.base import Engine
from activator.errors import MissingExtraError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Applied unless the user's ``conf`` says otherwise. UTC keeps "now" and date boundaries
# independent of the machine; the UI is useless to a CLI run and takes a port.
_DEFAULT_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
}


class SparkEngine(Engine):
    """A Spark session; customer tables in a Spark database, Activator's in another.

    Args:
        config: the ``spark`` engine section.
        workspace_root: the workspace folder.
        dataplane_schema: Spark database holding Activator's tables.
        read_only: accepted for symmetry; Spark has no read-only sessions, so writes are
            refused by the engine object instead.
        session: an existing SparkSession to use (tests, notebooks); it is left running on
            close. By default a session is built from ``master`` and ``conf`` and stopped on
            close.
    """

    NAME = "spark"
    DIALECT = "spark"
    SUPPORTS_SCHEMAS = True
    SUPPORTS_TRANSACTIONS = False
    SINGLE_WRITER = False
    EMBEDDED = False

    config: SparkEngineConfig

    def __init__(
        self,
        config: SparkEngineConfig,
        *,
        workspace_root: Path,
        dataplane_schema: str = "activator",
        read_only: bool = False,
        session: SparkSession | None = None,
    ) -> None:
        self._session = session
        self._owns_session = False
        super().__init__(
            config,
            workspace_root=workspace_root,
            dataplane_schema=dataplane_schema,
            read_only=read_only,
        )

    @property
    def session(self) -> SparkSession:
        """The SparkSession in use."""
        assert self._session is not None, "connected in the constructor"
        return self._session

    @property
    def _customer_database(self) -> str | None:
        return self.config.database or "default"

    def _connect(self) -> BaseBackend:
        try:
            # Both halves of the extra: the Ibis backend and PySpark itself.
            import ibis.backends.pyspark
            from pyspark.sql import SparkSession
        except ImportError:
            raise MissingExtraError("spark", "pyspark") from None
        import ibis

        if self._session is None:
            builder = SparkSession.builder.master(self.config.master).appName("activator")
            for key, value in {**_DEFAULT_CONF, **self.config.conf}.items():
                builder = builder.config(key, value)
            # getOrCreate hands back a running session if there is one: only stop our own.
            self._owns_session = SparkSession.getActiveSession() is None
            self._session = builder.getOrCreate()
        else:
            # A borrowed session still gets UTC: results must not depend on the machine.
            time_zone = self.config.conf.get("spark.sql.session.timeZone", "UTC")
            self._session.conf.set("spark.sql.session.timeZone", time_zone)
        return ibis.pyspark.connect(self._session)

    def to_batches(self, expr: ir.Expr, *, rows_per_batch: int = 100_000) -> pa.RecordBatchReader:
        """Stream the result as Arrow record batches, one partition at a time.

        Ibis's PySpark backend collects the whole result first; this pulls partitions to the
        driver one by one (``toLocalIterator``), so memory stays bounded by the largest
        partition plus one batch. Rows pass through Python objects, which is slower than
        Arrow transfer: use it for exports, not for sizing. Timestamps follow PySpark's
        conversion, i.e. the machine's local zone: run drivers in UTC.
        """
        import pandas as pd  # type: ignore[import-untyped]
        from ibis.formats.pandas import PandasData
        from ibis.formats.pyarrow import PyArrowData

        table = expr.as_table()
        schema = table.schema()
        arrow_schema = schema.to_pyarrow()
        frame = self.session.sql(self.compile(table))
        columns = list(schema.names)

        def batches() -> Iterator[pa.RecordBatch]:
            rows: list[Any] = []
            for row in frame.toLocalIterator(prefetchPartitions=False):
                rows.append(tuple(row))
                if len(rows) >= rows_per_batch:
                    yield _to_batch(rows)
                    rows = []
            if rows:
                yield _to_batch(rows)

        def _to_batch(rows: list[Any]) -> pa.RecordBatch:
            data = PandasData.convert_table(
                pd.DataFrame.from_records(rows, columns=columns), schema
            )
            arrow = PyArrowData.convert_table(
                pa.Table.from_pandas(data, preserve_index=False), schema
            )
            return arrow.cast(arrow_schema).combine_chunks().to_batches()[0]

        return pa.RecordBatchReader.from_batches(arrow_schema, batches())

    def _disconnect(self, backend: BaseBackend) -> None:
        # Ibis's disconnect stops the session, which is not ours to stop when borrowed.
        if self._owns_session:
            backend.disconnect()

    def _release(self) -> None:
        self._session = None

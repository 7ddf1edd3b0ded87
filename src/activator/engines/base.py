"""The engine abstraction: one adapter per Ibis backend, capabilities declared as data.

Planners read the class attributes (``SINGLE_WRITER``, ``SUPPORTS_TRANSACTIONS`` ...) and
never test which engine they hold. Customer tables are read where the data model says;
Activator's own tables live in a separate *data-plane* schema (default ``activator``).
"""

from __future__ import annotations

__all__ = ["Engine"]

from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import sqlglot.expressions as sge
from ibis.backends import BaseBackend

from activator.errors import EngineError


class Engine(ABC):
    """An open connection to the user's engine, through an Ibis backend.

    Subclasses set the capability attributes and implement :meth:`_connect`. The connection
    is opened by the constructor and released by :meth:`close` (or the ``with`` block).

    Args:
        config: the engine section of ``activator.yaml``.
        workspace_root: the workspace folder; relative paths in the config are resolved
            against it.
        dataplane_schema: schema (database, in Ibis's words) holding Activator's own tables.
        read_only: open without write access where the engine can enforce it.
    """

    NAME: ClassVar[str]
    """The ``type`` of the engine in ``activator.yaml``."""

    DIALECT: ClassVar[str]
    """SQLGlot dialect of the SQL the engine runs."""

    SUPPORTS_SCHEMAS: ClassVar[bool] = True
    """Tables can be grouped in schemas, so the data plane can have its own."""

    SUPPORTS_TRANSACTIONS: ClassVar[bool] = False
    """Several writes can be committed atomically."""

    SINGLE_WRITER: ClassVar[bool] = False
    """Only one process may write at a time; writers take an exclusive lock."""

    EMBEDDED: ClassVar[bool] = False
    """Runs inside the Activator process (no server)."""

    def __init__(
        self,
        config: Any,
        *,
        workspace_root: Path,
        dataplane_schema: str = "activator",
        read_only: bool = False,
    ) -> None:
        self.config = config
        self.workspace_root = Path(workspace_root)
        self.dataplane_schema = dataplane_schema
        self.read_only = read_only
        self._backend: BaseBackend | None = self._connect()

    # -- to implement ---------------------------------------------------------------------

    @abstractmethod
    def _connect(self) -> BaseBackend:
        """Open the Ibis backend; raise :class:`EngineError` with the reason on failure."""

    @property
    def _customer_database(self) -> str | None:
        """Schema (Ibis ``database``) holding the customer tables; None for the default."""
        return None

    def _execute_ddl(self, sql: str) -> None:
        """Run a statement that returns nothing."""
        self.backend.raw_sql(sql)

    def _disconnect(self, backend: BaseBackend) -> None:
        """Close the backend's connection."""
        backend.disconnect()

    def _release(self) -> None:  # noqa: B027  (optional hook: most engines hold nothing else)
        """Free what the engine holds besides the backend (locks, sessions)."""

    # -- the interface ----------------------------------------------------------------------

    @property
    def backend(self) -> BaseBackend:
        """The Ibis backend; raises :class:`EngineError` once the engine is closed."""
        if self._backend is None:
            raise EngineError(f"the {self.NAME} engine is closed")
        return self._backend

    def table(self, name: str) -> ir.Table:
        """A customer-data table (or view) by name.

        Raises:
            EngineError: the table does not exist.
        """
        if name not in self.list_tables():
            raise EngineError(
                f"table {name!r} not found in the {self.NAME} engine{self._where_customers()}",
                hint="check data_model in activator.yaml, or the engine's sources",
            )
        return self.backend.table(name, database=self._customer_database)

    def list_tables(self) -> list[str]:
        """Names of the customer-data tables and views, sorted."""
        return _without_ibis_temporaries(self.backend.list_tables(database=self._customer_database))

    def schema_of(self, table: str) -> ibis.Schema:
        """The Ibis schema (column name → type) of a customer-data table."""
        return self.table(table).schema()

    def ensure_dataplane(self) -> None:
        """Create the data-plane schema if it does not exist (idempotent)."""
        self._check_writable("create the data-plane schema")
        if self.dataplane_schema in self.backend.list_databases():
            return
        # Not ``create_database(force=True)``: on DuckDB Ibis spells that CREATE OR REPLACE
        # SCHEMA, which would drop an existing data plane.
        create = sge.Create(
            this=sge.to_identifier(self.dataplane_schema, quoted=True),
            kind="SCHEMA",
            exists=True,
        )
        self._execute_ddl(create.sql(self.DIALECT))

    def list_dataplane_tables(self) -> list[str]:
        """Names of the tables in the data-plane schema, sorted; empty if it does not exist."""
        if self.dataplane_schema not in self.backend.list_databases():
            return []
        return _without_ibis_temporaries(self.backend.list_tables(database=self.dataplane_schema))

    def dataplane_table(self, name: str) -> ir.Table:
        """One of Activator's own tables, from the data-plane schema."""
        return self.backend.table(name, database=self.dataplane_schema)

    def create_dataplane_table(
        self, name: str, obj: ir.Table | pa.Table, *, overwrite: bool = False
    ) -> ir.Table:
        """Write a table into the data-plane schema (created if needed).

        Args:
            name: table name inside the data-plane schema.
            obj: an Ibis table expression (computed in the engine) or an Arrow table.
            overwrite: replace the table if it exists; otherwise an existing table is an error.

        Returns:
            The new table.
        """
        self.ensure_dataplane()
        return self.backend.create_table(
            name, obj, database=self.dataplane_schema, overwrite=overwrite
        )

    def create_staging_table(self, name: str, obj: ir.Table) -> ir.Table:
        """Materialise an intermediate result of a run (replacing any table of that name).

        Nothing needs it after the run's process: a resumed run computes it again. The
        default is a data-plane table; engines with cheaper temporary tables use those.
        """
        return self.create_dataplane_table(name, obj, overwrite=True)

    def drop_staging_table(self, name: str) -> None:
        """Drop a table made by :meth:`create_staging_table` (nothing if it is gone)."""
        self.backend.drop_table(name, database=self.dataplane_schema, force=True)

    def to_pyarrow(self, expr: ir.Expr) -> pa.Table:
        """Run an expression and return the whole result as an Arrow table."""
        return self.backend.to_pyarrow(expr)

    def to_batches(self, expr: ir.Expr, *, rows_per_batch: int = 100_000) -> pa.RecordBatchReader:
        """Run an expression and stream the result as Arrow record batches.

        Memory stays bounded by about one batch on the Activator side, whatever the result's
        size.
        """
        return self.backend.to_pyarrow_batches(expr, chunk_size=rows_per_batch)

    def stream(self, expr: ir.Expr, *, rows_per_batch: int = 100_000) -> pa.RecordBatchReader:
        """Like :meth:`to_batches`, on a session of its own where the engine offers one, so
        that statements run meanwhile (a delivery loading an engine table) cannot disturb the
        stream. Reads tables, not the main session's temporary views."""
        return self.to_batches(expr, rows_per_batch=rows_per_batch)

    def execute(self, sql: str) -> None:
        """Run one statement that returns nothing (DDL, DML, ``BEGIN``/``COMMIT``), in the
        engine's dialect."""
        self._check_writable("run a statement")
        self._execute_ddl(sql)

    def compile(self, expr: ir.Expr) -> str:
        """The SQL the engine would run for an expression (for plans and debugging)."""
        return str(self.backend.compile(expr))

    def close(self) -> None:
        """Disconnect and release locks; safe to call more than once."""
        backend, self._backend = self._backend, None
        try:
            if backend is not None:
                self._disconnect(backend)
        finally:
            self._release()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._backend is None else "open"
        return f"<{type(self).__name__} {state}>"

    # -- helpers for subclasses -------------------------------------------------------------

    def _check_writable(self, action: str) -> None:
        if self.read_only:
            raise EngineError(
                f"cannot {action}: the {self.NAME} engine was opened read-only",
                hint="open it for writing (no other process may hold it)",
            )

    def _where_customers(self) -> str:
        database = self._customer_database
        return f" (schema {database!r})" if database else ""


def _without_ibis_temporaries(names: list[str]) -> list[str]:
    # Ibis registers in-memory tables as temporary ``ibis_*`` tables or views, which some
    # engines list in every schema; they are not data.
    return sorted(name for name in names if not name.startswith("ibis_"))

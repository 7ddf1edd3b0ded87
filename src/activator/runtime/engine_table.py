"""Tables in the workspace's engine: stage with load markers, publish in one transaction.

Every unit is one batch of rows, inserted into a per-task **staging table**
``<data plane>._stage_<hash>`` together with a row in the **load-marker table**
``<data plane>._loads``, in one engine transaction. Whether a unit arrived is therefore a
question the engine answers itself: a marker row exists exactly when the unit's rows do.

Publishing moves the staged rows into the target in one more transaction and records the
task's publish marker (unit ``run:task:-1``) in it:

* ``append``: ``INSERT INTO target SELECT ... FROM stage``;
* ``upsert``: ``UPDATE target ... FROM (last staged row per key)`` then ``INSERT`` the keys
  the target lacks (portable: no unique index, no ``MERGE`` or ``ON CONFLICT`` needed);
* ``replace``: a new table is created from the stage beside the target and takes its place
  by renames (target → old, new → target, drop old). Readers see the old table or the new
  one, never an empty or half-filled one.

A publish that finds its marker does nothing, so publishing twice is harmless. ``abort``
leaves the stage for the resume.

The connector speaks to the engine through its Ibis backend with portable SQL (SQLGlot
trees rendered in the engine's dialect). It needs ``Engine.SUPPORTS_TRANSACTIONS``; an engine
without transactions is refused with a configuration error. Rows travel as Arrow: through
Ibis's in-memory tables (zero-copy on DuckDB), or ``COPY`` when the backend's client is
psycopg (Ibis would insert row by row there).
"""

from __future__ import annotations

__all__ = [
    "LOADS_TABLE",
    "STAGE_PREFIX",
    "EngineTableConnector",
    "EngineTableDelivery",
]

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import ibis
import numpy as np
import pyarrow as pa
import sqlglot.expressions as sge

from activator.definitions.table import EngineTableDestination
from activator.destinations.base import Check, Connector, Delivery, DeliveryContext, Unit, UnitLog
from activator.engines.base import Engine
from activator.errors import DestinationError, EngineError

STAGE_PREFIX = "_stage_"
"""Staging tables (in the data-plane schema) are named this plus a hash of (run, task)."""

LOADS_TABLE = "_loads"
"""The load-marker table, in the data-plane schema."""

_POSITION = "_activator_pos"
"""Staging column ordering the rows as delivered (the last row of a key wins)."""

_SWAP_PREFIX = "_activator_"
"""Prefix of the short-lived ``new``/``old`` tables of a replace, beside the target."""

_PUBLISH_INDEX = -1
_MARKER_COLUMNS = (
    "unit_id", "run_id", "task", "unit_index", "stage", "first_row", "end_row", "rows",
)  # fmt: skip
_UNIT_SPAN = 1 << 32
"""Positions are ``unit index * _UNIT_SPAN + row``: ordered, and unique without a counter."""

# Errors of the drivers that a retry cannot fix (bad data, missing objects, constraints).
# PostgreSQL says so by SQLSTATE class; DuckDB by exception class.
_CONFIGURATION_CLASSES = frozenset({"22", "23", "28", "42", "3D", "3F", "0A", "2B"})
_DUCKDB_CONFIGURATION = frozenset(
    {
        "BinderException",
        "CatalogException",
        "ConstraintException",
        "ConversionException",
        "DependencyException",
        "InvalidInputException",
        "NotImplementedException",
        "OutOfRangeException",
        "ParserException",
        "PermissionException",
        "TypeMismatchException",
    }
)


class EngineTableConnector(Connector):
    """A table in the workspace's engine as a destination.

    The run opens the engine and hands it over; the connector never closes it.

    Args:
        definition: The destination's definition.
        engine: The workspace's open engine.
        batch_rows: Source rows per unit (one insert and one transaction each).
    """

    def __init__(
        self, definition: EngineTableDestination, engine: Engine, *, batch_rows: int = 50_000
    ) -> None:
        self.definition = definition
        self.engine = engine
        self.batch_rows = batch_rows
        self._schema: str | None = None

    def __repr__(self) -> str:
        return f"EngineTableConnector({self.definition.name}, {self.engine.NAME})"

    def refusal(self) -> str | None:
        """Why the engine cannot hold engine tables (a missing capability), or None."""
        if not self.engine.SUPPORTS_TRANSACTIONS:
            return (
                f"the {self.engine.NAME} engine has no transactions: engine tables need them "
                "(rows and load markers commit together, the publish is one transaction)"
            )
        return None

    def _refuse(self) -> None:
        reason = self.refusal()
        if reason is not None:
            raise DestinationError(
                f"destination {self.definition.name}: {reason}",
                hint="use a file or PostgreSQL destination",
                attribution="configuration",
            )

    @property
    def schema(self) -> str:
        """The target's schema: the definition's, or the engine's current one (the customer
        data's), asked once."""
        if self._schema is None:
            found = self.definition.schema_ or self.engine.backend.current_database
            if not found:  # PostgreSQL: no schema of the search path exists
                raise DestinationError(
                    f"destination {self.definition.name}: the {self.engine.NAME} engine has no "
                    "current schema to put the table in",
                    hint="set schema in the destination, or create the engine's schema",
                    attribution="configuration",
                )
            self._schema = str(found)
        return self._schema

    @property
    def target(self) -> str:
        """``schema.table``, for messages."""
        return f"{self.schema}.{self.definition.table}"

    def error(self, exc: Exception, doing: str) -> DestinationError:
        """A :class:`DestinationError` for a failed engine statement, attributed by its kind."""
        text = str(exc).strip() or type(exc).__name__
        return DestinationError(
            f"destination {self.definition.name} ({self.engine.NAME} table {self.target}): "
            f"{doing} failed: {text}",
            attribution=_attribution(exc),
        )

    def check(self) -> list[Check]:
        """Check the engine's capabilities, the schemas and table, then a probe table.

        One :class:`Check` per step; the steps stop at the first one the next ones need.
        """
        reason = self.refusal()
        if reason is not None:
            return [Check("engine", False, f"{reason}; use a file or PostgreSQL destination")]
        checks = [Check("engine", True, f"the {self.engine.NAME} engine has transactions")]
        session = _Session(self.engine)
        try:
            self.engine.ensure_dataplane()
        except EngineError as exc:
            return [*checks, Check("data plane", False, exc.message)]
        except Exception as exc:
            if not _is_driver_error(exc):
                raise
            message = self.error(exc, "creating the data-plane schema").message
            return [*checks, Check("data plane", False, message)]
        plane = self.engine.dataplane_schema
        checks.append(Check("data plane", True, f"schema {plane} is there for the staging"))
        try:
            if self.schema not in self.engine.backend.list_databases():
                return [*checks, Check("schema", False, f"schema {self.schema} does not exist")]
            checks.append(Check("schema", True, f"schema {self.schema} exists"))
            checks.append(self._check_table(session))
            checks.append(self._probe(session))
        except Exception as exc:
            if not _is_driver_error(exc):
                raise
            checks.append(Check("query", False, self.error(exc, "checking").message))
        return checks

    def _check_table(self, session: _Session) -> Check:
        d = self.definition
        kind = session.table_kind(self.schema, d.table)
        if kind is None:
            return Check(
                "table",
                d.create,
                f"{self.target} does not exist; it is created at the first publish"
                if d.create
                else f"{self.target} does not exist and create is false: create the table or "
                "set create: true",
            )
        if kind != "BASE TABLE":
            return Check("table", False, f"{self.target} is not a table ({kind.lower()})")
        columns = session.columns(self.schema, d.table)
        missing = [k for k in d.keys if k not in columns]
        if d.mode == "upsert" and missing:
            return Check("table", False, f"{self.target} has no key columns {missing}")
        return Check("table", True, f"{self.target} exists")

    def _probe(self, session: _Session) -> Check:
        name = f"_probe_{uuid.uuid4().hex[:12]}"
        table = _table(self.engine.dataplane_schema, name)
        try:
            with session.transaction(commit=False):
                session.execute(
                    sge.Create(
                        kind="TABLE",
                        this=sge.Schema(this=table, expressions=[_column_def("id", "INT")]),
                    )
                )
                session.execute(sge.insert(sge.values([(sge.convert(1),)]), table))
                session.execute(sge.Drop(this=table, kind="TABLE"))
        except Exception as exc:
            if not _is_driver_error(exc):
                raise
            return Check("probe table", False, self.error(exc, "creating a probe table").message)
        return Check("probe table", True, f"created, filled and dropped {name} (rolled back)")

    def open(self, context: DeliveryContext, log: UnitLog) -> EngineTableDelivery:
        """Make sure the data plane and the load-marker table exist; start or resume the task.

        Raises:
            DestinationError: the engine has no transactions, or cannot be written.
        """
        self._refuse()
        return EngineTableDelivery(self, context, log)


@dataclass
class _Plan:
    """What the first batch of a task decided: the delivered columns."""

    columns: list[str]


class EngineTableDelivery(Delivery):
    """One task's load into one engine table (see the module docstring)."""

    def __init__(self, connector: EngineTableConnector, context: DeliveryContext, log: UnitLog):
        self.connector = connector
        self.definition = connector.definition
        self.engine = connector.engine
        self.context = context
        self.log = log
        self.batch_rows = connector.batch_rows
        self.session = _Session(self.engine)
        digest = hashlib.sha256(f"{context.run_id}\0{context.task}".encode()).hexdigest()[:16]
        self.stage = STAGE_PREFIX + digest
        self._digest = digest
        self._plan: _Plan | None = None
        plane = self.engine.dataplane_schema
        self._loads = _table(plane, LOADS_TABLE)
        self._stage = _table(plane, self.stage)
        self._target = _table(connector.schema, self.definition.table)
        try:
            self.engine.ensure_dataplane()
            with self.session.transaction():
                self.session.execute(_loads_ddl(self._loads))
            row = self.session.one(
                sge.select(sge.func("coalesce", sge.func("max", _col("unit_index")) + 1, 0))
                .from_(self._loads)
                .where(self._this_task().and_(_unit_rows()))
            )
        except EngineError as exc:
            raise DestinationError(
                f"destination {self.definition.name}: {exc.message}",
                hint=exc.hint,
                attribution="configuration",
            ) from exc
        except Exception as exc:
            if not _is_driver_error(exc):
                raise
            raise connector.error(exc, "creating the load-marker table") from exc
        self._next_index = int(row[0])

    # --- helpers --------------------------------------------------------------------------

    def _this_task(self) -> sge.Condition:
        return (
            _col("run_id")
            .eq(sge.convert(self.context.run_id))
            .and_(_col("task").eq(sge.convert(self.context.task)))
        )

    def _config(self, message: str, *, hint: str | None = None) -> DestinationError:
        return DestinationError(
            f"destination {self.definition.name}: {message}", hint=hint, attribution="configuration"
        )

    def _marker(self, unit_id: str, index: int, first: int, end: int, rows: int) -> sge.Insert:
        values = [
            unit_id, self.context.run_id, self.context.task, index, self.stage, first, end, rows,
        ]  # fmt: skip
        return sge.insert(
            sge.values([tuple(sge.convert(v) for v in values)]),
            self._loads,
            columns=[_ident(c) for c in _MARKER_COLUMNS],
        )

    # --- the contract ---------------------------------------------------------------------

    def settle(self, unit: Unit) -> bool:
        """Ask the engine: the unit's marker row exists exactly when its rows were committed."""
        try:
            count, rows = self.session.one(
                sge.select(sge.func("count", sge.Star()), sge.func("max", _col("rows")))
                .from_(self._loads)
                .where(_col("unit_id").eq(sge.convert(unit.unit_id)))
            )
        except Exception as exc:
            if not _is_driver_error(exc):
                raise
            raise self.connector.error(exc, f"settling unit {unit.index}") from exc
        if not count:
            return False
        unit.rows = int(rows)
        unit.detail.update({"table": self.connector.target, "stage": self.stage})
        self.log.delivered(unit)
        return True

    def write(self, batch: pa.RecordBatch, first_row: int, end_row: int) -> None:
        """Insert the batch into the stage and record its marker, in one transaction."""
        unit = Unit(
            self._next_index,
            self.context.unit_id(self._next_index),
            first_row,
            end_row,
            rows=batch.num_rows,
            detail={"table": self.connector.target, "stage": self.stage},
        )
        self._check_keys(batch)
        plan = self._plan
        try:
            with self.session.transaction():
                if plan is None:
                    plan = self._prepare(batch.schema)
                if list(batch.schema.names) != plan.columns:
                    raise self._config(
                        f"batch columns {batch.schema.names} differ from the first batch's "
                        f"{plan.columns}"
                    )
                self.session.load(
                    self.engine.dataplane_schema, self.stage, _positioned(batch, unit.index)
                )
                self.session.execute(
                    self._marker(unit.unit_id, unit.index, first_row, end_row, batch.num_rows)
                )
                self.log.sending(unit)
        except Exception as exc:
            if not _is_driver_error(exc):
                raise
            raise self.connector.error(exc, f"loading unit {unit.index}") from exc
        self._plan = plan
        self._next_index += 1
        self.log.delivered(unit)

    def flush(self) -> None:
        """Nothing is held back: every batch was its own unit."""

    def _check_keys(self, batch: pa.RecordBatch) -> None:
        """Upsert matches rows by key: a null key would match nothing, and repeat each run."""
        if self.definition.mode != "upsert":
            return
        for key in self.definition.keys:
            if key not in batch.schema.names:
                continue  # named by _prepare, with the delivered columns
            nulls = batch.column(key).null_count
            if nulls:
                raise self._config(
                    f"{nulls} delivered rows have no value in key column {key!r}: upsert "
                    "cannot match them",
                    hint="filter them out in the segment, or map a key that is always set",
                )

    def _prepare(self, schema: pa.Schema) -> _Plan:
        """Check the delivered columns against the target; create the stage when missing."""
        d = self.definition
        columns = list(schema.names)
        duplicates = sorted({c for c in columns if columns.count(c) > 1})
        if duplicates or _POSITION in columns or "" in columns:
            raise self._config(
                f"the delivered columns cannot be table columns: duplicated {duplicates}"
                + (f", reserved {_POSITION}" if _POSITION in columns else "")
                + (", an empty name" if "" in columns else ""),
                hint="rename them in the activation's attribute mapping",
            )
        target_schema = self.connector.schema
        kind = self.session.table_kind(target_schema, d.table)
        if kind is not None and kind != "BASE TABLE":
            raise self._config(f"{self.connector.target} is not a table ({kind.lower()})")
        missing_keys = [k for k in d.keys if k not in columns]
        if missing_keys and d.mode == "upsert":
            raise self._config(
                f"keys {missing_keys} are not among the delivered columns {columns}",
                hint="map them in the activation's attributes, or fix keys",
            )
        existing = self.session.columns(target_schema, d.table) if kind is not None else []
        if kind is not None:
            absent = [c for c in columns if c not in existing]
            if absent:
                raise self._config(
                    f"table {self.connector.target} has no columns {absent}",
                    hint="add them to the table (ALTER TABLE ... ADD COLUMN), or change the "
                    "activation's attribute mapping",
                )
        staged = self.session.columns(self.engine.dataplane_schema, self.stage)
        if staged:
            # A resumed task: the stage was built by the first attempt.
            lacking = [c for c in columns if c not in staged]
            if lacking:
                raise self._config(
                    f"the staging table {self.stage} of this run lacks columns {lacking} "
                    "(the mapping changed since the run started)",
                    hint="start a new run",
                )
            return _Plan(columns)
        if self._next_index:
            raise self._lost(f"the staging table {self._stage_name} of this run is gone")
        if kind is None and not d.create:
            raise self._config(
                f"table {self.connector.target} does not exist",
                hint="create it, or set create: true to let Activator create it",
            )
        self.session.execute(self._stage_ddl(schema, existing))
        self.log.event("staging table created", table=self.connector.target, stage=self.stage)
        return _Plan(columns)

    def _stage_ddl(self, schema: pa.Schema, existing: list[str]) -> sge.Create:
        """The stage: the target's own column types when it exists, else from Arrow's."""
        position = sge.Cast(this=sge.Null(), to=sge.DataType.build("BIGINT"))
        if existing:
            # A replace rebuilds the whole table, so it stages every column of the target.
            wanted = existing if self.definition.mode == "replace" else list(schema.names)
            select = (
                sge.select(sge.alias_(position, _POSITION, quoted=True), *(_col(c) for c in wanted))
                .from_(self._target)
                .where(sge.false())
            )
            return sge.Create(kind="TABLE", this=self._stage, expression=select)
        try:
            defs = ibis.Schema.from_pyarrow(_portable(schema)).to_sqlglot_column_defs(
                self.engine.DIALECT
            )
        except Exception as exc:
            raise self._config(
                f"cannot create {self.connector.target}: no {self.engine.NAME} type for some "
                f"delivered columns ({exc})",
                hint="create the table yourself, or cast these columns to text in the "
                "attribute mapping",
            ) from None
        return sge.Create(
            kind="TABLE",
            this=sge.Schema(
                this=self._stage, expressions=[_column_def(_POSITION, "BIGINT"), *defs]
            ),
        )

    # --- publish --------------------------------------------------------------------------

    def publish(self, units: list[Unit]) -> dict[str, Any]:
        """Move the staged rows into the target in one transaction (idempotent)."""
        d = self.definition
        publish_id = self.context.unit_id(_PUBLISH_INDEX)
        summary: dict[str, Any] = {"table": self.connector.target, "mode": d.mode}
        try:
            with self.session.transaction():
                done = self.session.rows(
                    sge.select(_col("rows"))
                    .from_(self._loads)
                    .where(_col("unit_id").eq(sge.convert(publish_id)))
                )
                if done:
                    self.session.execute(sge.Drop(this=self._stage, kind="TABLE", exists=True))
                    return {**summary, "rows": int(done[0][0]), "already_published": True}
                rows = self._verify_stage(units)
                summary.update(self._move())
                summary["rows"] = rows
                end = max((u.end_row for u in units), default=0)
                self.session.execute(self._marker(publish_id, _PUBLISH_INDEX, 0, end, rows))
                # The unit markers served the resume; the publish marker now stands for them.
                self.session.execute(
                    sge.delete(self._loads, where=self._this_task().and_(_unit_rows()))
                )
                self.session.execute(sge.Drop(this=self._stage, kind="TABLE", exists=True))
        except Exception as exc:
            if not _is_driver_error(exc):
                raise
            raise self.connector.error(exc, "publishing") from exc
        self.log.event("published", **summary)
        return summary

    def _verify_stage(self, units: list[Unit]) -> int:
        """The stage must hold exactly the units the ledger delivered; their row total."""
        staged: dict[str, int] = dict(
            self.session.rows(
                sge.select(_col("unit_id"), _col("rows"))
                .from_(self._loads)
                .where(self._this_task().and_(_unit_rows()))
            )
        )
        expected = {u.unit_id for u in units}
        lost = sorted(expected - set(staged))
        if lost:
            raise self._lost(f"the staged rows of units {lost[:5]} are gone")
        total = int(sum(staged.values()))
        in_stage = 0
        if self.session.columns(self.engine.dataplane_schema, self.stage):
            count = sge.select(sge.func("count", sge.Star())).from_(self._stage)
            in_stage = int(self.session.one(count)[0])
        if in_stage != total:
            raise self._lost(
                f"the staging table {self._stage_name} holds {in_stage} rows, not the {total} "
                "the load markers recorded"
            )
        unknown = sorted(set(staged) - expected)
        if unknown:
            raise self._config(
                f"the staging table {self.stage} holds units the ledger does not know: "
                f"{unknown[:5]}",
                hint="start a new run",
            )
        return total

    def _lost(self, what: str) -> DestinationError:
        return self._config(
            f"{what} (dropped by hand?): publishing would load only part of the rows",
            hint="start a new run",
        )

    @property
    def _stage_name(self) -> str:
        return f"{self.engine.dataplane_schema}.{self.stage}"

    def _move(self) -> dict[str, Any]:
        d = self.definition
        s = self.session
        staged = [c for c in s.columns(self.engine.dataplane_schema, self.stage) if c != _POSITION]
        kind = s.table_kind(self.connector.schema, d.table)
        if not staged:
            if kind is None or d.mode != "replace":
                return {"affected": 0, "created": False}  # nothing delivered, nothing to copy
            # A replace with no rows delivered: the new table is an empty one like the target.
            staged = s.columns(self.connector.schema, d.table)
            s.execute(self._stage_ddl(pa.schema([]), staged))
        ordered = (
            sge.select(*(_col(c) for c in staged)).from_(self._stage).order_by(_col(_POSITION))
        )
        if kind is None:
            if not d.create:
                raise self._config(f"table {self.connector.target} does not exist")
            if d.mode == "upsert":  # a new table holds each key once, like after an upsert
                ordered = _latest_per_key(self._stage, staged, d.keys)
            s.execute(sge.Create(kind="TABLE", this=self._target, expression=ordered))
            return {"affected": _count(s, ordered), "created": True}
        affected = _count(s, ordered)
        if d.mode == "append":
            s.execute(sge.insert(ordered, self._target, columns=[_ident(c) for c in staged]))
        elif d.mode == "replace":
            self._swap(ordered)
        else:
            affected = self._upsert(staged)
        return {"affected": affected, "created": False}

    def _swap(self, ordered: sge.Select) -> None:
        """Build the new table beside the target, then trade places by renames."""
        schema = self.connector.schema
        new, old = f"{_SWAP_PREFIX}new_{self._digest}", f"{_SWAP_PREFIX}old_{self._digest}"
        s = self.session
        s.execute(sge.Drop(this=_table(schema, new), kind="TABLE", exists=True))
        s.execute(sge.Create(kind="TABLE", this=_table(schema, new), expression=ordered))
        s.execute(_rename(self._target, old))
        s.execute(_rename(_table(schema, new), self.definition.table))
        s.execute(sge.Drop(this=_table(schema, old), kind="TABLE"))

    def _upsert(self, staged: list[str]) -> int:
        """Update the target's rows whose keys were delivered, insert the others.

        Returns the rows updated or inserted: one per distinct delivered key.
        """
        keys = self.definition.keys
        latest = _latest_per_key(self._stage, staged, keys)
        s = self.session
        others = [c for c in staged if c not in keys]
        match = sge.and_(*(_col(k, "_tgt").eq(_col(k, "_src")) for k in keys))
        if others:
            s.execute(
                sge.Update(
                    this=self._target.copy().as_("_tgt"),
                    expressions=[sge.EQ(this=_col(c), expression=_col(c, "_src")) for c in others],
                    from_=sge.From(this=latest.subquery("_src")),
                    where=sge.Where(this=match),
                )
            )
        absent = sge.Not(
            this=sge.Exists(
                this=sge.select(sge.convert(1)).from_(self._target.copy().as_("_tgt")).where(match)
            )
        )
        s.execute(
            sge.insert(
                sge.select(*(_col(c, "_src") for c in staged))
                .from_(latest.subquery("_src"))
                .where(absent),
                self._target,
                columns=[_ident(c) for c in staged],
            )
        )
        return _count(s, latest)

    def abort(self) -> None:
        """Roll back what is in flight; the stage and its markers stay for the resume."""
        self.session.rollback_quietly()

    def close(self) -> None:
        """Nothing to release: the engine belongs to the run."""


# --- talking to the engine -------------------------------------------------------------------


class _Session:
    """Statements, transactions and Arrow loads over an engine's Ibis backend."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.DIALECT
        self._open = False

    def sql(self, statement: sge.Expression) -> str:
        return statement.sql(self.dialect)

    def execute(self, statement: sge.Expression | str) -> None:
        text = statement if isinstance(statement, str) else self.sql(statement)
        self.engine.execute(text)

    def rows(self, query: sge.Expression) -> list[tuple[Any, ...]]:
        backend = self.engine.backend
        result = backend.raw_sql(self.sql(query))
        try:
            return [tuple(row) for row in result.fetchall()]
        finally:
            # Some clients hand back a cursor to close; DuckDB hands back the connection.
            if result is not getattr(backend, "con", None):
                result.close()

    def one(self, query: sge.Expression) -> tuple[Any, ...]:
        found = self.rows(query)
        if len(found) != 1:
            raise RuntimeError(f"expected one row, got {len(found)}")
        return found[0]

    @contextmanager
    def transaction(self, *, commit: bool = True) -> Iterator[None]:
        """One engine transaction: committed at the end (or rolled back if ``commit`` is
        False); rolled back on any exception, a simulated crash included, as the engine
        would after a ``kill -9``."""
        self.execute("BEGIN")
        self._open = True
        try:
            yield
        except BaseException:
            self.rollback_quietly()
            raise
        if commit:
            self.execute("COMMIT")
            self._open = False
        else:
            self.rollback_quietly()

    def rollback_quietly(self) -> None:
        if not self._open:
            return
        self._open = False
        try:
            self.execute("ROLLBACK")
        except Exception as exc:
            # The connection may be gone already; the engine then rolls back on its own.
            if not _is_driver_error(exc):
                raise

    def table_kind(self, schema: str, table: str) -> str | None:
        """``BASE TABLE``, ``VIEW`` ... of ``schema.table`` in the current database, or None."""
        found = self.rows(
            sge.select(_col("table_type"))
            .from_(sge.table_("tables", db="information_schema"))
            .where(_in_catalog(schema).and_(_col("table_name").eq(sge.convert(table))))
        )
        return str(found[0][0]) if found else None

    def columns(self, schema: str, table: str) -> list[str]:
        """Column names of ``schema.table`` in order; empty if there is no such table."""
        found = self.rows(
            sge.select(_col("column_name"))
            .from_(sge.table_("columns", db="information_schema"))
            .where(_in_catalog(schema).and_(_col("table_name").eq(sge.convert(table))))
            .order_by(_col("ordinal_position"))
        )
        return [str(row[0]) for row in found]

    def load(self, schema: str, table: str, batch: pa.RecordBatch) -> None:
        """Insert an Arrow batch into ``schema.table`` (columns by name), in the open
        transaction."""
        backend = self.engine.backend
        client = getattr(backend, "con", None)
        if _is_psycopg(client):
            _copy(client, _table(schema, table).sql("postgres"), batch)
            return
        backend.insert(table, pa.Table.from_batches([batch]), database=schema)


def _copy(client: Any, table: str, batch: pa.RecordBatch) -> None:
    """``COPY ... FROM STDIN`` the batch as CSV written by Arrow (vectorised, in C++)."""
    import pyarrow.csv as pacsv

    columns = ", ".join(_ident(c).sql("postgres") for c in batch.schema.names)
    # Strings are always quoted by Arrow, so an empty string ("") and a null (nothing) differ.
    options = pacsv.WriteOptions(include_header=False, batch_size=8192)
    with (
        client.cursor() as cur,
        cur.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT csv)") as cp,
    ):
        pacsv.write_csv(_csv_ready(batch), _CopySink(cp), options)


class _CopySink:
    """A file-like object Arrow's CSV writer writes into: each chunk goes on to the COPY."""

    closed = False

    def __init__(self, copy: Any) -> None:
        self._copy = copy

    def write(self, data: Any) -> int:
        self._copy.write(data)
        return len(data)

    def flush(self) -> None:
        """Nothing to flush: psycopg sends the data as it comes."""


def _csv_ready(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Cast the columns Arrow's CSV writer cannot write to ones it can."""
    arrays = []
    for column in batch.columns:
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if pa.types.is_string_view(column.type):
            column = column.cast(pa.string())
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _is_psycopg(client: Any) -> bool:
    try:
        import psycopg
    except ImportError:
        return False
    return isinstance(client, psycopg.Connection)


def _is_driver_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from the engine's database driver (or Ibis's checks)."""
    import duckdb

    if isinstance(exc, duckdb.Error | ibis.common.exceptions.IbisError):
        return True
    try:
        import psycopg
    except ImportError:
        return False
    return isinstance(exc, psycopg.Error)


def _attribution(exc: Exception) -> Literal["configuration", "platform"]:
    state = getattr(exc, "sqlstate", None)
    if state:
        return "configuration" if state[:2] in _CONFIGURATION_CLASSES else "platform"
    if type(exc).__name__ in _DUCKDB_CONFIGURATION:
        return "configuration"
    if isinstance(exc, ibis.common.exceptions.IbisError):
        return "configuration"
    return "platform"


# --- SQL helpers -----------------------------------------------------------------------------


def _ident(name: str) -> sge.Identifier:
    return sge.to_identifier(name, quoted=True)


def _col(name: str, table: str | None = None) -> sge.Column:
    return sge.column(name, table=table, quoted=True)


def _table(schema: str, name: str) -> sge.Table:
    return sge.table_(name, db=schema, quoted=True)


def _column_def(name: str, kind: str) -> sge.ColumnDef:
    return sge.ColumnDef(this=_ident(name), kind=sge.DataType.build(kind))


def _rename(table: sge.Table, to: str) -> sge.Alter:
    return sge.Alter(
        this=table.copy(), kind="TABLE", actions=[sge.AlterRename(this=sge.table_(to, quoted=True))]
    )


def _unit_rows() -> sge.Condition:
    """Marker rows of units (the publish marker has index -1)."""
    return sge.GTE(this=_col("unit_index"), expression=sge.convert(0))


def _in_catalog(schema: str) -> sge.Condition:
    # information_schema spans every attached database on DuckDB: stay in the current one.
    return (
        _col("table_catalog")
        .eq(sge.func("current_database"))
        .and_(_col("table_schema").eq(sge.convert(schema)))
    )


def _latest_per_key(stage: sge.Table, columns: list[str], keys: list[str]) -> sge.Select:
    """The staged rows, the last delivered one per key only."""
    rank = sge.Window(
        this=sge.func("row_number"),
        partition_by=[_col(k) for k in keys],
        order=sge.Order(expressions=[sge.Ordered(this=_col(_POSITION), desc=True)]),
    )
    numbered = sge.select(
        *(_col(c) for c in [_POSITION, *columns]), sge.alias_(rank, "_rank", quoted=True)
    ).from_(stage)
    return (
        sge.select(*(_col(c) for c in columns))
        .from_(numbered.subquery("_ranked"))
        .where(_col("_rank").eq(sge.convert(1)))
        .order_by(_col(_POSITION))
    )


def _count(session: _Session, query: sge.Select) -> int:
    """The number of rows ``query`` returns."""
    counted = sge.select(sge.func("count", sge.Star())).from_(query.subquery("_n"))
    return int(session.one(counted)[0])


def _loads_ddl(table: sge.Table) -> sge.Create:
    """``CREATE TABLE IF NOT EXISTS`` of the load-marker table."""
    columns = [
        ("unit_id", "TEXT"), ("run_id", "TEXT"), ("task", "TEXT"), ("unit_index", "INT"),
        ("stage", "TEXT"), ("first_row", "BIGINT"), ("end_row", "BIGINT"), ("rows", "BIGINT"),
    ]  # fmt: skip
    defs = [
        sge.ColumnDef(
            this=_ident(name),
            kind=sge.DataType.build(kind),
            constraints=[
                sge.ColumnConstraint(
                    kind=sge.PrimaryKeyColumnConstraint()
                    if name == "unit_id"
                    else sge.NotNullColumnConstraint()
                )
            ],
        )
        for name, kind in columns
    ]
    defs.append(
        sge.ColumnDef(
            this=_ident("loaded_at"),
            kind=sge.DataType.build("TIMESTAMPTZ"),
            constraints=[
                sge.ColumnConstraint(kind=sge.DefaultColumnConstraint(this=sge.CurrentTimestamp()))
            ],
        )
    )
    return sge.Create(kind="TABLE", this=sge.Schema(this=table, expressions=defs), exists=True)


def _portable(schema: pa.Schema) -> pa.Schema:
    """Arrow types every engine can create: unsigned widened, nanoseconds to microseconds,
    dictionaries as their values, all-null columns as text."""
    fields = []
    for f in schema:
        t = f.type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if pa.types.is_null(t) or pa.types.is_string_view(t) or pa.types.is_large_string(t):
            t = pa.string()
        elif pa.types.is_uint8(t):
            t = pa.int16()
        elif pa.types.is_uint16(t):
            t = pa.int32()
        elif pa.types.is_uint32(t):
            t = pa.int64()
        elif pa.types.is_uint64(t):
            t = pa.decimal128(20, 0)
        elif pa.types.is_timestamp(t) and t.unit == "ns":
            t = pa.timestamp("us", tz=t.tz)
        elif pa.types.is_time(t):
            t = pa.time64("us")
        fields.append(pa.field(f.name, t))
    return pa.schema(fields)


def _positioned(batch: pa.RecordBatch, index: int) -> pa.RecordBatch:
    """The batch with its delivery position first (for "the last row of a key wins")."""
    positions = pa.array(np.arange(batch.num_rows, dtype=np.int64) + index * _UNIT_SPAN)
    return pa.RecordBatch.from_arrays(
        [positions, *batch.columns], names=[_POSITION, *batch.schema.names]
    )

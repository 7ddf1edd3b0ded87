"""PostgreSQL tables: COPY into a staging table, publish in one transaction.

Every unit is one batch of rows, copied (``COPY ... FROM STDIN (FORMAT csv)``, the CSV text
written by Arrow's vectorised writer and streamed to the server) into a per-task **staging
table** ``<schema>._activator_stage_<hash>``, together with a row in the **load-marker table**
``<schema>._activator_loads``, in the same transaction. Whether a unit arrived is therefore a
question the target answers itself: a marker row exists exactly when the unit's rows do.

Publishing moves the staged rows into the target in one more transaction and records the
task's publish marker (unit ``run:task:-1``) in it:

* ``append``: ``INSERT INTO target SELECT ... FROM stage``;
* ``upsert``: ``INSERT ... ON CONFLICT (keys) DO UPDATE`` (the last delivered row of a key
  wins), which needs a unique index on the keys;
* ``replace``: the stage was built like the target (columns, defaults, constraints, indexes);
  it takes the target's place by renames (target → old, stage → target, drop old), with the
  target's grants, owner, comment and index names carried over. Readers see the old table or
  the new one, never an empty or half-filled one.

A publish that finds its marker does nothing, so publishing twice is harmless. ``abort``
leaves the stage for the resume; stages nobody loaded into for ``stale_stage_days`` are
dropped at the next publish into the schema.
"""

from __future__ import annotations

__all__ = [
    "LOADS_TABLE",
    "STAGE_PREFIX",
    "PostgresConnector",
    "PostgresDelivery",
    "postgres_type",
]

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

import pyarrow as pa

from activator.destinations.base import Check, Connector, Delivery, DeliveryContext, Unit, UnitLog
from activator.destinations.secrets import Secret, SecretResolver
from activator.errors import DestinationError, MissingExtraError

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql as pgsql

    from activator.definitions.table import PostgresDestination

STAGE_PREFIX = "_activator_stage_"
"""Staging tables are named this plus a hash of (run, task)."""

LOADS_TABLE = "_activator_loads"
"""The load-marker table, one per schema Activator loads into."""

_POSITION = "_activator_pos"
"""Staging column numbering the rows in delivery order (the last row of a key wins)."""

_CONNECT_TIMEOUT_SECONDS = 10
_CSV_ROWS_PER_WRITE = 8192
_MASK = "***"
_PUBLISH_INDEX = -1

# SQLSTATE classes that a retry cannot fix: bad data, constraint violations, missing objects
# or privileges, bad settings. Everything else (connection loss, deadlocks, out of resources,
# shutdowns) is the platform's, and a resumed run can succeed.
_CONFIGURATION_CLASSES = frozenset({"22", "23", "28", "42", "3D", "3F", "0A", "2B"})
_INSUFFICIENT_PRIVILEGE = "42501"


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise MissingExtraError("postgres", "psycopg") from None
    return psycopg


def _sql() -> Any:
    _psycopg()
    from psycopg import sql

    return sql


def postgres_type(dtype: pa.DataType) -> str | None:
    """The PostgreSQL column type Activator creates for an Arrow type; None if unsupported.

    Dictionary-encoded columns take their values' type; an all-null column becomes ``text``.
    """
    if pa.types.is_dictionary(dtype):
        return postgres_type(dtype.value_type)
    if pa.types.is_boolean(dtype):
        return "boolean"
    if pa.types.is_int8(dtype) or pa.types.is_int16(dtype) or pa.types.is_uint8(dtype):
        return "smallint"
    if pa.types.is_int32(dtype) or pa.types.is_uint16(dtype):
        return "integer"
    if pa.types.is_int64(dtype) or pa.types.is_uint32(dtype):
        return "bigint"
    if pa.types.is_uint64(dtype):
        return "numeric(20,0)"
    if pa.types.is_float16(dtype) or pa.types.is_float32(dtype):
        return "real"
    if pa.types.is_float64(dtype):
        return "double precision"
    if pa.types.is_decimal(dtype):
        return f"numeric({dtype.precision},{dtype.scale})"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_null(dtype):
        return "text"
    if pa.types.is_string_view(dtype):
        return "text"
    if pa.types.is_date(dtype):
        return "date"
    if pa.types.is_timestamp(dtype):
        return "timestamp with time zone" if dtype.tz else "timestamp without time zone"
    if pa.types.is_time(dtype):
        return "time without time zone"
    return None


def _csv_ready(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Cast the columns Arrow's CSV writer cannot write (or writes differently) to ones it can."""
    arrays: list[pa.Array] = []
    for column in batch.columns:
        dtype = column.type
        if pa.types.is_dictionary(dtype):
            column = column.cast(dtype.value_type)
            dtype = dtype.value_type
        if pa.types.is_string_view(dtype):
            column = column.cast(pa.string())
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


class _CopySink:
    """A file-like object Arrow's CSV writer writes into: each chunk goes on to the COPY."""

    closed = False

    def __init__(self, copy: Any) -> None:
        self._copy = copy
        self.bytes = 0

    def write(self, data: Any) -> int:
        self._copy.write(data)
        size = len(data)
        self.bytes += size
        return size

    def flush(self) -> None:
        """Nothing to flush: psycopg sends the data as it comes."""


@dataclass
class _Plan:
    """What the first batch of a task decided: the columns and how the stage is built."""

    columns: list[str]
    target_exists: bool


class PostgresConnector(Connector):
    """A PostgreSQL table destination.

    Args:
        definition: The destination's definition.
        secrets: Resolves ``credentials.password`` when a connection is opened.
        batch_rows: Source rows per unit (one COPY and one transaction each).
    """

    def __init__(
        self,
        definition: PostgresDestination,
        secrets: SecretResolver,
        workspace_root: Path | None = None,
        *,
        batch_rows: int = 50_000,
    ) -> None:
        del workspace_root  # a table destination reads no local files
        self.definition = definition
        self._secrets = secrets
        self.batch_rows = batch_rows

    def __repr__(self) -> str:
        return f"PostgresConnector({self.definition.name}, {self.shown_url}, {self.target})"

    @property
    def shown_url(self) -> str:
        """The URL without query options, for messages (it never holds a password)."""
        parts = urlsplit(self.definition.url)
        user = f"{unquote(parts.username)}@" if parts.username else ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{user}{parts.hostname or 'localhost'}{port}{parts.path}"

    @property
    def target(self) -> str:
        """``schema.table``, for messages."""
        return f"{self.definition.schema_}.{self.definition.table}"

    def _password(self) -> Secret | None:
        return self._secrets.optional(
            self.definition.credentials, "password", what=f"destination {self.definition.name}"
        )

    def connect(self) -> psycopg.Connection[Any]:
        """A new connection (not in autocommit: every change is an explicit transaction).

        Raises:
            DestinationError: the server refused or could not be reached (the message names
                the server and user, never the password).
        """
        pg = _psycopg()
        password = self._password()
        extra = {"password": password.reveal()} if password is not None else {}
        try:
            conn: psycopg.Connection[Any] = pg.connect(
                self.definition.url,
                connect_timeout=_CONNECT_TIMEOUT_SECONDS,
                application_name="activator",
                client_encoding="utf8",
                **extra,
            )
        except pg.Error as exc:
            reason = self._masked(str(exc).strip() or type(exc).__name__, password)
            hint = (
                "check url (host, port, database, user), that the server accepts "
                "connections from here, and credentials.password"
            )
            if password is not None and "password authentication failed" in reason:
                # The server says the same for a wrong, a changed and an expired password.
                hint = (
                    f"the server refused the password from {password.name}: it may have been "
                    "changed, or have expired (VALID UNTIL); update the secret or the role"
                )
            raise DestinationError(
                f"destination {self.definition.name}: cannot connect to PostgreSQL at "
                f"{self.shown_url}: {reason}",
                hint=hint,
                attribution=_connect_attribution(exc),
            ) from None
        return conn

    def _masked(self, text: str, password: Secret | None = None) -> str:
        secret = password if password is not None else _quiet(self._password)
        if secret is not None and secret.reveal():
            text = text.replace(secret.reveal(), _MASK)
        return text

    def error(self, exc: Exception, doing: str) -> DestinationError:
        """A :class:`DestinationError` for a failed statement, attributed by its SQLSTATE."""
        diag = getattr(exc, "diag", None)
        primary = getattr(diag, "message_primary", None) or str(exc).strip() or type(exc).__name__
        detail = getattr(diag, "message_detail", None)
        hint = getattr(diag, "message_hint", None)
        text = f"{primary} ({detail})" if detail else primary
        if not hint and getattr(exc, "sqlstate", None) == _INSUFFICIENT_PRIVILEGE:
            user = urlsplit(self.definition.url).username or "the user"
            hint = (
                f"grant {unquote(user)} the privileges mode {self.definition.mode} needs on "
                f"{self.target} and its schema; `activator destination test "
                f"{self.definition.name}` names the missing ones"
            )
        return DestinationError(
            self._masked(
                f"destination {self.definition.name} ({self.target}): {doing} failed: {text}"
            ),
            hint=self._masked(hint) if hint else None,
            attribution=_attribution(exc, default="platform"),
        )

    def check(self) -> list[Check]:
        """Connect, then check the schema, privileges, the target table, and a probe table.

        One :class:`Check` per step; the steps stop at the first one the next ones need.
        """
        d = self.definition
        checks: list[Check] = []
        try:
            conn = self.connect()
        except DestinationError as exc:
            return [Check("connect", False, exc.message)]
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT current_user, current_setting('server_version')")
                user, version = _one(cur)
                checks.append(
                    Check("connect", True, f"{self.shown_url} as {user} (PostgreSQL {version})")
                )
                cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (d.schema_,))
                if cur.fetchone() is None:
                    checks.append(Check("schema", False, f"schema {d.schema_} does not exist"))
                    return checks
                checks.append(Check("schema", True, f"schema {d.schema_} exists"))
                missing = [
                    priv
                    for priv in ("USAGE", "CREATE")
                    if not _one(cur, "SELECT has_schema_privilege(%s, %s)", (d.schema_, priv))[0]
                ]
                checks.append(
                    Check(
                        "schema privileges",
                        not missing,
                        f"{user} lacks {' and '.join(missing)} on schema {d.schema_} (needed "
                        f"for the staging and load-marker tables): GRANT "
                        f"{', '.join(missing)} ON SCHEMA {d.schema_} TO {user}"
                        if missing
                        else f"{user} has USAGE and CREATE on schema {d.schema_}",
                    )
                )
                checks.extend(self._check_table(cur, str(user)))
            checks.append(self._probe(conn))
        except Exception as exc:
            if _is_psycopg_error(exc):
                checks.append(Check("query", False, self.error(exc, "checking").message))
            else:
                raise
        finally:
            conn.close()  # closing discards the open (read-only) transaction
        return checks

    def _check_table(self, cur: psycopg.Cursor[Any], user: str) -> list[Check]:
        d = self.definition
        found = _relation(cur, d.schema_, d.table)
        if found is None:
            return [
                Check(
                    "table",
                    d.create,
                    f"{self.target} does not exist; it is created at the first publish"
                    if d.create
                    else f"{self.target} does not exist and create is false: create the "
                    "table or set create: true",
                )
            ]
        oid, kind = found
        if kind not in ("r", "p"):
            return [Check("table", False, f"{self.target} is not a table (a view?)")]
        checks = []
        if d.mode == "upsert" and not _has_unique_index(cur, oid, d.keys):
            checks.append(
                Check(
                    "table",
                    False,
                    f"{self.target} has no unique index on ({', '.join(d.keys)}), which upsert "
                    f"needs: CREATE UNIQUE INDEX ON {self.target} ({', '.join(d.keys)})",
                )
            )
        else:
            checks.append(Check("table", True, f"{self.target} exists"))
        needed = {"append": ["SELECT", "INSERT"], "upsert": ["SELECT", "INSERT", "UPDATE"]}.get(
            d.mode, ["SELECT"]
        )
        missing = [p for p in needed if not _one(cur, _TABLE_PRIVILEGE, (oid, p))[0]]
        problems = [f"lacks {', '.join(missing)} on {self.target}"] if missing else []
        if d.mode == "replace" and not _one(cur, _OWNS, (oid,))[0]:
            # Renaming and dropping a table is its owner's right (or a member of that role).
            problems.append(f"does not own {self.target} (replace renames and drops it)")
        checks.append(
            Check(
                "table privileges",
                not problems,
                f"{user} " + "; ".join(problems)
                if problems
                else f"{user} has {', '.join(needed)} on {self.target}",
            )
        )
        return checks

    def _probe(self, conn: psycopg.Connection[Any]) -> Check:
        sql = _sql()
        name = f"_activator_probe_{uuid.uuid4().hex[:12]}"
        table = sql.Identifier(self.definition.schema_, name)
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("CREATE TABLE {} (id integer)").format(table))
                cur.execute(sql.SQL("INSERT INTO {} VALUES (1)").format(table))
                cur.execute(sql.SQL("DROP TABLE {}").format(table))
        except Exception as exc:
            if not _is_psycopg_error(exc):
                raise
            return Check("probe table", False, self.error(exc, "creating a probe table").message)
        finally:
            conn.rollback()  # nothing of the probe is ever committed
        return Check("probe table", True, f"created, filled and dropped {name} (rolled back)")

    def open(self, context: DeliveryContext, log: UnitLog) -> PostgresDelivery:
        """Connect and make sure the load-marker table exists."""
        return PostgresDelivery(self, context, log)


_TABLE_PRIVILEGE = "SELECT has_table_privilege(%s::oid, %s)"
_OWNS = "SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = %s"


class PostgresDelivery(Delivery):
    """One task's load into one PostgreSQL table (see the module docstring)."""

    def __init__(self, connector: PostgresConnector, context: DeliveryContext, log: UnitLog):
        self.connector = connector
        self.definition = connector.definition
        self.context = context
        self.log = log
        self.batch_rows = connector.batch_rows
        digest = hashlib.sha256(f"{context.run_id}\0{context.task}".encode()).hexdigest()[:16]
        self.stage = STAGE_PREFIX + digest
        self._plan: _Plan | None = None
        self.conn = connector.connect()
        self._ensure_loads_table()
        self._next_index = int(
            self._fetch(
                "SELECT coalesce(max(unit_index) + 1, 0) FROM {loads}"
                " WHERE run_id = %s AND task = %s AND unit_index >= 0",
                (context.run_id, context.task),
                doing="reading load markers",
            )[0]
        )

    # --- SQL helpers ----------------------------------------------------------------------

    def _ident(self, name: str) -> pgsql.Identifier:
        ident: pgsql.Identifier = _sql().Identifier(self.definition.schema_, name)
        return ident

    def _query(self, text: str) -> pgsql.Composed:
        """``text`` with ``{loads}``, ``{stage}`` and ``{target}`` as qualified identifiers."""
        composed: pgsql.Composed = (
            _sql()
            .SQL(text)
            .format(
                loads=self._ident(LOADS_TABLE),
                stage=self._ident(self.stage),
                target=self._ident(self.definition.table),
            )
        )
        return composed

    def _fetch(self, text: str, params: tuple[Any, ...], *, doing: str) -> tuple[Any, ...]:
        """One row of a read-only query, in its own short transaction."""
        try:
            with self.conn.cursor() as cur:
                row = _one(cur, self._query(text), params)
            self.conn.commit()
        except Exception as exc:
            self._rollback()
            if not _is_psycopg_error(exc):
                raise
            raise self.connector.error(exc, doing) from exc
        return row

    def _rollback(self) -> None:
        # The connection may be gone already; the server then rolls back on its own.
        try:
            self.conn.rollback()
        except Exception as exc:
            if not _is_psycopg_error(exc):
                raise

    def _ensure_loads_table(self) -> None:
        try:
            with self.conn.cursor() as cur:
                # Two tasks starting at once would race on CREATE TABLE IF NOT EXISTS.
                cur.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))",
                    (f"activator-loads:{self.definition.schema_}",),
                )
                cur.execute(
                    self._query(
                        "CREATE TABLE IF NOT EXISTS {loads} ("
                        " unit_id text PRIMARY KEY,"
                        " run_id text NOT NULL,"
                        " task text NOT NULL,"
                        " unit_index integer NOT NULL,"
                        " stage text NOT NULL,"
                        " first_row bigint NOT NULL,"
                        " end_row bigint NOT NULL,"
                        " rows bigint NOT NULL,"
                        " loaded_at timestamp with time zone NOT NULL DEFAULT now())"
                    )
                )
            self.conn.commit()
        except Exception as exc:
            self._rollback()
            if not _is_psycopg_error(exc):
                raise
            raise self.connector.error(exc, "creating the load-marker table") from exc

    # --- the contract ---------------------------------------------------------------------

    def settle(self, unit: Unit) -> bool:
        """Ask the target: the unit's marker row exists exactly when its rows were committed."""
        row = self._fetch(
            "SELECT count(*), max(rows) FROM {loads} WHERE unit_id = %s",
            (unit.unit_id,),
            doing=f"settling unit {unit.index}",
        )
        if not row[0]:
            return False
        unit.rows = int(row[1])
        unit.detail.update({"table": self.connector.target, "stage": self.stage})
        self.log.delivered(unit)
        return True

    def write(self, batch: pa.RecordBatch, first_row: int, end_row: int) -> None:
        """COPY the batch into the stage and record its marker, in one transaction."""
        sql = _sql()
        plan = self._plan
        unit = Unit(
            self._next_index,
            self.context.unit_id(self._next_index),
            first_row,
            end_row,
            rows=batch.num_rows,
            detail={"table": self.connector.target, "stage": self.stage},
        )
        try:
            with self.conn.cursor() as cur:
                if plan is None:
                    plan = self._prepare(cur, batch.schema)
                if list(batch.schema.names) != plan.columns:
                    raise DestinationError(
                        f"destination {self.definition.name}: batch columns "
                        f"{batch.schema.names} differ from the first batch's {plan.columns}",
                        attribution="configuration",
                    )
                statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
                    self._ident(self.stage), _column_list(plan.columns)
                )
                with cur.copy(statement) as copy:
                    _write_csv(_csv_ready(batch), _CopySink(copy))
                cur.execute(
                    self._query(
                        "INSERT INTO {loads} (unit_id, run_id, task, unit_index, stage,"
                        " first_row, end_row, rows) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                    ),
                    (
                        unit.unit_id,
                        self.context.run_id,
                        self.context.task,
                        unit.index,
                        self.stage,
                        first_row,
                        end_row,
                        batch.num_rows,
                    ),
                )
            self.log.sending(unit)
            self.conn.commit()
        except Exception as exc:
            self._rollback()
            if not _is_psycopg_error(exc):
                raise
            raise self.connector.error(exc, f"loading unit {unit.index}") from exc
        self._plan = plan
        self._next_index += 1
        self.log.delivered(unit)

    def flush(self) -> None:
        """Nothing is held back: every batch was its own unit."""

    def _prepare(self, cur: psycopg.Cursor[Any], schema: pa.Schema) -> _Plan:
        """Check the delivered columns against the target; create the stage when missing."""
        d = self.definition
        columns = list(schema.names)
        self._check_names(columns)
        target = _relation(cur, d.schema_, d.table)
        if target is not None and target[1] not in ("r", "p"):
            raise self._config(f"{self.connector.target} is not a table (a view?)")
        missing_keys = [k for k in d.keys if k not in columns]
        if missing_keys and (d.mode == "upsert" or target is None):
            raise self._config(
                f"keys {missing_keys} are not among the delivered columns {columns}",
                hint="map them in the activation's attributes, or fix keys",
            )
        stage = _relation(cur, d.schema_, self.stage)
        if stage is not None:
            # A resumed task: the stage was built by the first attempt.
            staged = _columns(cur, stage[0])
            absent = [c for c in columns if c not in staged]
            if absent:
                raise self._config(
                    f"the staging table {self.stage} of this run lacks columns {absent} "
                    "(the mapping changed since the run started)",
                    hint="start a new run",
                )
            return _Plan(columns, target is not None)
        if target is not None:
            self._check_target(cur, target[0], columns)
        elif not d.create:
            raise self._config(
                f"table {self.connector.target} does not exist",
                hint="create it, or set create: true to let Activator create it",
            )
        cur.execute(self._stage_ddl(cur, schema, None if target is None else target[0]))
        self.log.event("staging table created", table=self.connector.target, stage=self.stage)
        return _Plan(columns, target is not None)

    def _check_names(self, columns: list[str]) -> None:
        duplicates = sorted({c for c in columns if columns.count(c) > 1})
        too_long = [c for c in columns if not c or len(c.encode()) > 63]
        if duplicates or too_long or _POSITION in columns:
            raise self._config(
                f"the delivered columns cannot be table columns: duplicated {duplicates}, "
                f"empty or longer than 63 bytes {too_long}"
                + (f", reserved {_POSITION}" if _POSITION in columns else ""),
                hint="rename them in the activation's attribute mapping",
            )

    def _check_target(self, cur: psycopg.Cursor[Any], oid: int, columns: list[str]) -> None:
        d = self.definition
        existing = _columns(cur, oid)
        missing = [c for c in columns if c not in existing]
        if missing:
            raise self._config(
                f"table {self.connector.target} has no columns {missing}",
                hint="add them to the table (ALTER TABLE ... ADD COLUMN), or change the "
                "activation's attribute mapping",
            )
        if d.mode == "upsert" and not _has_unique_index(cur, oid, d.keys):
            raise self._config(
                f"table {self.connector.target} has no unique index on ({', '.join(d.keys)}), "
                "which upsert needs",
                hint=f"CREATE UNIQUE INDEX ON {self.connector.target} ({', '.join(d.keys)})",
            )

    def _stage_ddl(
        self, cur: psycopg.Cursor[Any], schema: pa.Schema, target_oid: int | None
    ) -> pgsql.Composed:
        sql = _sql()
        d = self.definition
        if d.mode == "replace" and target_oid is not None:
            # The stage becomes the table: same columns, defaults, constraints and indexes.
            ddl: pgsql.Composed = self._query("CREATE TABLE {stage} (LIKE {target} INCLUDING ALL)")
            return ddl
        if target_oid is not None:
            existing = _columns(cur, target_oid)
            types = {name: existing[name] for name in schema.names}
        else:
            unsupported = [f"{f.name} ({f.type})" for f in schema if postgres_type(f.type) is None]
            if unsupported:
                raise self._config(
                    f"cannot create {self.connector.target}: no PostgreSQL type for columns "
                    f"{unsupported}",
                    hint="create the table yourself, or cast these columns to text in the "
                    "attribute mapping",
                )
            types = {f.name: str(postgres_type(f.type)) for f in schema}
        parts = [sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in types.items()]
        if d.mode != "replace":
            position = sql.SQL("{} bigint GENERATED ALWAYS AS IDENTITY").format(
                sql.Identifier(_POSITION)
            )
            parts.insert(0, position)
        ddl = sql.SQL("CREATE TABLE {} ({})").format(
            self._ident(self.stage), sql.SQL(", ").join(parts)
        )
        return ddl  # noqa: RET504 - the annotation types psycopg.sql's result

    def _config(self, message: str, *, hint: str | None = None) -> DestinationError:
        return DestinationError(
            f"destination {self.definition.name}: {message}", hint=hint, attribution="configuration"
        )

    # --- publish --------------------------------------------------------------------------

    def publish(self, units: list[Unit]) -> dict[str, Any]:
        """Move the staged rows into the target in one transaction (idempotent)."""
        d = self.definition
        publish_id = self.context.unit_id(_PUBLISH_INDEX)
        summary: dict[str, Any] = {"table": self.connector.target, "mode": d.mode}
        try:
            with self.conn.cursor() as cur:
                # Publishes into one table run one at a time (a replace must not interleave).
                cur.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))",
                    (f"activator-publish:{self.connector.target}",),
                )
                done = cur.execute(
                    self._query("SELECT rows FROM {loads} WHERE unit_id = %s"), (publish_id,)
                ).fetchone()
                if done is not None:
                    cur.execute(self._query("DROP TABLE IF EXISTS {stage}"))
                    self.conn.commit()
                    return {**summary, "rows": int(done[0]), "already_published": True}
                rows = self._verify_stage(cur, units)
                summary.update(self._move(cur))
                summary["rows"] = rows
                cur.execute(
                    self._query(
                        "INSERT INTO {loads} (unit_id, run_id, task, unit_index, stage,"
                        " first_row, end_row, rows) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                    ),
                    (
                        publish_id,
                        self.context.run_id,
                        self.context.task,
                        _PUBLISH_INDEX,
                        self.stage,
                        0,
                        max((u.end_row for u in units), default=0),
                        rows,
                    ),
                )
                # The unit markers served the resume; the publish marker now stands for them.
                cur.execute(
                    self._query(
                        "DELETE FROM {loads} WHERE run_id = %s AND task = %s AND unit_index >= 0"
                    ),
                    (self.context.run_id, self.context.task),
                )
            self.conn.commit()
        except Exception as exc:
            self._rollback()
            if not _is_psycopg_error(exc):
                raise
            raise self.connector.error(exc, "publishing") from exc
        self.log.event("published", **summary)
        self._drop_stale_stages()
        return summary

    def _verify_stage(self, cur: psycopg.Cursor[Any], units: list[Unit]) -> int:
        """The stage must hold exactly the units the ledger delivered; their row total."""
        staged = dict(
            cur.execute(
                self._query(
                    "SELECT unit_id, rows FROM {loads}"
                    " WHERE run_id = %s AND task = %s AND unit_index >= 0"
                ),
                (self.context.run_id, self.context.task),
            ).fetchall()
        )
        expected = {u.unit_id for u in units}
        lost = sorted(expected - set(staged))
        if lost:
            raise self._config(
                f"the staged rows of units {lost[:5]} are gone (was the staging table "
                f"{self.stage} dropped, or cleaned up after {self.definition.stale_stage_days} "
                "days?)",
                hint="start a new run",
            )
        unknown = sorted(set(staged) - expected)
        if unknown:
            raise self._config(
                f"the staging table {self.stage} holds units the ledger does not know: "
                f"{unknown[:5]}",
                hint="start a new run",
            )
        return int(sum(staged.values()))

    def _move(self, cur: psycopg.Cursor[Any]) -> dict[str, Any]:
        d = self.definition
        stage = _relation(cur, d.schema_, self.stage)
        target = _relation(cur, d.schema_, d.table)
        if d.mode == "replace":
            return self._swap(cur, stage, target)
        if stage is None:
            return {"affected": 0, "created": False}  # nothing was delivered
        columns = [c for c in _columns(cur, stage[0]) if c != _POSITION]
        created = target is None
        if target is None:
            if not d.create:
                raise self._config(f"table {self.connector.target} does not exist")
            self._create_like_stage(cur, stage[0])
        elif d.mode == "upsert" and not _has_unique_index(cur, target[0], d.keys):
            raise self._config(
                f"table {self.connector.target} has no unique index on "
                f"({', '.join(d.keys)}), which upsert needs",
                hint=f"CREATE UNIQUE INDEX ON {self.connector.target} ({', '.join(d.keys)})",
            )
        sql = _sql()
        column_list = _column_list(columns)
        if d.mode == "append":
            statement = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
                self._ident(d.table), column_list, column_list, self._ident(self.stage)
            )
        else:
            keys = _column_list(d.keys)
            others = [c for c in columns if c not in d.keys]
            action = (
                sql.SQL("DO UPDATE SET ")
                + sql.SQL(", ").join(
                    sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
                    for c in others
                )
                if others
                else sql.SQL("DO NOTHING")
            )
            # A key delivered twice would make ON CONFLICT touch a row twice: the last wins.
            statement = sql.SQL(
                "INSERT INTO {} ({}) SELECT DISTINCT ON ({}) {} FROM {} ORDER BY {}, {} DESC"
                " ON CONFLICT ({}) {}"
            ).format(
                self._ident(d.table),
                column_list,
                keys,
                column_list,
                self._ident(self.stage),
                keys,
                sql.Identifier(_POSITION),
                keys,
                action,
            )
        cur.execute(statement)
        affected = cur.rowcount
        cur.execute(self._query("DROP TABLE {stage}"))
        return {"affected": affected, "created": created}

    def _create_like_stage(self, cur: psycopg.Cursor[Any], stage_oid: int) -> None:
        sql = _sql()
        d = self.definition
        parts = [
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind))
            for name, kind in _columns(cur, stage_oid).items()
            if name != _POSITION
        ]
        if d.keys:
            parts.append(sql.SQL("PRIMARY KEY ({})").format(_column_list(d.keys)))
        cur.execute(
            sql.SQL("CREATE TABLE {} ({})").format(self._ident(d.table), sql.SQL(", ").join(parts))
        )

    def _swap(
        self,
        cur: psycopg.Cursor[Any],
        stage: tuple[int, str] | None,
        target: tuple[int, str] | None,
    ) -> dict[str, Any]:
        sql = _sql()
        d = self.definition
        if stage is None:
            if target is None:
                return {"affected": 0, "created": False}  # no rows and no table to copy
            # Nothing delivered: the replacement is an empty table like the target.
            cur.execute(self._query("CREATE TABLE {stage} (LIKE {target} INCLUDING ALL)"))
            stage = _relation(cur, d.schema_, self.stage)
            assert stage is not None
        affected = _one(cur, self._query("SELECT count(*) FROM {stage}"))[0]
        if target is None:
            if d.keys:
                cur.execute(
                    sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
                        self._ident(self.stage), _column_list(d.keys)
                    )
                )
            cur.execute(
                sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                    self._ident(self.stage), sql.Identifier(d.table)
                )
            )
            return {"affected": affected, "created": True}
        old_indexes = _indexes(cur, target[0])
        owner, acl_grants, comment = _table_facts(cur, target[0])
        old = "_activator_old_" + self.stage.removeprefix(STAGE_PREFIX)
        new_table = sql.Identifier(d.table)
        cur.execute(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(self._ident(d.table), sql.Identifier(old))
        )
        cur.execute(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(self._ident(self.stage), new_table)
        )
        for privilege, grantee, grantable in acl_grants:
            cur.execute(
                sql.SQL("GRANT {} ON {} TO {}{}").format(
                    sql.SQL(privilege),
                    self._ident(d.table),
                    sql.SQL("PUBLIC") if grantee is None else sql.Identifier(grantee),
                    sql.SQL(" WITH GRANT OPTION" if grantable else ""),
                )
            )
        if comment is not None:
            cur.execute(
                sql.SQL("COMMENT ON TABLE {} IS {}").format(
                    self._ident(d.table), sql.Literal(comment)
                )
            )
        if owner is not None:
            cur.execute(
                sql.SQL("ALTER TABLE {} OWNER TO {}").format(
                    self._ident(d.table), sql.Identifier(owner)
                )
            )
        cur.execute(sql.SQL("DROP TABLE {}").format(self._ident(old)))
        # The stage's indexes have generated names; give them the old table's names back.
        new_indexes = _indexes(cur, stage[0])
        for shape, names in new_indexes.items():
            for new_name, old_name in zip(names, old_indexes.get(shape, []), strict=False):
                if new_name != old_name:
                    cur.execute(
                        sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                            self._ident(new_name), sql.Identifier(old_name)
                        )
                    )
        return {"affected": affected, "created": False}

    def _drop_stale_stages(self) -> None:
        """Drop stages nobody loaded into for ``stale_stage_days`` (best effort)."""
        sql = _sql()
        try:
            with self.conn.cursor() as cur:
                stale = cur.execute(
                    self._query(
                        "SELECT c.relname FROM pg_class c"
                        " JOIN pg_namespace n ON n.oid = c.relnamespace"
                        " WHERE n.nspname = %s AND c.relkind = 'r' AND c.relname LIKE %s"
                        " AND NOT EXISTS (SELECT 1 FROM {loads} l WHERE l.stage = c.relname"
                        "  AND l.unit_index >= 0"
                        "  AND l.loaded_at > now() - make_interval(days => %s))"
                    ),
                    (
                        self.definition.schema_,
                        STAGE_PREFIX.replace("_", r"\_") + "%",
                        self.definition.stale_stage_days,
                    ),
                ).fetchall()
                for (name,) in stale:
                    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._ident(name)))
                    cur.execute(
                        self._query("DELETE FROM {loads} WHERE stage = %s AND unit_index >= 0"),
                        (name,),
                    )
            self.conn.commit()
        except Exception as exc:
            self._rollback()
            if not _is_psycopg_error(exc):
                raise
            self.log.event("stale staging tables not dropped", reason=str(exc).strip())
            return
        if stale:
            self.log.event("stale staging tables dropped", tables=[name for (name,) in stale])

    def abort(self) -> None:
        """Roll back what is in flight; the stage and its markers stay for the resume."""
        self._rollback()

    def close(self) -> None:
        """Close the connection (an open transaction is rolled back by the server)."""
        self.conn.close()


# --- catalog helpers ------------------------------------------------------------------------


def _is_psycopg_error(exc: BaseException) -> bool:
    try:
        import psycopg
    except ImportError:
        return False
    return isinstance(exc, psycopg.Error)


def _attribution(
    exc: Exception, *, default: Literal["configuration", "platform"]
) -> Literal["configuration", "platform"]:
    state = getattr(exc, "sqlstate", None)
    if not state:
        return default
    return "configuration" if state[:2] in _CONFIGURATION_CLASSES else "platform"


# libpq reports a failed connection without a SQLSTATE; these say the settings are wrong.
_REFUSED_SETTINGS = ("authentication failed", "does not exist", "no pg_hba.conf entry")


def _connect_attribution(exc: Exception) -> Literal["configuration", "platform"]:
    if getattr(exc, "sqlstate", None):
        return _attribution(exc, default="platform")
    text = str(exc)
    return "configuration" if any(s in text for s in _REFUSED_SETTINGS) else "platform"


def _quiet(resolve: Any) -> Secret | None:
    # Masking must not fail because a secret cannot be resolved.
    try:
        found: Secret | None = resolve()
    except Exception:
        return None
    return found


def _one(cur: Any, query: Any = None, params: Any = None) -> tuple[Any, ...]:
    """The one row of ``query`` (or of the cursor's last query when ``query`` is None)."""
    if query is not None:
        cur.execute(query, params)
    row = cur.fetchone()
    if row is None:
        raise RuntimeError("the query returned no row")
    return tuple(row)


def _column_list(columns: list[str]) -> pgsql.Composed:
    sql = _sql()
    composed: pgsql.Composed = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    return composed


def _write_csv(batch: pa.RecordBatch, sink: _CopySink) -> None:
    import pyarrow.csv as pacsv

    # Strings are always quoted, so an empty string ("") and a null (nothing) stay apart.
    options = pacsv.WriteOptions(include_header=False, batch_size=_CSV_ROWS_PER_WRITE)
    pacsv.write_csv(batch, sink, options)


def _relation(cur: Any, schema: str, name: str) -> tuple[int, str] | None:
    """(oid, relkind) of ``schema.name``, or None."""
    row = cur.execute(
        "SELECT c.oid, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s",
        (schema, name),
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def _columns(cur: Any, oid: int) -> dict[str, str]:
    """Column name → type (as SQL) of a table, in order."""
    rows = cur.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (oid,),
    ).fetchall()
    return {str(name): str(kind) for name, kind in rows}


def _has_unique_index(cur: Any, oid: int, keys: list[str]) -> bool:
    """Whether a plain (not partial, not expression) unique index covers exactly ``keys``."""
    rows = cur.execute(
        "SELECT ARRAY(SELECT a.attname::text FROM unnest(i.indkey) k"
        "  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k)"
        " FROM pg_index i WHERE i.indrelid = %s AND i.indisunique AND i.indisvalid"
        " AND i.indpred IS NULL AND i.indexprs IS NULL",
        (oid,),
    ).fetchall()
    return any(set(row[0]) == set(keys) for row in rows)


def _indexes(cur: Any, oid: int) -> dict[tuple[bool, bool, str], list[str]]:
    """Index names of a table by shape (unique, primary, definition after ``USING``)."""
    rows = cur.execute(
        "SELECT c.relname, i.indisunique, i.indisprimary,"
        " regexp_replace(pg_get_indexdef(i.indexrelid), '^.* USING ', '')"
        " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid = %s ORDER BY c.relname",
        (oid,),
    ).fetchall()
    shapes: dict[tuple[bool, bool, str], list[str]] = {}
    for name, unique, primary, shape in rows:
        shapes.setdefault((bool(unique), bool(primary), str(shape)), []).append(str(name))
    return shapes


def _table_facts(
    cur: Any, oid: int
) -> tuple[str | None, list[tuple[str, str | None, bool]], str | None]:
    """The owner to restore (None if it is us), the grants to others, the table's comment."""
    owner_row = cur.execute(
        "SELECT CASE WHEN relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
        " THEN NULL ELSE pg_get_userbyid(relowner) END, obj_description(oid, 'pg_class')"
        " FROM pg_class WHERE oid = %s",
        (oid,),
    ).fetchone()
    grants = cur.execute(
        "SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN NULL"
        " ELSE pg_get_userbyid(a.grantee) END, a.is_grantable"
        " FROM pg_class c, aclexplode(c.relacl) a"
        " WHERE c.oid = %s AND a.grantee <> c.relowner",
        (oid,),
    ).fetchall()
    return (
        owner_row[0],
        [(str(p), None if g is None else str(g), bool(w)) for p, g, w in grants],
        owner_row[1],
    )

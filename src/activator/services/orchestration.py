"""Orchestration use cases: the run plan, ``activator plan`` for an orchestration, and
``only_if_changed``.

An orchestration's rows are its query's result (or a whole table), read in the engine; a run
sends them to one destination (:func:`orchestration_run_plan`). :func:`plan_orchestration`
says what a run would send and where, writing nothing.

``only_if_changed`` compares a cheap **source fingerprint** with the one the last successful
run recorded. The fingerprint covers every table the rows are read from (the query's tables,
found with SQLGlot and followed through views; the exported table; the event tables the
mapping reads) with the cheapest signal each engine offers that a change moves:

* DuckDB tables: the exact row count (answered from table metadata) and, with ``watermark``,
  the column's latest value; views over files (``engine.sources``): each file's path, size and
  modification time (no data read);
* PostgreSQL tables: the cumulative insert, update and delete counters of
  ``pg_stat_user_tables`` and the table's ``relfilenode`` (changed by TRUNCATE and rewrites),
  plus the watermark;
* other engines: an exact ``COUNT(*)``, plus the watermark.

It also covers the applied versions of the orchestration and its destination, so a changed
query or destination always runs. A query that reads the clock (``current_date``) or files
through a table function whose files cannot be listed cannot be fingerprinted: it always
runs. See ``docs/orchestrations.md``.
"""

from __future__ import annotations

__all__ = [
    "OrchestrationPlan",
    "SourceFingerprint",
    "applied_orchestration",
    "finish_if_unchanged",
    "is_orchestration",
    "orchestration_rows",
    "orchestration_run_plan",
    "plan_orchestration",
    "send_orchestration_sample",
    "source_fingerprint",
]

import glob
import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ibis.expr.types as ir
import pyarrow as pa
import sqlglot
from sqlglot import exp

from activator.definitions import OrchestrationDefinition
from activator.definitions.files import FileDestination
from activator.definitions.mapping import mapping_sources
from activator.definitions.table import EngineTableDestination, PostgresDestination
from activator.destinations.base import DeliveryContext
from activator.destinations.files import MAX_BATCH_ROWS, base_name, render_filename
from activator.engines.base import Engine
from activator.errors import ActivatorError, ConfigError, EngineError
from activator.mapping.mapper import Mapper
from activator.runtime.ledger import LEASE_TTL
from activator.runtime.runner import DeliveryPlan, RunExecutor, RunPlan, owner_id, rebatch
from activator.runtime.sources import with_related
from activator.services.destination import connector_for, destination_definition
from activator.services.workspace import open_store, workspace_engine
from activator.store import MetadataStore, RunSummary, StoredDefinition
from activator.workspace.loader import Workspace, load_workspace

_SUCCEEDED = ("succeeded", "warning")

FINGERPRINT_EVENT = "source fingerprint taken"
"""The event a run of an ``only_if_changed`` orchestration records its fingerprint in, before
reading any row; a resumed run reuses it (its rows were read after it)."""

_DEFAULT_BATCH_ROWS = 10_000
"""Source rows per batch a file delivery asks for without ``split.rows`` (see
:class:`~activator.destinations.base.Connector`)."""


# -- the run --------------------------------------------------------------------------------


def orchestration_rows(engine: Engine, definition: OrchestrationDefinition) -> ir.Table:
    """The rows an orchestration sends, before the mapping: its query's result, or the table."""
    if definition.table is not None:
        return engine.table(definition.table)
    assert definition.query is not None
    return engine.backend.sql(definition.query, dialect=definition.dialect)


def _mapper(definition: OrchestrationDefinition, run_id: str, as_of: datetime) -> Mapper:
    return Mapper(
        definition.mapping,
        {
            "activation": definition.name,
            "orchestration": definition.name,
            "run_id": run_id,
            "time": as_of,
        },
    )


def _mapped_rows(
    ws: Workspace, engine: Engine, definition: OrchestrationDefinition, mapper: Mapper
) -> ir.Table:
    """The rows with the related-table lists the mapping reads."""
    return with_related(
        orchestration_rows(engine, definition),
        mapper.sources,
        data_model=ws.config.data_model,
        table=engine.table,
        what=f"orchestration {definition.name}: mapping",
    )


def orchestration_run_plan(
    ws: Workspace,
    store: MetadataStore,
    engine: Engine,
    run: RunSummary,
    definition: OrchestrationDefinition,
    retry_rejected: bool = False,
) -> RunPlan:
    """What an orchestration run does, for the run executor.

    With ``only_if_changed`` the run records its source fingerprint (``counts["source"]``)
    once it is over; :func:`finish_if_unchanged` decides before whether it runs at all.
    """
    destination = destination_definition(store, definition.destination)
    mapper = _mapper(definition, run.run_id, run.as_of)
    finish = None
    if definition.only_if_changed:
        fingerprint = _run_fingerprint(ws, store, engine, run, definition)

        def finish(engine: Engine, summary: RunSummary, parts: list[int]) -> dict[str, Any]:
            return {"source": fingerprint.digest}

    return RunPlan(
        rows=lambda engine: _mapped_rows(ws, engine, definition, mapper),
        deliveries=[
            DeliveryPlan(
                destination=definition.destination,
                connector=connector_for(destination, ws, engine),
                mapping=mapper if definition.mapping else None,
            )
        ],
        retry_rejected=retry_rejected,
        finish=finish,
    )


def send_orchestration_sample(
    root: Path,
    name: str,
    *,
    sample: int,
    as_of: datetime,
    destination: str | None = None,
) -> RunSummary:
    """Send the first ``sample`` rows of an orchestration, recorded as a test run, to its
    destination or to ``destination`` (a test folder or table).

    A test run is never an orchestration's last success: ``only_if_changed`` and ``after``
    ignore it, and so does the scheduler.

    Raises:
        ConfigError: no such applied orchestration or destination, or ``sample`` below 1.
    """
    if sample < 1:
        raise ConfigError(f"sample must be at least 1, got {sample}")
    ws = load_workspace(root, definitions=False)
    with open_store(ws) as store:
        found = applied_orchestration(store, name)
        if found is None:
            raise ConfigError(f"no applied orchestration named {name!r}")
        stored, definition = found
        if destination is not None:
            definition = definition.model_copy(update={"destination": destination})
        run = store.create_run(
            kind="orchestration",
            name=name,
            definition_version=stored.version,
            trigger="test",
            as_of=as_of,
            is_test=True,
        )
        with workspace_engine(ws) as engine:
            plan = orchestration_run_plan(ws, store, engine, run, definition)
            every = plan.rows
            plan.rows = lambda engine: every(engine).limit(sample)
            plan.finish = None
            executor = RunExecutor(
                store, engine, workspace_root=ws.root, timezone=ws.config.timezone
            )
            return executor.execute(run, plan)


def finish_if_unchanged(
    ws: Workspace,
    store: MetadataStore,
    engine: Engine,
    run: RunSummary,
    definition: OrchestrationDefinition,
) -> RunSummary | None:
    """For an ``only_if_changed`` orchestration whose source has not changed since its last
    successful run: finish the run as succeeded, sending nothing, and return it. Otherwise
    (or when the run already started: a resume) return None, and the run goes on.

    The fingerprint is taken before any row is read, and recorded in the run's events: a
    change made while the run reads its rows makes the next fingerprint differ, so the next
    run sends again rather than miss it.
    """
    if not definition.only_if_changed or _recorded(store, run.run_id) is not None:
        return None
    fingerprint = _run_fingerprint(ws, store, engine, run, definition)
    since = _unchanged_since(store, run, fingerprint)
    if since is None:
        return None
    store.claim_run(run.run_id, owner_id(), LEASE_TTL)
    store.add_event(
        run.run_id,
        f"source unchanged since run {since}: nothing sent",
        fields={"source": fingerprint.digest, "since": since},
    )
    return store.finish_run(
        run.run_id,
        status="succeeded",
        counts={"unchanged": True, "rows": 0, "source": fingerprint.digest},
    )


def _recorded(store: MetadataStore, run_id: str) -> dict[str, Any] | None:
    for event in store.events(run_id):
        if event.message == FINGERPRINT_EVENT:
            return event.fields
    return None


def _run_fingerprint(
    ws: Workspace,
    store: MetadataStore,
    engine: Engine,
    run: RunSummary,
    definition: OrchestrationDefinition,
) -> SourceFingerprint:
    """The run's fingerprint: the one it recorded, or a new one (then recorded)."""
    fields = _recorded(store, run.run_id)
    if fields is not None:
        return SourceFingerprint(
            digest=str(fields["source"]),
            sources=list(fields.get("sources", [])),
            always=fields.get("always"),
        )
    try:
        fingerprint = source_fingerprint(
            ws,
            engine,
            definition,
            versions=_versions(store, run.definition_version, definition),
        )
    except (ActivatorError, sqlglot.errors.SqlglotError) as exc:
        # Not a reason to skip, nor to stop here: the run reads its rows and fails there if
        # they cannot be read, with the error attributed as usual.
        fingerprint = SourceFingerprint(
            digest="unknown", sources=[], always=f"the fingerprint failed: {exc}"
        )
    store.add_event(
        run.run_id,
        FINGERPRINT_EVENT,
        fields={
            "source": fingerprint.digest,
            "sources": fingerprint.sources,
            "always": fingerprint.always,
        },
    )
    return fingerprint


def _versions(
    store: MetadataStore, version: int, definition: OrchestrationDefinition
) -> dict[str, int | None]:
    destination = store.get("destination", definition.destination)
    return {
        "orchestration": version,
        "destination": destination.version if destination is not None else None,
    }


def _unchanged_since(
    store: MetadataStore, run: RunSummary, fingerprint: SourceFingerprint
) -> str | None:
    """The run that sent the data as it still is, or None when something changed (or no
    successful run recorded a fingerprint)."""
    if fingerprint.always is not None:
        return None
    since = None
    for earlier in store.list_runs(run.kind, run.name, limit=1000, include_tests=False):
        if earlier.run_id == run.run_id or earlier.status not in _SUCCEEDED:
            continue
        if earlier.counts.get("source") != fingerprint.digest:
            break
        since = earlier.run_id
        if not earlier.counts.get("unchanged"):
            break
    return since


# -- the source fingerprint -----------------------------------------------------------------


@dataclass(frozen=True)
class SourceFingerprint:
    """What ``only_if_changed`` compares between runs.

    Attributes:
        digest: 16 hex digits of SHA-256 over the signals and versions; a run records it as
            ``counts["source"]``.
        sources: Per source table, its signal (JSON): ``table``, ``signal`` (how it was
            read) and the values.
        always: Why the rows cannot be fingerprinted (the query reads the clock...): the run
            then always sends. None when they can.
    """

    digest: str
    sources: list[dict[str, Any]]
    always: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The fingerprint as JSON."""
        return {"digest": self.digest, "sources": self.sources, "always": self.always}


_CLOCK = (exp.CurrentDate, exp.CurrentTimestamp, exp.CurrentTime, exp.CurrentDatetime)
_CLOCK_NAMES = frozenset({"now", "today", "current_date", "current_timestamp", "get_current_time"})


@dataclass(frozen=True)
class _Source:
    """A relation the rows are read from: a named table or view, or files."""

    name: str
    schema: str | None = None
    files: tuple[str, ...] | None = None


def source_fingerprint(
    ws: Workspace,
    engine: Engine,
    definition: OrchestrationDefinition,
    *,
    versions: dict[str, int | None],
) -> SourceFingerprint:
    """Fingerprint the tables an orchestration's rows are read from (reading no rows where
    the engine keeps the signal in its metadata; see the module's doc).

    Args:
        ws: The workspace.
        engine: The engine (read-only is enough).
        definition: The orchestration.
        versions: The applied versions of the orchestration and its destination.

    Raises:
        ConfigError: the query cannot be parsed.
        EngineError: a source table does not exist.
    """
    sources: list[_Source] = []
    always: str | None = None
    if definition.table is not None:
        sources.append(_Source(definition.table))
    else:
        assert definition.query is not None
        found, always = _query_sources(definition.query, definition.dialect)
        sources.extend(found)
    for related in sorted(mapping_sources(definition.mapping).related):
        event = ws.config.data_model.events.get(related)
        if event is not None:
            sources.append(_Source(event.table))
    signal = _SIGNALS.get(engine.NAME, _CountSignal)(engine, definition.watermark)
    signals: list[dict[str, Any]] = []
    for source in dict.fromkeys(sources):
        signals.extend(signal.read(source, depth=0))
    seen: set[str] = set()
    unique = []
    for entry in signals:
        key = json.dumps(entry, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            unique.append(entry)
    for entry in unique:
        if always is None and entry["signal"] == "clock":
            always = f"view {entry['table']} reads the clock"
        if always is None and entry["signal"] == "unknown":
            always = f"cannot tell when {entry['table']} changes"
    payload = {"versions": versions, "sources": unique, "watermark": definition.watermark}
    text = json.dumps(payload, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return SourceFingerprint(digest=digest, sources=unique, always=always)


def _query_sources(query: str, dialect: str) -> tuple[list[_Source], str | None]:
    """The relations a query reads, and why it always runs (a clock function), if it does."""
    try:
        tree = sqlglot.parse_one(query, read=dialect)
    except sqlglot.errors.ParseError as exc:
        raise ConfigError(f"the query does not parse as {dialect}: {exc}") from None
    return _tree_sources(tree)


def _tree_sources(tree: exp.Expression) -> tuple[list[_Source], str | None]:
    always = None
    for node in tree.find_all(*_CLOCK, exp.Anonymous):
        if not isinstance(node, exp.Anonymous) or node.name.lower() in _CLOCK_NAMES:
            always = f"the query reads the clock ({node.sql()})"
            break
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    found: list[_Source] = []
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            # A table function (read_parquet('x/*.parquet')): its string arguments are files.
            paths = [lit.this for lit in table.this.find_all(exp.Literal) if lit.is_string]
            found.append(_Source(table.this.sql(), files=tuple(paths)))
        elif table.name not in ctes or table.db:
            found.append(_Source(table.name, table.db or None))
    return found, always


class _Signal:
    """Reads the change signal of a relation in one engine (the generic one: COUNT(*))."""

    def __init__(self, engine: Engine, watermark: str | None) -> None:
        self.engine = engine
        self.watermark = watermark

    def read(self, source: _Source, *, depth: int) -> list[dict[str, Any]]:
        """The signals of a source: one per table, several when a view reads several."""
        if source.files is not None:
            return [_files_signal(source.name, source.files, self.engine.workspace_root)]
        return [self.table(source)]

    def table(self, source: _Source) -> dict[str, Any]:
        """An exact COUNT(*), and the watermark's maximum, in the engine."""
        table = self._ibis_table(source)
        aggregates = {"rows": table.count()}
        if self.watermark is not None and self.watermark in table.columns:
            aggregates["watermark"] = table[self.watermark].max()
        values = self.engine.to_pyarrow(table.aggregate(**aggregates)).to_pylist()[0]
        signal = {"table": _shown(source), "signal": "count", "rows": int(values["rows"])}
        return _with_watermark(signal, self.watermark, values)

    def _ibis_table(self, source: _Source) -> ir.Table:
        if source.schema is None:
            return self.engine.table(source.name)
        try:
            return self.engine.backend.table(source.name, database=source.schema)
        except Exception as exc:  # Ibis raises each backend's own "not found"
            raise EngineError(
                f"table {_shown(source)} not found in the {self.engine.NAME} engine ({exc})"
            ) from None


_CountSignal = _Signal


class _DuckDBSignal(_Signal):
    """DuckDB: views followed to their tables, tables counted (from metadata), views over
    files (``engine.sources``) read as the files' sizes and times."""

    def read(self, source: _Source, *, depth: int) -> list[dict[str, Any]]:
        if source.files is not None or depth > 16:
            return super().read(source, depth=depth)
        con = self.engine.backend.con
        where = "view_name = ? AND NOT internal" + (" AND schema_name = ?" if source.schema else "")
        params = [source.name, *([source.schema] if source.schema else [])]
        views = con.execute(
            f"SELECT sql, temporary FROM duckdb_views() WHERE {where} ORDER BY temporary DESC",
            params,
        ).fetchall()
        if not views:
            return [self.table(source)]
        sql, temporary = views[0]
        try:
            tree = sqlglot.parse_one(sql, read="duckdb")
        except sqlglot.errors.SqlglotError:
            return [{"table": _shown(source), "signal": "unknown"}]
        select = tree.expression if isinstance(tree, exp.Create) else tree
        found, clock = _tree_sources(select)
        if clock is not None:
            return [{"table": _shown(source), "signal": "clock"}]
        if temporary and all(s.files is not None for s in found):
            # A source view: one table function over the files Activator listed.
            files = tuple(f for s in found for f in s.files or ())
            return [_files_signal(source.name, files, self.engine.workspace_root)]
        signals: list[dict[str, Any]] = []
        for inner in found:
            signals.extend(self.read(inner, depth=depth + 1))
        return signals


class _PostgresSignal(_Signal):
    """PostgreSQL: the table's cumulative statistics (rows inserted, updated, deleted) and
    its file node, from the catalog; views followed to their tables."""

    _STATS = """
        SELECT c.relkind, c.relfilenode,
               coalesce(sum(s.n_tup_ins), 0), coalesce(sum(s.n_tup_upd), 0),
               coalesce(sum(s.n_tup_del), 0), pg_get_viewdef(c.oid),
               current_setting('track_counts')
        FROM pg_class c
        LEFT JOIN pg_partition_tree(c.oid) p ON p.isleaf
        LEFT JOIN pg_stat_all_tables s ON s.relid = coalesce(p.relid, c.oid)
        WHERE c.oid = to_regclass({regclass})
        GROUP BY c.oid, c.relkind, c.relfilenode
    """

    def read(self, source: _Source, *, depth: int) -> list[dict[str, Any]]:
        if source.files is not None or depth > 16:
            return super().read(source, depth=depth)
        schema = source.schema or self.engine.config.schema_
        qualified = exp.table_(source.name, db=schema, quoted=True).sql("postgres")
        cursor = self.engine.backend.raw_sql(self._STATS.format(regclass=_pg_text(qualified)))
        try:
            row = cursor.fetchone()
        finally:
            cursor.close()
        if row is None:
            raise EngineError(f"table {schema}.{source.name} not found in the postgres engine")
        kind, node, inserted, updated, deleted, view_sql, track_counts = row
        if kind == "v" and view_sql:
            try:
                found, clock = _tree_sources(sqlglot.parse_one(view_sql, read="postgres"))
            except sqlglot.errors.SqlglotError:
                return [{"table": _shown(_Source(source.name, schema)), "signal": "unknown"}]
            if clock is not None:
                return [{"table": _shown(_Source(source.name, schema)), "signal": "clock"}]
            signals: list[dict[str, Any]] = []
            for inner in found:
                inner = inner if inner.schema or inner.files else _Source(inner.name, schema)
                signals.extend(self.read(inner, depth=depth + 1))
            return signals
        shown = _shown(_Source(source.name, schema))
        if track_counts != "on":
            # Without statistics the counters never move: count instead.
            return [self.table(_Source(source.name, schema))]
        signal: dict[str, Any] = {
            "table": shown,
            "signal": "pg_stat",
            "inserted": int(inserted),
            "updated": int(updated),
            "deleted": int(deleted),
            "relfilenode": int(node),
        }
        if self.watermark is not None:
            table = self._ibis_table(_Source(source.name, schema))
            if self.watermark in table.columns:
                values = self.engine.to_pyarrow(
                    table.aggregate(watermark=table[self.watermark].max())
                ).to_pylist()[0]
                return [_with_watermark(signal, self.watermark, values)]
            signal["watermark"] = None
        return [signal]


_SIGNALS: dict[str, type[_Signal]] = {"duckdb": _DuckDBSignal, "postgres": _PostgresSignal}
"""Engines with a cheaper signal than COUNT(*), by engine type."""


def _pg_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _with_watermark(
    signal: dict[str, Any], watermark: str | None, values: dict[str, Any]
) -> dict[str, Any]:
    if watermark is not None:
        found = values.get("watermark")
        # Times and decimals as text: the signal is kept in the run's events (JSON).
        plain = found is None or isinstance(found, bool | int | float | str)
        signal["watermark"] = found if plain else str(found)
    return signal


def _files_signal(name: str, files: tuple[str, ...], root: Path) -> dict[str, Any]:
    """Each file's path, size and modification time: a rewrite of any file moves them."""
    listing: list[tuple[str, int, int]] = []
    for pattern in files:
        path = pattern if os.path.isabs(pattern) else str(root / pattern)
        for found in sorted(glob.glob(path, recursive=True)) or [path]:
            try:
                stat = os.stat(found)
            except OSError:
                return {"table": name, "signal": "unknown", "files": len(files)}
            listing.append((found, stat.st_size, stat.st_mtime_ns))
    if not listing:
        return {"table": name, "signal": "unknown", "files": 0}
    digest = hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:16]
    latest = max(m for _, _, m in listing)
    return {
        "table": name,
        "signal": "files",
        "files": len(listing),
        "bytes": sum(s for _, s, _ in listing),
        "modified": datetime.fromtimestamp(latest / 1e9, UTC).isoformat(),
        "listing": digest,
    }


def _shown(source: _Source) -> str:
    return f"{source.schema}.{source.name}" if source.schema else source.name


# -- the plan -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrchestrationPlan:
    """What a run at ``as_of`` would do, computed without sending or writing anything."""

    orchestration: str
    version: int
    as_of: datetime
    destination: str
    rows: int
    """Rows the query (or table) returns."""

    sent: int
    """Rows the destination would receive: ``rows`` after the mapping's shrink and expansion."""

    shrink: int
    expansion: int
    columns: list[tuple[str, str]]
    """(name, Arrow type) of each column written, after the mapping."""

    target: dict[str, Any]
    """The destination: ``type`` and, for files, the names, format, compression, manifest and
    ``.DONE``; for tables, the table, mode and keys."""

    only_if_changed: bool = False
    fingerprint: SourceFingerprint | None = None
    last_run: str | None = None
    """The last successful run that recorded a fingerprint."""

    would_skip: bool = False
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON (``activator plan --json``)."""
        return {
            "orchestration": self.orchestration,
            "version": self.version,
            "as_of": self.as_of.isoformat(),
            "destination": self.destination,
            "rows": self.rows,
            "sent": self.sent,
            "shrink": self.shrink,
            "expansion": self.expansion,
            "columns": [{"name": n, "type": t} for n, t in self.columns],
            "target": self.target,
            "only_if_changed": self.only_if_changed,
            "source": None if self.fingerprint is None else self.fingerprint.to_json(),
            "last_run": self.last_run,
            "would_skip": self.would_skip,
            "notes": self.notes,
        }


def applied_orchestration(
    store: MetadataStore, name: str
) -> tuple[StoredDefinition, OrchestrationDefinition] | None:
    """The applied orchestration by name, or None when there is none."""
    stored = store.get("orchestration", name)
    if stored is None:
        return None
    return stored, OrchestrationDefinition.model_validate(stored.spec)


def plan_orchestration(
    root: Path, name: str, *, as_of: datetime, say: Callable[[str], None] | None = None
) -> OrchestrationPlan:
    """What a run of an orchestration at ``as_of`` would send and where, without sending or
    writing anything (the engine is opened read-only; no run is recorded).

    Rows are counted in the engine; with a mapping they are also mapped (not sent) to count
    the shrink and expansion and type the columns. The file names are rendered from the
    destination's template at ``as_of``; with ``only_if_changed``, the source fingerprint is
    taken and compared with the last successful run's.

    Raises:
        ConfigError: no such applied orchestration, or its destination is not applied.
    """
    ws = load_workspace(root, definitions=False)
    with open_store(ws) as store:
        found = applied_orchestration(store, name)
        if found is None:
            raise ConfigError(
                f"no applied orchestration named {name!r}",
                hint="run `activator apply` after adding or changing definitions",
            )
        stored, definition = found
        destination = destination_definition(store, definition.destination)
        with workspace_engine(ws, read_only=True) as engine:
            if say is not None:
                say(f"planning orchestration {name} v{stored.version} as of {as_of.isoformat()}")
            mapper = _mapper(definition, "{run_id}", as_of)
            rows = _mapped_rows(ws, engine, definition, mapper)
            batch_rows = _batch_rows(destination)
            tally = _tally(engine, rows, mapper if definition.mapping else None, batch_rows)
            fingerprint = last = None
            would_skip = False
            notes: list[str] = []
            if definition.only_if_changed:
                fingerprint = source_fingerprint(
                    ws, engine, definition, versions=_versions(store, stored.version, definition)
                )
                last = _last_fingerprinted(store, name)
                would_skip = (
                    fingerprint.always is None
                    and last is not None
                    and (last.counts.get("source") == fingerprint.digest)
                )
                if fingerprint.always is not None:
                    notes.append(f"only_if_changed: {fingerprint.always}; every run sends")
                if definition.watermark is not None and not any(
                    "watermark" in s and s["watermark"] is not None for s in fingerprint.sources
                ):
                    notes.append(
                        f"watermark {definition.watermark!r}: no source table has a value in it"
                    )
    target = _target(destination, ws, name, as_of, tally)
    return OrchestrationPlan(
        orchestration=name,
        version=stored.version,
        as_of=as_of,
        destination=definition.destination,
        rows=tally.rows,
        sent=tally.sent,
        shrink=tally.shrink,
        expansion=tally.expansion,
        columns=tally.columns,
        target=target,
        only_if_changed=definition.only_if_changed,
        fingerprint=fingerprint,
        last_run=None if last is None else last.run_id,
        would_skip=would_skip,
        notes=notes,
    )


def _last_fingerprinted(store: MetadataStore, name: str) -> RunSummary | None:
    for run in store.list_runs("orchestration", name, limit=1000, include_tests=False):
        if run.status in _SUCCEEDED and "source" in run.counts:
            return run
    return None


@dataclass
class _Tally:
    rows: int = 0
    sent: int = 0
    shrink: int = 0
    expansion: int = 0
    columns: list[tuple[str, str]] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)
    """Rows of each mapped batch, as the delivery would receive them."""


def _batch_rows(destination: Any) -> int:
    """Source rows per batch the destination's delivery asks for (files: as FileDelivery)."""
    if isinstance(destination, FileDestination) and destination.split is not None:
        split = destination.split
        if split.rows is not None:
            if split.rows <= MAX_BATCH_ROWS:
                return split.rows
            return next(
                (s for s in range(MAX_BATCH_ROWS, 999, -1) if split.rows % s == 0), MAX_BATCH_ROWS
            )
        if split.batch_rows is not None:
            return split.batch_rows
    return _DEFAULT_BATCH_ROWS


def _tally(engine: Engine, rows: ir.Table, mapper: Mapper | None, batch_rows: int) -> _Tally:
    """Count the rows; with a mapping, map them in batches as a delivery would (not sent)."""
    tally = _Tally()
    if mapper is None:
        counted = engine.to_pyarrow(rows.count().name("n").as_table())
        tally.rows = tally.sent = int(counted["n"][0].as_py())
        schema = rows.schema().to_pyarrow()
        tally.columns = [(f.name, str(f.type)) for f in schema]
        full, rest = divmod(tally.rows, batch_rows)
        tally.batches = [batch_rows] * full + ([rest] if rest else [])
        return tally
    schema = rows.schema().to_pyarrow()
    out_schema: pa.Schema | None = None
    # The main session, not engine.stream: DuckDB's second cursor does not see the source
    # views, and nothing else runs on this read-only engine meanwhile.
    for batch in rebatch(engine.to_batches(rows, rows_per_batch=batch_rows), batch_rows):
        mapped = mapper.apply(batch)
        tally.rows += batch.num_rows
        tally.sent += mapped.batch.num_rows
        tally.shrink += mapped.shrink
        tally.expansion += mapped.expansion
        tally.batches.append(mapped.batch.num_rows)
        out_schema = out_schema or mapped.batch.schema
    if out_schema is None:  # no rows: the mapping still types the columns
        out_schema = mapper.apply(pa.RecordBatch.from_pylist([], schema=schema)).batch.schema
    tally.columns = [(f.name, str(f.type)) for f in out_schema]
    return tally


def _parts(batches: list[int], max_rows: int) -> list[int]:
    """Rows of each part a ``split.rows`` delivery writes for these batches (as FileDelivery
    cuts them: a part closes before a batch that would take it past ``max_rows``, and once it
    is full; a batch larger than a part alone is cut into full parts)."""
    parts: list[int] = []
    current: int | None = None
    for size in batches:
        if current is not None and current + size > max_rows:
            parts.append(current)
            current = None
        if size > max_rows:
            pieces = math.ceil(size / max_rows)
            parts.extend([max_rows] * (pieces - 1) + [size - max_rows * (pieces - 1)])
            current = None
            continue
        current = (current or 0) + size
        if current >= max_rows:
            parts.append(current)
            current = None
    if current is not None:
        parts.append(current)
    return parts


def _target(
    destination: Any, ws: Workspace, name: str, as_of: datetime, tally: _Tally
) -> dict[str, Any]:
    if isinstance(destination, FileDestination):
        return _file_target(destination, ws, name, as_of, tally)
    if isinstance(destination, PostgresDestination | EngineTableDestination):
        schema = destination.schema_
        return {
            "type": destination.type,
            "table": f"{schema}.{destination.table}" if schema else destination.table,
            "mode": destination.mode,
            "keys": list(destination.keys),
            "create": destination.create,
        }
    return {"type": destination.type}


def _file_target(
    destination: FileDestination, ws: Workspace, name: str, as_of: datetime, tally: _Tally
) -> dict[str, Any]:
    context = DeliveryContext(
        run_id="{run_id}",
        task=f"deliver:{destination.name}",
        as_of=as_of,
        timezone=ws.config.timezone,
        activation_kind="orchestration",
        activation=name,
        names={"orchestration": name},
        workspace_root=ws.root,
    )
    fmt = destination.format
    extension = (
        destination.extension
        if destination.extension is not None
        else fmt.extension + fmt.compression_extension + (".gpg" if destination.pgp else "")
    )

    def named(part: int) -> str:
        base = render_filename(destination, context, part)
        return base if base.endswith(extension) else base + extension

    split = destination.split
    estimated = False
    if split is None:
        sizes = [tally.sent] if tally.batches else []
    elif split.rows is not None:
        sizes = _parts(tally.batches, split.rows)
    else:
        sizes, estimated = [], True
    files = [named(i) for i in range(1, len(sizes) + 1)] if not estimated else [named(1)]
    base = base_name(destination, context)
    return {
        "type": destination.type,
        "path": destination.path,
        "files": files,
        "parts": None if estimated else len(sizes),
        "part_rows": sizes,
        "estimated": estimated,
        "split": None if split is None else split.model_dump(exclude_none=True),
        "format": fmt.type,
        "compression": fmt.compression,
        **({"codec": fmt.codec} if fmt.type == "parquet" else {}),
        "pgp": destination.pgp is not None,
        "manifest": base + ".manifest.json" if destination.manifest else None,
        "done": base + ".DONE" if destination.done_marker else None,
    }


def is_orchestration(root: Path, name: str) -> bool:
    """Whether ``activator plan NAME`` plans an orchestration: one is applied under that name
    and no campaign is (``activator run`` looks for a campaign first too)."""
    with open_store(load_workspace(root, definitions=False)) as store:
        return store.get("campaign", name) is None and store.get("orchestration", name) is not None

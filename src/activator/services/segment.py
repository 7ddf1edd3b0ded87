"""Segment use cases: preview with insights, compiled SQL, why a customer is in, snapshots.

Nothing here prints: results come back as dataclasses; progress goes to a callback. Set work
runs in the engine as Ibis expressions; only a preview's small sample and one row of counts
come back to Python.
"""

from __future__ import annotations

__all__ = [
    "DIALECTS",
    "SNAPSHOT_TABLE",
    "SegmentExplanation",
    "SegmentInsights",
    "SegmentPreview",
    "activity_tables",
    "compiled_sql",
    "engine_context",
    "mask",
    "preview",
    "segment_context",
    "snapshot",
    "why",
]

import datetime as dt
import difflib
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import ibis
import ibis.expr.datatypes as idt
import ibis.expr.operations as ops
import ibis.expr.types as ir
import sqlglot
import sqlglot.expressions as sge

from activator.compiler.dates import window_bounds
from activator.compiler.segment import (
    CompileContext,
    ConditionResult,
    explain_customer,
    segment_members,
)
from activator.definitions.config import DataModel, EventTable
from activator.definitions.segment import SegmentDefinition
from activator.engines.base import Engine
from activator.errors import ConfigError, EngineError
from activator.services.workspace import validate_workspace, workspace_engine
from activator.workspace.loader import Workspace

Progress = Callable[[str], None]

DIALECTS = ("duckdb", "spark", "postgres", "trino", "bigquery", "snowflake")
"""Dialects ``compiled_sql`` writes; Trino, BigQuery and Snowflake need no connection."""

SNAPSHOT_TABLE = "segment_members"
"""Data-plane table of membership snapshots: (segment, run_id, as_of, <customer key>)."""

# Ibis names its Spark compiler after the Python package, SQLGlot after the engine.
_IBIS_COMPILER = {"spark": "pyspark"}

_LAST_YEAR = "365d"
"""'Last year' in the insights: the window of the 365 days up to the as-of time."""

# A usable email: something@domain.tld once trimmed; a usable phone: 7 or more digits once
# spaces, dashes, brackets and the like are stripped. Same rules in every engine (RE2 and
# POSIX-compatible syntax).
_EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s.]+$"
_PHONE_MIN_DIGITS = 7


@dataclass(frozen=True)
class SegmentInsights:
    """What the members of a segment are worth and how many can be reached.

    Attributes:
        unique_customers: members found in the customer table (a SQL segment can return IDs
            that are not customers; those count in ``count`` only).
        active_last_year: members with at least one purchase (not returned) in the 365 days
            before the as-of time; None when the data model has no event table with an amount.
        revenue_last_year: exact sum of the amounts of those purchases; None as above.
        reachable: members with a usable email or phone; None when the customer table has
            neither column.
    """

    unique_customers: int
    active_last_year: int | None
    revenue_last_year: Decimal | None
    reachable: int | None


@dataclass(frozen=True)
class SegmentPreview:
    """A segment's size, first members and insights at one as-of time.

    Attributes:
        segment: the segment's name.
        as_of: the as-of time (aware, UTC).
        count: members (distinct activation IDs).
        columns: the sample's columns: the customer table's, in its order.
        sample: up to ``limit`` members ordered by activation ID, PII columns masked.
        insights: unique, active and reachable customers, and last year's revenue.
        purchase_table: the event table the activity and revenue insights come from.
    """

    segment: str
    as_of: dt.datetime
    count: int
    columns: list[str]
    sample: list[dict[str, Any]]
    insights: SegmentInsights
    purchase_table: str | None


@dataclass(frozen=True)
class SegmentExplanation:
    """Why a customer is, or is not, in a segment.

    Attributes:
        segment: the segment's name.
        customer_id: the customer, typed like the customer key.
        as_of: the as-of time (aware, UTC).
        member: whether the customer is in the segment.
        result: the rule tree with, for each condition, whether it was met and the deciding
            value.
    """

    segment: str
    customer_id: Any
    as_of: dt.datetime
    member: bool
    result: ConditionResult


# -- opening a workspace ------------------------------------------------------------------


@contextmanager
def _open_read_only(
    root: Path, name: str, progress: Progress | None, workspace: Workspace | None = None
) -> Iterator[tuple[Workspace, Engine]]:
    """Validate the workspace (unless given one already validated: the API's, built from the
    metadata store), check the segment exists, and open its engine read-only."""
    say = progress or (lambda _: None)
    ws = workspace or validate_workspace(root, progress=progress).workspace
    _segment(ws, name)
    say(f"opening the {ws.config.engine.type} engine")
    with workspace_engine(ws, read_only=True) as engine:
        yield ws, engine


def _segments(ws: Workspace) -> dict[str, SegmentDefinition]:
    found: dict[str, SegmentDefinition] = {}
    for loaded in ws.of_kind("segment"):
        assert isinstance(loaded.model, SegmentDefinition)
        found[loaded.name] = loaded.model
    return found


def _segment(ws: Workspace, name: str) -> SegmentDefinition:
    segments = _segments(ws)
    if name in segments:
        return segments[name]
    close = difflib.get_close_matches(name, segments, n=1)
    known = ", ".join(sorted(segments)) or "none"
    suggestion = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(
        f"unknown segment {name!r}",
        hint=f"{suggestion}known segments: {known}",
    )


def segment_context(
    ws: Workspace,
    *,
    as_of: dt.datetime,
    tables: Callable[[str], ir.Table],
    dialect: str,
    activity: Callable[[str], ir.Table | None] | None = None,
) -> CompileContext:
    """The compiler's view of a workspace at one as-of time.

    Args:
        ws: the loaded workspace.
        as_of: the as-of time (aware).
        tables: table name → Ibis table (``Engine.table``, or unbound tables for SQL only).
        dialect: SQLGlot dialect of the engine the expressions are for.
        activity: data-plane table name → Ibis table, or None while it does not exist
            (:func:`activity_tables` of the engine); campaign activity conditions read the
            recipients table through it. None: no campaign has sent anything.
    """
    return CompileContext(
        # The compiler asks for the same tables many times; each lookup may be a round trip.
        tables=functools.cache(tables),
        data_model=ws.config.data_model,
        segments=_segments(ws),
        as_of=as_of.astimezone(dt.UTC),
        timezone=ws.config.timezone,
        dialect=dialect,
        activity=activity,
    )


def engine_context(ws: Workspace, engine: Engine, as_of: dt.datetime) -> CompileContext:
    """The compiler's view of a workspace on an open engine: its tables, its dialect and its
    data plane's activity tables (campaign recipients)."""
    return segment_context(
        ws,
        as_of=as_of,
        tables=engine.table,
        dialect=engine.DIALECT,
        activity=activity_tables(engine),
    )


def activity_tables(engine: Engine) -> Callable[[str], ir.Table | None]:
    """The engine's data-plane tables for activity conditions: None while one does not exist.

    The data plane is listed at each lookup (not once), so a context built before a
    campaign's first send sees the recipients table once it has been created.
    """

    def table(name: str) -> ir.Table | None:
        if name not in engine.list_dataplane_tables():
            return None
        return engine.dataplane_table(name)

    return table


def _unbound_activity(engine: Engine) -> Callable[[str], ir.Table | None]:
    """Data-plane table name → an unbound table with the engine's schema of it (or None),
    qualified with the data-plane schema (Activator's own, the same on every engine)."""
    bound = activity_tables(engine)

    def table(name: str) -> ir.Table | None:
        found = bound(name)
        if found is None:
            return None
        return ibis.table(found.schema(), name=name, database=engine.dataplane_schema)

    return table


# -- preview --------------------------------------------------------------------------------


def preview(
    root: Path,
    name: str,
    *,
    as_of: dt.datetime,
    limit: int = 10,
    progress: Progress | None = None,
    workspace: Workspace | None = None,
) -> SegmentPreview:
    """Count a segment's members, take a masked sample, and compute its insights.

    The count and the insights are one aggregate query over the members in the engine; the
    sample is a second query of at most ``limit`` rows.

    Args:
        root: the workspace folder.
        name: the segment.
        as_of: the as-of time (aware) relative dates and windows resolve against.
        limit: sample size (0 for none).
        progress: called with each step.

    Raises:
        DefinitionError: the workspace is invalid.
        ConfigError: the segment does not exist, or ``limit`` is negative.
        EngineError: the engine cannot be opened.
    """
    if limit < 0:
        raise ConfigError(f"--limit must be 0 or more, got {limit}")
    say = progress or (lambda _: None)
    with _open_read_only(root, name, progress, workspace) as (ws, engine):
        ctx = engine_context(ws, engine, as_of)
        model = ws.config.data_model
        say("compiling")
        members = segment_members(ctx, name)
        customers = ctx.tables(model.customers.table)
        purchases = _purchase_table(model)
        say("counting members and insights")
        totals = _insights(ctx, engine, model, members, customers, purchases)
        say("sampling members")
        columns, sample = _sample(model, members, customers, engine, limit)
    count = int(totals["count"])
    insights = SegmentInsights(
        unique_customers=int(totals["unique_customers"]),
        active_last_year=None if purchases is None else int(totals["active"]),
        revenue_last_year=None if purchases is None else _decimal(totals["revenue"]),
        reachable=None if totals.get("reachable") is None else int(totals["reachable"]),
    )
    return SegmentPreview(
        segment=name,
        as_of=as_of.astimezone(dt.UTC),
        count=count,
        columns=columns,
        sample=sample,
        insights=insights,
        purchase_table=None if purchases is None else purchases[0],
    )


def _purchase_table(model: DataModel) -> tuple[str, EventTable] | None:
    """The event table activity and revenue insights are measured on.

    The first event table of the data model that declares an amount. Only one: a model usually
    declares orders and their lines, and adding both would count every purchase twice.
    """
    for event_name, event in model.events.items():
        if event.amount is not None:
            return event_name, event
    return None


def _instant(moment: dt.datetime, column: idt.DataType, timezone: str) -> ir.Scalar:
    """An instant as a literal comparable with a timestamp column.

    A timestamp without a time zone holds wall-clock times of the workspace's time zone, as
    the compiler reads it.
    """
    if isinstance(column, idt.Timestamp) and column.timezone is None:
        local = moment.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)
        return ibis.literal(local, type=column)
    return ibis.literal(moment.astimezone(dt.UTC), type=idt.Timestamp(timezone="UTC"))


def _money(column: ir.Column) -> ir.Value:
    # Floating-point sums depend on the order of parallel summation: cast to DECIMAL first
    # (the compiler's precision, so totals agree with `total_value` conditions).
    if isinstance(column.type(), idt.Floating):
        return column.cast(idt.Decimal(38, 4))
    return column


def _contact_columns(customers: ir.Table) -> tuple[str | None, str | None]:
    """The customer table's email and phone columns, found by name among its string columns."""
    strings = [c for c, t in customers.schema().items() if isinstance(t, idt.String)]

    def pick(*words: str) -> str | None:
        exact = [c for c in strings if c.lower() in words]
        loose = [c for c in strings if any(w in c.lower() for w in words)]
        found = exact or loose
        return found[0] if found else None

    return pick("email", "email_address"), pick("phone", "mobile", "phone_number")


def _reachable(customers: ir.Table) -> ir.BooleanColumn | None:
    email, phone = _contact_columns(customers)
    tests: list[ir.BooleanColumn] = []
    if email is not None:
        tests.append(customers[email].strip().re_search(_EMAIL_PATTERN).fill_null(False))
    if phone is not None:
        digits = customers[phone].re_replace(r"[^0-9]", "").length()
        tests.append((digits >= _PHONE_MIN_DIGITS).fill_null(False))
    if not tests:
        return None
    reachable = tests[0]
    for test in tests[1:]:
        reachable = reachable | test
    return reachable


def _insights(
    ctx: CompileContext,
    engine: Engine,
    model: DataModel,
    members: ir.Table,
    customers: ir.Table,
    purchases: tuple[str, EventTable] | None,
) -> dict[str, Any]:
    """Count and insights in one aggregate query over the members."""
    key = model.customers.key
    m = members.select(_m_id=members[key])
    fields: dict[str, Any] = {"_c_id": customers[key]}
    reachable = _reachable(customers)
    if reachable is not None:
        fields["_reachable"] = reachable
    c = customers.select(**fields)
    joined = m.left_join(c, m._m_id == c._c_id)
    if purchases is not None:
        _, event = purchases
        events = ctx.tables(event.table)
        when = events[event.timestamp]
        if isinstance(when.type(), idt.Date):
            # A date stands for the start of that day, as in conditions.
            when = when.cast(idt.Timestamp())
        # The same window as a condition's `last: 365d`: (as_of - 365 days, as_of].
        bounds = window_bounds(_LAST_YEAR, None, ctx.as_of, ZoneInfo(ctx.timezone))
        assert bounds.lower is not None
        assert bounds.upper is not None
        kept = (when > _instant(bounds.lower, when.type(), ctx.timezone)) & (
            when <= _instant(bounds.upper, when.type(), ctx.timezone)
        )
        if event.returned is not None:
            kept &= ~events[event.returned].fill_null(False)
        assert event.amount is not None
        bought = (
            events.filter(kept)
            .group_by(_p_id=events[event.customer_key])
            .aggregate(_revenue=_money(events[event.amount]).sum())
        )
        joined = joined.left_join(bought, joined._m_id == bought._p_id)
    measures: dict[str, Any] = {
        "count": joined._m_id.count(),
        "unique_customers": joined._c_id.nunique(),
    }
    if purchases is not None:
        measures["active"] = joined._p_id.count()
        measures["revenue"] = joined._revenue.sum()
    if reachable is not None:
        measures["reachable"] = joined._reachable.cast("int64").sum().fill_null(0)
    row = engine.to_pyarrow(joined.aggregate(**measures)).to_pylist()[0]
    return dict(row)


def _decimal(value: Any) -> Decimal:
    # No purchase in the window: the SQL sum is NULL, the revenue is zero.
    return Decimal(0) if value is None else Decimal(value)


def _sample(
    model: DataModel,
    members: ir.Table,
    customers: ir.Table,
    engine: Engine,
    limit: int,
) -> tuple[list[str], list[dict[str, Any]]]:
    """The first ``limit`` members by activation ID, with the customer's columns masked."""
    key = model.customers.key
    columns = list(customers.columns)
    if limit == 0:
        return columns, []
    m = members.select(_m_id=members[key])
    first = m.order_by(m._m_id).limit(limit)
    joined = first.left_join(customers, first._m_id == customers[key])
    # Members a SQL segment returns that are not in the customer table keep their ID.
    picked = joined.select(
        **{c: (joined._m_id if c == key else joined[c]) for c in columns}
    ).order_by(key)
    rows = engine.to_pyarrow(picked).to_pylist()
    pii = set(model.customers.pii) - {key}
    return columns, [{c: (mask(v) if c in pii else v) for c, v in row.items()} for row in rows]


def mask(value: Any) -> str | None:
    """Hide personal data, keeping enough to recognise its shape.

    ``jane.doe@example.com`` → ``j***@example.com``; other text keeps its first character
    (``Jane`` → ``J***``); dates and numbers become ``***``; NULL stays NULL.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        return "***"
    text = value.strip()
    if "@" in text:
        local, domain = text.split("@", 1)
        return f"{local[:1]}***@{domain}"
    return f"{text[:1]}***"


# -- compiled SQL ---------------------------------------------------------------------------


def compiled_sql(
    root: Path,
    name: str,
    *,
    dialect: str,
    as_of: dt.datetime,
    progress: Progress | None = None,
    workspace: Workspace | None = None,
) -> str:
    """The SQL a segment compiles to, in one of :data:`DIALECTS`.

    For the workspace engine's own dialect the SQL names its tables as the engine does; for
    the others it is compiled over unbound tables with the engine's schemas, so no connection
    to that engine is needed.

    Raises:
        ConfigError: unknown dialect or segment.
        DefinitionError: the workspace is invalid.
    """
    if dialect not in DIALECTS:
        raise ConfigError(f"unknown dialect {dialect!r}", hint=f"use one of: {', '.join(DIALECTS)}")
    with _open_read_only(root, name, progress, workspace) as (ws, engine):
        # The engine's own dialect names tables as the engine does; others get bare names.
        if dialect == engine.DIALECT:
            ctx = segment_context(
                ws,
                as_of=as_of,
                tables=engine.table,
                dialect=dialect,
                activity=activity_tables(engine),
            )
        else:
            ctx = replace(
                segment_context(
                    ws,
                    as_of=as_of,
                    tables=_unbound_tables(engine),
                    dialect=dialect,
                    activity=_unbound_activity(engine),
                ),
                sql=_unbound_sql(engine, dialect),
            )
        expr = segment_members(ctx, name)
        return str(ibis.to_sql(expr, dialect=_IBIS_COMPILER.get(dialect, dialect)))


def _unbound_tables(engine: Engine) -> Callable[[str], ir.Table]:
    """Table name → an unbound Ibis table with the engine's schema of that table."""
    cache: dict[str, ir.Table] = {}

    def table(name: str) -> ir.Table:
        if name not in cache:
            cache[name] = ibis.table(engine.schema_of(name), name=name)
        return cache[name]

    return table


def _unbound_sql(engine: Engine, dialect: str) -> Callable[[str], ir.Table]:
    """A SQL segment's query (in ``dialect``) as a table, without running it anywhere.

    The result's columns come from the workspace engine, which describes the same query
    translated to its own dialect; the SQL itself is kept as written for ``dialect``.
    """

    def table(query: str) -> ir.Table:
        local = sqlglot.transpile(query, read=dialect, write=engine.DIALECT)[0]
        schema = engine.backend.sql(local, dialect=engine.DIALECT).schema()
        return ops.SQLQueryResult(query=query, schema=schema, source=None).to_expr()

    return table


# -- why ------------------------------------------------------------------------------------


def why(
    root: Path,
    name: str,
    customer_id: str,
    *,
    as_of: dt.datetime,
    progress: Progress | None = None,
    workspace: Workspace | None = None,
) -> SegmentExplanation:
    """Explain, condition by condition, whether a customer is in a segment.

    Args:
        root: the workspace folder.
        name: the segment.
        customer_id: the customer's key as typed by the user; converted to the key's type.
        as_of: the as-of time (aware).
        progress: called with each step.

    Raises:
        ConfigError: unknown segment or customer, or an ID that does not fit the key's type.
        DefinitionError: the workspace is invalid.
    """
    say = progress or (lambda _: None)
    with _open_read_only(root, name, progress, workspace) as (ws, engine):
        model = ws.config.data_model
        key = model.customers.key
        customers = engine.table(model.customers.table)
        value = _typed_id(customer_id, customers[key].type(), key)
        say(f"looking up customer {customer_id}")
        found = engine.to_pyarrow(customers.filter(customers[key] == value).count()).as_py()
        if not found:
            raise ConfigError(
                f"customer {customer_id!r} not found in {model.customers.table}.{key}",
                hint="pass an activation ID from the customer table",
            )
        ctx = engine_context(ws, engine, as_of)
        say("evaluating conditions")
        result = explain_customer(ctx, name, value)
        members = segment_members(ctx, name)
        member = engine.to_pyarrow(members.filter(members[key] == value).count()).as_py() > 0
    return SegmentExplanation(
        segment=name,
        customer_id=value,
        as_of=as_of.astimezone(dt.UTC),
        member=bool(member),
        result=result,
    )


def _typed_id(text: str, key_type: idt.DataType, key: str) -> Any:
    """The customer ID from the command line as a value of the key's type."""
    if isinstance(key_type, idt.Integer):
        try:
            return int(text.strip())
        except ValueError:
            raise ConfigError(
                f"customer {text!r} is not a valid {key}: the key is a whole number"
            ) from None
    return text


# -- snapshots --------------------------------------------------------------------------------


def snapshot(engine: Engine, ctx: CompileContext, name: str, *, run_id: str) -> int:
    """Materialise a segment's members for a run into the data plane; return how many.

    Rows go to :data:`SNAPSHOT_TABLE` as (segment, run_id, as_of, <customer key>). Snapshotting
    the same segment for the same run again replaces that run's rows, never duplicates them,
    so a resumed run can repeat the step; on engines with transactions the replacement is
    atomic.

    Args:
        engine: the engine, open for writing.
        ctx: the compile context (its as-of time is recorded with the rows).
        name: the segment.
        run_id: the run the snapshot belongs to.

    Raises:
        EngineError: the engine is read-only.
    """
    if engine.read_only:
        raise EngineError(
            f"cannot snapshot segment {name!r}: the {engine.NAME} engine was opened read-only",
            hint="open it for writing (no other process may hold it)",
        )
    key = ctx.data_model.customers.key
    members = segment_members(ctx, name)
    rows = members.select(
        segment=ibis.literal(name, type="string"),
        run_id=ibis.literal(run_id, type="string"),
        as_of=ibis.literal(ctx.as_of.astimezone(dt.UTC), type=idt.Timestamp(timezone="UTC")),
        **{key: members[key]},
    )
    if SNAPSHOT_TABLE not in engine.list_dataplane_tables():
        engine.create_dataplane_table(SNAPSHOT_TABLE, rows.limit(0))
    target = sge.table_(SNAPSHOT_TABLE, db=engine.dataplane_schema, quoted=True)
    delete = sge.delete(
        target,
        where=sge.and_(
            sge.column("segment", quoted=True).eq(sge.convert(name)),
            sge.column("run_id", quoted=True).eq(sge.convert(run_id)),
        ),
    ).sql(engine.DIALECT)
    backend = engine.backend
    atomic = engine.SUPPORTS_TRANSACTIONS
    if atomic:
        backend.raw_sql("BEGIN TRANSACTION")
    try:
        backend.raw_sql(delete)
        backend.insert(SNAPSHOT_TABLE, rows, database=engine.dataplane_schema)
    except BaseException:
        if atomic:
            backend.raw_sql("ROLLBACK")
        raise
    if atomic:
        backend.raw_sql("COMMIT")
    stored = engine.dataplane_table(SNAPSHOT_TABLE)
    counted = stored.filter((stored.segment == name) & (stored.run_id == run_id)).count()
    return int(engine.to_pyarrow(counted).as_py())

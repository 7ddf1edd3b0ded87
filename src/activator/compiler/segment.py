"""Segments → Ibis expressions: who is in a segment, and why a given customer is or is not.

A rule segment compiles to one query over the customer table. Conditions on other tables
become grouped aggregates keyed by the customer, left-joined to the customers: the behaviour
and related-table attribute conditions on one event table share a single aggregate (one scan
of the table over the widest time range they need, each condition's measure a conditional
aggregate: ``count(*) FILTER (WHERE ...)``); a ``most_frequent`` behaviour, each RFM score,
each membership and each campaign or journey activity condition (over the data plane's
recipients or journey travel log) has its own. Every condition is then a boolean column of that wide
table, ``COALESCE``-d to false so a NULL never satisfies anything, and the
``all`` / ``any`` / ``not`` tree combines them with two-valued logic. The members are the
customers where ``rules and not exclude`` holds. :func:`explain_customer` evaluates the *same*
columns for one customer, so an explanation cannot disagree with the member list.

SQL segments are transpiled with SQLGlot to the engine's dialect and run through the Ibis
backend the customer table belongs to; their result composes with rules like any other set.
"""

from __future__ import annotations

__all__ = [
    "RECIPIENTS_TABLE",
    "CompileContext",
    "ConditionResult",
    "check_segment",
    "explain_customer",
    "segment_flags",
    "segment_members",
]

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from activator.compiler.check import check_segment, journey_combinations
from activator.compiler.dates import Bounds, parse_date_value, window_bounds
from activator.compiler.describe import describe
from activator.compiler.journey import ENDS, LOG_TABLE
from activator.compiler.kinds import OPERATORS, family, score_table
from activator.compiler.sqlseg import prepare_sql
from activator.definitions.common import (
    AllGroup,
    AnyGroup,
    AttributeCondition,
    BehaviorCondition,
    CampaignActivityCondition,
    Comparison,
    DateComparison,
    JourneyActivityCondition,
    NotGroup,
    Rules,
    ScoreCondition,
    SegmentCondition,
    rule_children,
)
from activator.definitions.config import DataModel, EventTable
from activator.definitions.segment import SegmentDefinition
from activator.errors import CompileError

MONEY = dt.Decimal(38, 4)
"""Floating-point amounts are cast to this before summing: per-row rounding is deterministic,
and a DECIMAL sum does not depend on the order the engine adds rows in."""

RFM_WINDOW = "12m"
"""RFM scores are computed over the 12 calendar months before the as-of time."""

RECIPIENTS_TABLE = "recipients"
"""Data-plane table of campaign sends, read by campaign activity conditions: campaign, run_id,
<customer key>, sub_audience, treatment_group, control, destination, action, sent_at."""


@dataclass(frozen=True)
class CompileContext:
    """Everything a segment compiles against.

    Attributes:
        tables: a customer-data table by name (``Engine.table``), or unbound
            ``ibis.table(...)`` expressions for golden SQL.
        data_model: the workspace's ``data_model``.
        segments: every segment of the workspace by name (for membership conditions).
        as_of: the one clock, aware; every relative date and window is resolved against it.
        timezone: the workspace's IANA time zone: relative dates, "today", the start of a
            day, and naive timestamp columns (read as wall time in this zone).
        dialect: the engine's SQLGlot dialect; SQL segments are transpiled to it.
        sql: runs a query (already in ``dialect``) and returns it as a table. Default: the
            ``sql()`` of the Ibis backend the customer table belongs to.
        activity: a data-plane table by name (``Engine.dataplane_table``), or None while it
            does not exist (no campaign or journey has run yet). Campaign activity conditions
            read :data:`RECIPIENTS_TABLE` through it, journey activity conditions the travel
            log (:data:`activator.compiler.journey.LOG_TABLE`). None: there is no activity
            table at all, so nobody has been sent anything or travelled (e.g. golden SQL over
            unbound tables).
    """

    tables: Callable[[str], ir.Table]
    data_model: DataModel
    segments: Mapping[str, SegmentDefinition]
    as_of: datetime
    timezone: str
    dialect: str
    sql: Callable[[str], ir.Table] | None = None
    activity: Callable[[str], ir.Table | None] | None = None

    def __post_init__(self) -> None:
        if self.as_of.tzinfo is None or self.as_of.utcoffset() is None:
            raise CompileError(f"as_of must be an aware datetime, got {self.as_of!r}")

    @property
    def zone(self) -> ZoneInfo:
        """The workspace time zone."""
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class ConditionResult:
    """One node of a segment's rule tree, evaluated for one customer.

    Attributes:
        path: where the node is in the definition, as in definition errors
            (``rules.all[1]``); ``""`` for the segment itself.
        description: the condition in words.
        met: whether the customer satisfies it (groups: the combined result).
        value: what decided it: the attribute's value, the count, the sum, the decile, the
            most frequent value...; None for groups.
        children: the nodes below (groups; a membership condition's segment).
    """

    path: str
    description: str
    met: bool
    value: Any
    children: tuple[ConditionResult, ...] = ()


def segment_members(ctx: CompileContext, name: str) -> ir.Table:
    """Distinct activation IDs of the segment's members.

    Args:
        ctx: tables, data model, segments and the as-of time.
        name: the segment.

    Returns:
        A table with one column, named as the data model's customer key; no NULLs, no
        duplicates.

    Raises:
        CompileError: unknown segment, a reference cycle, or a condition that does not fit
            the data (``check_segment`` reports these before anything runs).
    """
    return _members(ctx, name, ())


def explain_customer(ctx: CompileContext, name: str, customer_id: Any) -> ConditionResult:
    """Why a customer is (or is not) in a segment.

    Runs one query for the customer: the same condition columns :func:`segment_members`
    filters on, so the answer always agrees with the member list.

    Args:
        ctx: tables, data model, segments and the as-of time.
        name: the segment.
        customer_id: the activation ID (a string is converted to the key's type).

    Returns:
        The segment's root: ``met`` is membership; children are ``rules`` then ``exclude``.

    Raises:
        CompileError: unknown segment, or (rule segments) the customer is not in the
            customer table.
    """
    return _explain(ctx, name, customer_id, ())


# --- compilation -----------------------------------------------------------------------------


def _definition(ctx: CompileContext, name: str, stack: tuple[str, ...]) -> SegmentDefinition:
    if name in stack:
        raise CompileError(
            "segments refer to each other in a cycle: " + " -> ".join([*stack, name])
        )
    try:
        return ctx.segments[name]
    except KeyError:
        known = ", ".join(sorted(ctx.segments)) or "none"
        raise CompileError(f"unknown segment {name!r} (known: {known})") from None


def _members(ctx: CompileContext, name: str, stack: tuple[str, ...]) -> ir.Table:
    definition = _definition(ctx, name, stack)
    key = ctx.data_model.customers.key
    if definition.sql is not None:
        return _sql_members(ctx, definition)
    plan = _Plan(ctx, definition, (*stack, name))
    wide = plan.wide()
    keep = plan.predicate(wide, definition.rules)
    if definition.exclude is not None:
        keep = keep & ~plan.predicate(wide, definition.exclude)
    out = wide.filter(keep, wide[key].notnull())
    return out.select(out[key]).distinct()


def segment_flags(ctx: CompileContext, flags: Mapping[str, str | SegmentDefinition]) -> ir.Table:
    """Whether each customer is in each of several segments, from one plan.

    Evaluating segments one by one scans the customer table (and each event table) once per
    segment and builds a hash table of members for each; a campaign with ten segments pays
    that ten times, then joins the sets. Here every rule segment's conditions are compiled
    into **one** plan: one wide table (customers left-joined once to each event table's
    aggregates, shared between segments), and one boolean column per segment over it. SQL
    segments join in as membership conditions.

    Args:
        ctx: tables, data model, segments and the as-of time.
        flags: output column → a saved segment's name (from ``ctx.segments``) or an inline
            definition; a segment may appear under several columns.

    Returns:
        One row per row of the customer table whose key is not NULL: the key, then one
        never-NULL boolean column per entry of ``flags``. The data model's customer key is
        unique (``activator validate`` checks it), so that is one row per customer; rows are
        not grouped again by key here, which would cost a hash aggregate over every customer.

    Raises:
        CompileError: as :func:`segment_members`.
    """
    key = ctx.data_model.customers.key
    parts: dict[str, tuple[Rules, Rules | None]] = {}
    trees: dict[int, Rules] = {}
    for column, given in flags.items():
        definition = _definition(ctx, given, ()) if isinstance(given, str) else given
        if definition.sql is not None:
            # Compiled once by the plan's membership join, shared by every column using it.
            rules: Rules = SegmentCondition.model_construct(segment=definition.name)
            exclude = None
            if definition.name not in ctx.segments:
                raise CompileError(f"SQL segment {definition.name!r} is not a saved segment")
        else:
            assert definition.rules is not None
            rules, exclude = definition.rules, definition.exclude
        parts[column] = (rules, exclude)
        for tree in (rules, exclude):
            if tree is not None:
                trees.setdefault(id(tree), tree)
    if not parts:
        raise CompileError("segment_flags needs at least one segment")
    # Built without validation: the trees are the definitions' own (validated) nodes, and
    # the plan finds its leaves by identity.
    combined = SegmentDefinition.model_construct(
        name="flags", rules=AnyGroup.model_construct(any=list(trees.values())), exclude=None
    )
    plan = _Plan(ctx, combined, ())
    wide = plan.wide()
    wide = wide.filter(wide[key].notnull())
    values: dict[str, ir.BooleanValue] = {}
    for column, (rules, exclude) in parts.items():
        keep = plan.predicate(wide, rules)
        if exclude is not None:
            keep = keep & ~plan.predicate(wide, exclude)
        values[column] = keep
    return wide.select(key, **values)


def _sql_members(ctx: CompileContext, definition: SegmentDefinition) -> ir.Table:
    assert definition.sql is not None
    key = ctx.data_model.customers.key
    column = definition.activation_id or key
    query = prepare_sql(
        definition.sql,
        read=definition.dialect,
        write=ctx.dialect,
        tables=ctx.tables,
        as_of=ctx.as_of,
        zone=ctx.zone,
    )
    if ctx.sql is not None:
        result = ctx.sql(query)
    else:
        backend = ibis.get_backend(ctx.tables(ctx.data_model.customers.table))
        result = backend.sql(query)
    if column not in result.columns:
        raise CompileError(
            f"segment {definition.name!r}: the SQL returns {', '.join(result.columns)}, "
            f"not the activation ID column {column!r}"
        )
    ids = result.select(**{key: result[column]})
    return ids.filter(ids[key].notnull()).distinct()


@dataclass
class _Leaf:
    """A condition compiled to columns of the wide table."""

    path: str
    condition: Rules
    met: Callable[[ir.Table], ir.BooleanValue]
    value: Callable[[ir.Table], ir.Value] | None


@dataclass(frozen=True)
class _Activity:
    """An activity condition (campaign sends, journey travels) as columns of the wide table:
    whether it is met, the count it compares, and the latest value of a column (journey
    status ``in``: the node the customer is at)."""

    met: Callable[[ir.Table], ir.BooleanValue]
    count: Callable[[ir.Table], ir.Value]
    latest: Callable[[ir.Table], ir.Value]


@dataclass
class _Plan:
    """The wide table of one rule segment: customers plus the conditions' aggregates."""

    ctx: CompileContext
    definition: SegmentDefinition
    stack: tuple[str, ...]
    joins: list[tuple[str, ir.Table | _Scan]] = field(default_factory=list)
    leaves: dict[int, _Leaf] = field(default_factory=dict)
    _rfm: dict[tuple[str, str], str] = field(default_factory=dict)
    _scans: dict[str, _Scan] = field(default_factory=dict)
    _names: int = 0

    def __post_init__(self) -> None:
        model = self.ctx.data_model
        self.key = model.customers.key
        self.customers = self.ctx.tables(model.customers.table)
        self.zone = self.ctx.zone
        for part in ("rules", "exclude"):
            node: Rules | None = getattr(self.definition, part)
            if node is not None:
                self._compile(node, part)

    # -- tree -------------------------------------------------------------------------------

    def _compile(self, node: Rules, path: str) -> None:
        for child_path, child in rule_children(node, path):
            self._compile(child, child_path)
        if not isinstance(node, AllGroup | AnyGroup | NotGroup):
            self.leaves[id(node)] = self._leaf(node, path)

    def wide(self) -> ir.Table:
        """Customers left-joined to every condition's aggregate (one row per customer)."""
        wide: ir.Table = self.customers
        for join_key, joined in self.joins:
            if isinstance(joined, _Scan):
                aggregate = joined.aggregate(self.ctx.as_of, self.zone)
            else:
                aggregate = joined
            wide = wide.left_join(aggregate, wide[self.key] == aggregate[join_key])
        return wide

    def predicate(self, wide: ir.Table, node: Rules | None) -> ir.BooleanValue:
        """The (never NULL) boolean of a rule tree over the wide table."""
        if node is None:
            return ibis.literal(False)
        if isinstance(node, AllGroup):
            result = self.predicate(wide, node.all[0])
            for child in node.all[1:]:
                result = result & self.predicate(wide, child)
            return result
        if isinstance(node, AnyGroup):
            result = self.predicate(wide, node.any[0])
            for child in node.any[1:]:
                result = result | self.predicate(wide, child)
            return result
        if isinstance(node, NotGroup):
            return ~self.predicate(wide, node.not_)
        return self.leaves[id(node)].met(wide)

    # -- leaves -----------------------------------------------------------------------------

    def _name(self, suffix: str) -> str:
        # Columns of joined aggregates: unlikely to meet a customer column's name.
        self._names += 1
        return f"__act{self._names}_{suffix}"

    def _join(self, aggregate: ir.Table, join_key: str) -> None:
        self.joins.append((join_key, aggregate))

    def _scan(self, event: EventTable) -> _Scan:
        """The one grouped aggregate of an event table, joined where it is first needed."""
        if event.table not in self._scans:
            scan = _Scan(event, self.ctx.tables(event.table), self._name("k"))
            self._scans[event.table] = scan
            self.joins.append((scan.join_key, scan))
        return self._scans[event.table]

    def _leaf(self, node: Rules, path: str) -> _Leaf:
        if isinstance(node, AttributeCondition):
            return self._attribute(node, path)
        if isinstance(node, BehaviorCondition):
            return self._behavior(node, path)
        if isinstance(node, ScoreCondition):
            return self._score(node, path)
        if isinstance(node, SegmentCondition):
            return self._membership(node, path)
        if isinstance(node, CampaignActivityCondition):
            return self._campaign(node, path)
        if isinstance(node, JourneyActivityCondition):
            return self._journey(node, path)
        raise CompileError(f"{path}: unsupported condition {type(node).__name__}")

    def _attribute(self, node: AttributeCondition, path: str) -> _Leaf:
        table, column = node.attribute.split(".", 1)
        model = self.ctx.data_model
        if table in ("customers", model.customers.table):
            self._require_column(self.customers, column, table, path)

            def met(wide: ir.Table) -> ir.BooleanValue:
                return _true(attribute_predicate(wide[column], node, self._dates(), path))

            return _Leaf(path, node, met, lambda wide: wide[column])
        event = self._event(table, path)
        events = self.ctx.tables(event.table)
        self._require_column(events, column, table, path)
        dates = self._dates()
        attribute_predicate(events[column], node, dates, path)  # errors now, not at the join
        # A related table's attribute holds when at least one of the customer's rows (up
        # to the as-of time, returned or not) satisfies it; the value shown is how many do.
        scan = self._scan(event)
        count = self._name("rows")
        scan.add(
            _Measure(
                name=count,
                bounds=self._up_to_as_of(),
                not_returned=False,
                where=lambda rows: [attribute_predicate(rows[column], node, dates, path)],
                measure=lambda rows, where: rows.count(where=where),
            )
        )
        return _Leaf(
            path,
            node,
            lambda wide: _true(wide[count] > 0),
            lambda wide: wide[count].fill_null(0),
        )

    def _behavior(self, node: BehaviorCondition, path: str) -> _Leaf:
        event = self._event(node.table, path)
        events = self.ctx.tables(event.table)
        bounds = window_bounds(
            node.window.last if node.window else None,
            node.window.between if node.window else None,
            self.ctx.as_of,
            self.zone,
        )
        if node.behavior == "most_frequent":
            purchases = self._purchases(events, event, node, bounds, path)
            group = {self._name("k"): purchases[event.customer_key]}
            return self._most_frequent(node, path, events, purchases, event, group)
        # Every other behaviour is one measure of the event table's shared aggregate:
        # computed over the purchases in its own window that match its own filters.
        self._filters(events, node, path)  # errors now, not at the join
        scan = self._scan(event)
        value_name = self._name("value")

        def add(
            measure: Callable[[ir.Table, ir.BooleanValue | None], ir.Value], *, limit: Bounds
        ) -> None:
            scan.add(
                _Measure(
                    name=value_name,
                    bounds=limit,
                    not_returned=event.returned is not None,
                    where=lambda rows: self._filters(rows, node, path),
                    measure=measure,
                )
            )

        if node.behavior in ("has_purchased", "has_not_purchased", "repeat_purchase"):
            add(lambda rows, where: rows.count(where=where), limit=bounds)
            op, expected = _count_comparison(node)

            def count(wide: ir.Table) -> ir.Value:
                return wide[value_name].fill_null(0)

            return _Leaf(
                path, node, lambda wide: _true(compare(count(wide), op, expected, path)), count
            )

        if node.behavior == "total_value":
            amount_column = event.amount
            if amount_column is None:
                raise CompileError(
                    f"{path}.table: event table {node.table!r} declares no amount column in "
                    "the data model, so total_value cannot be computed"
                )
            self._require_column(events, amount_column, node.table, path)
            add(lambda rows, where: money(rows[amount_column]).sum(where=where), limit=bounds)
            op, expected = _value_comparison(node, path)
            zero = ibis.literal(0, type=money(events[amount_column]).sum().type())

            def total(wide: ir.Table) -> ir.Value:
                return ibis.coalesce(wide[value_name], zero)

            return _Leaf(
                path, node, lambda wide: _true(compare(total(wide), op, expected, path)), total
            )

        if node.behavior == "first_purchase":
            # The first purchase is the first ever (up to as_of); the window applies to it.
            timestamp = event.timestamp
            add(lambda rows, where: rows[timestamp].min(where=where), limit=self._up_to_as_of())
            column_type = events[timestamp].type()

            def first_in_window(wide: ir.Table) -> ir.BooleanValue:
                return _true(in_bounds(wide[value_name], column_type, bounds, self.zone))

            return _Leaf(path, node, first_in_window, lambda wide: wide[value_name])

        raise CompileError(f"{path}.behavior: unsupported behaviour {node.behavior!r}")

    def _most_frequent(
        self,
        node: BehaviorCondition,
        path: str,
        events: ir.Table,
        purchases: ir.Table,
        event: EventTable,
        group: dict[str, ir.Value],
    ) -> _Leaf:
        if not node.column:
            raise CompileError(f"{path}.column: most_frequent needs the column to compare")
        self._require_column(events, node.column, node.table, path)
        join_key = next(iter(group))
        value_name, rows = self._name("value"), self._name("n")
        present = purchases.filter(purchases[node.column].notnull())
        counts = present.group_by(
            **{join_key: present[event.customer_key], value_name: present[node.column]}
        ).aggregate(**{rows: present.count()})
        # Ties between equally frequent values go to the smallest value: a total order,
        # so every engine picks the same one.
        rank = ibis.row_number().over(
            group_by=counts[join_key],
            order_by=[counts[rows].desc(), counts[value_name].asc()],
        )
        ranked = counts.mutate(__act_rank=rank)
        top = ranked.filter(ranked["__act_rank"] == 0).select(join_key, value_name)
        self._join(top, join_key)
        expected = node.value
        if isinstance(expected, Comparison):
            op, wanted = str(expected.op), expected.value
        elif isinstance(expected, list | tuple):
            op, wanted = "in", list(expected)
        else:
            op, wanted = "=", expected

        def met(wide: ir.Table) -> ir.BooleanValue:
            return _true(compare(wide[value_name], op, wanted, path))

        return _Leaf(path, node, met, lambda wide: wide[value_name])

    def _score(self, node: ScoreCondition, path: str) -> _Leaf:
        table = score_table(node, self.ctx.data_model, path)
        column = self._rfm_column(table, node.score, path)
        return _Leaf(
            path,
            node,
            lambda wide: _true(compare(wide[column], node.op, node.value, path)),
            lambda wide: wide[column],
        )

    def _rfm_column(self, table: str, score: str, path: str) -> str:
        if (table, score) in self._rfm:
            return self._rfm[(table, score)]
        event = self._event(table, path)
        events = self.ctx.tables(event.table)
        bounds = window_bounds(RFM_WINDOW, None, self.ctx.as_of, self.zone)
        purchases = self._purchases(events, event, None, bounds, path)
        join_key, metric, decile = self._name("k"), self._name("metric"), self._name("decile")
        group = {join_key: purchases[event.customer_key]}
        if score == "rfm_recency":
            measure: ir.Value = purchases[event.timestamp].max()
        elif score == "rfm_frequency":
            measure = purchases.count()
        else:
            if event.amount is None:
                raise CompileError(
                    f"{path}: rfm_monetary needs an amount column on event table {table!r}"
                )
            measure = money(purchases[event.amount]).sum()
        per_customer = purchases.group_by(**group).aggregate(**{metric: measure})
        # Rank ascending (10 = most recent / most frequent / highest spend), ties broken by
        # the activation ID so the ranking is total: decile = floor(10·rank / n) + 1.
        rank = ibis.row_number().over(
            order_by=[per_customer[metric].asc(), per_customer[join_key].asc()]
        )
        total = per_customer.count().over()
        scored = per_customer.select(join_key, **{decile: ((rank * 10) // total + 1).cast("int64")})
        self._join(scored, join_key)
        self._rfm[(table, score)] = decile
        return decile

    def _membership(self, node: SegmentCondition, path: str) -> _Leaf:
        members = _members(self.ctx, node.segment, self.stack)
        join_key, flag = self._name("k"), self._name("member")
        marked = members.select(**{join_key: members[self.key], flag: ibis.literal(True)})
        self._join(marked, join_key)
        return _Leaf(
            path, node, lambda wide: wide[flag].notnull(), lambda wide: wide[flag].notnull()
        )

    def _campaign(self, node: CampaignActivityCondition, path: str) -> _Leaf:
        """Sends of a campaign: the number of distinct runs with a matching send, and the
        first and last matching send times, per customer."""
        recipients = self.ctx.activity(RECIPIENTS_TABLE) if self.ctx.activity else None
        if recipients is not None:
            for column in (
                "campaign", "run_id", self.key, "sub_audience", "treatment_group", "control",
                "destination", "action", "sent_at",
            ):  # fmt: skip
                self._require_column(recipients, column, RECIPIENTS_TABLE, path)
        # No campaign has run yet: everyone has 0 sends and no send times, so the condition
        # means what it would over an empty table (``times < 3`` holds).
        activity = self._activity(
            None if recipients is None else self._sends(recipients, node),
            customer=self.key,
            counted="run_id",
            at=("sent_at", f"{RECIPIENTS_TABLE}.sent_at"),
            node=node,
            path=path,
        )
        return _Leaf(path, node, activity.met, activity.count)

    def _activity(
        self,
        rows: ir.Table | None,
        *,
        customer: str,
        counted: str,
        at: tuple[str, str],
        node: CampaignActivityCondition | JourneyActivityCondition,
        path: str,
        latest: str | None = None,
    ) -> _Activity:
        """Per customer, the distinct ``counted`` values of activity ``rows`` (None: there is
        no activity table yet, so every customer has none), the first and last times of
        column ``at`` = (column, name for errors) where the condition compares them, and the
        greatest ``latest`` value; the condition's ``times``, ``first`` and ``last`` over them.
        """
        dates = self._dates()
        column, shown = at
        op, expected = (">=", 1) if node.times is None else (str(node.times.op), node.times.value)
        names = {k: self._name(k) for k in ("k", "count", "first", "last", "latest")}
        time_type: dt.DataType = dt.Timestamp(timezone="UTC")
        if rows is not None:
            time_type = rows[column].type()
            if not time_type.is_timestamp():
                raise CompileError(f"{path}: {shown} is {time_type}, not a timestamp")
            measures: dict[str, ir.Value] = {names["count"]: rows[counted].nunique()}
            # Times only where a condition looks at them.
            if node.first is not None:
                measures[names["first"]] = rows[column].min()
            if node.last is not None:
                measures[names["last"]] = rows[column].max()
            if latest is not None:
                measures[names["latest"]] = rows[latest].max()
            per_customer = rows.group_by(**{names["k"]: rows[customer]}).aggregate(**measures)
            self._join(per_customer, names["k"])

        def value(name: str, empty: ir.Value) -> Callable[[ir.Table], ir.Value]:
            return (lambda wide: empty) if rows is None else (lambda wide: wide[names[name]])

        count = value("count", ibis.literal(0, type="int64"))
        first = value("first", ibis.null(time_type))
        last = value("last", ibis.null(time_type))

        def when(moment: ir.Value, comparison: DateComparison, where: str) -> ir.BooleanValue:
            return _true(
                _date_predicate(moment, time_type, comparison.op, comparison.value, dates, where)
            )

        def met(wide: ir.Table) -> ir.BooleanValue:
            result = _true(compare(count(wide).fill_null(0), op, expected, f"{path}.times"))
            if node.first is not None:
                result = result & when(first(wide), node.first, f"{path}.first")
            if node.last is not None:
                result = result & when(last(wide), node.last, f"{path}.last")
            return result

        return _Activity(
            met=met,
            count=lambda wide: count(wide).fill_null(0),
            latest=value("latest", ibis.null("string")),
        )

    def _sends(self, recipients: ir.Table, node: CampaignActivityCondition) -> ir.Table:
        """The recipients rows an activity condition counts."""
        sent_at = recipients["sent_at"]
        bounds = window_bounds(
            node.window.last if node.window else None,
            node.window.between if node.window else None,
            self.ctx.as_of,
            self.zone,
        )
        # Bare comparisons (no COALESCE): WHERE drops unknowns, and the engine can prune.
        conditions = [
            recipients["campaign"] == node.campaign,
            # 'remove' rows (mirror mode) are departures, not sends.
            recipients["action"] == "add",
            in_bounds(sent_at, sent_at.type(), bounds, self.zone),
        ]
        if node.sub_audience is not None:
            conditions.append(recipients["sub_audience"] == node.sub_audience)
        if node.group is not None:
            # Naming a group counts its rows, the control's included.
            conditions.append(recipients["treatment_group"] == node.group)
        elif not node.include_control:
            # Control customers were held out: they were not sent anything.
            conditions.append(~recipients["control"].fill_null(False))
        if node.destination is not None:
            conditions.append(recipients["destination"] == node.destination)
        return recipients.filter(*conditions)

    def _journey(self, node: JourneyActivityCondition, path: str) -> _Leaf:
        """A journey's travel log: the number of distinct entries with a matching row, and
        the first and last matching row times, per customer (status ``in``: the node where
        the customer is, and when they arrived there)."""
        problems = journey_combinations(node, path)
        if problems:
            where, message = problems[0]
            raise CompileError(f"{where}: {message}")
        log = self.ctx.activity(LOG_TABLE) if self.ctx.activity else None
        if log is not None:
            for column in (
                "journey", "traveller", "entry", "node", "parent", "path", "entered_at", "stage",
            ):  # fmt: skip
                self._require_column(log, column, LOG_TABLE, path)
        at_node = node.status == "in"
        # No journey has run yet: nobody has travelled, so the condition means what it would
        # over an empty log. Status ``in``: one open position per traveller, where they are.
        activity = self._activity(
            None if log is None else self._travels(log, node),
            customer="traveller",
            counted="entry",
            at=("entered_at", f"{LOG_TABLE}.entered_at"),
            node=node,
            path=path,
            latest="node" if at_node else None,
        )
        return _Leaf(path, node, activity.met, activity.latest if at_node else activity.count)

    def _travels(self, log: ir.Table, node: JourneyActivityCondition) -> ir.Table:
        """The travel log rows a journey activity condition counts."""
        entered_at = log["entered_at"]
        # Rows written after the as-of time do not exist yet (a backtest must not see them).
        mine = log.filter(
            log["journey"] == node.journey,
            in_bounds(entered_at, entered_at.type(), self._up_to_as_of(), self.zone),
        )
        bounds = window_bounds(
            node.window.last if node.window else None,
            node.window.between if node.window else None,
            self.ctx.as_of,
            self.zone,
        )
        window = in_bounds(mine["entered_at"], entered_at.type(), bounds, self.zone)
        stage = mine["stage"]
        if node.status == "in":
            starts = mine.filter(stage == "start", window)
            if node.node is not None:
                starts = starts.filter(starts["node"] == node.node)
            # Ended by a row up to the as-of time, inside the window or not.
            ends = mine.filter(stage.isin(ENDS)).select(
                __act_t=mine["traveller"], __act_e=mine["entry"], __act_n=mine["node"]
            )
            return starts.anti_join(
                ends,
                [
                    starts["traveller"] == ends["__act_t"],
                    starts["entry"] == ends["__act_e"],
                    starts["node"] == ends["__act_n"],
                ],
            )
        conditions: list[ir.BooleanValue] = [window]
        if node.status == "entered":
            conditions.append(stage == "start")
            if node.node is not None:
                conditions.append(mine["node"] == node.node)
            else:
                conditions.append(mine["parent"].isnull())
        elif node.status == "goal":
            conditions.append(stage == "goal")
            if node.goal is not None:
                conditions.append(mine["path"] == node.goal)
        else:
            conditions.append(stage.isin(["exit", "orphan"]))
            if node.reason is not None:
                conditions.append(mine["path"] == node.reason)
        return mine.filter(*conditions)

    # -- helpers ----------------------------------------------------------------------------

    def _dates(self) -> DateContext:
        return DateContext(self.ctx.as_of, self.zone)

    def _event(self, name: str, path: str) -> EventTable:
        try:
            return self.ctx.data_model.events[name]
        except KeyError:
            known = ", ".join(sorted(self.ctx.data_model.events)) or "none declared"
            raise CompileError(
                f"{path}: event table {name!r} is not in the data model (known: {known})"
            ) from None

    def _require_column(self, table: ir.Table, column: str, name: str, path: str) -> None:
        if column not in table.columns:
            raise CompileError(f"{path}: table {name!r} has no column {column!r}")

    def _up_to_as_of(self) -> Bounds:
        return Bounds(None, False, self.ctx.as_of, True)

    def _purchases(
        self,
        events: ir.Table,
        event: EventTable,
        node: BehaviorCondition | None,
        bounds: Bounds | None,
        path: str,
    ) -> ir.Table:
        """Events that count as purchases: up to as_of, in the window, not returned, filtered."""
        ts = events[event.timestamp]
        limit = bounds or Bounds(None, False, self.ctx.as_of, True)
        # No COALESCE in these filters: WHERE drops unknowns anyway, and a bare comparison
        # on the timestamp lets the engine prune by it.
        conditions = [in_bounds(ts, ts.type(), limit, self.zone)]
        if event.returned is not None:
            # A NULL flag is read as "not returned": the order stands unless marked.
            conditions.append(~events[event.returned].fill_null(False))
        if node is not None:
            conditions.extend(self._filters(events, node, path))
        return events.filter(*conditions)

    def _filters(
        self, events: ir.Table, node: BehaviorCondition, path: str
    ) -> list[ir.BooleanValue]:
        """The behaviour's ``where`` filters over ``events`` (may be NULL: unknown)."""
        conditions: list[ir.BooleanValue] = []
        for i, where in enumerate(node.where):
            table, column = where.attribute.split(".", 1)
            where_path = f"{path}.where[{i}]"
            if table != node.table:
                raise CompileError(
                    f"{where_path}.attribute: filters apply to the behaviour's table "
                    f"{node.table!r}, not {table!r}"
                )
            self._require_column(events, column, table, where_path)
            conditions.append(attribute_predicate(events[column], where, self._dates(), where_path))
        return conditions


@dataclass(frozen=True)
class _Measure:
    """One condition's column of an event table's shared aggregate.

    Attributes:
        name: the column.
        bounds: the events' time interval (capped at the as-of time).
        not_returned: returned events do not count.
        where: further conditions on the events (may be NULL: unknown, so not counted).
        measure: the aggregate over the events, counting only those where ``where`` holds
            (None: every event of the group).
    """

    name: str
    bounds: Bounds
    not_returned: bool
    where: Callable[[ir.Table], list[ir.BooleanValue]]
    measure: Callable[[ir.Table, ir.BooleanValue | None], ir.Value]


@dataclass
class _Scan:
    """One grouped aggregate of an event table, keyed by the customer: one scan of the table.

    The scan keeps the widest time interval the measures need (and what all of them filter
    on); each measure then computes over its own events with a conditional aggregate
    (``FILTER (WHERE ...)``, or ``IF`` inside it where the dialect lacks ``FILTER``).
    """

    event: EventTable
    events: ir.Table
    join_key: str
    measures: list[_Measure] = field(default_factory=list)

    def add(self, measure: _Measure) -> None:
        self.measures.append(measure)

    def aggregate(self, as_of: datetime, zone: ZoneInfo) -> ir.Table:
        events, event = self.events, self.event
        lower = _widest_lower([m.bounds for m in self.measures])
        scan = Bounds(lower[0], lower[1], as_of, True)
        # What every measure filters on goes into WHERE (the engine can prune by it).
        not_returned = event.returned is not None and all(m.not_returned for m in self.measures)
        wheres = [m.where(events) for m in self.measures]
        shared = [c for c in wheres[0] if all(_holds(c, other) for other in wheres[1:])]
        ts = events[event.timestamp]
        conditions = [in_bounds(ts, ts.type(), scan, zone)]
        if not_returned:
            assert event.returned is not None
            conditions.append(~events[event.returned].fill_null(False))
        conditions.extend(shared)
        rows = events.filter(*conditions)
        metrics: dict[str, ir.Value] = {}
        for measure, on_events in zip(self.measures, wheres, strict=True):
            own: list[ir.BooleanValue] = []
            bounds = measure.bounds
            narrower = Bounds(
                None if (bounds.lower, bounds.lower_inclusive) == lower else bounds.lower,
                bounds.lower_inclusive,
                None if (bounds.upper, bounds.upper_inclusive) == (as_of, True) else bounds.upper,
                bounds.upper_inclusive,
            )
            if narrower.lower is not None or narrower.upper is not None:
                own.append(in_bounds(rows[event.timestamp], ts.type(), narrower, zone))
            if measure.not_returned and not not_returned:
                assert event.returned is not None
                own.append(~rows[event.returned].fill_null(False))
            own.extend(
                condition
                for condition, original in zip(measure.where(rows), on_events, strict=True)
                if not _holds(original, shared)
            )
            where = None
            for condition in own:
                where = condition if where is None else where & condition
            metrics[measure.name] = measure.measure(rows, where)
        return rows.group_by(**{self.join_key: rows[event.customer_key]}).aggregate(**metrics)


def _widest_lower(intervals: list[Bounds]) -> tuple[datetime | None, bool]:
    """The lowest lower bound of the intervals (None: one of them is unbounded below)."""
    if any(b.lower is None for b in intervals):
        return None, False
    lowest = min(b.lower for b in intervals if b.lower is not None)
    inclusive = any(b.lower_inclusive for b in intervals if b.lower == lowest)
    return lowest, inclusive


def _holds(condition: ir.BooleanValue, conditions: list[ir.BooleanValue]) -> bool:
    """``condition`` is one of ``conditions`` (the same expression)."""
    return any(condition.equals(other) for other in conditions)


def _true(predicate: ir.BooleanValue) -> ir.BooleanValue:
    """Two-valued logic: a condition that is NULL (unknown) is not met."""
    return predicate.fill_null(False)


def _count_comparison(node: BehaviorCondition) -> tuple[str, Any]:
    if node.behavior == "has_not_purchased":
        return "=", 0
    if node.behavior == "repeat_purchase":
        return ">=", 2
    if node.count is None:
        return ">=", 1
    return str(node.count.op), node.count.value


def _times_comparison(node: CampaignActivityCondition) -> tuple[str, Any]:
    if node.times is None:
        return ">=", 1
    return str(node.times.op), node.times.value


def _value_comparison(node: BehaviorCondition, path: str) -> tuple[str, Any]:
    if isinstance(node.value, Comparison):
        return str(node.value.op), node.value.value
    raise CompileError(
        f"{path}.value: total_value needs a comparison, e.g. {{op: '>=', value: 500}}"
    )


def money(column: ir.Value) -> ir.NumericValue:
    """An amount ready to sum exactly: floating point is cast to DECIMAL first."""
    if column.type().is_floating():
        return column.cast(MONEY)
    return column


# --- predicates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DateContext:
    """What relative date values resolve against."""

    as_of: datetime
    zone: ZoneInfo


def _instant_literal(moment: datetime, column_type: dt.DataType, zone: ZoneInfo) -> ir.Value:
    assert isinstance(column_type, dt.Timestamp)
    if column_type.timezone is not None:
        return ibis.literal(moment, type=column_type)
    # Naive timestamp columns hold wall time in the workspace time zone.
    local = moment.astimezone(zone).replace(tzinfo=None)
    return ibis.literal(local, type=column_type)


def in_bounds(
    column: ir.Value, column_type: dt.DataType, bounds: Bounds, zone: ZoneInfo
) -> ir.BooleanValue:
    """``column`` (a date or timestamp) falls in ``bounds`` (instants).

    A DATE value stands for the start of that day in the workspace time zone.
    """
    parts: list[ir.BooleanValue] = []
    if column_type.is_date():
        # midnight(x) > L  ⇔  x > date(L); midnight(x) >= L ⇔ x >= date(L) when L is a
        # midnight, else x > date(L); and symmetrically for the upper bound.
        if bounds.lower is not None:
            local = bounds.lower.astimezone(zone)
            day = ibis.literal(local.date(), type="date")
            at_midnight = local.replace(tzinfo=None) == datetime(local.year, local.month, local.day)
            parts.append(column >= day if bounds.lower_inclusive and at_midnight else column > day)
        if bounds.upper is not None:
            local = bounds.upper.astimezone(zone)
            day = ibis.literal(local.date(), type="date")
            at_midnight = local.replace(tzinfo=None) == datetime(local.year, local.month, local.day)
            parts.append(
                column < day if not bounds.upper_inclusive and at_midnight else column <= day
            )
    elif column_type.is_timestamp():
        if bounds.lower is not None:
            low = _instant_literal(bounds.lower, column_type, zone)
            parts.append(column >= low if bounds.lower_inclusive else column > low)
        if bounds.upper is not None:
            high = _instant_literal(bounds.upper, column_type, zone)
            parts.append(column <= high if bounds.upper_inclusive else column < high)
    else:
        raise CompileError(f"{column_type} is not a date or a timestamp")
    if not parts:
        return column.notnull()
    result = parts[0]
    for part in parts[1:]:
        result = result & part
    return result


def _number(value: Any, column_type: dt.DataType, path: str) -> ir.Value:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise CompileError(f"{path}.value: {value!r} is not a number")
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        raise CompileError(f"{path}.value: {value!r} is not a number") from None
    if not number.is_finite():
        raise CompileError(f"{path}.value: {value!r} is not a finite number")
    if column_type.is_decimal() or isinstance(value, str | Decimal):
        # An explicit type: the inferred one can be too narrow for the column's values.
        # At least the column's scale, or Ibis finds the two incomparable.
        exponent = number.as_tuple().exponent
        scale = max(0, -exponent) if isinstance(exponent, int) else 0
        if isinstance(column_type, dt.Decimal) and column_type.scale is not None:
            scale = max(scale, column_type.scale)
        return ibis.literal(number, type=dt.Decimal(38, min(scale, 18)))
    return ibis.literal(value)


def _pair(value: Any, path: str) -> tuple[Any, Any]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise CompileError(f"{path}.value: between takes two values, e.g. [1, 10]")
    return value[0], value[1]


def _items(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list | tuple) or not value:
        raise CompileError(f"{path}.value: 'in' takes a non-empty list, e.g. [a, b]")
    if any(item is None for item in value):
        raise CompileError(f"{path}.value: a list cannot hold null; use is_null")
    return list(value)


def compare(column: ir.Value, op: str, value: Any, path: str) -> ir.BooleanValue:
    """A comparison of a computed value (count, sum, decile, most frequent value).

    NULL is unknown: wrap in ``_true``.
    """
    column_type = column.type()
    if column_type.is_numeric():

        def literal(item: Any) -> ir.Value:
            return _number(item, column_type, path)
    else:

        def literal(item: Any) -> ir.Value:
            return ibis.literal(item)

    return _ordered(column, str(op), value, literal, path)


def _ordered(
    column: ir.Value, op: str, value: Any, literal: Callable[[Any], ir.Value], path: str
) -> ir.BooleanValue:
    if op in ("=", "equals", "is"):
        return column == literal(value)
    if op in ("!=", "not_equals"):
        return column != literal(value)
    if op == ">":
        return column > literal(value)
    if op == ">=":
        return column >= literal(value)
    if op == "<":
        return column < literal(value)
    if op == "<=":
        return column <= literal(value)
    if op in ("between", "not_between"):
        low, high = _pair(value, path)
        inside = (column >= literal(low)) & (column <= literal(high))
        return inside if op == "between" else (~inside & column.notnull())
    if op in ("in", "not_in"):
        items = [literal(item) for item in _items(value, path)]
        found = column.isin(items)
        return found if op == "in" else (~found & column.notnull())
    raise CompileError(f"{path}.op: operator {op!r} does not apply here")


def attribute_predicate(
    column: ir.Value, node: AttributeCondition, dates: DateContext, path: str
) -> ir.BooleanValue:
    """The predicate of an attribute condition on ``column`` (may be NULL: wrap in ``_true``).

    Raises:
        CompileError: the operator does not fit the column's type, or the value its operator.
    """
    column_type = column.type()
    kind = family(column_type)
    op = node.op
    if kind is None:
        raise CompileError(f"{path}.attribute: columns of type {column_type} are not supported")
    if op not in OPERATORS[kind]:
        raise CompileError(
            f"{path}.op: {op!r} does not apply to {kind} column {node.attribute} "
            f"({column_type}); use one of {', '.join(sorted(OPERATORS[kind]))}"
        )
    if op == "is_null":
        return column.isnull()
    if op == "is_not_null":
        return column.notnull()
    if kind == "boolean":
        return column == (op == "is_true")
    if kind == "number":
        return _ordered(column, op, node.value, lambda v: _number(v, column_type, path), path)
    if kind == "date":
        return _date_predicate(column, column_type, op, node.value, dates, path)
    return _string_predicate(column, node, path)


def _date_predicate(
    column: ir.Value,
    column_type: dt.DataType,
    op: str,
    value: Any,
    dates: DateContext,
    path: str,
) -> ir.BooleanValue:
    zone = dates.zone

    def moment(item: Any) -> tuple[datetime, datetime, bool]:
        """(start, end, end_inclusive) of a value: a whole day, or one instant."""
        try:
            resolved = parse_date_value(item, dates.as_of, zone)
        except ValueError as exc:
            raise CompileError(f"{path}.value: {exc}") from None
        start = resolved.start(zone)
        end = resolved.end_exclusive(zone)
        return (start, end, False) if end is not None else (start, start, True)

    def within(bounds: Bounds) -> ir.BooleanValue:
        return in_bounds(column, column_type, bounds, zone)

    if op in ("between", "not_between"):
        low, high = _pair(value, path)
        start, _, _ = moment(low)
        _, end, end_inclusive = moment(high)
        inside = within(Bounds(start, True, end, end_inclusive))
        return inside if op == "between" else (~inside & column.notnull())
    start, end, end_inclusive = moment(value)
    if op == "is":
        return within(Bounds(start, True, end, end_inclusive))
    if op == "before":
        return within(Bounds(None, False, start, False))
    if op == "on_or_before":
        return within(Bounds(None, False, end, end_inclusive))
    if op == "after":
        return within(Bounds(end, not end_inclusive, None, False))
    if op == "on_or_after":
        return within(Bounds(start, True, None, False))
    raise CompileError(f"{path}.op: operator {op!r} does not apply to dates")


def _string_predicate(
    column: ir.StringValue, node: AttributeCondition, path: str
) -> ir.BooleanValue:
    op, value = node.op, node.value
    if op == "empty":
        return column.isnull() | (column.length() == 0)
    if op == "not_empty":
        return column.notnull() & (column.length() > 0)

    def text(item: Any) -> str:
        if not isinstance(item, str | int | float) or isinstance(item, bool):
            raise CompileError(f"{path}.value: {item!r} is not text")
        return str(item) if node.case_sensitive else str(item).lower()

    subject = column if node.case_sensitive else column.lower()
    if op in ("in", "not_in"):
        found = subject.isin([text(item) for item in _items(value, path)])
        return found if op == "in" else (~found & column.notnull())
    needle = text(value)
    if op == "equals":
        return subject == needle
    if op == "not_equals":
        return subject != needle
    if op == "contains":
        return subject.contains(needle)
    if op == "not_contains":
        return ~subject.contains(needle) & column.notnull()
    if op == "starts_with":
        return subject.startswith(needle)
    if op == "ends_with":
        return subject.endswith(needle)
    raise CompileError(f"{path}.op: operator {op!r} does not apply to text")


# --- explanation -----------------------------------------------------------------------------


def _key_value(customers: ir.Table, key: str, customer_id: Any) -> ir.Value:
    key_type = customers[key].type()
    if key_type.is_integer() and isinstance(customer_id, str):
        try:
            customer_id = int(customer_id.strip())
        except ValueError:
            raise CompileError(
                f"{customer_id!r} is not a customer ID: the key {key!r} is an integer"
            ) from None
    if key_type.is_string() and not isinstance(customer_id, str):
        customer_id = str(customer_id)
    return ibis.literal(customer_id, type=key_type)


def _explain(
    ctx: CompileContext, name: str, customer_id: Any, stack: tuple[str, ...]
) -> ConditionResult:
    definition = _definition(ctx, name, stack)
    key = ctx.data_model.customers.key
    if definition.sql is not None:
        members = _sql_members(ctx, definition)
        probe = _key_value(ctx.tables(ctx.data_model.customers.table), key, customer_id)
        found = members.filter(members[key] == probe).count().to_pyarrow().as_py()
        return ConditionResult(
            path="",
            description=f"segment {name}: SQL ({definition.dialect}) returns this customer",
            met=bool(found),
            value=None,
        )
    plan = _Plan(ctx, definition, (*stack, name))
    wide = plan.wide()
    probe = _key_value(plan.customers, key, customer_id)
    columns: dict[str, ir.Value] = {}
    order = list(plan.leaves.items())
    for index, (_, leaf) in enumerate(order):
        columns[f"m{index}"] = leaf.met(wide)
        if leaf.value is not None:
            columns[f"v{index}"] = leaf.value(wide)
    row_table = wide.filter(wide[key] == probe).select(**columns).limit(1).to_pyarrow()
    rows = row_table.to_pylist()
    if not rows:
        raise CompileError(
            f"customer {customer_id!r} is not in table {ctx.data_model.customers.table!r}"
        )
    row = rows[0]
    results = {
        node_id: (bool(row[f"m{index}"]), row.get(f"v{index}"))
        for index, (node_id, _) in enumerate(order)
    }

    def build(node: Rules, path: str) -> ConditionResult:
        children = tuple(
            build(child, child_path) for child_path, child in rule_children(node, path)
        )
        text = describe(node, ctx.data_model)
        if isinstance(node, AllGroup):
            return ConditionResult(path, text, all(c.met for c in children), None, children)
        if isinstance(node, AnyGroup):
            return ConditionResult(path, text, any(c.met for c in children), None, children)
        if isinstance(node, NotGroup):
            return ConditionResult(path, text, not children[0].met, None, children)
        met, value = results[id(node)]
        nested: tuple[ConditionResult, ...] = ()
        if isinstance(node, SegmentCondition):
            inner = _explain(ctx, node.segment, customer_id, (*stack, name))
            nested = (inner,)
        return ConditionResult(path, text, met, value, nested)

    parts: list[ConditionResult] = []
    assert definition.rules is not None
    rules = build(definition.rules, "rules")
    parts.append(rules)
    met = rules.met
    if definition.exclude is not None:
        exclude = build(definition.exclude, "exclude")
        parts.append(exclude)
        met = met and not exclude.met
    return ConditionResult(
        path="",
        description=f"segment {name}: rules" + (", minus exclude" if definition.exclude else ""),
        met=met,
        value=None,
        children=tuple(parts),
    )

"""Static checks of a segment against the data model and the engine's schemas.

Everything a user can get wrong in a segment file and that is knowable without running it:
unknown tables and columns (with the nearest names), operators that do not fit a column's
type, values that do not fit an operator, invalid dates, windows that end before they start,
and SQL that does not return the activation ID or uses functions the engine may not have.
"""

from __future__ import annotations

__all__ = ["check_segment", "journey_combinations"]

import difflib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import ibis
import ibis.expr.datatypes as dt

from activator.compiler.dates import parse_date_value, parse_window_last
from activator.compiler.kinds import OPERATORS, family, score_table
from activator.compiler.sqlseg import output_columns, unknown_functions
from activator.definitions.common import (
    AttributeCondition,
    BehaviorCondition,
    CampaignActivityCondition,
    Comparison,
    DateComparison,
    JourneyActivityCondition,
    Rules,
    ScoreCondition,
    Window,
    rule_conditions,
)
from activator.definitions.config import DataModel
from activator.definitions.segment import SegmentDefinition
from activator.errors import CompileError

# Dates in a definition are checked for shape only; any fixed clock will do.
_CHECK_CLOCK = datetime(2000, 1, 1, tzinfo=UTC)
_OTHER_CLOCK = datetime(2001, 6, 1, tzinfo=UTC)
"""A second clock: a date value that resolves differently on it is relative."""

_COUNT_OPS = {"=", "!=", ">", ">=", "<", "<=", "between", "not_between"}


def _nearest(name: str, choices: Iterable[str]) -> str:
    options = sorted(set(choices))
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.5)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    shown = ", ".join(options[:10]) + (", ..." if len(options) > 10 else "")
    return f"known: {shown or 'none'}"


class _Checker:
    def __init__(
        self,
        definition: SegmentDefinition,
        data_model: DataModel,
        schemas: Mapping[str, ibis.Schema],
        dialect: str,
    ) -> None:
        self.definition = definition
        self.model = data_model
        self.schemas = schemas
        self.dialect = dialect
        self.problems: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    # -- tables and columns ---------------------------------------------------------------

    def _table_names(self) -> dict[str, str]:
        """Name used in a segment → engine table."""
        names = {"customers": self.model.customers.table}
        names[self.model.customers.table] = self.model.customers.table
        for name, event in self.model.events.items():
            names[name] = event.table
        return names

    def column_type(self, table: str, column: str, path: str) -> dt.DataType | None:
        """The column's type; None (with a problem recorded if knowable) otherwise."""
        names = self._table_names()
        if table not in names:
            self.add(path, f"table {table!r} is not in the data model ({_nearest(table, names)})")
            return None
        schema = self.schemas.get(names[table])
        if schema is None:
            return None  # no engine to ask: the data model check reports missing tables
        if column not in schema:
            self.add(
                path,
                f"table {table!r} has no column {column!r} ({_nearest(column, schema.names)})",
            )
            return None
        return schema[column]

    # -- the tree -------------------------------------------------------------------------

    def walk(self, node: Rules, path: str) -> None:
        for leaf_path, leaf in rule_conditions(node, path):
            if isinstance(leaf, AttributeCondition):
                self.attribute(leaf, leaf_path)
            elif isinstance(leaf, BehaviorCondition):
                self.behavior(leaf, leaf_path)
            elif isinstance(leaf, ScoreCondition):
                self.score(leaf, leaf_path)
            elif isinstance(leaf, CampaignActivityCondition):
                self.campaign(leaf, leaf_path)
            elif isinstance(leaf, JourneyActivityCondition):
                self.journey(leaf, leaf_path)
            # SegmentCondition: references.py checks the name and cycles (and campaign and
            # journey names).

    def attribute(self, node: AttributeCondition, path: str, *, table: str | None = None) -> None:
        owner, column = node.attribute.split(".", 1)
        if table is not None and owner != table:
            self.add(
                f"{path}.attribute",
                f"a behaviour's filters are on its own table {table!r}, not {owner!r}",
            )
            return
        column_type = self.column_type(owner, column, f"{path}.attribute")
        if column_type is None:
            return
        kind = family(column_type)
        if kind is None:
            self.add(f"{path}.attribute", f"columns of type {column_type} are not supported")
            return
        if node.op not in OPERATORS[kind]:
            self.add(
                f"{path}.op",
                f"{node.op!r} does not apply to {kind} column {node.attribute} ({column_type}); "
                f"use one of: {', '.join(sorted(OPERATORS[kind]))}",
            )
            return
        self.value(node, kind, column_type, path)

    def value(
        self, node: AttributeCondition, kind: str, column_type: dt.DataType, path: str
    ) -> None:
        op, value = node.op, node.value
        where = f"{path}.value"
        if op in ("is_null", "is_not_null", "is_true", "is_false", "empty", "not_empty"):
            if value is not None:
                self.add(where, f"{op} takes no value")
            return
        if value is None:
            self.add(where, f"{op} needs a value; to test for missing values use is_null")
            return
        items: list[Any]
        if op in ("between", "not_between"):
            if not isinstance(value, list) or len(value) != 2:
                self.add(where, f"{op} takes two values: [low, high]")
                return
            items = list(value)
        elif op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                self.add(where, f"{op} takes a non-empty list, e.g. [a, b]")
                return
            items = list(value)
        else:
            if isinstance(value, list):
                self.add(where, f"{op} takes one value, not a list (use 'in' for a list)")
                return
            items = [value]
        if any(item is None for item in items):
            self.add(where, "null never matches a comparison; use is_null")
            return
        if kind == "number":
            numbers = [_as_number(item) for item in items]
            if any(n is None for n in numbers):
                bad = next(i for i, n in zip(items, numbers, strict=True) if n is None)
                self.add(where, f"{bad!r} is not a number ({node.attribute} is {column_type})")
            elif op in ("between", "not_between") and numbers[0] > numbers[1]:  # type: ignore[operator]
                self.add(where, f"between: the low bound {items[0]} is above the high {items[1]}")
        elif kind == "date":
            zone = ZoneInfo("UTC")
            moments = []
            for item in items:
                try:
                    moments.append(parse_date_value(item, _CHECK_CLOCK, zone))
                except ValueError as exc:
                    self.add(where, str(exc))
                    return
            if op in ("between", "not_between"):
                low, high = moments
                if low.start(zone) > high.start(zone):
                    self.add(where, f"between: {items[0]} is after {items[1]}")
        elif kind == "string":
            for item in items:
                if not isinstance(item, str | int | float) or isinstance(item, bool):
                    self.add(where, f"{item!r} is not text")
                    return

    def window(self, window: Window | None, path: str) -> None:
        if window is None:
            return
        if window.last is not None:
            try:
                amount, _ = parse_window_last(window.last)
            except ValueError as exc:
                self.add(f"{path}.last", str(exc))
                return
            if amount == 0:
                self.add(f"{path}.last", "a window of length 0 holds nothing")
        if window.between is not None and window.between[1] < window.between[0]:
            self.add(
                f"{path}.between",
                f"the window ends ({window.between[1]}) before it starts ({window.between[0]})",
            )

    def comparison(self, comparison: Comparison, path: str) -> None:
        if comparison.op in ("between", "not_between"):
            value = comparison.value
            if not isinstance(value, list) or len(value) != 2:
                self.add(f"{path}.value", f"{comparison.op} takes two values: [low, high]")
                return
            numbers = [_as_number(v) for v in value]
        else:
            numbers = [_as_number(comparison.value)]
        if any(n is None for n in numbers):
            self.add(f"{path}.value", f"{comparison.value!r} is not a number")

    def behavior(self, node: BehaviorCondition, path: str) -> None:
        if node.table not in self.model.events:
            self.add(
                f"{path}.table",
                f"event table {node.table!r} is not in the data model "
                f"({_nearest(node.table, self.model.events)})",
            )
            return
        event = self.model.events[node.table]
        self.window(node.window, f"{path}.window")
        for i, where in enumerate(node.where):
            self.attribute(where, f"{path}.where[{i}]", table=node.table)
        behavior = node.behavior
        if node.count is not None and behavior != "has_purchased":
            self.add(f"{path}.count", f"count applies to has_purchased, not {behavior}")
        elif node.count is not None:
            self.comparison(node.count, f"{path}.count")
        if behavior == "total_value":
            if event.amount is None:
                self.add(
                    f"{path}.table",
                    f"event table {node.table!r} declares no amount in the data model, "
                    "so total_value cannot be computed",
                )
            if not isinstance(node.value, Comparison):
                self.add(f"{path}.value", "total_value needs {op: '>=', value: 500} or similar")
            else:
                self.comparison(node.value, f"{path}.value")
        elif behavior == "most_frequent":
            if not node.column:
                self.add(path, "most_frequent needs 'column' (e.g. category or channel)")
            else:
                self.column_type(node.table, node.column, f"{path}.column")
            if node.value is None:
                self.add(f"{path}.value", "most_frequent needs the value (or list) to compare")
        else:
            if node.value is not None:
                self.add(f"{path}.value", f"{behavior} takes no value (count for a number)")
            if node.column is not None:
                self.add(f"{path}.column", f"column applies to most_frequent, not {behavior}")
        if behavior == "first_purchase" and node.window is None:
            self.add(path, "first_purchase needs a window: when the first purchase happened")

    def score(self, node: ScoreCondition, path: str) -> None:
        try:
            table = score_table(node, self.model, path)
        except CompileError as exc:
            self.add(path, exc.message.split(": ", 1)[-1])
            return
        if table not in self.model.events:
            self.add(
                f"{path}.table",
                f"event table {table!r} is not in the data model "
                f"({_nearest(table, self.model.events)})",
            )
            return
        if node.score == "rfm_monetary" and self.model.events[table].amount is None:
            self.add(f"{path}.table", f"rfm_monetary needs an amount on event table {table!r}")
        values = node.value if isinstance(node.value, list) else [node.value]
        if node.op in ("between", "not_between", "in", "not_in") and not isinstance(
            node.value, list
        ):
            self.add(f"{path}.value", f"{node.op} takes a list of deciles")
            return
        if node.op in ("between", "not_between") and len(values) != 2:
            self.add(f"{path}.value", f"{node.op} takes two deciles: [low, high]")
            return
        for value in values:
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10:
                self.add(f"{path}.value", f"RFM scores are deciles 1 to 10, not {value!r}")
                return

    def campaign(self, node: CampaignActivityCondition, path: str) -> None:
        self.window(node.window, f"{path}.window")
        if node.times is not None:
            self.times(node.times, f"{path}.times")
        for part in ("first", "last"):
            when: DateComparison | None = getattr(node, part)
            if when is not None:
                self.date_value(when, f"{path}.{part}")

    def journey(self, node: JourneyActivityCondition, path: str) -> None:
        for where, message in journey_combinations(node, path):
            self.add(where, message)
        self.window(node.window, f"{path}.window")
        if node.times is not None and node.status != "in":
            self.times(node.times, f"{path}.times")
        for part in ("first", "last"):
            when: DateComparison | None = getattr(node, part)
            if when is not None:
                self.date_value(when, f"{path}.{part}")

    def times(self, comparison: Comparison, path: str) -> None:
        """A number of runs: whole and not negative."""
        values = comparison.value if isinstance(comparison.value, list) else [comparison.value]
        if comparison.op in ("between", "not_between") and len(values) != 2:
            self.add(f"{path}.value", f"{comparison.op} takes two numbers of times: [low, high]")
            return
        if comparison.op not in ("between", "not_between") and isinstance(comparison.value, list):
            self.add(f"{path}.value", f"{comparison.op} takes one number, not a list")
            return
        numbers = [_as_number(value) for value in values]
        for value, number in zip(values, numbers, strict=True):
            if number is None or number != number.to_integral_value() or number < 0:
                self.add(f"{path}.value", f"{value!r} is not a number of times (0, 1, 2...)")
                return
        if len(numbers) == 2 and numbers[0] > numbers[1]:  # type: ignore[operator]
            self.add(f"{path}.value", f"between: the low bound {values[0]} is above the high")

    def date_value(self, when: DateComparison, path: str) -> None:
        """A date operator's value: one date, or two in order for between."""
        where = f"{path}.value"
        if when.op in ("between", "not_between"):
            if not isinstance(when.value, list) or len(when.value) != 2:
                self.add(where, f"{when.op} takes two dates: [from, to]")
                return
            items = list(when.value)
        elif isinstance(when.value, list):
            self.add(where, f"{when.op} takes one date, not a list")
            return
        else:
            items = [when.value]
        zone = ZoneInfo("UTC")
        moments = []
        for item in items:
            try:
                moments.append(parse_date_value(item, _CHECK_CLOCK, zone))
            except ValueError as exc:
                self.add(where, str(exc))
                return
        # A relative date (30 days ago) against a fixed one (2026-01-01): their order depends
        # on the as-of time, so only two of the same sort are compared here.
        relative = [
            parse_date_value(item, _OTHER_CLOCK, zone) != moment
            for item, moment in zip(items, moments, strict=True)
        ]
        if (
            len(moments) == 2
            and relative[0] == relative[1]
            and moments[0].start(zone) > moments[1].start(zone)
        ):
            self.add(where, f"between: {items[0]} is after {items[1]}")

    def sql(self) -> None:
        definition = self.definition
        assert definition.sql is not None
        import sqlglot

        statement = sqlglot.parse_one(definition.sql, read=definition.dialect)
        column = definition.activation_id or self.model.customers.key
        names = self._table_names()
        schemas = {
            name: list(self.schemas[names[name]].names)
            for name in names
            if names[name] in self.schemas
        }
        assert isinstance(statement, sqlglot.exp.Query)
        columns = output_columns(statement, schemas)
        if columns is not None and column not in columns:
            self.add(
                "sql",
                f"the SELECT must return the activation ID column {column!r}; it returns "
                f"{', '.join(columns) or 'nothing'}",
            )
        for name in unknown_functions(definition.sql, definition.dialect, self.dialect):
            self.add(
                "sql",
                f"function {name} is not known to be available on the {self.dialect} engine "
                f"(the segment is written in {definition.dialect})",
            )


def journey_combinations(node: JourneyActivityCondition, path: str) -> list[tuple[str, str]]:
    """Fields of a journey activity condition that do not apply to its status."""
    status = node.status
    problems: list[tuple[str, str]] = []
    if node.node is not None and status in ("goal", "exited"):
        problems.append((f"{path}.node", f"node applies to status in or entered, not {status}"))
    if node.goal is not None and status != "goal":
        problems.append((f"{path}.goal", f"goal applies to status goal, not {status}"))
    if node.reason is not None and status != "exited":
        problems.append((f"{path}.reason", f"reason applies to status exited, not {status}"))
    if node.times is not None and status == "in":
        problems.append(
            (
                f"{path}.times",
                "times does not apply to status in: a traveller is in a journey at most once "
                "at a time (use not for 'not in')",
            )
        )
    return problems


def _as_number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def check_segment(
    definition: SegmentDefinition,
    *,
    data_model: DataModel,
    schemas: Mapping[str, ibis.Schema],
    dialect: str,
) -> list[tuple[str, str]]:
    """Every problem in a segment that can be found without running it.

    Args:
        definition: the segment.
        data_model: the workspace's data model.
        schemas: engine table name → schema, for the data model's tables. A table missing
            here is not checked column by column (e.g. validation without an engine).
        dialect: the engine's SQLGlot dialect.

    Returns:
        ``(path, message)`` pairs, paths as in definition errors (``rules.all[1].op``).
    """
    checker = _Checker(definition, data_model, schemas, dialect)
    key = data_model.customers.key
    if definition.sql is not None:
        checker.sql()
        return checker.problems
    if definition.activation_id is not None and definition.activation_id != key:
        checker.add(
            "activation_id",
            f"rule segments select the customer key {key!r}; activation_id applies to SQL segments",
        )
    if definition.rules is not None:
        checker.walk(definition.rules, "rules")
    if definition.exclude is not None:
        checker.walk(definition.exclude, "exclude")
    return checker.problems

"""Check that the engine holds what ``data_model`` in ``activator.yaml`` declares.

Run before compiling anything, so a typo in a column name is reported against the config
line, not as an SQL error from deep inside a segment.
"""

from __future__ import annotations

__all__ = ["check_data_model"]

import ibis.expr.datatypes as dt

from activator.definitions.config import DataModel
from activator.engines.base import Engine
from activator.errors import Issue

_LISTED_COLUMNS = 8


def check_data_model(
    engine: Engine, model: DataModel, *, file: str = "activator.yaml"
) -> list[Issue]:
    """Every problem between the declared data model and the engine's tables.

    Checks that each table and column exists, that the customer key is unique, and the
    column types: event timestamps are
    dates or timestamps, amounts are numbers (a warning when floating point, whose sums are
    not deterministic), ``returned`` flags are booleans, and event customer keys have the
    customer key's type family.

    Args:
        engine: the open engine.
        model: the ``data_model`` section.
        file: the config file named in the issues.

    Returns:
        The issues, errors and warnings (``Issue.severity``); empty when all is well.
    """
    checker = _Checker(engine, file)
    customers = model.customers
    base = "data_model.customers"
    schema = checker.schema(customers.table, f"{base}.table")
    key_type: dt.DataType | None = None
    if schema is not None:
        key_type = checker.column(schema, customers.table, customers.key, f"{base}.key")
        if key_type is not None:
            _unique_key(checker, customers.table, customers.key, f"{base}.key")
        for index, column in enumerate(customers.pii):
            checker.column(schema, customers.table, column, f"{base}.pii[{index}]")

    for name, event in model.events.items():
        base = f"data_model.events.{name}"
        schema = checker.schema(event.table, f"{base}.table")
        if schema is None:
            continue
        table = event.table
        customer_key = checker.column(schema, table, event.customer_key, f"{base}.customer_key")
        if (
            customer_key is not None
            and key_type is not None
            and _family(customer_key) != _family(key_type)
        ):
            checker.error(
                f"{base}.customer_key",
                f"column {table}.{event.customer_key} is {customer_key}, which does not "
                f"match the customer key {customers.table}.{customers.key} ({key_type})",
            )
        timestamp = checker.column(schema, table, event.timestamp, f"{base}.timestamp")
        if timestamp is not None and not (timestamp.is_timestamp() or timestamp.is_date()):
            checker.error(
                f"{base}.timestamp",
                f"column {table}.{event.timestamp} is {timestamp}; it must be a date or a "
                "timestamp (cast it in a view if it is text)",
            )
        if event.amount is not None:
            amount = checker.column(schema, table, event.amount, f"{base}.amount")
            if amount is not None and not amount.is_numeric():
                checker.error(
                    f"{base}.amount",
                    f"column {table}.{event.amount} is {amount}; an amount must be a number, "
                    "preferably DECIMAL",
                )
            elif amount is not None and amount.is_floating():
                checker.warning(
                    f"{base}.amount",
                    f"column {table}.{event.amount} is floating point ({amount}): sums of "
                    "floating-point numbers are not deterministic under parallel aggregation, "
                    "so customers near a threshold can enter and leave audiences between runs "
                    "on unchanged data; store money as DECIMAL (e.g. DECIMAL(12,2))",
                )
        if event.returned is not None:
            returned = checker.column(schema, table, event.returned, f"{base}.returned")
            if returned is not None and not returned.is_boolean():
                checker.error(
                    f"{base}.returned",
                    f"column {table}.{event.returned} is {returned}; it must be a boolean",
                )
    return checker.issues


def _unique_key(checker: _Checker, table: str, key: str, path: str) -> None:
    """The customer table must have one row per activation ID: campaigns evaluate all their
    segments in one pass over its rows, and a second row of a customer would be a second
    send. One aggregate query, run at validation rather than at every run."""
    rows = checker.engine.table(table)
    repeated = rows.group_by(rows[key]).aggregate(n=rows.count()).filter(lambda t: t.n > 1)
    found = checker.engine.to_pyarrow(
        repeated.aggregate(keys=repeated.count(), example=repeated[key].min())
    ).to_pylist()[0]
    if found["keys"]:
        checker.error(
            path,
            f"{table}.{key} is not unique: {found['keys']:,} activation IDs are on several rows "
            f"(e.g. {found['example']!r}); the customer table needs one row per customer "
            "(deduplicate it in a view)",
        )


class _Checker:
    def __init__(self, engine: Engine, file: str) -> None:
        self.engine = engine
        self.file = file
        self.issues: list[Issue] = []
        self.tables = engine.list_tables()

    def error(self, path: str, message: str) -> None:
        self.issues.append(Issue(file=self.file, line=None, path=path, message=message))

    def warning(self, path: str, message: str) -> None:
        self.issues.append(
            Issue(file=self.file, line=None, path=path, message=message, severity="warning")
        )

    def schema(self, table: str, path: str) -> dict[str, dt.DataType] | None:
        if table not in self.tables:
            self.error(
                path,
                f"table {table!r} not found in the {self.engine.NAME} engine "
                f"(tables: {_listing(self.tables)})",
            )
            return None
        return dict(self.engine.schema_of(table).items())

    def column(
        self, schema: dict[str, dt.DataType], table: str, column: str, path: str
    ) -> dt.DataType | None:
        if column in schema:
            return schema[column]
        self.error(path, f"table {table!r} has no column {column!r} (columns: {_listing(schema)})")
        return None


def _listing(names: object) -> str:
    items = list(names)  # type: ignore[call-overload]
    if not items:
        return "none"
    shown = ", ".join(str(item) for item in items[:_LISTED_COLUMNS])
    return shown + (", ..." if len(items) > _LISTED_COLUMNS else "")


def _family(dtype: dt.DataType) -> str:
    """Types that join without surprises: all integers together, all text together."""
    if dtype.is_integer() or (dtype.is_decimal() and dtype.scale == 0):
        return "integer"
    if dtype.is_string():
        return "string"
    return type(dtype).__name__

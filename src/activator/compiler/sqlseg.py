"""SQL segments: checked and rewritten with SQLGlot before the engine sees them.

The user's SELECT is parsed in its own dialect, its unqualified table names are qualified with
the schema the engine reads customer data from (so ``FROM orders`` means the data model's
``orders`` whatever the connection's default schema), the current date and time are replaced
by the run's as-of time (so backtests are honest), and it is written in the engine's dialect.
"""

from __future__ import annotations

__all__ = ["output_columns", "prepare_sql", "unknown_functions"]

from collections.abc import Callable, Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

import ibis.expr.operations as ops
import ibis.expr.types as ir
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from activator.errors import ActivatorError, CompileError


def _parse(sql: str, dialect: str) -> exp.Query:
    try:
        statement = sqlglot.parse_one(sql, read=dialect)
    except SqlglotError as exc:
        raise CompileError(f"the SQL does not parse as {dialect}: {exc}") from None
    if not isinstance(statement, exp.Query):
        raise CompileError("a SQL segment is one read-only SELECT")
    return statement


def _cte_names(statement: exp.Expression) -> set[str]:
    return {cte.alias_or_name for cte in statement.find_all(exp.CTE)}


def _as_of_literals(node: exp.Expression, as_of: datetime, zone: ZoneInfo) -> exp.Expression:
    local = as_of.astimezone(zone)
    if isinstance(node, exp.CurrentDate):
        return exp.cast(exp.Literal.string(local.date().isoformat()), exp.DataType.Type.DATE)
    if isinstance(node, exp.CurrentTimestamp | exp.CurrentDatetime):
        text = local.replace(tzinfo=None).isoformat(sep=" ")
        return exp.cast(exp.Literal.string(text), exp.DataType.Type.TIMESTAMP)
    return node


def prepare_sql(
    sql: str,
    *,
    read: str,
    write: str,
    tables: Callable[[str], ir.Table],
    as_of: datetime,
    zone: ZoneInfo,
) -> str:
    """The SQL of a segment, ready to run on the engine.

    Args:
        sql: the user's SELECT.
        read: its dialect.
        write: the engine's dialect.
        tables: the engine's tables by name; unqualified table names are qualified with the
            schema these come from.
        as_of: replaces ``CURRENT_DATE`` / ``CURRENT_TIMESTAMP`` / ``NOW()`` (as wall time
            in ``zone``).
        zone: the workspace time zone.

    Raises:
        CompileError: the SQL does not parse, or cannot be written in ``write``.
    """
    statement = _parse(sql, read)
    ctes = _cte_names(statement)
    for table in list(statement.find_all(exp.Table)):
        if table.args.get("db") or table.name in ctes or not table.name:
            continue
        try:
            op = tables(table.name).op()
        except ActivatorError:
            continue  # left for the engine to report with its own words
        if isinstance(op, ops.DatabaseTable):
            namespace = op.namespace
            if namespace.database:
                table.set("db", exp.to_identifier(namespace.database))
            if namespace.catalog:
                table.set("catalog", exp.to_identifier(namespace.catalog))
    rewritten = statement.transform(lambda node: _as_of_literals(node, as_of, zone))
    try:
        return rewritten.sql(dialect=write, unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as exc:
        raise CompileError(f"the SQL cannot be written for {write}: {exc}") from None


def output_columns(statement: exp.Query, schemas: Mapping[str, list[str]]) -> list[str] | None:
    """Names of the columns the SELECT returns; None when a ``*`` cannot be expanded."""
    names: list[str] = []
    selects = (
        statement.selects
        if not isinstance(statement, exp.SetOperation)
        else (statement.left.selects if isinstance(statement.left, exp.Query) else [])
    )
    for select in selects:
        if isinstance(select, exp.Star) or (
            isinstance(select, exp.Column) and isinstance(select.this, exp.Star)
        ):
            sources = [
                source for source in statement.find_all(exp.Table)
                if source.name in schemas
            ]  # fmt: skip
            if not sources or len(sources) != len(list(statement.find_all(exp.Table))):
                return None
            for source in sources:
                names.extend(schemas[source.name])
            continue
        names.append(select.alias_or_name)
    return names


def unknown_functions(sql: str, read: str, write: str) -> list[str]:
    """Functions SQLGlot does not know in ``read``, or cannot write in ``write``.

    A function SQLGlot does not know is passed through unchanged, which is only safe when
    the engine speaks the segment's own dialect.
    """
    statement = _parse(sql, read)
    found: list[str] = []
    if read != write:
        for node in statement.find_all(exp.Anonymous):
            name = str(node.this)
            if name not in found:
                found.append(name)
    try:
        statement.sql(dialect=write, unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as exc:
        found.append(f"(unsupported in {write}: {exc})")
    return found

"""What each column type and condition accepts: shared by the compiler and the checks."""

from __future__ import annotations

__all__ = ["OPERATORS", "family", "score_table"]

import ibis.expr.datatypes as dt

from activator.definitions.common import ScoreCondition
from activator.definitions.config import DataModel
from activator.errors import CompileError

_NUMBER_OPS = {"=", "!=", ">", ">=", "<", "<=", "between", "not_between", "in", "not_in"}
_STRING_OPS = {
    "equals", "not_equals", "contains", "not_contains", "starts_with", "ends_with",
    "in", "not_in", "empty", "not_empty",
}  # fmt: skip
_DATE_OPS = {"is", "before", "after", "on_or_before", "on_or_after", "between", "not_between"}
_BOOLEAN_OPS = {"is_true", "is_false"}
_NULL_OPS = {"is_null", "is_not_null"}


def family(column_type: dt.DataType) -> str | None:
    """The operator family of a column type: boolean, number, date, string, or None."""
    if column_type.is_boolean():
        return "boolean"
    if column_type.is_numeric():
        return "number"
    if column_type.is_date() or column_type.is_timestamp():
        return "date"
    if column_type.is_string():
        return "string"
    return None


OPERATORS: dict[str, set[str]] = {
    "boolean": _BOOLEAN_OPS | _NULL_OPS,
    "number": _NUMBER_OPS | _NULL_OPS,
    "date": _DATE_OPS | _NULL_OPS,
    "string": _STRING_OPS | _NULL_OPS,
}
"""Operators each column family accepts."""


def score_table(node: ScoreCondition, model: DataModel, path: str) -> str:
    """The event table a score is computed on: ``table:``, else the first with an amount."""
    table: str | None = getattr(node, "table", None)
    if table:
        return table
    for name, event in model.events.items():
        if event.amount is not None:
            return name
    raise CompileError(
        f"{path}: RFM scores need an event table with an amount in the data model "
        "(or name one with 'table:')"
    )

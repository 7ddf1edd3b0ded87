"""Checks on user SQL: exactly one read-only SELECT, parsed with SQLGlot."""

from __future__ import annotations

__all__ = ["check_select"]

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

_WRITES = (
    exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter,
    exp.Command, exp.Copy, exp.TruncateTable, exp.Into,
)  # fmt: skip


def check_select(sql: str, dialect: str) -> str | None:
    """Return why ``sql`` is not one read-only SELECT in ``dialect``, or None when it is."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" at line {first.get('line')}" if first.get("line") else ""
        return f"SQL does not parse as {dialect}{where}: {first.get('description', exc)}"
    except TokenError as exc:  # an unterminated quote or comment, before any parsing
        return f"SQL does not parse as {dialect}: {exc}"
    except ValueError as exc:  # unknown dialect
        return str(exc)
    if len(statements) != 1:
        return f"expected exactly one SELECT statement, found {len(statements)}"
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        return f"only a SELECT is accepted here, not {statement.key.upper()}"
    for node in statement.walk():
        if isinstance(node, _WRITES):
            return f"only a read-only SELECT is accepted here; found {node.key.upper()}"
    return None

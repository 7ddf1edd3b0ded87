"""Segments: saved audience definitions that evaluate to a set of activation IDs."""

from __future__ import annotations

__all__ = ["SegmentDefinition"]

from typing import Literal

from pydantic import model_validator

from activator.definitions.base import Definition
from activator.definitions.common import Rules
from activator.definitions.sql import check_select


class SegmentDefinition(Definition):
    """A rule segment (``rules`` and optional ``exclude``) or a SQL segment (``sql``)."""

    kind: Literal["segment"] = "segment"
    rules: Rules | None = None
    """Who is in: a tree of ``all`` / ``any`` / ``not`` groups of conditions."""

    exclude: Rules | None = None
    """Who is taken out again, whatever ``rules`` says."""

    sql: str | None = None
    """One read-only SELECT returning the activation ID (instead of ``rules``)."""

    dialect: str = "duckdb"
    """SQL dialect of ``sql`` (a SQLGlot dialect name)."""

    activation_id: str | None = None
    """Column identifying customers; default: the data model's customer key."""

    @model_validator(mode="after")
    def _rules_or_sql(self) -> SegmentDefinition:
        if (self.rules is None) == (self.sql is None):
            raise ValueError("a segment has either 'rules' or 'sql' (exactly one of them)")
        if self.sql is not None and self.exclude is not None:
            raise ValueError("'exclude' applies to rule segments; write it into the SQL instead")
        if self.sql is not None and (problem := check_select(self.sql, self.dialect)):
            raise ValueError(f"sql: {problem}")
        return self

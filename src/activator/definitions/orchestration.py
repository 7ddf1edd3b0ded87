"""Orchestrations: a read-only query's result (or a table) sent to one destination."""

from __future__ import annotations

__all__ = ["OrchestrationDefinition", "OrchestrationGroupDefinition"]

from typing import Literal

from pydantic import Field, model_validator

from activator.definitions.base import Definition, Name
from activator.definitions.common import Schedule
from activator.definitions.config import Identifier
from activator.definitions.mapping import AttributeMapping
from activator.definitions.sql import check_select


class OrchestrationDefinition(Definition):
    """One query or table export to one destination."""

    kind: Literal["orchestration"] = "orchestration"
    query: str | None = None
    """One read-only SELECT, in ``dialect``."""

    dialect: str = "duckdb"
    table: str | None = None
    """Export a whole table instead of a query."""

    destination: Name
    mapping: AttributeMapping = {}
    """Destination field → source column of the query's result, with transforms; empty sends
    the result's columns as they are. See ``docs/mapping.md``."""

    schedule: Schedule | None = None
    after: list[Name] = []
    """Run after these orchestrations or groups succeed."""

    only_if_changed: bool = False
    """Run only when the source data changed since the last successful run; otherwise the run
    succeeds at once, sending nothing. See ``docs/orchestrations.md`` for how a change is
    detected on each engine."""

    watermark: Identifier | None = None
    """With ``only_if_changed``: a column that every insert and update sets to a later value
    (``updated_at``). The latest value of it in each source table that has it joins the
    change check, so an UPDATE that leaves the row count alone is seen too."""

    status: Literal["draft", "active", "paused", "archived"] = "draft"

    @model_validator(mode="after")
    def _query_or_table(self) -> OrchestrationDefinition:
        if (self.query is None) == (self.table is None):
            raise ValueError("an orchestration has either 'query' or 'table' (exactly one)")
        if self.query is not None and (problem := check_select(self.query, self.dialect)):
            raise ValueError(f"query: {problem}")
        if self.watermark is not None and not self.only_if_changed:
            raise ValueError(
                "watermark only serves only_if_changed: set only_if_changed: true, or remove it"
            )
        return self


class OrchestrationGroupDefinition(Definition):
    """Several orchestrations run as a unit on one schedule."""

    kind: Literal["group"] = "group"
    orchestrations: list[Name] = Field(min_length=1)
    schedule: Schedule | None = None
    status: Literal["draft", "active", "paused", "archived"] = "draft"

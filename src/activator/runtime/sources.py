"""Selecting what an attribute mapping reads, in the engine.

A mapping reads customer columns, related-table columns and run metadata (see
``activator.definitions.mapping``). Customer columns are plain columns of the rows to send.
A related table's columns (``orders.sku``) are reached through the activation ID: the engine
collects, per customer, the table's values into a list, in event order (the table's timestamp,
then the value: a total order, so runs are repeatable), and joins the lists to the rows. The
mapper then makes one output row per element (expansion). Run metadata is not selected: the
mapper adds it as constants.
"""

from __future__ import annotations

__all__ = ["with_attributes", "with_related"]

from collections.abc import Callable, Sequence

import ibis.expr.types as ir

from activator.definitions.config import DataModel
from activator.definitions.mapping import MappingSources
from activator.errors import ConfigError


def with_related(
    rows: ir.Table,
    sources: MappingSources,
    *,
    data_model: DataModel,
    table: Callable[[str], ir.Table],
    what: str,
) -> ir.Table:
    """``rows`` with one list column per related-table source (named ``table.column``).

    Args:
        rows: The rows to send; must hold the customer key when a related table is used.
        sources: What the mapping reads.
        data_model: The workspace's data model: related tables are its event tables.
        table: Physical table name → Ibis table.
        what: The mapping's place, for errors (``orchestrations/feed.yml mapping``).

    Raises:
        ConfigError: an unknown related table or column, or rows without the customer key.
    """
    if not sources.related:
        return rows
    key = data_model.customers.key
    if key not in rows.columns:
        raise ConfigError(
            f"{what}: related-table sources ({', '.join(sorted(sources.related))}) are joined "
            f"through the activation ID, but the rows have no {key!r} column",
            hint=f"select {key} in the query",
        )
    result = rows
    for name, columns in sources.related.items():
        event = data_model.events.get(name)
        if event is None:
            known = ", ".join(sorted(data_model.events)) or "none"
            raise ConfigError(
                f"{what}: unknown related table {name!r}",
                hint=f"related tables are the data model's event tables: {known}",
            )
        source = table(event.table)
        missing = [c for c in columns if c not in source.columns]
        if missing:
            raise ConfigError(
                f"{what}: table {event.table!r} ({name}) has no column "
                f"{', '.join(repr(c) for c in missing)}",
                hint=f"its columns: {', '.join(source.columns)}",
            )
        lists = source.group_by(source[event.customer_key].name("_related_key")).aggregate(
            **{
                f"{name}.{column}": source[column].collect(
                    order_by=[source[event.timestamp], source[column]]
                )
                for column in columns
            }
        )
        result = result.left_join(lists, result[key] == lists["_related_key"]).drop("_related_key")
    return result


def with_attributes(
    rows: ir.Table,
    sources: MappingSources | None,
    *,
    data_model: DataModel,
    table: Callable[[str], ir.Table],
    reserved: Sequence[str],
    what: str,
) -> ir.Table:
    """Activation rows (holding the customer key) joined to the customer attributes and
    related-table lists their mappings read.

    Args:
        rows: The rows to send, with the data model's customer key column.
        sources: What every mapping reads together; None: some delivery sends the customer
            table's columns as they are (no mapping), so all of them are joined.
        data_model: The workspace's data model.
        table: Physical table name → Ibis table.
        reserved: Columns the activation adds to every row; the customer table must not
            have them.
        what: The activation, for errors (``campaign welcome``).

    Raises:
        ConfigError: the customer table has a reserved column, or lacks one a mapping reads.
    """
    key = data_model.customers.key
    customers = table(data_model.customers.table)
    clash = [c for c in reserved if c in customers.columns]
    if clash:
        raise ConfigError(
            f"{what}: the customer table has columns named {', '.join(clash)}, which a run "
            "adds to every row",
            hint="rename those columns in a view of the customer table",
        )
    if sources is None:
        wanted = [c for c in customers.columns if c != key]
    else:
        wanted = [c for c in dict.fromkeys(sources.columns) if c in customers.columns and c != key]
        missing = [
            c
            for c in sources.columns
            if c not in customers.columns and c not in reserved and c != key
        ]
        if missing:
            raise ConfigError(
                f"{what}: a mapping reads {', '.join(repr(c) for c in missing)}, which the "
                f"customer table {data_model.customers.table!r} does not have",
                hint=f"its columns: {', '.join(customers.columns)}",
            )
    attributes = customers.select(_key=customers[key], **{c: customers[c] for c in wanted})
    joined = rows.left_join(attributes, rows[key] == attributes._key).drop("_key")
    if sources is None:
        return joined
    return with_related(
        joined, sources, data_model=data_model, table=table, what=f"{what}: mapping"
    )

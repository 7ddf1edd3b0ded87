"""Journey steps as set operations: Ibis expressions over the travel log and segment flags.

The **travel log** (data-plane table ``journey_log``) is append-only; one row per event of a
traveller's journey:

=============  ===================================================================================
journey        the journey's name
version        the definition version the row was written under
traveller      the customer's activation ID (the data model's key, its type)
entry          which entry of the traveller this is (1, 2, ... with re-entry)
entry_at       when that entry began
node           the node's id (NULL for ``lapse`` rows)
parent         for ``start`` rows: the node the traveller came from (NULL at entry)
path           the split path taken (``start`` and ``complete`` rows after a split; ``met`` /
               ``timed-out`` after *wait until*); the goal reached (``goal``); why the traveller
               left (``exit``: an exit segment's name, ``exit-node`` or ``end``)
control        the traveller is in a percent split's control for the rest of this entry
entered_at     the run's as-of time (every row a run writes has it)
due_at         ``start`` rows at *delay* and *wait until* nodes: when the wait ends
qualified      ``exit``/``orphan`` rows: whether the traveller still met the entry rules
run_id         the run that wrote the row
stage          ``start`` (reached the node), ``complete`` (left it, moving on), ``exit`` (left
               the journey at it), ``orphan`` (its node was removed by a new version: left),
               ``goal`` (reached a goal there; stays), ``lapse`` (stopped qualifying after
               leaving: may re-enter)
step           the step of the run that wrote the row: 0 for orphans, exits by segment,
               lapses, entries and goals; ``k + 1`` for round ``k`` of advancing (with the stage,
               it orders a traveller's rows of one run)
=============  ===================================================================================

A traveller's **position** is the ``start`` row of a node with no ``complete``, ``exit`` or
``orphan`` row for the same (traveller, entry, node): nodes are visited at most once per entry
(a journey has no cycles), so the anti-join is exact. See :mod:`activator.runtime.journey` for
the order of a run's steps.
"""

from __future__ import annotations

__all__ = [
    "CONTROL",
    "ENDS",
    "LOG_COLUMNS",
    "LOG_TABLE",
    "FlagColumns",
    "decide",
    "flag_columns",
    "log_rows",
    "log_schema",
    "open_positions",
    "timestamp",
]

import datetime as dt
from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.datatypes as idt
import ibis.expr.types as ir

from activator.compiler.functions import stable_bucket
from activator.definitions.campaign import basis_points
from activator.definitions.journey import (
    EVERYONE_ELSE,
    ActivateNode,
    ConditionalSplitNode,
    DelayNode,
    ExitNode,
    JourneyDefinition,
    MergeNode,
    PercentSplitNode,
    WaitUntilNode,
    add_wait,
)
from activator.definitions.segment import SegmentDefinition

LOG_TABLE = "journey_log"
CONTROL = "control"
TIME = idt.Timestamp(timezone="UTC")

LOG_COLUMNS: dict[str, idt.DataType | None] = {
    "journey": idt.string,
    "version": idt.int64,
    "traveller": None,  # the customer key's type
    "entry": idt.int64,
    "entry_at": TIME,
    "node": idt.string,
    "parent": idt.string,
    "path": idt.string,
    CONTROL: idt.boolean,
    "entered_at": TIME,
    "due_at": TIME,
    "qualified": idt.boolean,
    "run_id": idt.string,
    "stage": idt.string,
    "step": idt.int64,
}
"""The travel log's columns in order, with their types (the traveller's is the key's)."""

ENDS = ("complete", "exit", "orphan")
"""Stages that end a traveller's stay at a node."""


def log_schema(key_type: idt.DataType) -> ibis.Schema:
    """The travel log's schema for a customer key of ``key_type``."""
    return ibis.schema({c: t if t is not None else key_type for c, t in LOG_COLUMNS.items()})


def timestamp(moment: dt.datetime) -> ir.TimestampScalar:
    """An aware time as a UTC timestamp literal (the log's time type)."""
    return ibis.literal(moment.astimezone(dt.UTC), type=TIME)


def log_rows(table: ir.Table, key_type: idt.DataType, **values: Any) -> ir.Table:
    """Rows of the travel log from ``table``: each column from ``values`` (an expression or a
    Python value), NULL where not given, cast to the log's type."""
    out: dict[str, ir.Value] = {}
    for column, kind in LOG_COLUMNS.items():
        kind = (kind if kind is not None else key_type).copy(nullable=True)
        value = values.pop(column, None)
        if value is None:
            out[column] = ibis.null(kind)
        elif isinstance(value, ir.Value):
            out[column] = value.cast(kind)
        else:
            # A typed cast, not a typed literal: Spark's CREATE TABLE AS types a bare 1 as INT.
            out[column] = ibis.literal(value).cast(kind)
    if values:
        raise TypeError(f"not travel log columns: {', '.join(values)}")
    return table.select(**out)


def open_positions(log: ir.Table, journey: str) -> ir.Table:
    """Where each traveller of a journey is: their open ``start`` rows (one per traveller)."""
    mine = log.filter(log.journey == journey)
    starts = mine.filter(mine.stage == "start")
    ends = mine.filter(mine.stage.isin(ENDS)).select(_t=mine.traveller, _e=mine.entry, _n=mine.node)
    return starts.anti_join(
        ends,
        [starts.traveller == ends._t, starts.entry == ends._e, starts.node == ends._n],
    )


@dataclass(frozen=True)
class FlagColumns:
    """The segment flags a journey's run reads, one boolean column each.

    Attributes:
        segments: Flag column → saved segment name or inline definition (for
            :func:`activator.compiler.segment.segment_flags`).
        entry, exclude, exit, goals: Columns of the start's segments, in order.
        paths: Conditional split node id → one column per path, in order.
        waits: *Wait until* node id → its column.
    """

    segments: dict[str, str | SegmentDefinition]
    entry: list[str]
    exclude: list[str]
    exit: list[str]
    goals: list[str]
    paths: dict[str, list[str]]
    waits: dict[str, str]


def flag_columns(definition: JourneyDefinition) -> FlagColumns:
    """Name a column for every segment a run of the journey evaluates."""
    segments: dict[str, str | SegmentDefinition] = {}

    def add(prefix: str, names: list[str]) -> list[str]:
        columns = [f"_{prefix}{i}" for i in range(len(names))]
        segments.update(zip(columns, names, strict=True))
        return columns

    paths: dict[str, list[str]] = {}
    waits: dict[str, str] = {}
    for n, node in enumerate(definition.nodes):
        if isinstance(node, ConditionalSplitNode):
            paths[node.id] = []
            for p, path in enumerate(node.paths):
                column = f"_c{n}_{p}"
                segments[column] = (
                    path.segment
                    if path.segment is not None
                    else SegmentDefinition(
                        name=f"{definition.name}-{node.id}-{p}", rules=path.rules
                    )
                )
                paths[node.id].append(column)
        elif isinstance(node, WaitUntilNode):
            waits[node.id] = f"_w{n}"
            segments[f"_w{n}"] = node.segment
    return FlagColumns(
        segments=segments,
        entry=add("e", definition.start.entry),
        exclude=add("x", definition.start.exclude),
        exit=add("q", definition.start.exit),
        goals=add("g", definition.start.goals),
        paths=paths,
        waits=waits,
    )


def any_of(table: ir.Table, columns: list[str]) -> ir.BooleanValue:
    """True where any of the columns is (False for none)."""
    result: ir.BooleanValue = ibis.literal(False)
    for column in columns:
        result = result | table[column].fill_null(False)
    return result


def qualifies(table: ir.Table, flags: FlagColumns) -> ir.BooleanValue:
    """Meets the entry rules: in an entry segment, in no exclusion segment."""
    return any_of(table, flags.entry) & ~any_of(table, flags.exclude)


def due_at(
    definition: JourneyDefinition, target: ir.StringValue, as_of: dt.datetime, timezone: str
) -> ir.Value:
    """When the wait of the node a traveller arrives at (``target``) ends, arriving at
    ``as_of``; NULL for nodes without a wait. Computed here, once per node: every arrival of a
    run happens at the run's time."""
    branches = []
    for node in definition.nodes:
        if isinstance(node, DelayNode):
            branches.append((target == node.id, timestamp(add_wait(as_of, node.wait, timezone))))
        elif isinstance(node, WaitUntilNode):
            branches.append((target == node.id, timestamp(add_wait(as_of, node.timeout, timezone))))
    if not branches:
        return ibis.null(TIME)
    return ibis.cases(*branches, else_=ibis.null(TIME))


def decide(
    frontier: ir.Table,
    definition: JourneyDefinition,
    flags: FlagColumns,
    as_of: dt.datetime,
) -> ir.Table:
    """The travellers of ``frontier`` who leave their node at ``as_of``, with where they go.

    ``frontier`` has the columns of a position (``traveller``, ``entry``, ``entry_at``,
    ``node``, ``control``, ``due_at``) and the flag columns. Returns those rows that move,
    with ``_path`` (the path taken, or NULL), ``_target`` (the next node; NULL: they leave
    the journey) and ``_control`` (the control flag from now on). One CASE per decision over
    every node, so one statement moves every traveller one step, whatever their node.
    """
    node = frontier.node
    now = timestamp(as_of)
    move: list[tuple[ir.BooleanValue, ir.BooleanValue]] = []
    path: list[tuple[ir.BooleanValue, ir.Value]] = []
    target: list[tuple[ir.BooleanValue, ir.Value]] = []
    control: list[tuple[ir.BooleanValue, ir.BooleanValue]] = []
    for item in definition.nodes:
        here = node == item.id
        if isinstance(item, ActivateNode | MergeNode):
            move.append((here, ibis.literal(True)))
            target.append((here, _id(item.next)))
        elif isinstance(item, DelayNode):
            move.append((here, frontier.due_at <= now))
            target.append((here, _id(item.next)))
        elif isinstance(item, ExitNode):
            move.append((here, ibis.literal(True)))
            path.append((here, ibis.literal("exit-node")))
            target.append((here, _id(None)))
        elif isinstance(item, WaitUntilNode):
            met = frontier[flags.waits[item.id]].fill_null(False)
            move.append((here, met | (frontier.due_at <= now)))
            path.append((here, ibis.ifelse(met, ibis.literal("met"), ibis.literal("timed-out"))))
            target.append((here, ibis.ifelse(met, _id(item.met), _id(item.timed_out))))
        elif isinstance(item, ConditionalSplitNode):
            columns = flags.paths[item.id]
            move.append((here, ibis.literal(True)))
            path.append(
                (
                    here,
                    ibis.cases(
                        *[
                            (frontier[c].fill_null(False), ibis.literal(p.name))
                            for c, p in zip(columns, item.paths, strict=True)
                        ],
                        else_=ibis.literal(EVERYONE_ELSE),
                    ),
                )
            )
            target.append(
                (
                    here,
                    ibis.cases(
                        *[
                            (frontier[c].fill_null(False), _id(p.next))
                            for c, p in zip(columns, item.paths, strict=True)
                        ],
                        else_=_id(item.otherwise),
                    ),
                )
            )
        elif isinstance(item, PercentSplitNode):
            bucket = stable_bucket(frontier.traveller, definition.split_salt(item.id))
            bounds: list[tuple[ir.BooleanValue, int]] = []
            low = 0
            for p, split in enumerate(item.paths):
                high = low + basis_points(split.percent)
                last = p == len(item.paths) - 1
                bounds.append((ibis.literal(True) if last else bucket < high, p))
                low = high
            move.append((here, ibis.literal(True)))
            path.append(
                (here, ibis.cases(*[(c, ibis.literal(item.paths[p].name)) for c, p in bounds]))
            )
            target.append((here, ibis.cases(*[(c, _id(item.paths[p].next)) for c, p in bounds])))
            low = 0
            for split in item.paths:
                high = low + basis_points(split.percent)
                if split.control:
                    control.append((here, (bucket >= low) & (bucket < high)))
                low = high
    moving = ibis.cases(*move, else_=ibis.literal(False))
    decided = frontier.mutate(
        _move=moving,
        _path=ibis.cases(*path, else_=ibis.null("string")) if path else ibis.null("string"),
        _target=ibis.cases(*target, else_=ibis.null("string")),
        _control=frontier[CONTROL]
        | (ibis.cases(*control, else_=ibis.literal(False)) if control else ibis.literal(False)),
    )
    return decided.filter(decided._move).drop("_move")


def _id(node_id: str | None) -> ir.StringValue:
    return ibis.literal(node_id, type="string") if node_id is not None else ibis.null("string")

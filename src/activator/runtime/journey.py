"""Running a journey: one run steps every traveller with a fixed sequence of set operations.

A run at as-of time T (:func:`step`):

1. **Flags**: every segment the journey reads (entry, exclusion, exit, goals, conditional
   paths, *wait until*) is evaluated as of T in **one** plan
   (:func:`activator.compiler.segment.segment_flags`) and frozen as ``journey_flags_<tag>``.
2. **Positions**: where every traveller is (:func:`activator.compiler.journey.open_positions`),
   with their flags, frozen as ``journey_at_<tag>``.
3. **Orphans**: travellers at nodes the current version no longer has leave (``orphan``).
4. **Exits**: travellers matching an exit segment leave (``exit``, the segment's name).
5. **Entries**: customers who qualify (an entry segment, no exclusion, no exit segment), are
   not travelling now and may enter (re-entry rule) start at the first node. With re-entry,
   customers who left while still qualifying are marked ``lapse`` once they stop qualifying:
   only then may they enter again ("newly qualified").
6. **Goals**: travellers (staying, leaving at step 4 or entering) reaching a goal segment
   for the first time in this entry (``goal``; nobody is removed).
7. **Advance**: repeated at most the graph's depth times: every traveller whose node lets
   them go at T (:func:`activator.compiler.journey.decide`) gets ``complete`` there and
   ``start`` at the next node, or ``exit`` when the path ends; the arrivals are the next
   round's travellers. Each round is one statement over every node at once.
8. Every row of the run is gathered in ``journey_moves_<tag>`` and appended to the travel log
   with **one** INSERT, then the staging tables are dropped.

Until that INSERT the log is unchanged, so repeating steps 1–8 after a crash computes the same
rows; the caller makes sure a run's rows are inserted once (the run's ``step`` task). Only
CREATE and INSERT touch the data plane (Spark tables have no DELETE).
"""

from __future__ import annotations

__all__ = [
    "StepCounts",
    "drop_staging",
    "ensure_log",
    "node_counts",
    "run_rows",
    "sends",
    "step",
    "step_counts",
]

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.datatypes as idt
import ibis.expr.types as ir

from activator.compiler.journey import (
    CONTROL,
    ENDS,
    LOG_TABLE,
    TIME,
    FlagColumns,
    any_of,
    decide,
    due_at,
    flag_columns,
    log_rows,
    open_positions,
    qualifies,
    timestamp,
)
from activator.compiler.segment import CompileContext, segment_flags
from activator.definitions.journey import ActivateNode, JourneyDefinition
from activator.engines.base import Engine
from activator.errors import ConfigError

POSITION = ["traveller", "entry", "entry_at", "node", CONTROL, "due_at"]
"""The columns of a traveller's position carried from round to round."""


@dataclass
class StepCounts:
    """What a run did, per stage and node.

    Attributes:
        stages: stage → rows written (``start``, ``complete``, ``exit``...).
        nodes: node id → stage → rows.
        entered: travellers who entered.
        rounds: advance rounds that moved someone.
    """

    stages: dict[str, int] = field(default_factory=dict)
    nodes: dict[str, dict[str, int]] = field(default_factory=dict)
    entered: int = 0
    rounds: int = 0


def ensure_log(engine: Engine, key_type: idt.DataType, table: str = LOG_TABLE) -> ir.Table:
    """The travel log, created empty when missing."""
    if table not in engine.list_dataplane_tables():
        empty = ibis.memtable({"_": [0]}).limit(0)
        engine.create_dataplane_table(table, log_rows(empty, key_type))
    return engine.dataplane_table(table)


def _staging(tag: str, what: str) -> str:
    return f"journey_{what}_{tag}"


def drop_staging(engine: Engine, tag: str) -> None:
    """Drop the staging tables of the run ``tag`` that an interrupted step left in the data
    plane (engines whose staging tables are temporary leave none)."""
    for name in engine.list_dataplane_tables():
        if name.startswith("journey_") and name.endswith(f"_{tag}"):
            engine.backend.drop_table(name, database=engine.dataplane_schema, force=True)


def step(
    engine: Engine,
    ctx: CompileContext,
    definition: JourneyDefinition,
    *,
    version: int,
    run_id: str,
    tag: str,
    log_table: str = LOG_TABLE,
    progress: Callable[[str], None] | None = None,
) -> StepCounts:
    """Step every traveller of the journey at ``ctx.as_of`` and append the run's rows to the
    travel log (see the module's docstring). Returns what moved.

    Args:
        engine: The engine, open for writing.
        ctx: The compile context at the run's as-of time (applied segments).
        definition: The journey's current version.
        version: Its version number.
        run_id: The run, written on every row.
        tag: Names the run's staging tables (unique per run).
        log_table: The travel log (simulations use their own).
        progress: Told each step's name as it starts.
    """
    as_of = ctx.as_of
    say = progress or (lambda _: None)
    key = ctx.data_model.customers.key
    key_type = ctx.tables(ctx.data_model.customers.table).schema()[key]
    log = ensure_log(engine, key_type, log_table)
    mine = log.filter(log.journey == definition.name)
    flags = flag_columns(definition)
    staged: list[str] = []

    def freeze(what: str, expr: ir.Table) -> ir.Table:
        name = _staging(tag, what)
        staged.append(name)
        return engine.create_staging_table(name, expr)

    say("evaluating the journey's segments")
    evaluated = segment_flags(ctx, flags.segments)
    flagged = freeze("flags", evaluated.rename(traveller=key))
    flag_names = list(flags.segments)

    say("finding every traveller's position")
    positions = open_positions(log, definition.name).select(*POSITION)
    lookup = flagged.select(*flag_names, _k=flagged.traveller)
    joined = positions.left_join(lookup, positions.traveller == lookup._k).drop("_k")
    at = freeze("at", joined)

    def travellers(table: ir.Table) -> ir.Table:
        """Positions with their flags, in one schema whatever the table came from (PostgreSQL
        reads its timestamps back with a precision the expressions' types do not have)."""
        typed = {c: table[c].cast(TIME) for c in ("entry_at", "due_at")}
        return table.select(*POSITION, *flag_names).mutate(**typed)

    def row(table: ir.Table, **values: Any) -> ir.Table:
        base: dict[str, Any] = {
            "journey": definition.name,
            "version": version,
            "entered_at": timestamp(as_of),
            "run_id": run_id,
            "step": 0,
        }
        return log_rows(table, key_type, **{**base, **values})

    def kept(table: ir.Table) -> dict[str, Any]:
        return {
            "traveller": table.traveller,
            "entry": table.entry,
            "entry_at": table.entry_at,
            CONTROL: table[CONTROL],
        }

    ids = [node.id for node in definition.nodes]
    parts: list[ir.Table] = []

    # Orphans: their node is gone from this version.
    orphaned = at.filter(~at.node.isin(ids))
    parts.append(
        row(orphaned, **kept(orphaned), node=orphaned.node, qualified=qualifies(orphaned, flags),
            stage="orphan")
    )  # fmt: skip
    present = at.filter(at.node.isin(ids))

    # Exits: the first exit segment each matches names why.
    leaving_now = any_of(present, flags.exit)
    exiting = present.filter(leaving_now)
    if flags.exit:
        reason = ibis.cases(
            *[
                (exiting[c].fill_null(False), ibis.literal(name))
                for c, name in zip(flags.exit, definition.start.exit, strict=True)
            ]
        )
        parts.append(
            row(exiting, **kept(exiting), node=exiting.node, path=reason,
                qualified=qualifies(exiting, flags), stage="exit")
        )  # fmt: skip
    staying = present.filter(~leaving_now)

    say("entering the newly qualified")
    entries, lapses = _entries(mine, flagged, at, definition, flags)
    if lapses is not None:
        parts.append(row(lapses, traveller=lapses.traveller, entry=lapses.entry, stage="lapse"))
    first = definition.entry_node
    entered = entries.mutate(
        entry_at=timestamp(as_of),
        node=ibis.literal(first, type="string"),
        **{CONTROL: ibis.literal(False)},
        due_at=due_at(definition, ibis.literal(first, type="string"), as_of, ctx.timezone),
    )
    entered = freeze("entries", entered.pipe(travellers))
    parts.append(row(entered, **kept(entered), node=entered.node, due_at=entered.due_at,
                     stage="start"))  # fmt: skip

    # Goals: first time in this entry, for everyone travelling at this run.
    if flags.goals:
        reached = mine.filter(mine.stage == "goal").select(
            _t=mine.traveller, _e=mine.entry, _p=mine.path
        )
        candidates = ibis.union(
            present.pipe(travellers),
            entered.pipe(travellers),
            distinct=False,
        )
        for column, goal in zip(flags.goals, definition.start.goals, strict=True):
            hit = candidates.filter(candidates[column].fill_null(False))
            earlier = reached.filter(reached._p == goal)
            hit = hit.anti_join(earlier, [hit.traveller == earlier._t, hit.entry == earlier._e])
            parts.append(row(hit, **kept(hit), node=hit.node, path=goal, stage="goal"))

    # Advance, round by round: arrivals of one round are the travellers of the next.
    say("advancing travellers")
    frontier = ibis.union(
        staying.pipe(travellers),
        entered.pipe(travellers),
        distinct=False,
    )
    rounds = 0
    for depth in range(definition.depth() + 1):
        decided = freeze(f"round{depth}", decide(frontier, definition, flags, as_of))
        moved = _count(engine, decided)
        if not moved:
            break
        rounds += 1
        ends = decided._target.isnull()
        parts.append(
            row(
                decided,
                **kept(decided),
                node=decided.node,
                path=ibis.ifelse(ends, decided._path.fill_null("end"), decided._path),
                qualified=ibis.ifelse(ends, qualifies(decided, flags), ibis.null("boolean")),
                stage=ibis.ifelse(ends, ibis.literal("exit"), ibis.literal("complete")),
                step=depth + 1,
            )
        )
        arriving = decided.filter(decided._target.notnull())
        arrived = arriving.mutate(
            node=arriving._target,
            parent=arriving.node,
            **{CONTROL: arriving._control},
            due_at=due_at(definition, arriving._target, as_of, ctx.timezone),
        )
        parts.append(
            row(
                arrived,
                **kept(arrived),
                node=arrived.node,
                parent=arrived.parent,
                path=arrived._path,
                due_at=arrived.due_at,
                stage="start",
                step=depth + 1,
            )
        )
        frontier = arrived.pipe(travellers)
    else:
        raise ConfigError(  # pragma: no cover - the graph has no cycles (validated)
            f"journey {definition.name}: travellers still moving after {rounds} rounds"
        )

    say("writing the travel log")
    moves = freeze("moves", ibis.union(*parts, distinct=False))
    engine.backend.insert(log_table, moves, database=engine.dataplane_schema)
    counts = step_counts(engine, moves)
    counts.rounds = rounds
    for name in staged:
        engine.drop_staging_table(name)
    return counts


def _entries(
    mine: ir.Table,
    flagged: ir.Table,
    at: ir.Table,
    definition: JourneyDefinition,
    flags: FlagColumns,
) -> tuple[ir.Table, ir.Table | None]:
    """Who enters now (``traveller``, ``entry`` and the flags), and, with re-entry, who
    lapses (``traveller``, ``entry``: stopped qualifying after leaving)."""
    candidates = flagged.filter(qualifies(flagged, flags) & ~any_of(flagged, flags.exit))
    travelling = at.select(_t=at.traveller)
    # Entries are the start rows without a parent: a small part of the log to aggregate.
    began = mine.filter((mine.stage == "start") & mine.parent.isnull())
    history = began.group_by(_t=began.traveller).aggregate(_last=began.entry.max())
    if definition.start.reentry == "never":
        # Whoever travels now entered before: the history alone keeps them out.
        fresh = candidates.anti_join(history, candidates.traveller == history._t)
        # CAST(1 AS BIGINT): a bare 1 would make an INT column in Spark's CREATE TABLE AS.
        return fresh.mutate(entry=ibis.literal(1).cast("int64")), None
    released = mine.filter(
        (mine.stage.isin(["exit", "orphan"]) & ~mine.qualified.fill_null(True))
        | (mine.stage == "lapse")
    ).select(_rt=mine.traveller, _re=mine.entry)
    released = released.distinct()
    # .view(): two anti-joins in one SELECT leave "LEFT ANTI JOIN" in PostgreSQL's SQL
    # (SQLGlot 28.9 rewrites only every other one into NOT EXISTS).
    candidates = candidates.anti_join(travelling, candidates.traveller == travelling._t).view()
    joined = candidates.left_join(history, candidates.traveller == history._t)
    joined = joined.left_join(
        released, [joined.traveller == released._rt, joined._last == released._re]
    )
    allowed = joined.filter(joined._last.isnull() | joined._rt.notnull())
    entries = allowed.mutate(entry=(allowed._last.fill_null(0) + 1).cast("int64")).drop(
        "_t", "_last", "_rt", "_re"
    )
    # Left while still qualifying, not released yet, and not qualifying now: lapse.
    gone = history.anti_join(travelling, history._t == travelling._t).view()
    gone = gone.anti_join(released, [gone._t == released._rt, gone._last == released._re])
    now = flagged.select(_k=flagged.traveller, _q=qualifies(flagged, flags))
    gone = gone.left_join(now, gone._t == now._k)
    lapses = gone.filter(~gone._q.fill_null(False)).select(traveller=gone._t, entry=gone._last)
    return entries, lapses


def _count(engine: Engine, table: ir.Table) -> int:
    return int(engine.to_pyarrow(table.count().name("n").as_table())["n"][0].as_py())


def step_counts(engine: Engine, rows: ir.Table) -> StepCounts:
    """What a run's travel log ``rows`` say it did: rows per stage and node, entries."""
    grouped = rows.group_by("stage", "node").aggregate(
        n=rows.count(), entered=(rows.parent.isnull() & (rows.stage == "start")).sum()
    )
    counts = StepCounts()
    for item in engine.to_pyarrow(grouped).to_pylist():
        stage, node, n = item["stage"], item["node"], int(item["n"])
        counts.stages[stage] = counts.stages.get(stage, 0) + n
        counts.entered += int(item["entered"] or 0)
        if node is not None:
            counts.nodes.setdefault(node, {})[stage] = n
    return counts


def run_rows(log: ir.Table, journey: str, run_id: str) -> ir.Table:
    """The travel log rows one run of a journey wrote."""
    return log.filter((log.journey == journey) & (log.run_id == run_id))


def sends(log: ir.Table, definition: JourneyDefinition, run_id: str) -> ir.Table:
    """Travellers a run brought to activate nodes, outside any control: ``traveller`` and
    ``node`` (the activate node's id), one row each."""
    activate = [n.id for n in definition.nodes if isinstance(n, ActivateNode)]
    rows = run_rows(log, definition.name, run_id)
    rows = rows.filter((rows.stage == "start") & rows.node.isin(activate or [""]) & ~rows[CONTROL])
    return rows.select("traveller", "node")


def node_counts(
    engine: Engine, log: ir.Table, journey: str, *, run_id: str | None
) -> dict[str, dict[str, int]]:
    """Per node: ``total`` travellers who reached it, ``run`` those who reached it in run
    ``run_id``, ``waiting`` those there now, and ``left`` those who left it in ``run_id``."""
    mine = log.filter(log.journey == journey)
    starts = mine.filter(mine.stage == "start")
    out: dict[str, dict[str, int]] = {}

    def add(expr: ir.Table, what: str) -> None:
        for item in engine.to_pyarrow(expr).to_pylist():
            out.setdefault(item["node"], {"total": 0, "run": 0, "waiting": 0, "left": 0})[what] = (
                int(item["n"])
            )

    add(starts.group_by("node").aggregate(n=starts.count()), "total")
    here = open_positions(log, journey)
    add(here.group_by("node").aggregate(n=here.count()), "waiting")
    if run_id is not None:
        ran = starts.filter(starts.run_id == run_id)
        add(ran.group_by("node").aggregate(n=ran.count()), "run")
        left = mine.filter((mine.run_id == run_id) & mine.stage.isin(ENDS))
        add(left.group_by("node").aggregate(n=left.count()), "left")
    return out

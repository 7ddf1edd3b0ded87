"""Journey use cases: run (through :mod:`activator.services.run`), simulate, show the graph
with its counters and milestones, pause, resume, end, and read the travel log.

Runs use the **applied** journey and segments. A run's version is the applied version: when
it differs from the version travellers were last moved under, travellers at nodes that no
longer exist become orphans and leave (:mod:`activator.runtime.journey`).
"""

from __future__ import annotations

__all__ = [
    "JourneyOverview",
    "Simulation",
    "applied_journey",
    "journey_log",
    "journey_overview",
    "journey_run_plan",
    "set_journey_status",
    "simulate_journey",
]

import dataclasses
import difflib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir

from activator.compiler.journey import LOG_TABLE
from activator.definitions.files import FileDestination, template_fields
from activator.definitions.journey import ActivateNode, JourneyDefinition, PercentSplitNode, edges
from activator.engines.base import Engine
from activator.errors import ConfigError
from activator.mapping.mapper import Mapper, merged_sources
from activator.runtime.journey import (
    StepCounts,
    drop_staging,
    ensure_log,
    node_counts,
    run_rows,
    sends,
    step,
    step_counts,
)
from activator.runtime.results import conversion_lift, rate_interval
from activator.runtime.runner import DeliveryPlan, RunPlan
from activator.runtime.sources import with_attributes
from activator.services.campaign import compile_context
from activator.services.destination import connector_for, destination_definition
from activator.services.workspace import change_status, open_store, workspace_engine
from activator.store import MetadataStore, RunSummary, StoredDefinition
from activator.workspace.loader import Workspace, load_workspace

DELIVERY = "_delivery"
RESERVED_COLUMNS = (DELIVERY, "node")
_SUCCEEDED = ("succeeded", "warning")


def applied_journey(store: MetadataStore, name: str) -> tuple[StoredDefinition, JourneyDefinition]:
    """The applied journey by name.

    Raises:
        ConfigError: no such journey in the metadata store.
    """
    stored = store.get("journey", name)
    if stored is None:
        known = sorted(d.name for d in store.current("journey"))
        close = difflib.get_close_matches(name, known, n=1)
        raise ConfigError(
            f"no applied journey named {name!r}",
            hint=(f"did you mean {close[0]!r}? " if close else "")
            + "run `activator apply` after adding or changing definitions",
        )
    return stored, JourneyDefinition.model_validate(stored.spec)


# -- the run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Send:
    """One delivery of a journey run: an activate node's destination."""

    part: int
    node: ActivateNode
    destination: str
    use_mapping: dict[str, Any]


def _sends_of(definition: JourneyDefinition) -> list[_Send]:
    found: list[_Send] = []
    for node in definition.nodes:
        if isinstance(node, ActivateNode):
            for use in node.destinations:
                found.append(_Send(len(found), node, use.destination, dict(use.mapping)))
    return found


def _file_names(destination: Any, shared: bool) -> Any:
    """A file destination used by several activate nodes gets the node in its file names."""
    if not isinstance(destination, FileDestination) or not shared:
        return destination
    if "node" in {name for name, _ in template_fields(destination.filename)}:
        return destination
    return destination.model_copy(update={"filename": f"{destination.filename}_{{node}}"})


def journey_run_plan(
    ws: Workspace,
    store: MetadataStore,
    engine: Engine,
    run: RunSummary,
    definition: JourneyDefinition,
    *,
    retry_rejected: bool = False,
) -> RunPlan:
    """What a journey run does, for the run executor: step the travellers (once per run,
    even when the run is resumed), then deliver what reached activate nodes."""
    key = ws.config.data_model.customers.key
    found = _sends_of(definition)
    uses: dict[str, int] = {}
    for send in found:
        uses[send.destination] = uses.get(send.destination, 0) + 1
    destinations = {d: destination_definition(store, d) for d in uses}
    mappers = [
        Mapper(
            send.use_mapping,
            {
                "activation": definition.name,
                "journey": definition.name,
                "node": send.node.name,
                "run_id": run.run_id,
                "time": run.as_of,
            },
        )
        if send.use_mapping
        else None
        for send in found
    ]
    customer_columns = list(engine.table(ws.config.data_model.customers.table).columns)
    deliveries = [
        DeliveryPlan(
            destination=send.destination,
            connector=connector_for(
                _file_names(destinations[send.destination], uses[send.destination] > 1),
                ws,
                engine,
            ),
            mapping=mapper,
            names={"journey": definition.name, "node": send.node.name},
            columns=[key, *[c for c in customer_columns if c != key]]
            if mapper is None
            else list(mapper.sources.batch_columns),
            part=send.part,
            key=send.node.id,
            describe={"node": send.node.id},
        )
        for send, mapper in zip(found, mappers, strict=True)
    ]
    sources = merged_sources(mappers)

    def rows(engine: Engine) -> ir.Table:
        _step_once(ws, store, engine, run, definition)
        log = engine.dataplane_table(LOG_TABLE)
        sent = sends(log, definition, run.run_id)
        branches = [
            sent.filter(sent.node == send.node.id).select(
                **{key: sent.traveller, DELIVERY: ibis.literal(send.part, type="int32")}
            )
            for send in found
        ]
        if not branches:
            routed = sent.select(**{key: sent.traveller, DELIVERY: ibis.literal(0, "int32")})
            routed = routed.limit(0)
        else:
            routed = branches[0] if len(branches) == 1 else ibis.union(*branches, distinct=False)
        return with_attributes(
            routed,
            sources,
            data_model=ws.config.data_model,
            table=engine.table,
            reserved=RESERVED_COLUMNS,
            what=f"journey {definition.name}",
        )

    def finish(engine: Engine, summary: RunSummary, parts: list[int]) -> dict[str, Any]:
        task = store.ensure_task(summary.run_id, "step", position=0)
        return {"journey": task.counts}

    return RunPlan(
        rows=rows,
        deliveries=deliveries,
        retry_rejected=retry_rejected,
        partition=DELIVERY,
        order_by=[key],
        finish=finish,
    )


def _step_once(
    ws: Workspace,
    store: MetadataStore,
    engine: Engine,
    run: RunSummary,
    definition: JourneyDefinition,
) -> None:
    """Step the journey for this run unless it already was: the run's ``step`` task records
    it; a step interrupted after its INSERT is recognised by the run's rows in the log."""
    task = store.ensure_task(run.run_id, "step", position=0)
    if task.status == "succeeded":
        return
    key_type = engine.table(ws.config.data_model.customers.table).schema()[
        ws.config.data_model.customers.key
    ]
    if task.status == "running":
        log = ensure_log(engine, key_type)
        already = run_rows(log, definition.name, run.run_id).count()
        if int(engine.to_pyarrow(already.name("n").as_table())["n"][0].as_py()):
            # Interrupted after its INSERT: the rows stand; the staging tables may remain.
            drop_staging(engine, run.run_id.replace("-", ""))
            store.update_task(
                run.run_id, "step", status="succeeded", counts=_recount(engine, run, definition)
            )
            return
    store.update_task(run.run_id, "step", status="running")
    ctx = compile_context(ws, store, engine, run.as_of)
    counts = step(
        engine,
        ctx,
        definition,
        version=run.definition_version,
        run_id=run.run_id,
        tag=run.run_id.replace("-", ""),
        progress=lambda what: store.add_event(run.run_id, what, task="step"),
    )
    store.update_task(run.run_id, "step", status="succeeded", counts=_step_json(counts))


def _step_json(counts: StepCounts) -> dict[str, Any]:
    return {
        "entered": counts.entered,
        "moved": counts.stages.get("complete", 0),
        "exited": counts.stages.get("exit", 0),
        "goals": counts.stages.get("goal", 0),
        "orphaned": counts.stages.get("orphan", 0),
        "nodes": counts.nodes,
    }


def _recount(engine: Engine, run: RunSummary, definition: JourneyDefinition) -> dict[str, Any]:
    log = engine.dataplane_table(LOG_TABLE)
    return _step_json(step_counts(engine, run_rows(log, definition.name, run.run_id)))


def set_journey_status(root: Path, name: str, action: str, *, actor: str | None = None) -> str:
    """Pause, resume or end a journey; return its new status.

    Paused journeys do not run; their travellers stay where they are and move on at the
    first run after ``resume`` (delays that ended meanwhile are over). Ended journeys take no
    one in and move no one any more; the travel log keeps their history.
    """
    return change_status(
        root,
        "journey",
        name,
        action,
        {
            # Only an active journey pauses: a draft does not run on a schedule anyway, and
            # resuming makes a journey active.
            "pause": ({"active"}, "paused"),
            "resume": ({"paused"}, "active"),
            "end": ({"draft", "active", "paused"}, "ended"),
        },
        final="an ended journey does not restart: copy it under a new name",
        actor=actor,
    )


# -- simulation -----------------------------------------------------------------------------


@dataclass
class Simulation:
    """A journey run as of each simulated time, nothing sent.

    Attributes:
        journey: The journey's name.
        runs: Per simulated run: ``as_of`` and, per node id, ``entered`` / ``waiting`` /
            ``left``; plus the run's ``entered``, ``exited``, ``goals`` and ``sends``.
    """

    journey: str
    nodes: list[str]
    runs: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"journey": self.journey, "nodes": self.nodes, "runs": self.runs}


def parse_every(text: str) -> timedelta:
    """``1d``, ``12h``, ``1w`` as a time step."""
    units = {"h": 3600, "d": 86400, "w": 7 * 86400}
    number, unit = text[:-1], text[-1:]
    if not number.isdigit() or unit not in units or int(number) == 0:
        raise ConfigError(f"--every {text!r} is not a step such as 1d, 12h or 1w")
    return timedelta(seconds=int(number) * units[unit])


def simulate_journey(
    root: Path,
    name: str,
    *,
    start: datetime,
    days: int,
    every: timedelta,
    progress: Callable[[int, int], None] | None = None,
) -> Simulation:
    """Run the applied journey as of ``start``, ``start + every``... for ``days`` days against
    the data as it is, from no travellers, in a travel log of its own (dropped at the end).
    Sends are recorded in that log, not delivered; nothing else is written."""
    if days < 1:
        raise ConfigError(f"--days must be at least 1, got {days}")
    ws = load_workspace(root, definitions=False)
    times: list[datetime] = []
    moment = start
    while moment < start + timedelta(days=days):
        times.append(moment)
        moment += every
    with open_store(ws) as store, workspace_engine(ws) as engine:
        stored, definition = applied_journey(store, name)
        key_type = engine.table(ws.config.data_model.customers.table).schema()[
            ws.config.data_model.customers.key
        ]
        tag = "sim" + uuid.uuid4().hex[:12]
        table = f"journey_{tag}_log"
        simulation = Simulation(journey=name, nodes=[n.id for n in definition.nodes])
        log = ensure_log(engine, key_type, table)
        try:
            for index, at in enumerate(times):
                run_id = f"simulation-{index + 1}"
                ctx = compile_context(ws, store, engine, at)
                # Journey activity conditions see the simulated travel log, not the real one.
                ctx = dataclasses.replace(ctx, activity=_activity_with(ctx.activity, log))
                counts = step(
                    engine,
                    ctx,
                    definition,
                    version=stored.version,
                    run_id=run_id,
                    tag=f"{tag}_{index}",
                    log_table=table,
                )
                per_node = node_counts(engine, log, name, run_id=run_id)
                sent = sends(log, definition, run_id).count()
                simulation.runs.append(
                    {
                        "as_of": at.isoformat(),
                        "entered": counts.entered,
                        "exited": counts.stages.get("exit", 0),
                        "goals": counts.stages.get("goal", 0),
                        "sends": int(engine.to_pyarrow(sent.name("n").as_table())["n"][0].as_py()),
                        "nodes": {
                            node: {
                                "entered": per_node.get(node, {}).get("run", 0),
                                "waiting": per_node.get(node, {}).get("waiting", 0),
                                "left": per_node.get(node, {}).get("left", 0),
                            }
                            for node in simulation.nodes
                        },
                    }
                )
                if progress is not None:
                    progress(index + 1, len(times))
        finally:
            engine.backend.drop_table(table, database=engine.dataplane_schema, force=True)
        return simulation


def _activity_with(
    activity: Callable[[str], ir.Table | None] | None, log: ir.Table
) -> Callable[[str], ir.Table | None]:
    """The data plane's activity tables, with ``log`` as the travel log."""

    def table(name: str) -> ir.Table | None:
        if name == LOG_TABLE:
            return log
        return activity(name) if activity is not None else None

    return table


# -- counters, milestones, the log -------------------------------------------------------------


@dataclass
class JourneyOverview:
    """A journey's graph with its counters and milestones.

    Attributes:
        definition: The applied journey.
        version: Its version.
        status: Its status.
        last_run: Its latest run (None: never ran).
        nodes: node id → ``total`` (travellers who reached it), ``run`` (in the latest run),
            ``waiting`` (there now), ``left`` (left it in the latest run).
        milestones: One per goal and for exits: ``kind`` (goal/exit), ``name``, ``all_time``,
            ``last_7_days``, ``last_30_days``, ``last_90_days``, ``median_days`` from entry.
        splits: Percent splits with a control, per path compared with the control on a goal:
            ``node``, ``goal``, ``paths`` (path, control, travellers, converted, rate with its
            interval, lift against the control with its interval).
    """

    definition: JourneyDefinition
    version: int
    status: str
    last_run: RunSummary | None
    nodes: dict[str, dict[str, int]]
    milestones: list[dict[str, Any]]
    splits: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "journey": self.definition.name,
            "version": self.version,
            "status": self.status,
            "last_run": None if self.last_run is None else self.last_run.run_id,
            "first": self.definition.entry_node,
            "nodes": [
                {
                    "id": node.id,
                    "name": node.name,
                    "type": node.type,
                    "next": [{"path": p, "node": t} for p, t in edges(node)],
                    **self.nodes.get(node.id, {"total": 0, "run": 0, "waiting": 0, "left": 0}),
                }
                for node in self.definition.nodes
            ],
            "milestones": self.milestones,
            "splits": self.splits,
        }


def journey_overview(
    root: Path, name: str, *, as_of: datetime, goal: str | None = None
) -> JourneyOverview:
    """The journey's counters per node, its milestones as of ``as_of``, and its percent
    splits compared with their control on ``goal`` (default: the first goal)."""
    ws = load_workspace(root, definitions=False)
    with open_store(ws) as store, workspace_engine(ws, read_only=True) as engine:
        stored, definition = applied_journey(store, name)
        last = next(
            (r for r in store.list_runs("journey", name, limit=50) if r.status in _SUCCEEDED),
            None,
        )
        if goal is not None and goal not in definition.start.goals:
            raise ConfigError(
                f"journey {name}: {goal!r} is not one of its goals",
                hint=f"its goals: {', '.join(definition.start.goals) or 'none'}",
            )
        if LOG_TABLE not in engine.list_dataplane_tables():
            return JourneyOverview(definition, stored.version, stored.status, last, {}, [], [])
        log = engine.dataplane_table(LOG_TABLE)
        nodes = node_counts(engine, log, name, run_id=None if last is None else last.run_id)
        milestones = _milestones(engine, log, definition, as_of)
        chosen = goal or (definition.start.goals[0] if definition.start.goals else None)
        splits = _splits(engine, log, definition, chosen) if chosen else []
        return JourneyOverview(
            definition, stored.version, stored.status, last, nodes, milestones, splits
        )


def _milestones(
    engine: Engine, log: ir.Table, definition: JourneyDefinition, as_of: datetime
) -> list[dict[str, Any]]:
    mine = log.filter((log.journey == definition.name) & log.stage.isin(["goal", "exit"]))
    mine = mine.filter(mine.entered_at <= ibis.literal(as_of))
    days = (mine.entered_at.epoch_seconds() - mine.entry_at.epoch_seconds()) / 86400.0
    since = {n: ibis.literal(as_of - timedelta(days=n)) for n in (7, 30, 90)}
    grouped = mine.group_by(kind=mine.stage, name=mine.path).aggregate(
        all_time=mine.count(),
        last_7_days=(mine.entered_at > since[7]).sum(),
        last_30_days=(mine.entered_at > since[30]).sum(),
        last_90_days=(mine.entered_at > since[90]).sum(),
        median_days=days.median(),
    )
    found = {(r["kind"], r["name"]): r for r in engine.to_pyarrow(grouped).to_pylist()}
    out: list[dict[str, Any]] = []
    wanted = [("goal", g) for g in definition.start.goals]
    wanted += [("exit", n) for n in definition.start.exit]
    wanted += sorted((k, n) for k, n in found if k == "exit" and n not in definition.start.exit)
    for kind, label in wanted:
        row = found.get((kind, label), {})
        out.append(
            {
                "kind": kind,
                "name": label,
                **{
                    k: int(row.get(k) or 0)
                    for k in ("all_time", "last_7_days", "last_30_days", "last_90_days")
                },
                "median_days": None
                if row.get("median_days") is None
                else round(float(row["median_days"]), 2),
            }
        )
    return out


def _splits(
    engine: Engine, log: ir.Table, definition: JourneyDefinition, goal: str
) -> list[dict[str, Any]]:
    """Each percent split with a control: its paths' conversion to ``goal`` (reached at any
    time after the split in the same entry) against the control's."""
    mine = log.filter(log.journey == definition.name)
    reached = mine.filter((mine.stage == "goal") & (mine.path == goal)).select(
        _t=mine.traveller, _e=mine.entry, _at=mine.entered_at
    )
    out: list[dict[str, Any]] = []
    for node in definition.nodes:
        if not isinstance(node, PercentSplitNode) or not any(p.control for p in node.paths):
            continue
        split = mine.filter((mine.node == node.id) & (mine.stage == "complete"))
        joined = split.left_join(
            reached,
            [
                split.traveller == reached._t,
                split.entry == reached._e,
                reached._at >= split.entered_at,
            ],
        )
        per = joined.group_by("traveller", "entry", "path").aggregate(
            converted=joined._t.notnull().any()
        )
        totals = per.group_by("path").aggregate(
            travellers=per.count(), converted=per.converted.sum()
        )
        rows = {r["path"]: r for r in engine.to_pyarrow(totals).to_pylist()}
        control = next(p for p in node.paths if p.control)
        base = rows.get(control.name, {})
        base_n, base_x = int(base.get("travellers") or 0), int(base.get("converted") or 0)
        paths = []
        for path in node.paths:
            row = rows.get(path.name, {})
            n, x = int(row.get("travellers") or 0), int(row.get("converted") or 0)
            interval = rate_interval(x, n)
            entry: dict[str, Any] = {
                "path": path.name,
                "control": path.control,
                "travellers": n,
                "converted": x,
                "rate": x / n if n else None,
                "rate_interval": None if interval is None else interval.to_json(),
            }
            if not path.control and n and base_n:
                entry["lift"] = conversion_lift((x, n), (base_x, base_n)).to_json()
            paths.append(entry)
        out.append({"node": node.id, "goal": goal, "paths": paths})
    return out


def journey_log(
    root: Path, name: str, *, customer: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The travel log of a journey, newest first (one customer's when ``customer`` is given,
    as text: it is compared with the activation ID as text)."""
    ws = load_workspace(root, definitions=False)
    with open_store(ws) as store, workspace_engine(ws, read_only=True) as engine:
        applied_journey(store, name)
        if LOG_TABLE not in engine.list_dataplane_tables():
            return []
        log = engine.dataplane_table(LOG_TABLE)
        mine = log.filter(log.journey == name)
        if customer is not None:
            mine = mine.filter(mine.traveller.cast("string") == customer)
        # Newest first: a run's rows by step, and within a step in the order they happen
        # (leaving a node, lapsing, entering, then a goal reached on arrival).
        happened = ibis.cases(
            (mine.stage == "lapse", 1), (mine.stage == "start", 2), (mine.stage == "goal", 3),
            else_=0,
        )  # fmt: skip
        mine = mine.order_by(
            [
                ibis.desc(mine.entered_at),
                mine.traveller,
                ibis.desc(mine.entry),
                ibis.desc(mine.step),
                ibis.desc(happened),
                mine.node,
            ]
        ).limit(limit)
        found: list[dict[str, Any]] = engine.to_pyarrow(mine).to_pylist()
        for row in found:
            for column in ("entered_at", "entry_at", "due_at"):
                if row[column] is not None:
                    row[column] = row[column].isoformat()
        return found

"""Campaign use cases: plan, run (through :mod:`activator.services.run`), test sends, pause,
resume, archive, and results.

Campaign runs use the **applied** campaign and the applied segments (what ``activator apply``
stored), like every run, so a run's history stays true to what it executed.
"""

from __future__ import annotations

__all__ = [
    "CampaignPlan",
    "campaign_results",
    "campaign_run_plan",
    "plan_campaign",
    "send_sample",
    "set_campaign_status",
]

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow.compute as pc

from activator.compiler.campaign import ACTION, CONTROL, GROUP, SUB, GroupQuota
from activator.compiler.segment import CompileContext
from activator.definitions.campaign import CampaignDefinition
from activator.definitions.files import FileDestination, template_fields
from activator.definitions.mapping import FieldMapping
from activator.definitions.segment import SegmentDefinition
from activator.engines.base import Engine
from activator.errors import ConfigError
from activator.mapping.mapper import Mapper, merged_sources
from activator.runtime.campaign import (
    CONTROL_PART,
    DELIVERY,
    CampaignAudience,
    Route,
    audience_table,
    evaluate_audience,
    record_recipients,
    routes,
    rows_to_send,
)
from activator.runtime.results import CampaignResults
from activator.runtime.results import campaign_results as _results
from activator.runtime.runner import DeliveryPlan, Progress, RunExecutor, RunPlan, snapshot_name
from activator.services.destination import connector_for, destination_definition
from activator.services.segment import engine_context
from activator.services.workspace import change_status, open_store, workspace_engine
from activator.store import MetadataStore, RunSummary, StoredDefinition
from activator.workspace.loader import Workspace, load_workspace

_SUCCEEDED = ("succeeded", "warning")


# -- the run --------------------------------------------------------------------------------


def applied_campaign(
    store: MetadataStore, name: str
) -> tuple[StoredDefinition, CampaignDefinition]:
    """The applied campaign by name.

    Raises:
        ConfigError: no such campaign in the metadata store.
    """
    stored = store.get("campaign", name)
    if stored is None:
        raise ConfigError(
            f"no applied campaign named {name!r}",
            hint="run `activator apply` after adding or changing definitions",
        )
    return stored, CampaignDefinition.model_validate(stored.spec)


def compile_context(
    ws: Workspace, store: MetadataStore, engine: Engine, as_of: datetime
) -> CompileContext:
    """The compiler's view at ``as_of`` with the **applied** segments."""
    ctx = engine_context(ws, engine, as_of)
    applied = {s.name: SegmentDefinition.model_validate(s.spec) for s in store.current("segment")}
    return dataclasses.replace(ctx, segments=applied)


def previous_run(store: MetadataStore, name: str, *, before: str | None = None) -> str | None:
    """The latest successful, non-test run of a campaign (other than ``before``)."""
    for run in store.list_runs("campaign", name, limit=1000, include_tests=False):
        if run.run_id != before and run.status in _SUCCEEDED:
            return run.run_id
    return None


def _file_names(destination: Any, route: Route, mode: str) -> Any:
    """A per-group file delivery's destination, its file names made unique per group (and
    per action in mirror mode) when the template does not already say them."""
    if not isinstance(destination, FileDestination) or route.combined:
        return destination
    have = {name for name, _ in template_fields(destination.filename)}
    extra = [f"{{{f}}}" for f in ("sub_audience", "group") if f not in have]
    if mode == "mirror" and "action" not in have:
        extra.append("{action}")
    if not extra:
        return destination
    return destination.model_copy(update={"filename": "_".join([destination.filename, *extra])})


def _mapper(
    route: Route, definition: CampaignDefinition, run_id: str, as_of: datetime
) -> Mapper | None:
    mapping: dict[str, FieldMapping] = dict(route.use.mapping)
    if not mapping:
        return None
    if definition.mode == "mirror" and "run.action" not in {m.source for m in mapping.values()}:
        # A receiver of a mirror campaign must tell additions from removals.
        mapping.setdefault("action", FieldMapping(source="run.action"))
    values: dict[str, Any] = {
        "activation": definition.name,
        "campaign": definition.name,
        "run_id": run_id,
        "time": as_of,
    }
    if route.combined:
        rows = {"sub_audience": SUB, "group": GROUP, "action": ACTION}
        return Mapper(mapping, values, rows)
    sub, group = route.groups[0]
    values.update(sub_audience=sub, group=group, action=route.action)
    return Mapper(mapping, values)


def _columns(
    mapper: Mapper | None, key: str, customer_columns: list[str], mirror: bool
) -> list[str]:
    if mapper is None:
        extra = [ACTION] if mirror else []
        return [key, *[c for c in customer_columns if c != key], SUB, GROUP, *extra]
    per_row = list(mapper.row_values.values())
    return list(dict.fromkeys([*mapper.sources.batch_columns, *per_row]))


def _deliveries(
    store: MetadataStore, definition: CampaignDefinition
) -> tuple[dict[str, Any], list[Route]]:
    """The applied destinations a campaign sends to, by name, and its deliveries."""
    destinations = {
        name: destination_definition(store, name)
        for name in dict.fromkeys(
            use.destination
            for _, groups in definition.parts()
            for group in groups
            for use in definition.group_destinations(group)
        )
    }
    files = {name for name, d in destinations.items() if isinstance(d, FileDestination)}
    return destinations, routes(definition, files)


def campaign_run_plan(
    ws: Workspace,
    store: MetadataStore,
    engine: Engine,
    run: RunSummary,
    definition: CampaignDefinition,
    *,
    retry_rejected: bool = False,
    sample: int | None = None,
    only: str | None = None,
) -> RunPlan:
    """What a campaign run does, for the run executor.

    Args:
        ws: The workspace.
        store: The metadata store.
        engine: The engine, open for writing.
        run: The run.
        definition: The campaign, as applied.
        retry_rejected: Resend records destinations rejected in earlier runs.
        sample: A test send of this many customers (no audience table, no recipients).
        only: A test send to this destination only.
    """
    key = ws.config.data_model.customers.key
    destinations, found = _deliveries(store, definition)
    if only is not None:
        found = [r for r in found if r.destination == only]
        if not found:
            raise ConfigError(
                f"campaign {definition.name} sends nothing to {only!r}",
                hint=f"its destinations: {', '.join(destinations) or 'none'}",
            )
    mappers = [_mapper(route, definition, run.run_id, run.as_of) for route in found]
    customer_columns = list(engine.table(ws.config.data_model.customers.table).columns)
    deliveries = [
        DeliveryPlan(
            destination=route.destination,
            connector=connector_for(
                _file_names(destinations[route.destination], route, definition.mode), ws, engine
            ),
            mapping=mapper,
            names=_names(route, definition),
            columns=_columns(mapper, key, customer_columns, definition.mode == "mirror"),
            part=route.part,
            key=route.key,
            describe=route.describe(),
        )
        for route, mapper in zip(found, mappers, strict=True)
    ]
    sources = merged_sources(mappers)

    def rows(engine: Engine) -> ir.Table:
        ctx = compile_context(ws, store, engine, run.as_of)
        audience = evaluate_audience(
            engine,
            ctx,
            definition,
            previous_run=None
            if sample is not None
            else previous_run(store, definition.name, before=run.run_id),
            run_id=None if sample is not None else run.run_id,
        )
        return rows_to_send(
            audience, definition, found, ctx=ctx, sources=sources, table=engine.table, sample=sample
        )

    def finish(engine: Engine, summary: RunSummary, parts: list[int]) -> dict[str, Any]:
        snapshot = engine.dataplane_table(snapshot_name(summary.run_id))
        sent_rows = snapshot.filter(snapshot[DELIVERY].isin(parts or [-2]))
        counts: dict[str, Any] = {
            "sent": _scalar(engine, sent_rows.select(key).distinct().count()),
        }
        if sample is not None:
            counts["audience"] = None  # a sample: who qualifies was not evaluated in full
            return counts
        _record(engine, store, summary, definition, found, key, parts)
        current = engine.dataplane_table(audience_table(summary.run_id))
        counts["audience"] = _scalar(engine, current.select(key).distinct().count())
        counts["groups"] = _group_counts(engine, current, snapshot, key, parts)
        if len(parts) == len(found):
            _drop_older_audiences(engine, store, definition.name, summary.run_id)
        return counts

    return RunPlan(
        rows=rows,
        deliveries=deliveries,
        retry_rejected=retry_rejected,
        partition=DELIVERY,
        # Within a delivery, rows go by activation ID (a customer is on several rows only
        # when in several sub-audiences or groups of one combined delivery).
        order_by=[key],
        finish=finish,
    )


def _record(
    engine: Engine,
    store: MetadataStore,
    run: RunSummary,
    definition: CampaignDefinition,
    found: list[Route],
    key: str,
    parts: list[int],
) -> None:
    """Add the delivered parts' customers (and the control) to ``recipients``, once.

    The ``recipients`` task remembers the parts recorded. Parts are inserted plainly; only
    parts an interrupted attempt may have half-recorded are inserted with the check that
    skips rows already there (an anti-join over the run's rows, which costs as much again).
    """
    task = store.ensure_task(run.run_id, "recipients", position=len(found) + 1)
    done = set(task.detail.get("parts", []))
    tried = set(task.detail.get("attempting", []))
    todo = [p for p in [CONTROL_PART, *parts] if p not in done]
    if not todo:
        return
    store.update_task(
        run.run_id,
        "recipients",
        status="running",
        detail={"parts": sorted(done), "attempting": todo},
    )
    record_recipients(
        engine,
        definition,
        found,
        key=key,
        run_id=run.run_id,
        as_of=run.as_of,
        parts=todo,
        check_existing=bool(tried - done),
    )
    store.update_task(
        run.run_id,
        "recipients",
        status="succeeded",
        detail={"parts": sorted(done | set(todo)), "attempting": []},
    )


def _drop_older_audiences(engine: Engine, store: MetadataStore, name: str, run_id: str) -> None:
    """Once a run has delivered everything, earlier successful runs' audience tables are no
    baseline any more: drop them. Failed runs keep theirs (they may be resumed)."""
    tables = set(engine.list_dataplane_tables())
    for run in store.list_runs("campaign", name, limit=10_000, include_tests=False):
        table = audience_table(run.run_id)
        if run.run_id != run_id and run.status in _SUCCEEDED and table in tables:
            engine.backend.drop_table(table, database=engine.dataplane_schema)


def _names(route: Route, definition: CampaignDefinition) -> dict[str, str]:
    names = {"campaign": definition.name, "action": "added" if route.action == "add" else "removed"}
    if not route.combined:
        names["sub_audience"], names["group"] = route.groups[0]
    return names


def _scalar(engine: Engine, expr: ir.Scalar) -> int:
    return int(engine.to_pyarrow(expr.name("n").as_table())["n"][0].as_py())


def _group_counts(
    engine: Engine, current: ir.Table, snapshot: ir.Table, key: str, parts: list[int]
) -> list[dict[str, Any]]:
    """Per sub-audience and group: customers in the audience now, and sent in this run."""
    members = current.group_by(SUB, GROUP, CONTROL).aggregate(customers=current.count())
    sent = snapshot.filter(snapshot[DELIVERY].isin(parts or [-2]))
    sent = sent.group_by(_s=sent[SUB], _g=sent[GROUP]).aggregate(sent=sent[key].nunique())
    joined = members.left_join(sent, [members[SUB] == sent._s, members[GROUP] == sent._g])
    out = joined.select(SUB, GROUP, CONTROL, "customers", sent=joined.sent.fill_null(0))
    rows = engine.to_pyarrow(out.order_by([SUB, GROUP])).to_pylist()
    return [
        {
            "sub_audience": r[SUB],
            "group": r[GROUP],
            "control": bool(r[CONTROL]),
            "customers": int(r["customers"]),
            "sent": int(r["sent"]),
        }
        for r in rows
    ]


# -- test sends -----------------------------------------------------------------------------


def send_sample(
    root: Path,
    name: str,
    *,
    sample: int,
    as_of: datetime,
    destination: str | None = None,
    progress: Progress | None = None,
    say: Callable[[str], None] | None = None,
) -> RunSummary:
    """Send a sample of the campaign's treatment groups, recorded as a test run.

    A test send writes no audience table and no recipients, and is never the "previous run"
    of an incremental campaign.
    """
    if sample < 1:
        raise ConfigError(f"--sample must be at least 1, got {sample}")
    ws = load_workspace(root, definitions=False)
    with open_store(ws) as store:
        stored, definition = applied_campaign(store, name)
        run = store.create_run(
            kind="campaign",
            name=name,
            definition_version=stored.version,
            trigger="test",
            as_of=as_of,
            is_test=True,
        )
        if say is not None:
            say(f"test run {run.run_id}: campaign {name} v{stored.version}, {sample} customers")
        with workspace_engine(ws) as engine:
            plan = campaign_run_plan(
                ws, store, engine, run, definition, sample=sample, only=destination
            )
            executor = RunExecutor(
                store,
                engine,
                workspace_root=ws.root,
                timezone=ws.config.timezone,
                progress=progress,
            )
            return executor.execute(run, plan)


# -- status ---------------------------------------------------------------------------------


_TRANSITIONS = {
    "pause": ({"draft", "active"}, "paused"),
    "resume": ({"paused"}, "active"),
    "archive": ({"draft", "active", "paused"}, "archived"),
}


def set_campaign_status(root: Path, name: str, action: str, *, actor: str | None = None) -> str:
    """Pause, resume or archive a campaign; return its new status.

    Paused campaigns keep their definition and history and do not run; resuming makes them
    active (scheduled) again. Archived campaigns do not run and cannot be resumed: apply a
    changed definition with ``status: active`` to bring one back.
    """
    return change_status(
        root,
        "campaign",
        name,
        action,
        _TRANSITIONS,
        final="archived campaigns come back by applying them with `status: active`",
        actor=actor,
    )


# -- plan -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupPlan:
    """One group in a plan."""

    sub_audience: str
    group: str
    control: bool
    customers: int
    new: int
    staying: int
    leaving: int
    target: int
    joining: int


@dataclass(frozen=True)
class DeliveryPreview:
    """One delivery in a plan: what it would send."""

    destination: str
    sub_audience: str | None
    group: str | None
    action: str
    customers: int
    rows: int
    shrink: int
    expansion: int


@dataclass(frozen=True)
class CampaignPlan:
    """What a run at ``as_of`` would do, computed without sending or writing anything."""

    campaign: str
    as_of: datetime
    mode: str
    previous_run: str | None
    audience: int
    groups: list[GroupPlan]
    deliveries: list[DeliveryPreview] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON (``activator plan --json``)."""
        return {
            "campaign": self.campaign,
            "as_of": self.as_of.isoformat(),
            "mode": self.mode,
            "previous_run": self.previous_run,
            "audience": self.audience,
            "new": sum(g.new for g in self.groups),
            "staying": sum(g.staying for g in self.groups),
            "leaving": sum(g.leaving for g in self.groups),
            "sub_audiences": _by_sub(self.groups),
            "deliveries": [dataclasses.asdict(d) for d in self.deliveries],
        }


def _by_sub(groups: list[GroupPlan]) -> list[dict[str, Any]]:
    subs: dict[str, dict[str, Any]] = {}
    for g in groups:
        entry = subs.setdefault(
            g.sub_audience, {"name": g.sub_audience, "customers": 0, "groups": []}
        )
        entry["customers"] += g.customers
        entry["groups"].append(
            {k: v for k, v in dataclasses.asdict(g).items() if k != "sub_audience"}
        )
    return list(subs.values())


def plan_campaign(
    root: Path, name: str, *, as_of: datetime, say: Callable[[str], None] | None = None
) -> CampaignPlan:
    """Evaluate a campaign at ``as_of`` without sending: the audience, per sub-audience and
    group the customers (new, staying, leaving versus the previous successful run) and the
    assignment of newcomers, and per delivery the customers and rows it would send with the
    mapping's shrink and expansion (the rows are mapped, not sent)."""
    ws = load_workspace(root, definitions=False)
    with open_store(ws) as store:
        stored, definition = applied_campaign(store, name)
        before = previous_run(store, name)
        with workspace_engine(ws, read_only=True) as engine:
            if say is not None:
                say(f"evaluating campaign {name} v{stored.version} as of {as_of.isoformat()}")
            ctx = compile_context(ws, store, engine, as_of)
            key = ws.config.data_model.customers.key
            audience = evaluate_audience(engine, ctx, definition, previous_run=before)
            groups = _plan_groups(engine, audience.current, audience.previous, audience.quotas, key)
            size = _scalar(engine, audience.current.select(key).distinct().count())
            deliveries = _preview_deliveries(ws, store, engine, ctx, definition, audience, as_of)
    return CampaignPlan(
        campaign=name,
        as_of=as_of,
        mode=definition.mode,
        previous_run=before,
        audience=size,
        groups=groups,
        deliveries=deliveries,
    )


def _plan_groups(
    engine: Engine,
    current: ir.Table,
    previous: ir.Table | None,
    plan: list[GroupQuota],
    key: str,
) -> list[GroupPlan]:
    if previous is None:
        flagged = current.mutate(_was=ibis.literal(False))
    else:
        was = previous.select(_k=previous[key], _s=previous[SUB], _was=ibis.literal(True))
        flagged = current.left_join(was, [current[key] == was._k, current[SUB] == was._s])
        flagged = flagged.mutate(_was=flagged._was.fill_null(False)).drop("_k", "_s")
    now = {
        (r[SUB], r[GROUP], bool(r["_was"])): int(r["n"])
        for r in engine.to_pyarrow(
            flagged.group_by(SUB, GROUP, "_was").aggregate(n=flagged.count())
        ).to_pylist()
    }
    leaving: dict[tuple[str, str], int] = {}
    if previous is not None:
        gone = previous.anti_join(current, [key, SUB])
        for r in engine.to_pyarrow(gone.group_by(SUB, GROUP).aggregate(n=gone.count())).to_pylist():
            leaving[(r[SUB], r[GROUP])] = int(r["n"])
    return [
        GroupPlan(
            sub_audience=q.sub_audience,
            group=q.group,
            control=q.control,
            customers=now.get((q.sub_audience, q.group, False), 0)
            + now.get((q.sub_audience, q.group, True), 0),
            new=now.get((q.sub_audience, q.group, False), 0),
            staying=now.get((q.sub_audience, q.group, True), 0),
            leaving=leaving.get((q.sub_audience, q.group), 0),
            target=q.target,
            joining=q.end - q.first,
        )
        for q in plan
    ]


def _preview_deliveries(
    ws: Workspace,
    store: MetadataStore,
    engine: Engine,
    ctx: CompileContext,
    definition: CampaignDefinition,
    audience: CampaignAudience,
    as_of: datetime,
) -> list[DeliveryPreview]:
    """Map each delivery's rows (without sending) to count its shrink and expansion."""
    _, found = _deliveries(store, definition)
    mappers = [_mapper(route, definition, "plan", as_of) for route in found]
    rows = rows_to_send(
        audience, definition, found, ctx=ctx, sources=merged_sources(mappers), table=engine.table
    )
    key = ws.config.data_model.customers.key
    customer_columns = list(engine.table(ws.config.data_model.customers.table).columns)
    mirror = definition.mode == "mirror"
    columns = [_columns(mapper, key, customer_columns, mirror) for mapper in mappers]
    # One pass over the rows, in delivery order; each batch is cut per delivery.
    wanted = list(dict.fromkeys(c for cols in columns for c in cols))
    tally = {route.part: [0, 0, 0, 0] for route in found}  # customers, rows, shrink, expansion
    by_part = {
        route.part: (mapper, cols)
        for route, mapper, cols in zip(found, mappers, columns, strict=True)
    }
    stream = rows.filter(rows[DELIVERY] >= 0).select(*wanted, DELIVERY)
    for batch in engine.stream(stream):
        parts = batch.column(DELIVERY)
        for part in pc.unique(parts).to_pylist():
            mapper, cols = by_part[part]
            mine = batch.filter(pc.equal(parts, part)).select(cols)
            counts = tally[part]
            counts[0] += mine.num_rows
            if mapper is None:
                counts[1] += mine.num_rows
                continue
            mapped = mapper.apply(mine)
            counts[1] += mapped.batch.num_rows
            counts[2] += mapped.shrink
            counts[3] += mapped.expansion
    previews: list[DeliveryPreview] = []
    for route in found:
        sub, group = (None, None) if route.combined else route.groups[0]
        previews.append(
            DeliveryPreview(route.destination, sub, group, route.action, *tally[route.part])
        )
    return previews


# -- results --------------------------------------------------------------------------------


def campaign_results(
    root: Path, name: str, *, conversion: str, days: int, as_of: datetime
) -> CampaignResults:
    """Conversion and revenue per sub-audience and group, with lift against the control."""
    ws = load_workspace(root, definitions=False)
    with open_store(ws) as store:
        applied_campaign(store, name)
    with workspace_engine(ws, read_only=True) as engine:
        return _results(
            engine,
            ws.config.data_model,
            name,
            conversion=conversion,
            days=days,
            as_of=as_of,
            timezone=ws.config.timezone,
        )

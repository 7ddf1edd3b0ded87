"""Run use cases: run an activation now, resume an interrupted run, show runs.

Runs execute the **applied** version of a definition (the one in the metadata store), never an
unapplied edit in the workspace: a run records that version, so its history stays true.
Orchestrations run here; campaigns and journeys plug into the same executor.
"""

from __future__ import annotations

__all__ = [
    "RunDetail",
    "list_runs",
    "resume_run",
    "run_activation",
    "show_run",
]

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import ibis.expr.types as ir

from activator.definitions import OrchestrationDefinition
from activator.definitions.campaign import CampaignDefinition
from activator.definitions.journey import JourneyDefinition
from activator.engines.base import Engine
from activator.errors import ConfigError
from activator.mapping.mapper import Mapper
from activator.runtime.runner import DeliveryPlan, Progress, RunExecutor, RunPlan
from activator.runtime.sources import with_related
from activator.services.campaign import campaign_run_plan
from activator.services.destination import connector_for, destination_definition
from activator.services.journey import journey_run_plan
from activator.services.workspace import open_store, workspace_engine
from activator.store import (
    EventRecord,
    MetadataStore,
    RejectedRecord,
    RunSummary,
    StoredDefinition,
    TaskSummary,
)
from activator.workspace.loader import Workspace, load_workspace

RUNNABLE = ("campaign", "journey", "orchestration")
"""Kinds ``activator run`` executes."""


@dataclass(frozen=True)
class RunDetail:
    """A run with its tasks, events and a sample of its rejected records."""

    run: RunSummary
    tasks: list[TaskSummary]
    events: list[EventRecord]
    rejected: list[RejectedRecord]

    def to_json(self) -> dict[str, Any]:
        """The run as JSON (the CLI's ``--json`` and the API)."""
        return {
            **run_json(self.run),
            "tasks": [
                {
                    "task": t.task,
                    "destination": t.destination,
                    "status": t.status,
                    "started_at": _iso(t.started_at),
                    "finished_at": _iso(t.finished_at),
                    "counts": t.counts,
                    "detail": t.detail,
                    "error": t.error,
                    "error_kind": t.error_kind,
                }
                for t in self.tasks
            ],
            "events": [
                {
                    "at": _iso(e.at),
                    "level": e.level,
                    "task": e.task,
                    "message": e.message,
                    "fields": e.fields,
                }
                for e in self.events
            ],
            "rejected_sample": [
                {"destination": r.destination, "record": r.record, "reason": r.reason}
                for r in self.rejected
            ],
        }


_DELIVERY_COUNTS = ("customers", "rows", "shrink", "expansion", "rejected")


def run_json(run: RunSummary) -> dict[str, Any]:
    """A run's summary as JSON."""
    return {
        "run_id": run.run_id,
        "kind": run.kind,
        "name": run.name,
        "version": run.definition_version,
        "status": run.status,
        "trigger": run.trigger,
        "as_of": _iso(run.as_of),
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "audience": run.counts.get("audience", run.counts.get("customers")),
        "sent": run.counts.get("sent", run.counts.get("customers")),
        "deliveries": [
            {
                "destination": d.get("destination", label.partition(":")[0]),
                "sub_audience": d.get("sub_audience"),
                "group": d.get("group"),
                **({"node": d["node"]} if "node" in d else {}),
                "action": d.get("action", "add"),
                **{k: d.get(k, 0) for k in _DELIVERY_COUNTS},
            }
            for label, d in run.counts.get("deliveries", {}).items()
        ],
        "counts": run.counts,
        "error": run.error,
        "error_kind": run.error_kind,
        "is_test": run.is_test,
    }


def run_activation(
    root: Path,
    name: str,
    *,
    as_of: datetime,
    retry_rejected: bool = False,
    progress: Progress | None = None,
    say: Callable[[str], None] | None = None,
) -> RunSummary:
    """Run an activation now, at ``as_of``, and return how the run ended.

    With ``retry_rejected``, records the destinations rejected in earlier runs are sent again
    (as they were mapped then) after each destination's delivery.

    Raises:
        ConfigError: no such applied activation, or it is of a kind that cannot run yet.
    """
    ws = load_workspace(root)
    with open_store(ws) as store:
        stored = _runnable(store, name)
        if stored.status in ("paused", "archived", "ended"):
            raise ConfigError(
                f"{stored.kind} {name!r} is {stored.status}: it does not run",
                hint=f"`activator {stored.kind} resume {name}` first"
                if stored.status == "paused"
                else "an ended journey moves no one any more"
                if stored.status == "ended"
                else "apply it with `status: active` to bring it back",
            )
        run = store.create_run(
            kind=stored.kind,
            name=stored.name,
            definition_version=stored.version,
            trigger="manual",
            as_of=as_of,
        )
        if say is not None:
            say(f"run {run.run_id}: {stored.kind} {stored.name} v{stored.version}")
        return _execute(ws, store, run, stored, progress, retry_rejected=retry_rejected)


def resume_run(
    root: Path,
    run_id: str,
    *,
    progress: Progress | None = None,
) -> RunSummary:
    """Continue an interrupted or failed run where it stopped, with the same inputs.

    Finished tasks are skipped; deliveries continue after their last delivered unit, and
    units in flight are settled with their destination. No row is sent twice.

    Raises:
        ConfigError: no such run, or it already succeeded.
        RunClaimedError: a live process is executing it.
    """
    ws = load_workspace(root)
    with open_store(ws) as store:
        run = store.get_run(run_id)
        if run is None:
            raise ConfigError(f"no run {run_id}", hint="`activator runs list NAME` shows runs")
        if run.status in ("succeeded", "warning", "canceled"):
            raise ConfigError(
                f"run {run_id} has already finished ({run.status}): nothing to resume"
            )
        versions = {v.version: v for v in store.versions(run.kind, run.name)}
        stored = versions[run.definition_version]
        store.add_event(run.run_id, "resuming", fields={"previous_status": run.status})
        retrying = any(t.task.startswith("retry:") for t in store.tasks(run_id))
        return _execute(ws, store, run, stored, progress, retry_rejected=retrying)


def show_run(root: Path, run_id: str, *, events: int = 200, rejected: int = 20) -> RunDetail:
    """A run with its tasks, its latest events and a sample of rejected records."""
    ws = load_workspace(root)
    with open_store(ws) as store:
        run = store.get_run(run_id)
        if run is None:
            raise ConfigError(f"no run {run_id}", hint="`activator runs list NAME` shows runs")
        return RunDetail(
            run=run,
            tasks=store.tasks(run_id),
            events=store.events(run_id)[-events:],
            rejected=store.rejected_records(run_id=run_id, limit=rejected),
        )


def list_runs(root: Path, name: str, *, limit: int = 20) -> list[RunSummary]:
    """The latest runs of an activation, newest first."""
    ws = load_workspace(root)
    with open_store(ws) as store:
        stored = _runnable(store, name)
        return store.list_runs(stored.kind, stored.name, limit=limit)


# -- executing -------------------------------------------------------------------------------


def _runnable(store: MetadataStore, name: str) -> StoredDefinition:
    for kind in RUNNABLE:
        found = store.get(kind, name)
        if found is not None:
            return found
    known = sorted(d.name for d in store.current() if d.kind in RUNNABLE)
    close = difflib.get_close_matches(name, known, n=1)
    raise ConfigError(
        f"no applied activation named {name!r}",
        hint=(f"did you mean {close[0]!r}? " if close else "")
        + "run `activator apply` after adding or changing definitions",
    )


def _execute(
    ws: Workspace,
    store: MetadataStore,
    run: RunSummary,
    stored: StoredDefinition,
    progress: Progress | None,
    *,
    retry_rejected: bool = False,
) -> RunSummary:
    with workspace_engine(ws) as engine:
        if stored.kind == "campaign":
            campaign = CampaignDefinition.model_validate(stored.spec)
            plan = campaign_run_plan(
                ws, store, engine, run, campaign, retry_rejected=retry_rejected
            )
        elif stored.kind == "journey":
            journey = JourneyDefinition.model_validate(stored.spec)
            plan = journey_run_plan(ws, store, engine, run, journey, retry_rejected=retry_rejected)
        else:
            orchestration = OrchestrationDefinition.model_validate(stored.spec)
            plan = _orchestration_plan(ws, store, engine, run, orchestration, retry_rejected)
        executor = RunExecutor(
            store, engine, workspace_root=ws.root, timezone=ws.config.timezone, progress=progress
        )
        return executor.execute(run, plan)


def _orchestration_plan(
    ws: Workspace,
    store: MetadataStore,
    engine: Engine,
    run: RunSummary,
    definition: OrchestrationDefinition,
    retry_rejected: bool,
) -> RunPlan:
    destination = destination_definition(store, definition.destination)
    mapper = Mapper(
        definition.mapping,
        {
            "activation": run.name,
            "orchestration": run.name,
            "run_id": run.run_id,
            "time": run.as_of,
        },
    )
    return RunPlan(
        rows=lambda engine: with_related(
            _rows(engine, definition),
            mapper.sources,
            data_model=ws.config.data_model,
            table=engine.table,
            what=f"orchestration {definition.name}: mapping",
        ),
        deliveries=[
            DeliveryPlan(
                destination=definition.destination,
                connector=connector_for(destination, ws, engine),
                mapping=mapper if definition.mapping else None,
            )
        ],
        retry_rejected=retry_rejected,
    )


def _rows(engine: Engine, definition: OrchestrationDefinition) -> ir.Table:
    if definition.table is not None:
        return engine.table(definition.table)
    assert definition.query is not None
    return engine.backend.sql(definition.query, dialect=definition.dialect)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()

"""Run use cases: run an activation now, resume an interrupted run, show runs.

Runs execute the **applied** version of a definition (the one in the metadata store), never an
unapplied edit in the workspace: a run records that version, so its history stays true.
Orchestrations run here; campaigns and journeys plug into the same executor.
"""

from __future__ import annotations

__all__ = [
    "RUNNABLE",
    "RunDetail",
    "cancel_run",
    "cancel_stored_run",
    "execute_run",
    "list_runs",
    "prepare_retry",
    "queue_restart",
    "queue_run",
    "restart_run",
    "resume_run",
    "retry_run",
    "run_activation",
    "run_detail",
    "show_run",
    "start_run",
]

import difflib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from activator.clock import wall_clock
from activator.definitions import OrchestrationDefinition
from activator.definitions.campaign import CampaignDefinition
from activator.definitions.journey import JourneyDefinition
from activator.definitions.orchestration import OrchestrationGroupDefinition
from activator.engines.base import Engine
from activator.errors import ActivatorError, ConfigError, EngineLockedError
from activator.runtime.ledger import LEASE_TTL
from activator.runtime.runner import (
    Progress,
    RunExecutor,
    heartbeat,
    owner_id,
    take_lease,
)
from activator.services.alerts import send_alerts
from activator.services.campaign import campaign_run_plan
from activator.services.journey import journey_run_plan
from activator.services.orchestration import finish_if_unchanged, orchestration_run_plan
from activator.services.workspace import cli_actor, open_store, workspace_engine
from activator.store import (
    FINISHED_RUN_STATUSES,
    EventRecord,
    MetadataStore,
    RejectedRecord,
    RunClaimedError,
    RunSummary,
    StoredDefinition,
    TaskSummary,
)
from activator.workspace.loader import Workspace, load_workspace

RUNNABLE = ("campaign", "journey", "orchestration", "group")
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
        "status": run.shown_status,
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
                **({"failed": True} if d.get("failed") else {}),
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
        ConfigError: no such applied activation, or it is paused, archived or ended.
    """
    ws = load_workspace(root, definitions=False)
    with open_store(ws) as store:
        run = queue_run(store, name, as_of=as_of, trigger="manual")
        _audit(store, "launch", run)
        if say is not None:
            say(f"run {run.run_id}: {run.kind} {run.name} v{run.definition_version}")
        return execute_run(ws, store, run, progress=progress, retry_rejected=retry_rejected)


def queue_run(store: MetadataStore, name: str, *, as_of: datetime, trigger: str) -> RunSummary:
    """Record a run of the applied activation ``name``, leased to this process, which is to
    execute it next (:func:`execute_run`).

    Raises:
        ConfigError: no such applied activation, or it is paused, archived or ended.
    """
    stored = _runnable(store, name)
    _check_runs(stored)
    return start_run(store, stored, as_of=as_of, trigger=trigger)


def start_run(
    store: MetadataStore,
    stored: StoredDefinition,
    *,
    as_of: datetime,
    trigger: str,
    scheduled_for: datetime | None = None,
    inputs: dict[str, Any] | None = None,
    parent_run_id: str | None = None,
) -> RunSummary:
    """Record a run of the applied version ``stored``, leased to this process from the start.

    Raises:
        RunSlotTakenError: ``scheduled_for`` already has its run.
    """
    return store.create_run(
        kind=stored.kind,
        name=stored.name,
        definition_version=stored.version,
        trigger=trigger,
        as_of=as_of,
        scheduled_for=scheduled_for,
        inputs=inputs,
        parent_run_id=parent_run_id,
        owner=owner_id(),
        lease=LEASE_TTL,
    )


def retry_run(
    root: Path,
    run_id: str,
    *,
    progress: Progress | None = None,
) -> RunSummary:
    """Run a failed or interrupted run again with the same inputs (definition version, as-of
    time), continuing where it stopped.

    Finished tasks are skipped; deliveries continue after their last delivered unit, and
    units in flight are settled with their destination. No row is sent twice.

    Raises:
        ConfigError: no such run, or it already finished without failing.
        RunClaimedError: a live process is executing it.
    """
    ws = load_workspace(root, definitions=False)
    with open_store(ws) as store:
        run = prepare_retry(store, run_id)
        _audit(store, "retry", run)
        return execute_run(ws, store, run, progress=progress)


def prepare_retry(store: MetadataStore, run_id: str) -> RunSummary:
    """Check that a run can be retried and record that it is; :func:`execute_run` next.

    Raises:
        ConfigError: no such run, or it already finished without failing.
    """
    run = _get_run(store, run_id)
    if run.status in ("succeeded", "warning", "canceled"):
        raise ConfigError(
            f"run {run_id} has already finished ({run.status}): nothing to retry",
            hint=f"`activator runs restart {run_id}` runs the current definition again"
            if run.status == "canceled"
            else None,
        )
    store.add_event(run.run_id, "retrying", fields={"previous_status": run.status})
    return run


resume_run = retry_run
"""The earlier name of :func:`retry_run` (``activator runs resume``)."""


def restart_run(
    root: Path,
    run_id: str,
    *,
    progress: Progress | None = None,
    say: Callable[[str], None] | None = None,
) -> RunSummary:
    """Run the activation of ``run_id`` again, as of the same time, with its current
    definition: a new run (trigger ``restart``) with a fresh ledger. An unfinished run nobody
    executes is canceled first, so it is not resumed as well.

    Raises:
        ConfigError: no such run, the activation is no longer applied or does not run, or
            a live process still executes the run (cancel it first).
    """
    ws = load_workspace(root, definitions=False)
    with open_store(ws) as store:
        run = queue_restart(store, run_id)
        _audit(store, "restart", run, restarts=run_id)
        if say is not None:
            say(
                f"run {run.run_id}: {run.kind} {run.name} v{run.definition_version} "
                f"(restarting {run_id})"
            )
        return execute_run(ws, store, run, progress=progress)


def queue_restart(store: MetadataStore, run_id: str) -> RunSummary:
    """Record the run that restarts ``run_id`` (its activation's current version, the same
    as-of time), canceling the original if nobody executes it; :func:`execute_run` next.

    Raises:
        ConfigError: no such run, the activation is no longer applied or does not run, or
            a live process still executes the run (cancel it first).
    """
    old = _get_run(store, run_id)
    stored = store.get(old.kind, old.name)
    if stored is None:
        raise ConfigError(f"{old.kind} {old.name!r} is no longer applied: nothing to restart")
    _check_runs(stored)
    if old.status in ("queued", "running"):
        _cancel_idle(store, old, because="restarted")
    return start_run(store, stored, as_of=old.as_of, trigger="restart", inputs={"restarts": run_id})


def cancel_run(root: Path, run_id: str) -> RunSummary:
    """Cancel a run. A run nobody executes (queued, interrupted) is canceled now; a running
    one is asked to stop after the unit in flight and shows ``canceling`` until it does;
    a group run cancels its unfinished members too.

    Raises:
        ConfigError: no such run, or it already finished.
    """
    ws = load_workspace(root, definitions=False)
    with open_store(ws) as store:
        canceled = cancel_stored_run(store, run_id)
        _audit(store, "cancel", canceled)
        return canceled


def _audit(store: MetadataStore, action: str, run: RunSummary, **detail: str) -> None:
    """Record a run command given on the command line in the audit log."""
    store.audit(
        actor=cli_actor(), action=action, kind=run.kind, name=run.name,
        detail={"run_id": run.run_id, **detail},
    )  # fmt: skip


def cancel_stored_run(store: MetadataStore, run_id: str) -> RunSummary:
    """:func:`cancel_run` on an open store."""
    run = _get_run(store, run_id)
    if run.status in FINISHED_RUN_STATUSES:
        raise ConfigError(f"run {run_id} has already finished ({run.status})")
    for member in store.member_runs(run_id):
        if member.status in ("queued", "running"):
            _cancel_one(store, member)
    return _cancel_one(store, run)


def _cancel_one(store: MetadataStore, run: RunSummary) -> RunSummary:
    try:
        return _cancel_idle(store, run, because="canceled on request")
    except RunClaimedError:
        # A live process executes it: it stops at its next checkpoint.
        requested = store.request_cancel(run.run_id)
        store.add_event(run.run_id, "cancel requested", level="warning")
        return requested


def _cancel_idle(store: MetadataStore, run: RunSummary, *, because: str) -> RunSummary:
    """Cancel a run no live process executes (a live one raises RunClaimedError)."""
    take_lease(store, run.run_id, owner_id())
    store.add_event(run.run_id, f"run {because}", level="warning")
    return store.finish_run(run.run_id, status="canceled", counts=run.counts, error=because)


def show_run(root: Path, run_id: str, *, events: int = 200, rejected: int = 20) -> RunDetail:
    """A run with its tasks, its latest events and a sample of rejected records."""
    ws = load_workspace(root, definitions=False)
    with open_store(ws) as store:
        return run_detail(store, run_id, events=events, rejected=rejected)


def run_detail(
    store: MetadataStore, run_id: str, *, events: int = 200, rejected: int = 20
) -> RunDetail:
    """:func:`show_run` on an open store."""
    run = _get_run(store, run_id)
    return RunDetail(
        run=run,
        tasks=store.tasks(run_id),
        events=store.events(run_id)[-events:],
        rejected=store.rejected_records(run_id=run_id, limit=rejected),
    )


def list_runs(root: Path, name: str, *, limit: int = 20) -> list[RunSummary]:
    """The latest runs of an activation, newest first."""
    ws = load_workspace(root, definitions=False)
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


def _get_run(store: MetadataStore, run_id: str) -> RunSummary:
    run = store.get_run(run_id)
    if run is None:
        raise ConfigError(f"no run {run_id}", hint="`activator runs list NAME` shows runs")
    return run


def _check_runs(stored: StoredDefinition) -> None:
    if stored.status in ("paused", "archived", "ended"):
        raise ConfigError(
            f"{stored.kind} {stored.name!r} is {stored.status}: it does not run",
            hint=f"`activator {stored.kind} resume {stored.name}` first"
            if stored.status == "paused"
            else "an ended journey moves no one any more"
            if stored.status == "ended"
            else "apply it with `status: active` to bring it back",
        )


def execute_run(
    ws: Workspace,
    store: MetadataStore,
    run: RunSummary,
    *,
    progress: Progress | None = None,
    retry_rejected: bool | None = None,
    stop: threading.Event | None = None,
    engine_wait: float = 0.0,
) -> RunSummary:
    """Execute (or continue) a recorded run with the version it records, then send the
    alerts that cover how it ended.

    ``engine_wait`` is how long to wait for an embedded engine another process is writing
    to (the scheduler waits; a command says at once who holds it).

    A failure before the executor takes over (the definition no longer validates, a
    destination is missing, the engine cannot be opened) is recorded on the run, which
    ends ``failed``, and raised.
    """
    versions = {v.version: v for v in store.versions(run.kind, run.name)}
    stored = versions.get(run.definition_version)
    try:
        if stored is None:
            raise ConfigError(
                f"{run.kind} {run.name!r} has no version {run.definition_version} any more"
            )
        if retry_rejected is None:
            retry_rejected = any(t.task.startswith("retry:") for t in store.tasks(run.run_id))
        if run.kind == "group":
            group = OrchestrationGroupDefinition.model_validate(stored.spec)
            summary = _execute_group(
                ws, store, run, group, progress=progress, stop=stop, engine_wait=engine_wait
            )
        else:
            summary = _execute(
                ws,
                store,
                run,
                stored,
                progress,
                retry_rejected=retry_rejected,
                stop=stop,
                engine_wait=engine_wait,
            )
    except ValidationError as exc:
        _fail_unfinished(store, run.run_id, f"the stored definition is no longer valid: {exc}")
        raise ConfigError(
            f"{run.kind} {run.name!r} v{run.definition_version} is no longer valid",
            hint="apply a corrected definition, then `activator runs restart RUN`",
        ) from None
    except ActivatorError as exc:
        _fail_unfinished(store, run.run_id, str(exc), kind=_attribution_of(exc))
        raise
    if summary.status in FINISHED_RUN_STATUSES:
        send_alerts(ws, store, summary, now=wall_clock())
    return summary


def _fail_unfinished(
    store: MetadataStore, run_id: str, error: str, *, kind: str = "configuration"
) -> None:
    current = store.get_run(run_id)
    if current is None or current.status in FINISHED_RUN_STATUSES:
        return
    store.add_event(run_id, error, level="error")
    store.finish_run(run_id, status="failed", error=error, error_kind=kind)


def _attribution_of(exc: ActivatorError) -> str:
    attribution = getattr(exc, "attribution", None)
    if isinstance(attribution, str):
        return attribution
    return "configuration" if exc.bad_input else "platform"


def _execute_group(
    ws: Workspace,
    store: MetadataStore,
    run: RunSummary,
    group: OrchestrationGroupDefinition,
    *,
    progress: Progress | None,
    stop: threading.Event | None,
    engine_wait: float,
) -> RunSummary:
    """Run each member orchestration as a run of its own (``parent_run_id`` = the group's),
    in order, each even when a sibling failed; the group's run fails naming the members that
    failed. A retried group continues its members' runs (succeeded ones are kept)."""
    owner = owner_id()
    store.claim_run(run.run_id, owner, LEASE_TTL)
    canceled = threading.Event()
    members: dict[str, dict[str, Any]] = {}
    earlier = {m.name: m for m in store.member_runs(run.run_id)}
    with heartbeat(store, run.run_id, owner, canceled):
        for name in group.orchestrations:
            if canceled.is_set() or (stop is not None and stop.is_set()):
                break
            member = earlier.get(name)
            try:
                if member is None:
                    stored = store.get("orchestration", name)
                    if stored is None:
                        raise ConfigError(f"orchestration {name!r} is not applied")
                    _check_runs(stored)
                    member = start_run(
                        store,
                        stored,
                        as_of=run.as_of,
                        trigger="group",
                        parent_run_id=run.run_id,
                    )
                if member.status not in ("succeeded", "warning"):
                    member = execute_run(
                        ws, store, member, progress=progress, stop=stop, engine_wait=engine_wait
                    )
            except ActivatorError as exc:
                members[name] = {"status": "failed", "error": exc.message}
                if member is not None:
                    members[name]["run_id"] = member.run_id
                continue
            members[name] = {
                "run_id": member.run_id,
                "status": member.status,
                "rows": int(member.counts.get("rows", 0)),
                **({"error": member.error} if member.error else {}),
            }
    counts = {"members": members, "rows": sum(int(m.get("rows", 0)) for m in members.values())}
    if canceled.is_set():
        return store.finish_run(
            run.run_id, status="canceled", counts=counts, error="canceled on request"
        )
    if stop is not None and stop.is_set() and len(members) < len(group.orchestrations):
        return store.requeue_run(
            run.run_id, owner, "stopped by SIGTERM: the group resumes with its next member"
        )
    failed = [name for name, m in members.items() if m["status"] in ("failed", "canceled")]
    unfinished = [name for name, m in members.items() if m["status"] in ("queued", "running")]
    if unfinished:
        return store.requeue_run(
            run.run_id, owner, f"members {', '.join(unfinished)} were interrupted"
        )
    if failed:
        reasons = "; ".join(f"{name}: {members[name].get('error', 'failed')}" for name in failed)
        kinds = {
            store.get_run(members[n]["run_id"]).error_kind  # type: ignore[union-attr]
            if "run_id" in members[n]
            else "configuration"
            for n in failed
        }
        return store.finish_run(
            run.run_id,
            status="failed",
            counts=counts,
            error=f"{len(failed)} of {len(members)} failed: {reasons}",
            error_kind="platform" if kinds == {"platform"} else "configuration",
        )
    status = "warning" if any(m["status"] == "warning" for m in members.values()) else "succeeded"
    return store.finish_run(run.run_id, status=status, counts=counts)


def _execute(
    ws: Workspace,
    store: MetadataStore,
    run: RunSummary,
    stored: StoredDefinition,
    progress: Progress | None,
    *,
    retry_rejected: bool = False,
    stop: threading.Event | None = None,
    engine_wait: float = 0.0,
) -> RunSummary:
    with _engine_when_free(ws, engine_wait, stop) as engine:
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
            skipped = finish_if_unchanged(ws, store, engine, run, orchestration)
            if skipped is not None:
                return skipped
            plan = orchestration_run_plan(ws, store, engine, run, orchestration, retry_rejected)
        executor = RunExecutor(
            store,
            engine,
            workspace_root=ws.root,
            timezone=ws.config.timezone,
            progress=progress,
            stop=stop,
        )
        return executor.execute(run, plan)


def _engine_when_free(ws: Workspace, wait: float, stop: threading.Event | None) -> Engine:
    """The workspace's engine for writing, waiting up to ``wait`` seconds while another
    process holds the embedded engine's writer lock."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return workspace_engine(ws)
        except EngineLockedError:
            if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                raise
            time.sleep(0.5)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()

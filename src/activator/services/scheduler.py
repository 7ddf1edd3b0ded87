"""The scheduler: runs every campaign, journey, orchestration and group when it is due.

A **tick** at time ``now`` (see ``docs/operations.md``):

1. resumes interrupted runs (queued or running, with no live process: a crash, a SIGTERM),
   through the ledger, so no batch is sent twice;
2. for every active activation with a schedule, finds the slots between what was last
   considered (``schedule_state.checked_until``) and ``now``, and applies the catch-up policy
   (``latest``: one run for the latest missed slot; ``all``: each in order; ``none``: only a
   slot within the grace period);
3. runs them, oldest slot first and upstream before downstream; each run is created with its
   slot as a unique key, so a slot another scheduler took is skipped, never run twice;
4. runs the orchestrations (and groups) waiting ``after`` others, once all their upstreams
   succeeded since they last ran (repeating while new successes appear);
5. records the slots as considered, and sends ``long_running`` alerts.

A definition that cannot be read or run fails on its own: the others keep their schedules.
"""

from __future__ import annotations

__all__ = ["Scheduler", "TickReport"]

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from activator.clock import wall_clock
from activator.definitions.common import Schedule
from activator.errors import ActivatorError
from activator.runtime.ledger import LEASE_TTL
from activator.runtime.runner import dead_here, owner_id
from activator.runtime.schedule import slots
from activator.services.alerts import alert_long_running
from activator.services.run import RUNNABLE, execute_run, start_run
from activator.services.workspace import open_store
from activator.store import MetadataStore, RunSlotTakenError, RunSummary, StoredDefinition
from activator.workspace.loader import Workspace, load_workspace

log = logging.getLogger(__name__)

_SCHEDULE: TypeAdapter[Any] = TypeAdapter(Schedule | None)

CatchUp = Literal["latest", "all", "none"]


@dataclass
class TickReport:
    """What one tick did."""

    now: datetime
    runs: list[RunSummary] = field(default_factory=list)
    """Runs started by this tick (schedule or ``after``), as they ended."""
    resumed: list[RunSummary] = field(default_factory=list)
    """Interrupted runs continued, as they ended."""
    taken: list[tuple[str, str, datetime, str]] = field(default_factory=list)
    """(kind, name, slot, run id) of slots another scheduler had already started."""
    skipped: list[tuple[str, str, int]] = field(default_factory=list)
    """(kind, name, slots) passed over by the catch-up policy."""
    errors: list[tuple[str, str, str]] = field(default_factory=list)
    """(kind, name, message) of activations that could not be scheduled or run."""
    stopped: bool = False
    """A stop (SIGTERM) came during the tick."""

    def to_json(self) -> dict[str, Any]:
        """The report as JSON (``activator scheduler --json``)."""
        from activator.services.run import run_json

        return {
            "now": self.now.isoformat(),
            "runs": [run_json(r) | {"scheduled_for": _iso(r.scheduled_for)} for r in self.runs],
            "resumed": [run_json(r) for r in self.resumed],
            "taken": [
                {"kind": k, "name": n, "slot": s.isoformat(), "run_id": r}
                for k, n, s, r in self.taken
            ],
            "skipped": [{"kind": k, "name": n, "slots": c} for k, n, c in self.skipped],
            "errors": [{"kind": k, "name": n, "error": m} for k, n, m in self.errors],
            "stopped": self.stopped,
        }


@dataclass(frozen=True)
class _Due:
    stored: StoredDefinition
    slot: datetime
    trigger: str
    as_of: datetime
    inputs: dict[str, Any]


class Scheduler:
    """Runs what is due in one workspace.

    Args:
        root: The workspace folder (only ``activator.yaml`` is read: activations come from
            the metadata store, so a broken file never stops the schedules).
        stop: Set to stop: the run in flight stops at its next checkpoint and goes back to
            the queue; the tick ends.
        catch_up: Overrides ``scheduler.catch_up`` of ``activator.yaml``.
        say: Told about each run started and how it ended.
    """

    def __init__(
        self,
        root: Path,
        *,
        stop: threading.Event | None = None,
        catch_up: CatchUp | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.root = root
        self.stop = stop or threading.Event()
        self.catch_up = catch_up
        self.say = say or (lambda _: None)
        self.owner = owner_id()
        # (kind, name, content hash) → (computed at, next slot after it): a tick skips an
        # activation whose next slot is still ahead without asking croniter again.
        self._upcoming: dict[tuple[str, str, str], tuple[datetime, datetime | None]] = {}

    def tick(self, now: datetime) -> TickReport:
        """Run everything due at ``now`` (aware); see the module doc."""
        ws = load_workspace(self.root, definitions=False)
        report = TickReport(now=now)
        with open_store(ws) as store:
            self._resume_interrupted(ws, store, report)
            activations = [d for d in store.current() if d.kind in RUNNABLE]
            states = store.schedule_states()
            unseen = [(d.kind, d.name) for d in activations if (d.kind, d.name) not in states]
            store.start_schedules(unseen, now)
            states = store.schedule_states() if unseen else states
            due = self._due(ws, store, activations, states, now, report)
            for item in _in_order(due, activations):
                if self.stop.is_set():
                    report.stopped = True
                    break
                self._run(ws, store, item, report)
            if not self.stop.is_set():
                self._run_dependants(ws, store, activations, states, report)
            if not report.stopped:
                considered = [(d.kind, d.name) for d in activations]
                store.advance_schedules(considered, now)
            alert_long_running(ws, store, now=wall_clock())
        report.stopped = report.stopped or self.stop.is_set()
        return report

    def serve(
        self,
        *,
        interval: float,
        clock: Callable[[], datetime] = wall_clock,
        on_tick: Callable[[TickReport], None] | None = None,
    ) -> None:
        """Tick every ``interval`` seconds until ``stop`` is set; a failing tick (the store
        unreachable for a while) is reported and the next one tried."""
        while not self.stop.is_set():
            try:
                report = self.tick(clock())
            except ActivatorError as exc:
                self.say(f"[red]tick failed:[/] {exc}")
            else:
                if on_tick is not None:
                    on_tick(report)
            self.stop.wait(interval)

    # -- what is due --------------------------------------------------------------------------

    def _due(
        self,
        ws: Workspace,
        store: MetadataStore,
        activations: list[StoredDefinition],
        states: dict[tuple[str, str], tuple[datetime, datetime]],
        now: datetime,
        report: TickReport,
    ) -> list[_Due]:
        policy = self.catch_up or ws.config.scheduler.catch_up
        limit = ws.config.scheduler.max_catch_up
        grace = timedelta(minutes=ws.config.scheduler.grace_minutes)
        due: list[_Due] = []
        for stored in activations:
            if stored.status != "active":
                continue
            key = (stored.kind, stored.name, stored.content_hash)
            try:
                since = states[(stored.kind, stored.name)][1]
                known = self._upcoming.get(key)
                if known and known[0] <= since and (known[1] is None or known[1] > now):
                    continue  # no slot between when that was computed and now
                schedule = _SCHEDULE.validate_python(stored.spec.get("schedule"))
                # At most one more than can run: enough to know slots were passed over.
                missed = list(
                    itertools.islice(
                        slots(schedule, after=since, until=now, timezone=ws.config.timezone),
                        10_000,
                    )
                )
                upcoming = next(slots(schedule, after=now, timezone=ws.config.timezone), None)
                self._upcoming[key] = (now, upcoming)
            except (ValidationError, ValueError, KeyError) as exc:
                report.errors.append((stored.kind, stored.name, f"schedule: {exc}"))
                continue
            if not missed:
                continue
            limit_runs = getattr(schedule, "max_runs", None)
            if limit_runs is not None and self._succeeded(store, stored, limit_runs) >= limit_runs:
                continue  # the schedule has ended: it ran max_runs times
            if policy == "all":
                chosen = missed[-limit:]
            elif policy == "latest":
                chosen = missed[-1:]
            else:
                chosen = [s for s in missed[-1:] if now - s <= grace]
            if len(chosen) < len(missed):
                report.skipped.append((stored.kind, stored.name, len(missed) - len(chosen)))
            for slot in chosen:
                inputs: dict[str, Any] = {}
                if policy == "latest" and len(missed) > 1:
                    inputs = {
                        "missed_slots": len(missed) - 1,
                        "first_missed": missed[0].isoformat(),
                    }
                due.append(_Due(stored, slot, "schedule", slot, inputs))
        return due

    @staticmethod
    def _succeeded(store: MetadataStore, stored: StoredDefinition, limit: int) -> int:
        runs = store.list_runs(stored.kind, stored.name, limit=limit * 4, include_tests=False)
        return sum(r.status in ("succeeded", "warning") for r in runs)

    def _run_dependants(
        self,
        ws: Workspace,
        store: MetadataStore,
        activations: list[StoredDefinition],
        states: dict[tuple[str, str], tuple[datetime, datetime]],
        report: TickReport,
    ) -> None:
        """Run what waits ``after`` others, until no new success appears."""
        by_name = {d.name: d for d in activations if d.kind in ("orchestration", "group")}
        waiting = [
            d
            for d in activations
            if d.status == "active" and d.kind == "orchestration" and d.spec.get("after")
        ]
        for _ in range(len(waiting) + 1):
            ready: list[_Due] = []
            for stored in waiting:
                item = self._after_due(store, stored, by_name, states)
                if item is not None:
                    ready.append(item)
            if not ready:
                return
            for item in _in_order(ready, activations):
                if self.stop.is_set():
                    report.stopped = True
                    return
                self._run(ws, store, item, report)

    def _after_due(
        self,
        store: MetadataStore,
        stored: StoredDefinition,
        by_name: dict[str, StoredDefinition],
        states: dict[tuple[str, str], tuple[datetime, datetime]],
    ) -> _Due | None:
        """A run of ``stored`` when each of its upstreams has succeeded since the upstream
        runs that triggered it last (and since the scheduler first saw it)."""
        first_seen = states.get((stored.kind, stored.name), (None, None))[0]
        latest: dict[str, RunSummary] = {}
        for name in stored.spec.get("after", []):
            upstream = by_name.get(name)
            success = None if upstream is None else store.last_success(upstream.kind, name)
            if success is None or success.finished_at is None:
                return None
            if first_seen is not None and success.finished_at <= first_seen:
                return None
            latest[name] = success
        previous = store.last_triggered(stored.kind, stored.name, "after")
        used = previous.inputs.get("after", {}) if previous is not None else {}
        if any(used.get(name) == run.run_id for name, run in latest.items()):
            return None
        # The key of this trigger: the newest upstream success (unique per set of runs).
        slot = max(run.finished_at for run in latest.values() if run.finished_at is not None)
        as_of = max(run.as_of for run in latest.values())
        inputs = {"after": {name: run.run_id for name, run in latest.items()}}
        return _Due(stored, slot, "after", as_of, inputs)

    # -- running -----------------------------------------------------------------------------

    def _run(self, ws: Workspace, store: MetadataStore, item: _Due, report: TickReport) -> None:
        stored = item.stored
        try:
            run = start_run(
                store,
                stored,
                as_of=item.as_of,
                trigger=item.trigger,
                scheduled_for=item.slot,
                inputs=item.inputs,
            )
        except RunSlotTakenError as exc:
            report.taken.append((stored.kind, stored.name, item.slot, exc.existing_run_id))
            return
        except ActivatorError as exc:
            report.errors.append((stored.kind, stored.name, str(exc)))
            return
        self.say(
            f"run {run.run_id}: {stored.kind} {stored.name} v{stored.version} "
            f"({item.trigger} {item.slot.isoformat()})"
        )
        report.runs.append(self._execute(ws, store, run, report))

    def _resume_interrupted(self, ws: Workspace, store: MetadataStore, report: TickReport) -> None:
        while not self.stop.is_set():
            run_id = store.claim_resumable(self.owner, LEASE_TTL, is_dead=dead_here)
            if run_id is None:
                return
            run = store.get_run(run_id)
            if run is None:  # pragma: no cover - deleted between the two reads
                continue
            self.say(f"resuming run {run.run_id}: {run.kind} {run.name} (interrupted)")
            store.add_event(run.run_id, "resumed by the scheduler", fields={"owner": self.owner})
            ended = self._execute(ws, store, run, report)
            report.resumed.append(ended)
            if ended.status in ("queued", "running"):
                return  # stopped again (SIGTERM): leave the rest for the next scheduler

    def _execute(
        self, ws: Workspace, store: MetadataStore, run: RunSummary, report: TickReport
    ) -> RunSummary:
        """Execute a run; whatever goes wrong stays with this run."""
        try:
            ended = execute_run(
                ws, store, run, stop=self.stop, engine_wait=ws.config.scheduler.engine_wait_seconds
            )
        except ActivatorError as exc:
            report.errors.append((run.kind, run.name, str(exc)))
            ended = store.get_run(run.run_id) or run
        except Exception as exc:  # a bug must not stop the other activations
            log.exception("run %s of %s %s crashed", run.run_id, run.kind, run.name)
            message = f"internal error: {type(exc).__name__}: {exc}"
            report.errors.append((run.kind, run.name, message))
            current = store.get_run(run.run_id)
            if current is not None and current.status in ("queued", "running"):
                store.add_event(run.run_id, message, level="error")
                ended = store.finish_run(
                    run.run_id, status="failed", error=message, error_kind="platform"
                )
            else:
                ended = current or run
        self.say(f"run {ended.run_id}: {ended.shown_status}" + _why(ended))
        return ended


def _why(run: RunSummary) -> str:
    return f" ({run.error_kind}: {run.error})" if run.error else ""


def _in_order(due: list[_Due], activations: list[StoredDefinition]) -> list[_Due]:
    """Oldest slot first; within a slot, an upstream (``after``, a group's member) before
    what depends on it; then by kind and name, so the order is the same every time."""
    depth: dict[str, int] = {}

    def level(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name in depth:
            return depth[name]
        found = next((d for d in activations if d.name == name), None)
        ups = [] if found is None else list(found.spec.get("after", []))
        value = 0 if not ups or name in seen else 1 + max(level(u, seen | {name}) for u in ups)
        depth[name] = value
        return value

    return sorted(due, key=lambda d: (d.slot, level(d.stored.name), d.stored.kind, d.stored.name))


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()

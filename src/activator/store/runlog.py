"""What a run leaves in the metadata store while it works: tasks, ledger units, rejected
records, events, and the lease that says who is executing it.

Mixed into :class:`activator.store.store.MetadataStore`; the runtime's ledger is written on
these methods. Every call is its own short transaction: a ``kill -9`` loses at most the call
in flight, which the delivery protocol settles on resume.
"""

from __future__ import annotations

__all__ = [
    "EventRecord",
    "LedgerEntry",
    "RejectedRecord",
    "RunClaimedError",
    "RunLogMixin",
    "TaskSummary",
]

import functools
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from activator.errors import StoreError
from activator.store.models import (
    LedgerUnitRow,
    RejectedRecordRow,
    RunEventRow,
    RunRow,
    RunTaskRow,
    ScheduleStateRow,
)

TASK_STATUSES = ("queued", "running", "succeeded", "warning", "failed", "canceled")


class RunClaimedError(StoreError):
    """Another process holds the run's lease: it is (or was very recently) executing it."""

    bad_input = False


@dataclass(frozen=True)
class TaskSummary:
    """One task of a run as recorded."""

    task: str
    position: int
    destination: str | None
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, Any]
    detail: dict[str, Any]
    error: str | None
    error_kind: str | None


@dataclass(frozen=True)
class LedgerEntry:
    """One ledger unit as recorded (see ``activator.destinations.base.Unit``)."""

    idx: int
    unit_id: str
    state: str
    first_row: int
    end_row: int
    rows: int
    rejected: int
    detail: dict[str, Any]


@dataclass(frozen=True)
class RejectedRecord:
    """A refused record and why."""

    id: int
    run_id: str
    task: str
    unit_id: str
    destination: str
    record: dict[str, Any]
    reason: str
    retried_run_id: str | None


@dataclass(frozen=True)
class EventRecord:
    """One line of a run's event log."""

    id: int
    at: datetime
    level: str
    task: str | None
    message: str
    fields: dict[str, Any]


class RunLogMixin:
    """Run tasks, the ledger, rejected records, events and leases (see the module doc)."""

    _clock: Callable[[], datetime]
    _reads: sessionmaker[Session]
    _writes: sessionmaker[Session]
    _write_engine: Engine

    def _guard(self, action: str) -> AbstractContextManager[None]:
        raise NotImplementedError

    # -- leases ------------------------------------------------------------------------------

    def claim_run(
        self, run_id: str, owner: str, ttl: timedelta, *, steal_from: str | None = None
    ) -> None:
        """Take the run's lease and mark it running (starting it if queued).

        A run can be claimed when it is queued, or running or failed with no live lease
        (its owner crashed, or it failed and is resumed). ``steal_from`` takes a live lease
        from that owner, for a caller that knows it is dead (a vanished process of this host).

        Raises:
            RunClaimedError: another owner's lease has not lapsed.
            StoreError: no such run, or it already succeeded or was canceled.
        """
        now = self._clock()
        with self._guard("claiming a run"), self._writes() as session, session.begin():
            row = session.get(RunRow, run_id, with_for_update=True)
            if row is None:
                raise StoreError(f"no run {run_id} in the metadata store")
            if row.status in ("succeeded", "warning", "canceled"):
                raise StoreError(f"run {run_id} has already finished ({row.status})")
            live = row.lease_expires is not None and row.lease_expires > now
            if live and row.lease_owner not in (owner, steal_from):
                raise RunClaimedError(
                    f"run {run_id} is being executed by {row.lease_owner} "
                    f"(lease until {row.lease_expires.isoformat() if row.lease_expires else '?'})",
                    hint="wait for it to finish, or for the lease to lapse if that process died",
                )
            row.lease_owner = owner
            row.lease_expires = now + ttl
            row.status = "running"
            row.started_at = row.started_at or now
            row.finished_at = None
            row.error = None
            row.error_kind = None

    def claim_resumable(
        self, owner: str, ttl: timedelta, *, is_dead: Callable[[str], bool]
    ) -> str | None:
        """Take the lease of one interrupted run, oldest first, and return its id.

        Interrupted runs are queued or running runs, not members of a group (their group
        resumes them), whose lease is free, lapsed, or held by an owner ``is_dead`` says is
        gone. On PostgreSQL the candidates are read ``FOR UPDATE SKIP LOCKED``: two schedulers
        looking at once take different runs instead of waiting on each other.
        """
        now = self._clock()
        query = (
            select(RunRow)
            .where(
                RunRow.status.in_(("queued", "running")),
                RunRow.parent_run_id.is_(None),
                RunRow.is_test.is_(False),
            )
            .order_by(RunRow.created_at, RunRow.run_id)
            .limit(50)
            .with_for_update(skip_locked=True)
        )
        with (
            self._guard("claiming an interrupted run"),
            self._writes() as session,
            session.begin(),
        ):
            for row in session.scalars(query):
                live = row.lease_expires is not None and row.lease_expires > now
                if live and (row.lease_owner is None or not is_dead(row.lease_owner)):
                    continue
                row.lease_owner = owner
                row.lease_expires = now + ttl
                return row.run_id
        return None

    # -- the scheduler's state ---------------------------------------------------------------

    def schedule_states(self) -> dict[tuple[str, str], tuple[datetime, datetime]]:
        """(kind, name) → (first seen, checked until) for every activation the scheduler saw."""
        with self._guard("reading the schedule state"), self._reads() as session:
            return {
                (row.kind, row.name): (row.first_seen, row.checked_until)
                for row in session.scalars(select(ScheduleStateRow))
            }

    def start_schedules(self, keys: Sequence[tuple[str, str]], at: datetime) -> None:
        """Record activations the scheduler sees for the first time, as checked until ``at``
        (an activation does not catch up on slots from before it was scheduled)."""
        if not keys:
            return
        rows = [
            {"kind": kind, "name": name, "first_seen": self._clock(), "checked_until": at}
            for kind, name in keys
        ]
        with (
            self._guard("recording the schedule state"),
            self._writes() as session,
            session.begin(),
        ):
            dialect = session.get_bind().dialect.name
            insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
            session.execute(
                insert(ScheduleStateRow).on_conflict_do_nothing(index_elements=["kind", "name"]),
                rows,
            )

    def advance_schedules(self, keys: Sequence[tuple[str, str]], until: datetime) -> None:
        """Mark the slots of these activations up to ``until`` as considered (never moves a
        state backwards: two schedulers may report different times)."""
        if not keys:
            return
        with (
            self._guard("recording the schedule state"),
            self._writes() as session,
            session.begin(),
        ):
            # One statement per chunk, not one per activation (that was half an idle tick
            # with 1,000 activations); chunks stay under SQLite's bound-parameter limit.
            for start in range(0, len(keys), 400):
                session.execute(
                    update(ScheduleStateRow)
                    .where(
                        tuple_(ScheduleStateRow.kind, ScheduleStateRow.name).in_(
                            list(keys[start : start + 400])
                        ),
                        ScheduleStateRow.checked_until < until,
                    )
                    .values(checked_until=until)
                    .execution_options(synchronize_session=False)
                )

    def renew_lease(self, run_id: str, owner: str, ttl: timedelta) -> None:
        """Extend the lease; raises RunClaimedError when someone else took it."""
        now = self._clock()
        with self._guard("renewing a run lease"), self._writes() as session, session.begin():
            done = session.execute(
                update(RunRow)
                .where(RunRow.run_id == run_id, RunRow.lease_owner == owner)
                .values(lease_expires=now + ttl)
            )
            if getattr(done, "rowcount", 1) == 0:
                raise RunClaimedError(f"run {run_id}: the lease was lost to another process")

    def release_run(self, run_id: str, owner: str) -> None:
        """Drop the lease (the run ended, or this process stops working on it)."""
        with self._guard("releasing a run lease"), self._writes() as session, session.begin():
            session.execute(
                update(RunRow)
                .where(RunRow.run_id == run_id, RunRow.lease_owner == owner)
                .values(lease_owner=None, lease_expires=None)
            )

    # -- tasks -------------------------------------------------------------------------------

    def ensure_task(
        self, run_id: str, task: str, *, position: int, destination: str | None = None
    ) -> TaskSummary:
        """The task's record, created queued when missing."""
        with self._guard("recording a task"), self._writes() as session, session.begin():
            row = session.get(RunTaskRow, (run_id, task))
            if row is None:
                row = RunTaskRow(
                    run_id=run_id,
                    task=task,
                    position=position,
                    destination=destination,
                    status="queued",
                    counts={},
                    detail={},
                )
                session.add(row)
                session.flush()
            return _task(row)

    def update_task(
        self,
        run_id: str,
        task: str,
        *,
        status: str,
        counts: Mapping[str, Any] | None = None,
        detail: Mapping[str, Any] | None = None,
        error: str | None = None,
        error_kind: str | None = None,
    ) -> None:
        """Record a task's progress or end (timestamps follow the status)."""
        if status not in TASK_STATUSES:
            raise StoreError(f"task {task}: unknown status {status!r}")
        now = self._clock()
        with self._guard("recording a task"), self._writes() as session, session.begin():
            row = session.get(RunTaskRow, (run_id, task))
            if row is None:
                raise StoreError(f"run {run_id} has no task {task!r}")
            row.status = status
            if status == "running":
                row.started_at = row.started_at or now
                row.finished_at = None
            elif status != "queued":
                row.finished_at = now
            if counts is not None:
                row.counts = dict(counts)
            if detail is not None:
                row.detail = dict(detail)
            row.error = error
            row.error_kind = error_kind

    def tasks(self, run_id: str) -> list[TaskSummary]:
        """A run's tasks in order."""
        query = select(RunTaskRow).where(RunTaskRow.run_id == run_id)
        with self._guard("reading tasks"), self._reads() as session:
            rows = session.scalars(query.order_by(RunTaskRow.position, RunTaskRow.task))
            return [_task(row) for row in rows]

    # -- the ledger --------------------------------------------------------------------------

    def ledger(self, run_id: str, task: str) -> list[LedgerEntry]:
        """The task's units in index order."""
        query = select(LedgerUnitRow).where(
            LedgerUnitRow.run_id == run_id, LedgerUnitRow.task == task
        )
        with self._guard("reading the ledger"), self._reads() as session:
            return [_entry(row) for row in session.scalars(query.order_by(LedgerUnitRow.idx))]

    def record_unit(self, run_id: str, task: str, entry: LedgerEntry) -> None:
        """Write a unit's state (insert or replace)."""
        self.record_units(run_id, task, [entry])

    def record_units(self, run_id: str, task: str, entries: Sequence[LedgerEntry]) -> None:
        """Write units' states in one transaction, in order (insert or replace).

        One cached Core ``INSERT ... ON CONFLICT DO UPDATE`` (SQLite and PostgreSQL both have
        it): the ledger writes about twice per unit, and an ORM read-modify-write cost
        ~1.6 ms a time.
        """
        now = self._clock()
        values = [
            {
                "run_id": run_id,
                "task": task,
                "idx": entry.idx,
                "unit_id": entry.unit_id,
                "state": entry.state,
                "first_row": entry.first_row,
                "end_row": entry.end_row,
                "rows": entry.rows,
                "rejected": entry.rejected,
                "detail": dict(entry.detail),
                "updated_at": now,
            }
            for entry in entries
        ]
        statement = _upsert_unit(self._write_engine.dialect.name)
        with self._guard("writing the ledger"), self._write_engine.begin() as connection:
            for row in values:  # in order: a unit may appear twice (sending, then delivered)
                connection.execute(statement, row)

    def forget_unit(self, run_id: str, task: str, idx: int) -> None:
        """Remove a *sending* unit that never reached the destination."""
        with self._guard("writing the ledger"), self._writes() as session, session.begin():
            session.execute(
                delete(LedgerUnitRow).where(
                    LedgerUnitRow.run_id == run_id,
                    LedgerUnitRow.task == task,
                    LedgerUnitRow.idx == idx,
                    LedgerUnitRow.state == "sending",
                )
            )

    # -- rejected records --------------------------------------------------------------------

    def add_rejected(
        self,
        run_id: str,
        task: str,
        unit_id: str,
        *,
        activation_kind: str,
        activation: str,
        destination: str,
        records: Sequence[Mapping[str, Any]],
        reasons: Sequence[str],
    ) -> None:
        """Keep refused records with their reasons (replacing those of the same unit, so a
        resumed unit does not record them twice)."""
        now = self._clock()
        rows = [
            RejectedRecordRow(
                run_id=run_id,
                task=task,
                unit_id=unit_id,
                activation_kind=activation_kind,
                activation=activation,
                destination=destination,
                record=dict(record),
                reason=reason,
                created_at=now,
            )
            for record, reason in zip(records, reasons, strict=True)
        ]
        stale = delete(RejectedRecordRow).where(
            RejectedRecordRow.run_id == run_id, RejectedRecordRow.unit_id == unit_id
        )
        with self._guard("recording rejected records"), self._writes() as session, session.begin():
            session.execute(stale)
            session.add_all(rows)

    def rejected_records(
        self,
        *,
        run_id: str | None = None,
        activation: tuple[str, str, str] | None = None,
        pending_only: bool = False,
        ids: Sequence[int] | None = None,
        limit: int | None = None,
    ) -> list[RejectedRecord]:
        """Rejected records of a run, of an (activation kind, name, destination), or by id."""
        query = select(RejectedRecordRow)
        if ids is not None:
            query = query.where(RejectedRecordRow.id.in_(list(ids)))
        if run_id is not None:
            query = query.where(RejectedRecordRow.run_id == run_id)
        if activation is not None:
            kind, name, destination = activation
            query = query.where(
                RejectedRecordRow.activation_kind == kind,
                RejectedRecordRow.activation == name,
                RejectedRecordRow.destination == destination,
            )
        if pending_only:
            query = query.where(RejectedRecordRow.retried_run_id.is_(None))
        query = query.order_by(RejectedRecordRow.id)
        if limit is not None:
            query = query.limit(limit)
        with self._guard("reading rejected records"), self._reads() as session:
            return [_rejected(row) for row in session.scalars(query)]

    def mark_retried(self, ids: Sequence[int], run_id: str) -> None:
        """Record that a later run resent these rejected records."""
        with self._guard("recording retries"), self._writes() as session, session.begin():
            session.execute(
                update(RejectedRecordRow)
                .where(RejectedRecordRow.id.in_(list(ids)))
                .values(retried_run_id=run_id)
            )

    # -- events ------------------------------------------------------------------------------

    def add_event(
        self,
        run_id: str,
        message: str,
        *,
        level: str = "info",
        task: str | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        """Append a line to the run's event log."""
        with self._guard("recording an event"), self._writes() as session, session.begin():
            session.add(
                RunEventRow(
                    run_id=run_id,
                    at=self._clock(),
                    level=level,
                    task=task,
                    message=message,
                    fields=dict(fields or {}),
                )
            )

    def events(self, run_id: str, *, after: int = 0) -> list[EventRecord]:
        """The run's events with an id greater than ``after``, in order."""
        query = (
            select(RunEventRow)
            .where(RunEventRow.run_id == run_id, RunEventRow.id > after)
            .order_by(RunEventRow.id)
        )
        with self._guard("reading events"), self._reads() as session:
            return [_event(row) for row in session.scalars(query)]


@functools.cache
def _upsert_unit(dialect: str) -> Any:
    """The ledger's upsert for a dialect, built once: parameters come at execution, so
    SQLAlchemy compiles it once too."""
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(LedgerUnitRow)
    keys = ("run_id", "task", "idx")
    return statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={
            column.name: statement.excluded[column.name]
            for column in LedgerUnitRow.__table__.columns
            if column.name not in keys
        },
    )


def _task(row: RunTaskRow) -> TaskSummary:
    return TaskSummary(
        task=row.task,
        position=row.position,
        destination=row.destination,
        status=row.status,
        started_at=row.started_at,
        finished_at=row.finished_at,
        counts=dict(row.counts),
        detail=dict(row.detail),
        error=row.error,
        error_kind=row.error_kind,
    )


def _entry(row: LedgerUnitRow) -> LedgerEntry:
    return LedgerEntry(
        idx=row.idx,
        unit_id=row.unit_id,
        state=row.state,
        first_row=row.first_row,
        end_row=row.end_row,
        rows=row.rows,
        rejected=row.rejected,
        detail=dict(row.detail),
    )


def _rejected(row: RejectedRecordRow) -> RejectedRecord:
    return RejectedRecord(
        id=row.id,
        run_id=row.run_id,
        task=row.task,
        unit_id=row.unit_id,
        destination=row.destination,
        record=dict(row.record),
        reason=row.reason,
        retried_run_id=row.retried_run_id,
    )


def _event(row: RunEventRow) -> EventRecord:
    return EventRecord(
        id=row.id,
        at=row.at,
        level=row.level,
        task=row.task,
        message=row.message,
        fields=dict(row.fields),
    )

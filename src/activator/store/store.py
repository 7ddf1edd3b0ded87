"""The metadata store: definitions with their versions, and run history.

SQLite by default (a file in the workspace, WAL mode), PostgreSQL in production. The schema is
migrated to the newest revision when the store is opened.
"""

from __future__ import annotations

__all__ = [
    "DEFINITION_KINDS",
    "ERROR_KINDS",
    "FINISHED_RUN_STATUSES",
    "RUN_STATUSES",
    "ApplyResult",
    "DefinitionConflictError",
    "DefinitionInput",
    "MetadataStore",
    "RunSlotTakenError",
    "RunSummary",
    "StoredDefinition",
    "canonical_json",
    "content_hash",
]

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from sqlalchemy import Engine, Select, create_engine, event, func, or_, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, aliased, sessionmaker
from sqlalchemy.pool import StaticPool

from activator.clock import wall_clock
from activator.errors import MissingExtraError, StoreError
from activator.store.access import AccessMixin
from activator.store.migrate import current_revision, upgrade
from activator.store.models import DefinitionRow, DefinitionVersionRow, RunEventRow, RunRow
from activator.store.runlog import RunLogMixin

DEFINITION_KINDS = ("segment", "destination", "campaign", "journey", "orchestration", "group")
"""Kinds of definition the store holds."""

RUN_STATUSES = ("queued", "running", "succeeded", "warning", "failed", "canceled")
"""States of a run, in lifecycle order."""

FINISHED_RUN_STATUSES = ("succeeded", "warning", "failed", "canceled")
"""States a run ends in."""

ERROR_KINDS = ("configuration", "platform")
"""Who has to act on a failed run: the user (fix and restart) or nobody (transient; retried)."""

_SQLITE_BUSY_TIMEOUT_MS = 10_000
_SQLITE_OPEN_ATTEMPTS = 8
# PostgreSQL advisory lock taken by apply(): applies are rare, and serialising them keeps two
# concurrent ones from both creating (or both adding version n+1 to) the same definition.
_PG_APPLY_LOCK = 0x61637477
# Execution option read by the SQLite "begin" listener: writers take the write lock up front
# (BEGIN IMMEDIATE), so a read-then-write transaction waits for another writer instead of
# failing with "database is locked" when it tries to upgrade its lock.
_SQLITE_BEGIN = "activator_sqlite_begin"
_FIND_RUNS_LIMIT_MAX = 500


@dataclass(frozen=True)
class DefinitionInput:
    """A validated definition to store.

    Attributes:
        kind: one of :data:`DEFINITION_KINDS`.
        name: unique within its kind.
        spec: the validated definition as JSON-compatible data (``model_dump(mode="json")``).
        source: the file it came from (relative to the workspace), or ``api``.
        status: the definition's status as applied (``draft``, ``active``, ...); the
            definition row takes it when the definition is created or changes.
        expected_version: for an edit through the API, the version the editor read (0: the
            definition must not exist yet); the apply is refused when it is no longer the
            current one. ``None`` checks nothing.
        from_files: it comes from the workspace files (``activator apply``): refused when
            the definition was changed through the API since the files were last applied or
            exported, unless forced; the files then hold the resulting version.
    """

    kind: str
    name: str
    spec: Mapping[str, Any]
    source: str
    status: str = "draft"
    expected_version: int | None = None
    from_files: bool = False


@dataclass(frozen=True)
class ApplyResult:
    """What :meth:`MetadataStore.apply` did with one definition.

    Attributes:
        kind: the definition's kind.
        name: the definition's name.
        version: its current version after the apply.
        change: ``created`` (new, version 1), ``updated`` (new version) or ``unchanged``.
    """

    kind: str
    name: str
    version: int
    change: Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class StoredDefinition:
    """One version of a stored definition.

    Attributes:
        kind: the definition's kind.
        name: the definition's name.
        version: the version number, from 1.
        status: the definition's status (``draft``, ``active``, ``paused``, ``archived``...).
        spec: the definition as stored.
        content_hash: SHA-256 (hex) of the spec's canonical JSON.
        source: the file or ``api`` it was applied from.
        updated_at: when this version was stored (UTC).
        file_version: the newest version the workspace files are known to hold (``None``:
            created through the API and never exported).
    """

    kind: str
    name: str
    version: int
    status: str
    spec: dict[str, Any]
    content_hash: str
    source: str
    updated_at: datetime
    file_version: int | None = None


@dataclass(frozen=True)
class RunSummary:
    """One run as recorded in the store; every timestamp is aware UTC.

    Attributes:
        run_id: the run's id (a UUID string).
        kind: kind of the definition run.
        name: name of the definition run.
        definition_version: version of the definition the run used.
        status: one of :data:`RUN_STATUSES`.
        trigger: what started it: ``manual``, ``schedule``, ``retry``...
        as_of: the run's as-of time; every relative date in it resolves against this.
        scheduled_for: the schedule slot it fills, or ``None`` for unscheduled runs.
        created_at: when it was queued.
        started_at: when it started running.
        finished_at: when it ended.
        counts: counts recorded at the end (customers, rows, rejected...).
        error: what went wrong, for failed runs.
        error_kind: ``configuration`` or ``platform``, for failed runs.
        is_test: True for test runs (a sample sent to a test destination).
        lease_owner: the process executing it (``host:pid``), while one does.
        inputs: what started it beyond its as-of time (upstream runs, missed slots...).
        parent_run_id: the group run it is a member of.
        cancel_requested_at: when ``runs cancel`` asked the process executing it to stop.
    """

    run_id: str
    kind: str
    name: str
    definition_version: int
    status: str
    trigger: str
    as_of: datetime
    scheduled_for: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, Any]
    error: str | None
    error_kind: str | None
    is_test: bool
    lease_owner: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    parent_run_id: str | None = None
    cancel_requested_at: datetime | None = None

    @property
    def shown_status(self) -> str:
        """The status to show: ``canceling`` while a cancel request waits for the process
        executing the run to stop."""
        if self.cancel_requested_at is not None and self.status in ("queued", "running"):
            return "canceling"
        return self.status


class RunSlotTakenError(StoreError):
    """A run already exists for this activation's scheduled slot; it must not run twice."""

    bad_input = False

    def __init__(self, message: str, *, existing_run_id: str) -> None:
        super().__init__(message)
        self.existing_run_id = existing_run_id


class DefinitionConflictError(StoreError):
    """A definition changed since the editor read it, or since the files were applied.

    Attributes:
        kind: the definition's kind.
        name: the definition's name.
        current_version: its current version (0 when it does not exist).
    """

    bad_input = True

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        name: str,
        current_version: int,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.kind = kind
        self.name = name
        self.current_version = current_version


def canonical_json(spec: Mapping[str, Any]) -> str:
    """The canonical JSON text of a spec: sorted keys, no whitespace, UTF-8, no NaN.

    Raises:
        TypeError: a value is not JSON-serialisable.
        ValueError: a float is NaN or infinite.
    """
    return json.dumps(
        spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def content_hash(spec: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the spec's canonical JSON: equal specs have equal hashes."""
    return hashlib.sha256(canonical_json(spec).encode("utf-8")).hexdigest()


class MetadataStore(RunLogMixin, AccessMixin):
    """Definitions, their versions, and run history, in SQLite or PostgreSQL.

    Open it with :meth:`open`; use it as a context manager or call :meth:`close`.
    """

    def __init__(
        self, engine: Engine, *, shown_url: str, clock: Callable[[], datetime] = wall_clock
    ) -> None:
        """Wrap an engine whose database is already migrated; prefer :meth:`open`."""
        self._engine = engine
        self._shown_url = shown_url
        self._clock = clock
        self._write_engine = engine.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
        self._reads = sessionmaker(engine, expire_on_commit=False)
        self._writes = sessionmaker(self._write_engine, expire_on_commit=False)

    @classmethod
    def open(
        cls,
        url: str,
        *,
        workspace_root: Path,
        clock: Callable[[], datetime] = wall_clock,
    ) -> MetadataStore:
        """Connect to the store and migrate its schema to the newest revision.

        Args:
            url: SQLAlchemy URL. ``sqlite:///relative/path.db`` is relative to
                ``workspace_root`` (its folder is created); ``postgresql://`` means
                ``postgresql+psycopg://``.
            workspace_root: the workspace folder.
            clock: source of the record timestamps (``created_at``...); tests pass a fixed one.

        Raises:
            StoreError: the URL is invalid or unsupported, the store is unreachable or
                unwritable, or its schema cannot be migrated. The message names the URL with
                its password masked.
            MissingExtraError: the PostgreSQL driver is not installed.
        """
        parsed = _resolve_url(url, workspace_root)
        shown = parsed.render_as_string(hide_password=True)
        engine = _create_engine(parsed, shown)
        store = cls(engine, shown_url=shown, clock=clock)
        try:
            _upgrade_when_free(store._write_engine, shown)
        except SQLAlchemyError as exc:
            engine.dispose()
            raise StoreError(
                f"cannot open the metadata store {shown}: {_reason(exc, parsed)}",
                hint=_hint(parsed),
            ) from None
        except BaseException:
            engine.dispose()
            raise
        return store

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for code that adds its own tables' queries."""
        return self._engine

    @property
    def url(self) -> str:
        """The store's URL with its password masked."""
        return self._shown_url

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def revision(self) -> str:
        """The schema revision the database is at (the head, once opened)."""
        with self._guard("reading the schema revision"), self._engine.connect() as connection:
            revision = current_revision(connection)
        if revision is None:
            raise StoreError(f"metadata store {self._shown_url} has no schema revision")
        return revision

    # -- definitions -------------------------------------------------------------------------

    def apply(self, items: Sequence[DefinitionInput], *, force: bool = False) -> list[ApplyResult]:
        """Store definitions, all or nothing: a new version only where the content changed.

        A new definition is created at version 1; one whose spec hashes differently from its
        current version gets version n+1 (older versions are kept); an unchanged one is left
        alone.

        Two checks keep an edit from silently undoing another one. An item with an
        ``expected_version`` (an edit through the API) is refused unless that is still the
        current version. An item ``from_files`` is refused when the definition was changed
        through the API after the files were last applied or exported (its ``file_version``
        is older than its current version) and the file differs from the current version;
        ``force`` stores it anyway. Items from files record the resulting version as the one
        the files hold.

        Args:
            items: the definitions; each (kind, name) at most once.
            force: store items from files even over versions made through the API.

        Returns:
            One result per item, in order.

        Raises:
            DefinitionConflictError: one of the checks above failed. Nothing is stored then.
            StoreError: an unknown kind, a (kind, name) given twice, a spec that is not JSON,
                or a database failure. Nothing is stored then.
        """
        now = self._clock()
        results: list[ApplyResult] = []
        seen: set[tuple[str, str]] = set()
        with self._guard("applying definitions"), self._writes() as session, session.begin():
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text(f"SELECT pg_advisory_xact_lock({_PG_APPLY_LOCK})"))
            for item in items:
                key = (item.kind, item.name)
                if item.kind not in DEFINITION_KINDS:
                    raise StoreError(
                        f"{item.source}: unknown definition kind {item.kind!r}",
                        hint=f"one of {', '.join(DEFINITION_KINDS)}",
                    )
                if key in seen:
                    raise StoreError(f"{item.source}: {item.kind} {item.name!r} is given twice")
                seen.add(key)
                results.append(self._apply_one(session, item, now, force=force))
                # Flush per item so a failure later in the batch really has work to undo.
                session.flush()
        return results

    def _apply_one(
        self, session: Session, item: DefinitionInput, now: datetime, *, force: bool
    ) -> ApplyResult:
        try:
            text = canonical_json(item.spec)
        except (TypeError, ValueError) as exc:
            raise StoreError(
                f"{item.source}: {item.kind} {item.name!r} cannot be stored as JSON: {exc}"
            ) from None
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        # Store exactly what was hashed (tuples become lists, keys strings...).
        spec = json.loads(text)
        definition = session.scalars(
            select(DefinitionRow)
            .where(DefinitionRow.kind == item.kind, DefinitionRow.name == item.name)
            .with_for_update()
        ).one_or_none()
        if definition is None:
            if item.expected_version is not None and item.expected_version != 0:
                raise DefinitionConflictError(
                    f"{item.kind} {item.name!r} does not exist, not at version "
                    f"{item.expected_version}: it was removed after you read it",
                    kind=item.kind,
                    name=item.name,
                    current_version=0,
                    hint="read it again; create it anew if it is still wanted",
                )
            definition = DefinitionRow(
                kind=item.kind,
                name=item.name,
                current_version=1,
                status=item.status,
                created_at=now,
                updated_at=now,
                file_version=1 if item.from_files else None,
            )
            definition.versions.append(
                DefinitionVersionRow(
                    version=1, spec=spec, content_hash=digest, source=item.source, created_at=now
                )
            )
            session.add(definition)
            return ApplyResult(item.kind, item.name, 1, "created")
        current = session.scalars(
            select(DefinitionVersionRow).where(
                DefinitionVersionRow.definition_id == definition.id,
                DefinitionVersionRow.version == definition.current_version,
            )
        ).one()
        if item.expected_version is not None and item.expected_version != current.version:
            raise _edit_conflict(item, current)
        if item.from_files and not force and current.content_hash != digest:
            # NULL: created through the API and never exported, so the files hold none of it.
            held = definition.file_version or 0
            if held < current.version:
                raise _file_conflict(item, current)
        if current.content_hash == digest:
            if item.from_files:
                definition.file_version = current.version
            return ApplyResult(item.kind, item.name, current.version, "unchanged")
        latest = session.scalar(
            select(func.max(DefinitionVersionRow.version)).where(
                DefinitionVersionRow.definition_id == definition.id
            )
        )
        version = (latest or 0) + 1
        session.add(
            DefinitionVersionRow(
                definition_id=definition.id,
                version=version,
                spec=spec,
                content_hash=digest,
                source=item.source,
                created_at=now,
            )
        )
        definition.current_version = version
        definition.status = item.status
        definition.updated_at = now
        if item.from_files:
            definition.file_version = version
        return ApplyResult(item.kind, item.name, version, "updated")

    def mark_exported(self, kind: str, name: str, version: int) -> None:
        """Record that the workspace files now hold this version of a definition
        (``activator export`` wrote it), so applying them is no longer a conflict.

        Raises:
            StoreError: no such definition.
        """
        with self._guard("recording an export"), self._writes() as session, session.begin():
            row = session.scalars(
                select(DefinitionRow)
                .where(DefinitionRow.kind == kind, DefinitionRow.name == name)
                .with_for_update()
            ).one_or_none()
            if row is None:
                raise StoreError(f"no {kind} {name!r} in the metadata store")
            row.file_version = version

    def current(self, kind: str | None = None) -> list[StoredDefinition]:
        """The current version of every definition, ordered by kind then name.

        Args:
            kind: only definitions of this kind.
        """
        query = _current_query()
        if kind is not None:
            query = query.where(DefinitionRow.kind == kind)
        query = query.order_by(DefinitionRow.kind, DefinitionRow.name)
        with self._guard("reading definitions"), self._reads() as session:
            return [_stored(d, v) for d, v in session.execute(query).tuples()]

    def get(self, kind: str, name: str) -> StoredDefinition | None:
        """The current version of one definition, or ``None`` when it was never applied."""
        query = _current_query().where(DefinitionRow.kind == kind, DefinitionRow.name == name)
        with self._guard("reading a definition"), self._reads() as session:
            found = session.execute(query).tuples().one_or_none()
        return None if found is None else _stored(*found)

    def versions(self, kind: str, name: str) -> list[StoredDefinition]:
        """Every version of one definition, oldest first; empty when it was never applied."""
        query = (
            select(DefinitionRow, DefinitionVersionRow)
            .join(DefinitionVersionRow, DefinitionVersionRow.definition_id == DefinitionRow.id)
            .where(DefinitionRow.kind == kind, DefinitionRow.name == name)
            .order_by(DefinitionVersionRow.version)
        )
        with self._guard("reading definition versions"), self._reads() as session:
            return [_stored(d, v) for d, v in session.execute(query).tuples()]

    def set_status(self, kind: str, name: str, status: str) -> None:
        """Change a definition's status (pause, resume, disable...) without a new version.

        Raises:
            StoreError: no such definition.
        """
        now = self._clock()
        with self._guard("changing a status"), self._writes() as session, session.begin():
            row = session.scalars(
                select(DefinitionRow).where(DefinitionRow.kind == kind, DefinitionRow.name == name)
            ).first()
            if row is None:
                raise StoreError(f"no {kind} {name!r} in the metadata store")
            row.status = status
            row.updated_at = now

    # -- runs --------------------------------------------------------------------------------

    def create_run(
        self,
        *,
        kind: str,
        name: str,
        definition_version: int,
        trigger: str,
        as_of: datetime,
        scheduled_for: datetime | None = None,
        is_test: bool = False,
        run_id: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        parent_run_id: str | None = None,
        owner: str | None = None,
        lease: timedelta | None = None,
    ) -> RunSummary:
        """Record a new, queued run.

        Args:
            kind: kind of the definition to run.
            name: name of the definition to run.
            definition_version: the version it runs.
            trigger: what started it (``manual``, ``schedule``, ``retry``...).
            as_of: the run's as-of time (aware).
            scheduled_for: the schedule slot it fills (aware); at most one run per slot.
            is_test: a test run.
            run_id: the id to use; a new UUID by default.
            inputs: what started it beyond its as-of time (JSON-compatible).
            parent_run_id: the group run it is a member of.
            owner: a lease owner (``host:pid``) holding the new run's lease from the start,
                so no scheduler takes it for an interrupted run before its creator claims it.
            lease: how long that lease lasts.

        Raises:
            RunSlotTakenError: a run already exists for this slot.
            StoreError: the store failed.
        """
        row = RunRow(
            run_id=run_id or str(uuid.uuid4()),
            kind=kind,
            name=name,
            definition_version=definition_version,
            status="queued",
            trigger=trigger,
            as_of=as_of,
            scheduled_for=scheduled_for,
            created_at=self._clock(),
            counts={},
            is_test=is_test,
            inputs=dict(inputs or {}),
            parent_run_id=parent_run_id,
        )
        if owner is not None:
            row.lease_owner = owner
            row.lease_expires = row.created_at + (lease or timedelta(minutes=2))
        try:
            with self._guard("recording a run"), self._writes() as session, session.begin():
                session.add(row)
                session.flush()
                return _summary(row)
        except StoreError as exc:
            if scheduled_for is None or not isinstance(exc.__cause__, IntegrityError):
                raise
            taken = self._slot_run(kind, name, scheduled_for)
            if taken is None:
                raise
            raise RunSlotTakenError(
                f"{kind} {name!r} already has run {taken} for the slot {scheduled_for.isoformat()}",
                existing_run_id=taken,
            ) from None

    def start_run(self, run_id: str) -> RunSummary:
        """Mark a queued run as running, now.

        Raises:
            StoreError: no such run, or it is not queued.
        """
        with self._guard("starting a run"), self._writes() as session, session.begin():
            row = self._run_row(session, run_id)
            if row.status != "queued":
                raise StoreError(f"run {run_id} is {row.status}, not queued")
            row.status = "running"
            row.started_at = self._clock()
            session.flush()
            return _summary(row)

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        counts: Mapping[str, Any] | None = None,
        error: str | None = None,
        error_kind: str | None = None,
    ) -> RunSummary:
        """Record how a run ended, now.

        Args:
            run_id: the run.
            status: one of :data:`FINISHED_RUN_STATUSES`.
            counts: counts to keep with the run (JSON-compatible).
            error: what went wrong.
            error_kind: one of :data:`ERROR_KINDS`.

        Raises:
            StoreError: no such run, it has already finished, or a bad status or error kind.
        """
        if status not in FINISHED_RUN_STATUSES:
            raise StoreError(
                f"run {run_id}: {status!r} is not a final status",
                hint=f"one of {', '.join(FINISHED_RUN_STATUSES)}",
            )
        if error_kind is not None and error_kind not in ERROR_KINDS:
            raise StoreError(
                f"run {run_id}: unknown error kind {error_kind!r}",
                hint=f"one of {', '.join(ERROR_KINDS)}",
            )
        with self._guard("finishing a run"), self._writes() as session, session.begin():
            row = self._run_row(session, run_id)
            if row.status in FINISHED_RUN_STATUSES:
                raise StoreError(f"run {run_id} has already finished ({row.status})")
            row.status = status
            row.finished_at = self._clock()
            row.counts = dict(counts or {})
            row.error = error
            row.error_kind = error_kind
            row.lease_owner = None
            row.lease_expires = None
            session.flush()
            return _summary(row)

    def requeue_run(self, run_id: str, owner: str, reason: str) -> RunSummary:
        """Put a run this owner was executing back in the queue (it was stopped, e.g. by
        SIGTERM, between two units): its lease is dropped, and the next scheduler resumes it."""
        with self._guard("requeueing a run"), self._writes() as session, session.begin():
            row = self._run_row(session, run_id)
            if row.status not in FINISHED_RUN_STATUSES and row.lease_owner == owner:
                row.status = "queued"
                row.lease_owner = None
                row.lease_expires = None
            session.flush()
            summary = _summary(row)
        self.add_event(run_id, reason, level="warning")
        return summary

    def request_cancel(self, run_id: str) -> RunSummary:
        """Ask the process executing a run to stop after the unit in flight.

        Raises:
            StoreError: no such run, or it has already finished.
        """
        with self._guard("canceling a run"), self._writes() as session, session.begin():
            row = self._run_row(session, run_id)
            if row.status in FINISHED_RUN_STATUSES:
                raise StoreError(f"run {run_id} has already finished ({row.status})")
            row.cancel_requested_at = row.cancel_requested_at or self._clock()
            session.flush()
            return _summary(row)

    def cancel_requested(self, run_id: str) -> bool:
        """Whether ``runs cancel`` asked for this run to stop."""
        query = select(RunRow.cancel_requested_at).where(RunRow.run_id == run_id)
        with self._guard("reading a run"), self._reads() as session:
            return session.scalar(query) is not None

    def unfinished_runs(self) -> list[RunSummary]:
        """Every queued or running run, oldest first."""
        query = (
            select(RunRow)
            .where(RunRow.status.in_(("queued", "running")))
            .order_by(RunRow.created_at, RunRow.run_id)
        )
        with self._guard("reading runs"), self._reads() as session:
            return [_summary(row) for row in session.scalars(query)]

    def member_runs(self, parent_run_id: str) -> list[RunSummary]:
        """The runs of a group run's members, oldest first."""
        query = (
            select(RunRow)
            .where(RunRow.parent_run_id == parent_run_id)
            .order_by(RunRow.created_at, RunRow.run_id)
        )
        with self._guard("reading runs"), self._reads() as session:
            return [_summary(row) for row in session.scalars(query)]

    def last_success(self, kind: str, name: str) -> RunSummary | None:
        """The definition's most recently finished successful run (succeeded or warning)."""
        query = (
            select(RunRow)
            .where(
                RunRow.kind == kind,
                RunRow.name == name,
                RunRow.is_test.is_(False),
                RunRow.status.in_(("succeeded", "warning")),
            )
            .order_by(RunRow.finished_at.desc(), RunRow.run_id.desc())
            .limit(1)
        )
        with self._guard("reading runs"), self._reads() as session:
            row = session.scalars(query).first()
            return None if row is None else _summary(row)

    def last_triggered(self, kind: str, name: str, trigger: str) -> RunSummary | None:
        """The definition's latest run started by ``trigger`` (``after``, ``schedule``...)."""
        query = (
            select(RunRow)
            .where(RunRow.kind == kind, RunRow.name == name, RunRow.trigger == trigger)
            .order_by(RunRow.created_at.desc(), RunRow.run_id.desc())
            .limit(1)
        )
        with self._guard("reading runs"), self._reads() as session:
            row = session.scalars(query).first()
            return None if row is None else _summary(row)

    def get_run(self, run_id: str) -> RunSummary | None:
        """One run, or ``None`` when there is no such run."""
        with self._guard("reading a run"), self._reads() as session:
            row = session.get(RunRow, run_id)
            return None if row is None else _summary(row)

    def last_run(self, kind: str, name: str, *, include_tests: bool = False) -> RunSummary | None:
        """The most recently created run of a definition, or ``None`` when it never ran.

        Args:
            kind: the definition's kind.
            name: the definition's name.
            include_tests: count test runs too.
        """
        query = select(RunRow).where(RunRow.kind == kind, RunRow.name == name)
        if not include_tests:
            query = query.where(RunRow.is_test.is_(False))
        query = query.order_by(RunRow.created_at.desc(), RunRow.run_id.desc()).limit(1)
        with self._guard("reading runs"), self._reads() as session:
            row = session.scalars(query).first()
            return None if row is None else _summary(row)

    def change_marker(self) -> tuple[Any, ...]:
        """A value that changes whenever a definition or a run shown in the Activations list
        changes: the definitions' latest update and number, the newest run, and the newest
        run event (every change of a run's status writes one). A few index look-ups: a
        server compares it to decide whether to compute its list again.
        """
        query = select(
            select(func.max(DefinitionRow.updated_at)).scalar_subquery(),
            select(func.count()).select_from(DefinitionRow).scalar_subquery(),
            select(func.max(RunRow.created_at)).scalar_subquery(),
            select(func.max(RunEventRow.id)).scalar_subquery(),
        )
        with self._guard("reading the change marker"), self._reads() as session:
            return tuple(session.execute(query).one())

    def latest_runs(self, kinds: Sequence[str]) -> dict[tuple[str, str], RunSummary]:
        """The most recently created non-test run of every activation of these kinds, in
        one query: ``latest_runs(kinds)[(kind, name)] == last_run(kind, name)`` for every
        activation that ran (one with only test runs is absent, as ``last_run`` is ``None``).

        Args:
            kinds: the kinds to include (``campaign``, ``journey``...).
        """
        if not kinds:
            return {}
        # Each activation's newest run is one backward step into ix_runs_latest (kind, name,
        # is_test, created_at, run_id), for the activations found by a DISTINCT that SQLite
        # answers by skipping through the index. A row_number() window over the runs reads
        # and sorts every run instead: 0.3 s rather than a few ms at 100,000 runs.
        activations = (
            select(RunRow.kind, RunRow.name)
            .where(RunRow.kind.in_(list(kinds)))
            .distinct()
            .subquery("activations")
        )
        newest = aliased(RunRow, name="newest")
        newest_id = (
            select(newest.run_id)
            .where(
                newest.kind == activations.c.kind,
                newest.name == activations.c.name,
                newest.is_test.is_(False),
            )
            .order_by(newest.created_at.desc(), newest.run_id.desc())
            .limit(1)
            .correlate(activations)
            .scalar_subquery()
        )
        latest = select(newest_id.label("run_id")).select_from(activations).subquery("latest")
        query = select(RunRow).join(latest, latest.c.run_id == RunRow.run_id)
        with self._guard("reading runs"), self._reads() as session:
            return {(row.kind, row.name): _summary(row) for row in session.scalars(query)}

    def find_runs(
        self,
        *,
        kind: str | None = None,
        name: str | None = None,
        status: str | None = None,
        trigger: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        include_tests: bool = False,
        limit: int = 50,
        after: str | None = None,
    ) -> list[RunSummary]:
        """Runs across activations, newest first by (created_at, run_id): one page.

        Args:
            kind: only runs of this kind.
            name: only runs of definitions of this name.
            status: only runs in this stored status (``queued``, ``running``, ``failed``...).
            trigger: only runs started this way (``manual``, ``schedule``...).
            since: only runs created at or after this time (aware).
            until: only runs created before this time (aware).
            include_tests: include test runs.
            limit: at most this many (1 to 500).
            after: the last run_id of the previous page: only runs older than it.

        Raises:
            StoreError: ``after`` names no run.
        """
        query = select(RunRow)
        if kind is not None:
            query = query.where(RunRow.kind == kind)
        if name is not None:
            query = query.where(RunRow.name == name)
        if status is not None:
            query = query.where(RunRow.status == status)
        if trigger is not None:
            query = query.where(RunRow.trigger == trigger)
        if since is not None:
            query = query.where(RunRow.created_at >= since)
        if until is not None:
            query = query.where(RunRow.created_at < until)
        if not include_tests:
            query = query.where(RunRow.is_test.is_(False))
        limit = max(1, min(limit, _FIND_RUNS_LIMIT_MAX))
        with self._guard("reading runs"), self._reads() as session:
            if after is not None:
                cursor = session.get(RunRow, after)
                if cursor is None:
                    raise StoreError(
                        f"no run {after} in the metadata store: the page cursor is unknown",
                        hint="start again from the first page",
                    )
                query = query.where(
                    or_(
                        RunRow.created_at < cursor.created_at,
                        (RunRow.created_at == cursor.created_at) & (RunRow.run_id < after),
                    )
                )
            query = query.order_by(RunRow.created_at.desc(), RunRow.run_id.desc()).limit(limit)
            return [_summary(row) for row in session.scalars(query)]

    def list_runs(
        self, kind: str, name: str, *, limit: int = 20, include_tests: bool = True
    ) -> list[RunSummary]:
        """The latest runs of a definition, newest first."""
        query = select(RunRow).where(RunRow.kind == kind, RunRow.name == name)
        if not include_tests:
            query = query.where(RunRow.is_test.is_(False))
        query = query.order_by(RunRow.created_at.desc(), RunRow.run_id.desc()).limit(limit)
        with self._guard("reading runs"), self._reads() as session:
            return [_summary(row) for row in session.scalars(query)]

    # -- helpers -----------------------------------------------------------------------------

    def _run_row(self, session: Session, run_id: str) -> RunRow:
        row = session.get(RunRow, run_id, with_for_update=True)
        if row is None:
            raise StoreError(f"no run {run_id} in the metadata store")
        return row

    def _slot_run(self, kind: str, name: str, scheduled_for: datetime) -> str | None:
        query = select(RunRow.run_id).where(
            RunRow.kind == kind, RunRow.name == name, RunRow.scheduled_for == scheduled_for
        )
        with self._guard("reading runs"), self._reads() as session:
            return session.scalar(query)

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn database failures into a StoreError naming the store and the action."""
        try:
            yield
        except SQLAlchemyError as exc:
            raise StoreError(
                f"metadata store {self._shown_url}: {action} failed: "
                f"{_reason(exc, self._engine.url)}"
            ) from exc


def _current_query() -> Select[tuple[DefinitionRow, DefinitionVersionRow]]:
    return select(DefinitionRow, DefinitionVersionRow).join(
        DefinitionVersionRow,
        (DefinitionVersionRow.definition_id == DefinitionRow.id)
        & (DefinitionVersionRow.version == DefinitionRow.current_version),
    )


def _stored(definition: DefinitionRow, version: DefinitionVersionRow) -> StoredDefinition:
    return StoredDefinition(
        kind=definition.kind,
        name=definition.name,
        version=version.version,
        status=definition.status,
        spec=version.spec,
        content_hash=version.content_hash,
        source=version.source,
        updated_at=version.created_at,
        file_version=definition.file_version,
    )


def _changed_by(version: DefinitionVersionRow) -> str:
    """``by api, 2026-11-30T10:00:00+00:00`` or ``from segments/vip.yml, ...``."""
    source = version.source
    word = "from" if source.endswith((".yml", ".yaml")) else "by"
    return f"{word} {source}, {version.created_at.isoformat()}"


def _edit_conflict(item: DefinitionInput, current: DefinitionVersionRow) -> DefinitionConflictError:
    """An edit made on a version that is no longer the current one."""
    what = f"{item.kind} {item.name!r}"
    if item.expected_version == 0:
        message = (
            f"{what} already exists (version {current.version}, {_changed_by(current)}): "
            "read it and change it instead of creating it"
        )
    else:
        message = (
            f"{what} is at version {current.version}, not {item.expected_version}: it was "
            f"changed ({_changed_by(current)}) after you read it; read it again and reapply "
            "your change"
        )
    return DefinitionConflictError(
        message, kind=item.kind, name=item.name, current_version=current.version
    )


def _file_conflict(item: DefinitionInput, current: DefinitionVersionRow) -> DefinitionConflictError:
    """A file applied over a version made through the API that the files do not hold."""
    return DefinitionConflictError(
        f"{item.source}: {item.kind} {item.name!r} was changed through the API (version "
        f"{current.version}, {current.created_at.isoformat()}) after these files were applied; "
        "`activator export` writes it into the files, `activator apply --force` overwrites it",
        kind=item.kind,
        name=item.name,
        current_version=current.version,
    )


def _summary(row: RunRow) -> RunSummary:
    return RunSummary(
        run_id=row.run_id,
        kind=row.kind,
        name=row.name,
        definition_version=row.definition_version,
        status=row.status,
        trigger=row.trigger,
        as_of=row.as_of,
        scheduled_for=row.scheduled_for,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        counts=dict(row.counts),
        error=row.error,
        error_kind=row.error_kind,
        is_test=row.is_test,
        lease_owner=row.lease_owner,
        inputs=dict(row.inputs or {}),
        parent_run_id=row.parent_run_id,
        cancel_requested_at=row.cancel_requested_at,
    )


# -- opening --------------------------------------------------------------------------------


def _mask(url: str) -> str:
    """Hide the password of a URL that SQLAlchemy could not parse."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _resolve_url(url: str, workspace_root: Path) -> URL:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise StoreError(
            f"metadata store URL {_mask(url)!r} is not a valid SQLAlchemy URL",
            hint="e.g. sqlite:///.activator/metadata.db or postgresql://user@host:5432/db",
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return parsed
    if backend != "sqlite":
        raise StoreError(
            f"metadata store URL {parsed.render_as_string(hide_password=True)!r}: "
            f"{backend!r} is not supported",
            hint="use sqlite:///path.db or postgresql://user@host:5432/db",
        )
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return parsed
    path = Path(database).expanduser()
    if not path.is_absolute():
        path = workspace_root.resolve() / path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot open the metadata store {parsed.set(database=str(path)).render_as_string()}: "
            f"cannot create the folder {path.parent}: {exc.strerror or exc}",
            hint="check metadata.url in activator.yaml and the folder's permissions",
        ) from None
    return parsed.set(database=str(path))


def _create_engine(url: URL, shown: str) -> Engine:
    sqlite = url.get_backend_name() == "sqlite"
    try:
        if sqlite:
            in_memory = not url.database or url.database == ":memory:"
            # One shared connection for an in-memory database, or each would see its own.
            engine = create_engine(url, poolclass=StaticPool) if in_memory else create_engine(url)
        else:
            # Fail fast on an unreachable host instead of waiting for the OS TCP timeout.
            engine = create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    except ImportError as exc:
        raise MissingExtraError("postgres", exc.name or "psycopg") from None
    except (ArgumentError, TypeError, ValueError) as exc:
        raise StoreError(f"cannot open the metadata store {shown}: {exc}") from None
    if sqlite:
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _upgrade_when_free(engine: Engine, shown: str) -> None:
    """Migrate, trying again while SQLite says another process holds the file.

    Several processes opening a new SQLite store at once (a scheduler and a CLI command) race
    to switch it to WAL and to migrate it. SQLite answers some of those races with "database
    is locked" at once, without waiting out the busy timeout (a connection switching the
    journal mode while another reads the old one, for instance), so one more attempt after a
    short pause is the cure; the migration itself is a no-op for whoever comes second.
    """
    attempts = 0
    while True:
        try:
            upgrade(engine, shown_url=shown)
            return
        except OperationalError as exc:
            attempts += 1
            locked = engine.dialect.name == "sqlite" and "locked" in str(exc.orig)
            if not locked or attempts >= _SQLITE_OPEN_ATTEMPTS:
                raise
            engine.dispose()
            time.sleep(0.05 * attempts)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN (below) instead of the sqlite3 module, which
    # would not open a transaction before DDL or SELECT, making migrations and reads
    # non-transactional.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # Busy timeout first, so switching to WAL waits for other connections too.
        cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
        # WAL lets readers (status, the web page) run while a run writes.
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    mode = connection.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


def _reason(exc: SQLAlchemyError, url: URL) -> str:
    """The driver's message on one line, without the password even if a driver echoed it."""
    text = str(exc.orig) if isinstance(exc, DBAPIError) else str(exc)
    text = " ".join(text.split())
    if url.password:
        text = text.replace(str(url.password), "***")
    return text


def _hint(url: URL) -> str:
    if url.get_backend_name() == "sqlite":
        return "check metadata.url in activator.yaml and that the file's folder is writable"
    return (
        "check metadata.url in activator.yaml, that the server is running and reachable, and "
        "the credentials (password in the URL, or PGPASSWORD / ~/.pgpass)"
    )

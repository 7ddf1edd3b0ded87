"""The metadata store's tables, as SQLAlchemy 2 typed ORM rows.

The schema itself is owned by the Alembic history in ``activator/store/migrations``; these
classes must agree with it, which ``tests/store/test_migrations.py`` checks on every dialect.
"""

from __future__ import annotations

__all__ = [
    "ApiTokenRow",
    "AuditEntryRow",
    "Base",
    "DefinitionRow",
    "DefinitionVersionRow",
    "JSONDocument",
    "LedgerUnitRow",
    "RejectedRecordRow",
    "RunEventRow",
    "RunRow",
    "RunTaskRow",
    "UTCDateTime",
]

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Named constraints: SQLite migrations recreate tables (batch mode) and can only drop or alter
# a constraint that has a stable name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONDocument = JSON().with_variant(JSONB(), "postgresql")
"""JSON column type: JSONB on PostgreSQL (indexable, compact), JSON text elsewhere."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware, on every dialect.

    SQLite has no time zone type, so values are stored there as naive UTC text (which also
    sorts correctly); PostgreSQL uses ``timestamp with time zone``. Naive datetimes are
    refused on the way in: a timestamp without a zone is ambiguous.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware datetime to UTC (naive UTC on SQLite)."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"timestamp {value.isoformat()} has no time zone; pass an aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every metadata-store row."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class DefinitionRow(Base):
    """One named definition (segment, destination, campaign, journey, orchestration, group).

    Its content lives in :class:`DefinitionVersionRow`; ``current_version`` points at the
    version in force. Schedules and audit entries will refer to definitions by ``id``.
    """

    __tablename__ = "definitions"
    __table_args__ = (UniqueConstraint("kind", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(128))
    current_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    file_version: Mapped[int | None] = mapped_column(Integer)
    """The newest version the workspace files are known to hold (set by ``activator apply``
    and ``activator export``); NULL for a definition created through the API and never
    exported. A file apply refuses to overwrite newer versions made through the API."""

    versions: Mapped[list[DefinitionVersionRow]] = relationship(
        back_populates="definition",
        order_by="DefinitionVersionRow.version",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class DefinitionVersionRow(Base):
    """One immutable version of a definition: the validated spec and its content hash."""

    __tablename__ = "definition_versions"
    __table_args__ = (UniqueConstraint("definition_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    definition_id: Mapped[int] = mapped_column(
        ForeignKey("definitions.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    content_hash: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    definition: Mapped[DefinitionRow] = relationship(back_populates="versions")


class RunRow(Base):
    """One execution of an activation: its trigger, as-of time, state, counts and error.

    ``(kind, name, scheduled_for)`` is unique so that a scheduled slot runs at most once, even
    with two schedulers; manual runs have no slot (NULLs never collide). Run events and leases
    will refer to runs by ``run_id``.
    """

    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("kind", "name", "scheduled_for"),
        Index("ix_runs_kind_name_created_at", "kind", "name", "created_at"),
        # Covers the latest-run-per-activation query (the Activations list): the window
        # function reads this index in order, without the table or a sort.
        Index("ix_runs_latest", "kind", "name", "is_test", "created_at", "run_id"),
    )

    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(128))
    definition_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True)
    trigger: Mapped[str] = mapped_column(String(16))
    as_of: Mapped[datetime] = mapped_column(UTCDateTime())
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    counts: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    error: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[str | None] = mapped_column(String(16))
    is_test: Mapped[bool] = mapped_column(Boolean)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    """Who is executing the run (``host:pid``); a run is claimed by taking the lease."""
    lease_expires: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """The lease lapses at this time unless renewed: a crashed owner stops renewing it."""
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONDocument, server_default="{}")
    """What the run was started from, beyond its as-of time: the upstream runs that
    triggered it (``after``), the missed slots it catches up, the run it restarts."""
    parent_run_id: Mapped[str | None] = mapped_column(String(36), index=True)
    """The group run this run is a member of."""
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """Set by ``runs cancel`` while a live process executes the run: it stops after the
    unit in flight. The run shows as ``canceling`` until then."""


class ScheduleStateRow(Base):
    """What the scheduler has considered of one activation's schedule.

    Slots at or before ``checked_until`` were run, caught up or deliberately skipped (the
    activation was paused, or the catch-up policy passed them over); an activation the
    scheduler sees for the first time starts at that moment (``first_seen``): it does not
    catch up on slots from before it was scheduled.
    """

    __tablename__ = "schedule_state"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    checked_until: Mapped[datetime] = mapped_column(UTCDateTime())


class RunTaskRow(Base):
    """One task of a run: ``evaluate`` (the rows to send) or ``deliver:<destination>``."""

    __tablename__ = "run_tasks"

    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    task: Mapped[str] = mapped_column(String(200), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    destination: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    counts: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    error: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[str | None] = mapped_column(String(16))


class LedgerUnitRow(Base):
    """One unit of delivery (a file part, a request, a staged load) and its state.

    ``(run_id, task, idx)`` is the unit's deterministic identity; ``state`` is ``sending``
    (recorded before the destination could see it) or ``delivered`` (confirmed).
    """

    __tablename__ = "ledger_units"

    run_id: Mapped[str] = mapped_column(
        ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    task: Mapped[str] = mapped_column(String(200), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    unit_id: Mapped[str] = mapped_column(String(300))
    state: Mapped[str] = mapped_column(String(16))
    first_row: Mapped[int] = mapped_column(BigInteger)
    end_row: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(BigInteger)
    rejected: Mapped[int] = mapped_column(BigInteger)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RejectedRecordRow(Base):
    """A record a destination refused, with the reason; retried by a later run."""

    __tablename__ = "rejected_records"
    __table_args__ = (
        Index("ix_rejected_records_activation", "activation_kind", "activation", "destination"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), index=True)
    task: Mapped[str] = mapped_column(String(200))
    unit_id: Mapped[str] = mapped_column(String(300))
    activation_kind: Mapped[str] = mapped_column(String(32))
    activation: Mapped[str] = mapped_column(String(128))
    destination: Mapped[str] = mapped_column(String(128))
    record: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retried_run_id: Mapped[str | None] = mapped_column(String(36))


class RunEventRow(Base):
    """One line of a run's event log."""

    __tablename__ = "run_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    level: Mapped[str] = mapped_column(String(8))
    task: Mapped[str | None] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)
    fields: Mapped[dict[str, Any]] = mapped_column(JSONDocument)


class ApiTokenRow(Base):
    """A token the API accepts: only the SHA-256 of the plain token is kept.

    The plain token (``act_...``) is shown once, when it is created; a revoked token stays
    listed with ``revoked_at`` set.
    """

    __tablename__ = "api_tokens"

    token_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(String(128))
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditEntryRow(Base):
    """One change made through the API or the CLI: who did what to which definition."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_kind_name", "kind", "name"),)

    entry_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONDocument, server_default="{}")

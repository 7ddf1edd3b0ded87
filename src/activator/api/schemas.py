"""Response models: what the OpenAPI document promises each endpoint returns."""

from __future__ import annotations

__all__ = [
    "ActivationOut",
    "ActivationsPage",
    "AuditOut",
    "DefinitionOut",
    "LastRunOut",
    "RunDetailOut",
    "RunOut",
    "RunsPage",
    "StatusOut",
    "TokenCreated",
    "TokenOut",
]

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from activator.services.run import RunDetail, run_json
from activator.services.workspace import ActivationStatus
from activator.store import RunSummary, StoredDefinition
from activator.store.access import AuditEntry, TokenRecord


class DefinitionOut(BaseModel):
    """One version of a definition as stored."""

    kind: str = Field(examples=["segment"])
    name: str = Field(examples=["vip"])
    version: int = Field(examples=[3])
    """Send it back in ``If-Match`` to change or archive the definition."""

    status: str = Field(examples=["active"])
    source: str = Field(examples=["segments/vip.yml"])
    """The file it was applied from, or ``api``."""

    updated_at: datetime
    spec: dict[str, Any] = Field(
        examples=[{"kind": "segment", "name": "vip", "rules": {"all": []}}]
    )
    """The definition, as in a workspace file (credentials are references, never values)."""

    @classmethod
    def of(cls, stored: StoredDefinition) -> DefinitionOut:
        return cls(
            kind=stored.kind,
            name=stored.name,
            version=stored.version,
            status=stored.status,
            source=stored.source,
            updated_at=stored.updated_at,
            spec=stored.spec,
        )


class LastRunOut(BaseModel):
    """The latest run of an activation, in brief."""

    run_id: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, Any]


class ActivationOut(BaseModel):
    """One row of the Activations list."""

    type: Literal["campaign", "journey", "orchestration", "group"]
    name: str
    status: str = Field(examples=["scheduled"])
    version: int
    labels: list[str] = []
    description: str | None = None
    last_run: LastRunOut | None
    next_run: datetime | None

    @classmethod
    def of(cls, row: ActivationStatus) -> ActivationOut:
        last = row.last_run
        return cls(
            type=row.type,
            name=row.name,
            status=row.status,
            version=row.version,
            labels=list(row.labels),
            description=row.description,
            last_run=None
            if last is None
            else LastRunOut(
                run_id=last.run_id,
                status=last.shown_status,
                started_at=last.started_at,
                finished_at=last.finished_at,
                counts=last.counts,
            ),
            next_run=row.next_run,
        )


class ActivationsPage(BaseModel):
    """A page of the Activations list."""

    items: list[ActivationOut]
    total: int
    """How many match the filters (all pages)."""

    offset: int
    limit: int


class RunOut(BaseModel):
    """A run in brief."""

    model_config = ConfigDict(extra="allow")

    run_id: str
    kind: str
    name: str
    version: int
    status: str = Field(examples=["succeeded"])
    """queued, running, canceling, succeeded, warning, failed or canceled."""

    trigger: str = Field(examples=["api"])
    as_of: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    audience: int | None = None
    sent: int | None = None
    deliveries: list[dict[str, Any]] = []
    counts: dict[str, Any] = {}
    error: str | None = None
    error_kind: str | None = None
    is_test: bool = False

    @classmethod
    def of(cls, run: RunSummary) -> RunOut:
        return cls.model_validate(run_json(run))


class TaskOut(BaseModel):
    """One task of a run (evaluate, deliver:DESTINATION...)."""

    task: str
    destination: str | None
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, Any]
    detail: dict[str, Any]
    error: str | None
    error_kind: str | None


class EventOut(BaseModel):
    """One line of a run's event log."""

    at: datetime
    level: str
    task: str | None
    message: str
    fields: dict[str, Any]


class RejectedOut(BaseModel):
    """A record a destination rejected, with why."""

    destination: str
    record: Any
    reason: str


class RunDetailOut(RunOut):
    """A run with its tasks, latest events and a sample of rejected records."""

    tasks: list[TaskOut] = []
    events: list[EventOut] = []
    rejected_sample: list[RejectedOut] = []

    @classmethod
    def of_detail(cls, detail: RunDetail) -> RunDetailOut:
        return cls.model_validate(detail.to_json())


class RunsPage(BaseModel):
    """A page of runs, newest first."""

    items: list[RunOut]
    next_after: str | None
    """Pass as ``after`` for the next page; null on the last one."""


class StatusOut(BaseModel):
    """An activation's status after an action."""

    kind: str
    name: str
    status: str


class TokenOut(BaseModel):
    """An API token, without its value."""

    token_id: str
    name: str
    role: Literal["viewer", "editor", "admin"]
    created_at: datetime
    created_by: str | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, record: TokenRecord) -> TokenOut:
        return cls(
            token_id=record.token_id,
            name=record.name,
            role=record.role,
            created_at=record.created_at,
            created_by=record.created_by,
            last_used_at=record.last_used_at,
            revoked_at=record.revoked_at,
        )


class TokenCreated(TokenOut):
    """A new token: ``token`` is shown this once and stored only as a hash."""

    token: str = Field(examples=["act_3q2...secret"])


class AuditOut(BaseModel):
    """One entry of the audit log."""

    entry_id: int
    at: datetime
    actor: str = Field(examples=["token:ci-bot"])
    action: str = Field(examples=["update"])
    kind: str | None
    name: str | None
    detail: dict[str, Any]

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditOut:
        return cls(
            entry_id=entry.entry_id,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            kind=entry.kind,
            name=entry.name,
            detail=entry.detail,
        )

"""The metadata store: definitions with their versions, and run history (SQLite or PostgreSQL)."""

from __future__ import annotations

__all__ = [
    "FINISHED_RUN_STATUSES",
    "ROLES",
    "ApplyResult",
    "AuditEntry",
    "DefinitionConflictError",
    "DefinitionInput",
    "EventRecord",
    "LedgerEntry",
    "MetadataStore",
    "RejectedRecord",
    "RunClaimedError",
    "RunSlotTakenError",
    "RunSummary",
    "StoredDefinition",
    "TaskSummary",
    "TokenRecord",
]

from activator.store.access import ROLES, AuditEntry, TokenRecord
from activator.store.runlog import (
    EventRecord,
    LedgerEntry,
    RejectedRecord,
    RunClaimedError,
    TaskSummary,
)
from activator.store.store import (
    FINISHED_RUN_STATUSES,
    ApplyResult,
    DefinitionConflictError,
    DefinitionInput,
    MetadataStore,
    RunSlotTakenError,
    RunSummary,
    StoredDefinition,
)

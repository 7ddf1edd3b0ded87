"""The metadata store: definitions with their versions, and run history (SQLite or PostgreSQL)."""

from __future__ import annotations

__all__ = [
    "ApplyResult",
    "DefinitionInput",
    "MetadataStore",
    "RunSlotTakenError",
    "RunSummary",
    "StoredDefinition",
]

from activator.store.store import (
    ApplyResult,
    DefinitionInput,
    MetadataStore,
    RunSlotTakenError,
    RunSummary,
    StoredDefinition,
)

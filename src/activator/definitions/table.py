"""Table destinations: PostgreSQL tables."""

from __future__ import annotations

__all__ = ["PostgresDestination"]

from typing import Literal

from activator.definitions.base import Definition
from activator.definitions.common import SecretRef


class PostgresDestination(Definition):
    """A PostgreSQL table."""

    kind: Literal["destination"] = "destination"
    type: Literal["postgres"]
    url: str
    """Connection URL without a password; give it in ``credentials.password``."""

    table: str
    mode: Literal["append", "replace", "upsert"] = "append"
    keys: list[str] = []
    """Columns identifying a row, for ``upsert``."""

    credentials: dict[str, SecretRef] = {}

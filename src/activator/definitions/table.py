"""Table destinations, published in one transaction: PostgreSQL tables (loaded with COPY) and
tables in the workspace's own engine."""

from __future__ import annotations

__all__ = ["CREDENTIAL_KEYS", "PG_IDENTIFIER", "EngineTableDestination", "PostgresDestination"]

from typing import Annotated, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field, field_validator, model_validator

from activator.definitions.base import Definition
from activator.definitions.common import SecretRef, known_credentials

PG_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$"
"""A PostgreSQL name Activator accepts: at most 63 bytes (longer ones are truncated by the
server), starting with a letter or ``_``. Names are quoted, so case matters."""

PgIdentifier = Annotated[str, Field(pattern=PG_IDENTIFIER)]

CREDENTIAL_KEYS = frozenset({"password"})
"""The credentials a PostgreSQL destination understands."""


class PostgresDestination(Definition):
    """A PostgreSQL table, filled by COPY through a staging table and published atomically.

    Each batch is copied into a staging table together with a load marker, in one
    transaction; the publish step moves the staged rows into the target in one more
    transaction (append, upsert, or replace by swapping tables), so a reader sees the table
    before the run or after it, never in between.
    """

    kind: Literal["destination"] = "destination"
    type: Literal["postgres"]
    url: str
    """Connection URL without a password: ``postgresql://user@host:5432/db``; options such as
    ``sslmode=verify-full`` go in the query string. The password goes in
    ``credentials.password``."""

    schema_: PgIdentifier = Field(default="public", alias="schema")
    """Schema holding the target table (and Activator's staging and load-marker tables)."""

    table: PgIdentifier
    """Target table, created when missing if ``create`` is true. Used as written (quoted):
    ``Audience`` and ``audience`` are two tables."""

    mode: Literal["append", "replace", "upsert"] = "append"
    """``append`` inserts the delivered rows; ``replace`` swaps in a new table holding exactly
    the delivered rows; ``upsert`` inserts new keys and updates existing ones."""

    keys: list[PgIdentifier] = []
    """Columns identifying a row: required for ``upsert`` (the target needs a unique index on
    exactly these columns); when Activator creates the table they become its primary key."""

    create: bool = True
    """Create the target table from the delivered columns when it does not exist (otherwise
    a missing table is an error)."""

    stale_stage_days: int = Field(default=7, ge=1)
    """Staging tables left by runs that never published (loaded nothing for this many days)
    are dropped at the next publish into this schema."""

    credentials: dict[str, SecretRef] = {}
    """``password``: the database password (the URL must not contain one)."""

    @field_validator("url")
    @classmethod
    def _postgres_url_without_password(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError(
                # Never the value itself: a URL typed without a scheme may hold a password.
                "url must start with postgresql://, not "
                f"{parts.scheme + '://' if parts.scheme else 'a URL without a scheme'}; "
                "e.g. postgresql://activator@db.internal:5432/marketing"
            )
        in_query = any(key == "password" for key, _ in parse_qsl(parts.query))
        if parts.password is not None or in_query:
            raise ValueError(
                "url must not contain a password (definition files can be committed): remove "
                "it and give it in credentials.password, e.g. password: {env: PGPASSWORD}"
            )
        return value

    @field_validator("credentials")
    @classmethod
    def _known_credentials(cls, value: dict[str, SecretRef]) -> dict[str, SecretRef]:
        return known_credentials(value, CREDENTIAL_KEYS, "a PostgreSQL table")

    @model_validator(mode="after")
    def _keys_for_upsert(self) -> PostgresDestination:
        if self.mode == "upsert" and not self.keys:
            raise ValueError("mode upsert needs keys: the columns identifying a row")
        if len(set(self.keys)) != len(self.keys):
            raise ValueError(f"keys {self.keys} name a column twice")
        return self


class EngineTableDestination(Definition):
    """A table in the workspace's own engine (DuckDB, PostgreSQL), published atomically.

    Each batch is inserted into a staging table in the engine's data-plane schema together
    with a load marker, in one engine transaction; the publish step moves the staged rows into
    the target in one more transaction (append, upsert, or replace by swapping tables). Needs
    an engine with transactions.
    """

    kind: Literal["destination"] = "destination"
    type: Literal["engine"]
    schema_: PgIdentifier | None = Field(default=None, alias="schema")
    """Schema (database) of the target table in the engine; default: the one holding the
    customer data (``main`` on DuckDB, the engine's ``schema`` on PostgreSQL)."""

    table: PgIdentifier
    """Target table, created when missing if ``create`` is true. Used as written (quoted):
    ``Audience`` and ``audience`` are two tables."""

    mode: Literal["append", "replace", "upsert"] = "append"
    """``append`` inserts the delivered rows; ``replace`` swaps in a new table holding exactly
    the delivered rows; ``upsert`` updates the rows whose keys were delivered and inserts the
    others."""

    keys: list[PgIdentifier] = []
    """Columns identifying a row; required for ``upsert`` (a key delivered twice takes its
    last row). No unique index is needed or created."""

    create: bool = True
    """Create the target table from the delivered columns when it does not exist (otherwise
    a missing table is an error)."""

    @model_validator(mode="after")
    def _keys_for_upsert(self) -> EngineTableDestination:
        if self.mode == "upsert" and not self.keys:
            raise ValueError("mode upsert needs keys: the columns identifying a row")
        if len(set(self.keys)) != len(self.keys):
            raise ValueError(f"keys {self.keys} name a column twice")
        return self

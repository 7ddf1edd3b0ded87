"""``activator.yaml``: the workspace's engine, metadata store, time zone and data model."""

from __future__ import annotations

__all__ = [
    "CustomerTable",
    "DataModel",
    "DuckDBEngineConfig",
    "EngineConfig",
    "EventTable",
    "MetadataConfig",
    "PostgresEngineConfig",
    "SparkEngineConfig",
    "WorkspaceConfig",
]

from typing import Annotated, Literal

from pydantic import Field, model_validator

from activator.definitions.base import Model, TimeZone

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
"""A table or column name in the engine."""


class DuckDBEngineConfig(Model):
    """The embedded default: a DuckDB database file, and/or folders of Parquet or CSV files."""

    type: Literal["duckdb"] = "duckdb"
    path: str = "data/activator.duckdb"
    """Database file, relative to the workspace. Activator's data-plane tables are written here."""

    sources: dict[Identifier, str] = {}
    """Extra tables read from files: table name → Parquet/CSV file, glob or folder
    (relative to the workspace). Exposed as views, so the data is never copied."""

    threads: int | None = Field(default=None, ge=1)
    """DuckDB worker threads; default: all cores."""

    memory_limit: str | None = None
    """DuckDB memory limit, e.g. ``8GB``; default: DuckDB's (80% of RAM)."""


class SparkEngineConfig(Model):
    """A Spark session (local or a cluster master URL), through PySpark."""

    type: Literal["spark"]
    master: str = "local[*]"
    """Spark master URL."""

    database: str | None = None
    """Spark database (catalog schema) holding the customer tables; default: ``default``."""

    conf: dict[str, str] = {}
    """Extra Spark configuration, e.g. ``spark.sql.shuffle.partitions``."""


class PostgresEngineConfig(Model):
    """A PostgreSQL database holding the customer tables."""

    type: Literal["postgres"]
    url: str
    """SQLAlchemy-style URL without credentials in the file: ``postgresql://host:5432/db``;
    give the password through ``password_env``."""

    schema_: str = Field(default="public", alias="schema")
    """Schema holding the customer tables."""

    password_env: str | None = None
    """Name of the environment variable holding the password (never stored in the file)."""


EngineConfig = Annotated[
    DuckDBEngineConfig | SparkEngineConfig | PostgresEngineConfig,
    Field(discriminator="type"),
]


class MetadataConfig(Model):
    """Where definitions, versions, schedules and run history are kept."""

    url: str = "sqlite:///.activator/metadata.db"
    """SQLAlchemy URL. A relative SQLite path is relative to the workspace; PostgreSQL in
    production (``postgresql+psycopg://host/db``)."""


class CustomerTable(Model):
    """The customer table: one row per customer."""

    table: Identifier
    key: Identifier
    """Primary key of the table; the default activation ID."""

    pii: list[Identifier] = []
    """Columns holding personal data: masked in previews and logs."""


class EventTable(Model):
    """A table of events related to customers (orders, order items, email events...)."""

    table: Identifier
    customer_key: Identifier
    """Column joining to the customer table's key."""

    timestamp: Identifier
    """When the event happened; windows (last N days) are measured on it."""

    amount: Identifier | None = None
    """Money column (DECIMAL) summed by value conditions."""

    returned: Identifier | None = None
    """Boolean column flagging returned or cancelled events; they are excluded from purchase
    behaviour."""


class DataModel(Model):
    """The tables segments are written over."""

    customers: CustomerTable
    events: dict[Identifier, EventTable] = {}
    """Event tables by the name segments use for them."""


class WorkspaceConfig(Model):
    """The contents of ``activator.yaml``."""

    engine: EngineConfig = Field(default_factory=DuckDBEngineConfig)
    metadata: MetadataConfig = Field(default_factory=MetadataConfig)
    timezone: TimeZone = "UTC"
    """Default time zone for dates without an offset, schedules and file names."""

    dataplane_schema: Identifier = "activator"
    """Schema in the engine holding Activator's own tables (snapshots, recipients, travel log,
    delivery ledger)."""

    data_model: DataModel

    @model_validator(mode="after")
    def _events_differ_from_customers(self) -> WorkspaceConfig:
        for name, event in self.data_model.events.items():
            if event.table == self.data_model.customers.table:
                raise ValueError(
                    f"data_model.events.{name}: the customer table cannot also be an event table"
                )
        return self

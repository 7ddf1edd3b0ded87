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

from activator.definitions.base import Model, Name, TimeZone
from activator.definitions.common import SecretRef

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


class SchedulerConfig(Model):
    """How ``activator scheduler`` works (see ``docs/operations.md``)."""

    interval_seconds: float = Field(default=30.0, gt=0, le=3600)
    """Seconds between two looks at what is due."""

    catch_up: Literal["latest", "all", "none"] = "latest"
    """Slots missed while no scheduler ran: ``latest`` runs once, for the latest missed slot
    (the run records how many it stands for); ``all`` runs each missed slot in order, as of
    its own time (up to ``max_catch_up``); ``none`` skips them, running only a slot at most
    ``grace_minutes`` old."""

    max_catch_up: int = Field(default=100, ge=1)
    """With ``catch_up: all``, at most this many missed slots run (the latest ones)."""

    grace_minutes: float = Field(default=15.0, ge=0)
    """With ``catch_up: none``, a slot this late still runs."""

    engine_wait_seconds: float = Field(default=600.0, ge=0)
    """How long a scheduled run waits for the embedded engine (DuckDB) while another process
    writes to it, before failing (``platform``: the next retry or tick runs it)."""


AlertEvent = Literal["failure", "success", "long_running"]


def _on_failure() -> list[AlertEvent]:
    return ["failure"]


class AlertConfig(Model):
    """A webhook told when runs fail, succeed or run long."""

    name: Name
    url: str | SecretRef
    """The receiver; a Slack incoming-webhook URL carries its secret in the path, so prefer
    ``{env: VAR}`` or ``{secret: name}``. ``https://`` unless ``allow_private``."""

    format: Literal["json", "slack"] = "json"
    """``json``: Activator's alert document; ``slack``: a Slack-compatible ``{"text",
    "blocks"}`` message (Mattermost, Teams workflows and Discord's /slack endpoint take it)."""

    on: list[AlertEvent] = Field(default_factory=_on_failure, min_length=1)
    longer_than_minutes: float | None = Field(default=None, gt=0)
    """With ``long_running``: alert once when a run has been running this long."""

    activations: list[str] = []
    """Names of the activations it covers; empty: all of them."""

    allow_private: bool = False
    """Allow plain ``http://`` and private or loopback addresses."""

    timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _threshold(self) -> AlertConfig:
        if ("long_running" in self.on) != (self.longer_than_minutes is not None):
            raise ValueError(
                "'long_running' in 'on' and 'longer_than_minutes' go together "
                "(e.g. on: [failure, long_running], longer_than_minutes: 60)"
            )
        if isinstance(self.url, str) and not self.url.startswith(("https://", "http://")):
            raise ValueError(f"url {self.url!r} is not an http(s) URL")
        if isinstance(self.url, str) and self.url.startswith("http://") and not self.allow_private:
            raise ValueError("url must use https:// (plain http:// only with allow_private: true)")
        return self


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

    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    alerts: list[AlertConfig] = []
    """Webhooks told about runs; see ``docs/operations.md``."""

    @model_validator(mode="after")
    def _events_differ_from_customers(self) -> WorkspaceConfig:
        for name, event in self.data_model.events.items():
            if event.table == self.data_model.customers.table:
                raise ValueError(
                    f"data_model.events.{name}: the customer table cannot also be an event table"
                )
        names = [alert.name for alert in self.alerts]
        if len(names) != len(set(names)):
            raise ValueError(f"alerts: names must be unique ({', '.join(names)})")
        return self

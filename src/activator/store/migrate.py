"""Running the metadata store's Alembic history from code, without an ``alembic.ini``."""

from __future__ import annotations

__all__ = ["MIGRATIONS", "alembic_config", "current_revision", "head_revision", "upgrade"]

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from activator.errors import StoreError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
"""The Alembic script folder shipped inside the package."""

# Any constant works; it only has to be the same for every Activator process.
_PG_MIGRATION_LOCK = 0x61637476


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration pointing at the packaged migrations.

    Args:
        connection: the connection ``env.py`` migrates; required by every command that
            touches a database.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Files are named by their sequential id: 0001_initial.py, 0002_add_schedules.py, ...
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision this version of Activator knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships 0001
        raise StoreError(f"no migrations found in {MIGRATIONS}")
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision a database is at, or ``None`` when it was never migrated."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, *, shown_url: str) -> None:
    """Bring the database to the head revision; a no-op when it is already there.

    Runs in one transaction that also holds a lock (PostgreSQL advisory lock, SQLite write
    lock), so two processes opening a new store at once migrate it once.

    Args:
        engine: the store's engine.
        shown_url: the store URL with its password masked, for error messages.

    Raises:
        StoreError: the database was migrated by a newer Activator, or a migration failed.
    """
    head = head_revision()
    script = ScriptDirectory.from_config(alembic_config())
    with engine.connect() as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
        current = current_revision(connection)
        if current == head:
            return
        if current is not None:
            try:
                script.get_revision(current)
            except CommandError:
                raise StoreError(
                    f"metadata store {shown_url} is at schema revision {current!r}, which this "
                    f"version of Activator does not know (its newest is {head!r})",
                    hint="upgrade Activator, or point metadata.url at another database",
                ) from None
        try:
            command.upgrade(alembic_config(connection), "head")
        except CommandError as exc:
            raise StoreError(
                f"metadata store {shown_url}: migrating the schema to {head!r} failed: {exc}"
            ) from None

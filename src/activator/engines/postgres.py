"""PostgreSQL, through psycopg 3: customer tables in one schema, Activator's in its own.

The password never sits in ``activator.yaml``: it is read from the environment variable the
config names, and masked out of every error message.
"""

from __future__ import annotations

__all__ = ["PostgresEngine"]

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import ibis.expr.types as ir
import pyarrow as pa
from ibis.backends import BaseBackend

from activator.definitions.config import PostgresEngineConfig
from activator.engines.base import Engine
from activator.errors import EngineError, MissingExtraError

_CONNECT_TIMEOUT_SECONDS = 10
_MASK = "***"


class PostgresEngine(Engine):
    """A PostgreSQL database.

    Args:
        config: the ``postgres`` engine section.
        workspace_root: the workspace folder (unused; kept for a uniform constructor).
        dataplane_schema: schema holding Activator's tables.
        read_only: open a read-only session (``default_transaction_read_only``).
    """

    NAME = "postgres"
    DIALECT = "postgres"
    SUPPORTS_SCHEMAS = True
    SUPPORTS_TRANSACTIONS = True
    SINGLE_WRITER = False
    EMBEDDED = False

    config: PostgresEngineConfig

    def __init__(
        self,
        config: PostgresEngineConfig,
        *,
        workspace_root: Path,
        dataplane_schema: str = "activator",
        read_only: bool = False,
    ) -> None:
        super().__init__(
            config,
            workspace_root=workspace_root,
            dataplane_schema=dataplane_schema,
            read_only=read_only,
        )

    @property
    def _customer_database(self) -> str | None:
        return self.config.schema_

    @property
    def shown_url(self) -> str:
        """The URL without user information, for messages."""
        parts = urlsplit(self.config.url)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"

    def _execute_ddl(self, sql: str) -> None:
        # Ibis returns an open psycopg cursor: close it rather than leave it to the GC.
        self.backend.raw_sql(sql).close()

    def _password(self) -> str | None:
        parts = urlsplit(self.config.url)
        if self.config.password_env is None:
            return unquote(parts.password) if parts.password else None
        password = os.environ.get(self.config.password_env)
        if password is None:
            raise EngineError(
                f"cannot connect to {self.shown_url}: the environment variable "
                f"{self.config.password_env} (engine.password_env) is not set",
                hint=f"export {self.config.password_env}=... before running Activator",
            )
        return password

    def stream(self, expr: ir.Expr, *, rows_per_batch: int = 100_000) -> pa.RecordBatchReader:
        """Stream on a second connection: a commit on the main one (a delivery loading an
        engine table) would close the server-side cursor a stream reads through."""
        backend = self._connect()
        table = expr.as_table()
        schema = table.schema().to_pyarrow()
        try:
            reader = backend.to_pyarrow_batches(table, chunk_size=rows_per_batch)
        except BaseException:
            backend.disconnect()
            raise

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield from reader
            finally:
                reader.close()
                backend.disconnect()

        return pa.RecordBatchReader.from_batches(schema, batches())

    def _connect(self) -> BaseBackend:
        try:
            import ibis.backends.postgres
            import psycopg
        except ImportError:
            raise MissingExtraError("postgres", "psycopg") from None
        import ibis

        parts = urlsplit(self.config.url)
        if parts.scheme.split("+")[0] not in ("postgresql", "postgres"):
            raise EngineError(
                f"engine.url must start with postgresql://, not {parts.scheme}://",
                hint="e.g. url: postgresql://db.internal:5432/shop",
            )
        password = self._password()
        options = "-c default_transaction_read_only=on" if self.read_only else None
        try:
            return ibis.postgres.connect(
                host=parts.hostname or "localhost",
                port=parts.port or 5432,
                user=unquote(parts.username) if parts.username else None,
                password=password,
                database=unquote(parts.path.lstrip("/")) or None,
                schema=self.config.schema_,
                connect_timeout=_CONNECT_TIMEOUT_SECONDS,
                application_name="activator",
                **({"options": options} if options else {}),
            )
        except psycopg.Error as exc:
            reason = str(exc).strip() or type(exc).__name__
            if password:
                reason = reason.replace(password, _MASK)
            raise EngineError(
                f"cannot connect to PostgreSQL at {self.shown_url}: {reason}",
                hint="check engine.url, that the server is running, and the password in "
                f"{self.config.password_env or 'the environment'}",
            ) from None

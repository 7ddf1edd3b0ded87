"""The embedded default engine: a DuckDB database file plus Parquet/CSV files as views.

DuckDB lets one process write a database file at a time. Activator makes that rule visible:
a writer takes an exclusive advisory lock on a sidecar file (``<db>.lock``) and records who
it is, so a second process gets :class:`EngineLockedError` naming the holder instead of a raw
DuckDB exception. ``flock`` locks die with their process, so a crash never leaves a stale lock.
"""

from __future__ import annotations

__all__ = ["DuckDBEngine", "WriterLock"]

import contextlib
import fcntl
import glob
import json
import os
import re
import shlex
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import ibis
import ibis.expr.types as ir
import pyarrow as pa
import sqlglot.expressions as sge
from ibis.backends import BaseBackend

from activator.definitions.config import DuckDBEngineConfig
from activator.engines.base import Engine
from activator.errors import EngineError, EngineLockedError

_PARQUET_SUFFIXES = (".parquet", ".pq")
_CSV_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz")
_DUCKDB_LOCK = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


class WriterLock:
    """An exclusive ``flock`` on ``<database>.lock``, with the holder's details inside.

    Args:
        path: the lock file.
        shown_as: how messages name the database (relative to the workspace).
    """

    def __init__(self, path: Path, *, shown_as: str) -> None:
        self.path = path
        self.shown_as = shown_as
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock without waiting.

        Raises:
            EngineLockedError: another process (or another engine in this one) holds it.
        """
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise self.locked_error(self.read_holder()) from None
        holder = {
            "pid": os.getpid(),
            "command": _command_line(),
            "host": socket.gethostname(),
            "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent). Emptied first so nobody reads a stale holder."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def is_held_elsewhere(self) -> bool:
        """Whether some open file holds the lock now (checked without taking it)."""
        if not self.path.exists():
            return False
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops the shared lock if we got it
        return False

    def read_holder(self) -> dict[str, Any]:
        """The holder's details; empty if they cannot be read."""
        # The holder writes its details just after locking: give it a moment.
        for _ in range(20):
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(self.path.read_text(encoding="utf-8"))
                if isinstance(data, dict):
                    return data
            time.sleep(0.025)
        return {}

    def locked_error(self, holder: dict[str, Any]) -> EngineLockedError:
        """The error a second writer gets, naming the holder."""
        details = [f"pid {holder.get('pid', '?')}"]
        if holder.get("command"):
            details.append(repr(holder["command"]))
        if holder.get("host") and holder["host"] != socket.gethostname():
            details.append(f"on {holder['host']}")
        if holder.get("since"):
            details.append(f"since {holder['since']}")
        return EngineLockedError(
            f"{self.shown_as} is in use by another Activator process ({', '.join(details)}); "
            "wait for it to finish or stop it",
            hint="the server, when running, owns the engine: send the work through it",
        )


class DuckDBEngine(Engine):
    """DuckDB, embedded: one database file in the workspace, and files exposed as views.

    Args:
        config: the ``duckdb`` engine section.
        workspace_root: the workspace folder.
        dataplane_schema: schema in the database file holding Activator's tables.
        read_only: open the file read-only (no writer lock; several readers may share it).
    """

    NAME = "duckdb"
    DIALECT = "duckdb"
    SUPPORTS_SCHEMAS = True
    SUPPORTS_TRANSACTIONS = True
    SINGLE_WRITER = True
    EMBEDDED = True

    config: DuckDBEngineConfig
    _lock: WriterLock | None

    MEMORY: ClassVar[str] = ":memory:"

    def __init__(
        self,
        config: DuckDBEngineConfig,
        *,
        workspace_root: Path,
        dataplane_schema: str = "activator",
        read_only: bool = False,
    ) -> None:
        self._lock = None
        super().__init__(
            config,
            workspace_root=workspace_root,
            dataplane_schema=dataplane_schema,
            read_only=read_only,
        )

    @property
    def database_path(self) -> Path | None:
        """The database file, or None for an in-memory database."""
        if self.config.path == self.MEMORY:
            return None
        return _inside_workspace(self.workspace_root, self.config.path, "engine.path")

    def _connect(self) -> BaseBackend:
        path = self.database_path
        settings: dict[str, Any] = {}
        if self.config.threads is not None:
            settings["threads"] = self.config.threads
        if self.config.memory_limit is not None:
            settings["memory_limit"] = self.config.memory_limit
        if path is None:
            backend = ibis.duckdb.connect(self.MEMORY, **settings)
        else:
            backend = self._open_file(path, settings)
        try:
            self._create_source_views(backend)
        except BaseException:
            backend.disconnect()
            self._release()
            raise
        return backend

    def create_dataplane_table(
        self, name: str, obj: ir.Table | pa.Table, *, overwrite: bool = False
    ) -> ir.Table:
        """As the base, but a replacement happens in one transaction: Ibis creates it under a
        temporary name, fills it, drops the old table and renames the new one in separate
        statements, and a crash (``kill -9``) in between would leave the temporary table in
        the data plane for good."""
        if not overwrite:
            return super().create_dataplane_table(name, obj)
        self.ensure_dataplane()
        con = self.backend.con
        con.execute("BEGIN TRANSACTION")
        try:
            table = self.backend.create_table(
                name, obj, database=self.dataplane_schema, overwrite=True
            )
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        return table

    def create_staging_table(self, name: str, obj: ir.Table) -> ir.Table:
        """A temporary table: written to memory (spilling to DuckDB's temporary folder), never
        to the database file, and gone with the connection, even after a crash."""
        return self.backend.create_table(name, obj, temp=True, overwrite=True)

    def drop_staging_table(self, name: str) -> None:
        """Drop a temporary table made by :meth:`create_staging_table`."""
        self.backend.con.execute(f"DROP TABLE IF EXISTS temp.main.{_quoted(name)}")

    def stream(self, expr: ir.Expr, *, rows_per_batch: int = 100_000) -> pa.RecordBatchReader:
        """Stream on a cursor of its own (DuckDB's second connection to the same database).

        A statement run on the main connection while a result streams would cut the stream
        short, silently; a delivery writing into an engine table does exactly that. The cursor
        sees the database's tables, not the main connection's temporary views (``sources``).
        """
        cursor = self.backend.con.cursor()
        return cursor.execute(self.compile(expr)).to_arrow_reader(rows_per_batch)

    def _open_file(self, path: Path, settings: dict[str, Any]) -> BaseBackend:
        shown = self.config.path
        lock = WriterLock(path.with_name(path.name + ".lock"), shown_as=shown)
        if self.read_only:
            if not path.exists():
                raise EngineError(
                    f"{shown} does not exist, so it cannot be opened read-only",
                    hint="point engine.path in activator.yaml at your DuckDB database, "
                    "or expose Parquet/CSV files as tables with engine.sources",
                )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock.acquire()
            self._lock = lock
        try:
            return ibis.duckdb.connect(path, read_only=self.read_only, **settings)
        except duckdb.IOException as exc:
            self._release()
            raise self._translate_lock_error(exc, lock) from None
        except duckdb.Error as exc:
            self._release()
            raise EngineError(f"cannot open {shown}: {exc}") from None

    def _translate_lock_error(self, exc: duckdb.IOException, lock: WriterLock) -> EngineError:
        text = str(exc)
        if "Could not set lock" not in text:
            return EngineError(f"cannot open {self.config.path}: {text}")
        # A reader refused because an Activator writer holds the file: name that writer.
        if self.read_only and lock.is_held_elsewhere():
            return lock.locked_error(lock.read_holder())
        found = _DUCKDB_LOCK.search(text)
        holder = (
            f"pid {found['pid']}, {Path(found['program']).name!r}" if found else "unknown holder"
        )
        return EngineLockedError(
            f"{self.config.path} is in use by another process ({holder}); "
            "wait for it to finish or stop it",
            hint="only one process may open a DuckDB file for writing, and none may read it "
            "meanwhile",
        )

    def _create_source_views(self, backend: BaseBackend) -> None:
        for name, source in self.config.sources.items():
            files, reader = self._source_files(name, source)
            call = sge.func(reader, sge.Array(expressions=[sge.convert(f) for f in files]))
            # TEMP views: nothing is written to the database file (a read-only open works) and
            # file paths never go stale inside it.
            view = sge.Create(
                kind="VIEW",
                this=sge.table_(name, quoted=True),
                expression=sge.select("*").from_(call),
                replace=True,
                properties=sge.Properties(expressions=[sge.TemporaryProperty()]),
            )
            try:
                backend.raw_sql(view.sql("duckdb"))
            except duckdb.Error as exc:
                raise EngineError(f"engine.sources.{name}: cannot read {source!r}: {exc}") from None

    def _source_files(self, name: str, source: str) -> tuple[list[str], str]:
        where = f"engine.sources.{name}"
        if glob.has_magic(source):
            base = _inside_workspace(self.workspace_root, source, where)
            files = sorted(glob.glob(str(base), recursive=True))
        else:
            path = _inside_workspace(self.workspace_root, source, where)
            if not path.exists():
                raise EngineError(
                    f"{where}: {source!r} does not exist (looked in {path})",
                    hint="sources are paths relative to the workspace folder",
                )
            if path.is_dir():
                files = sorted(str(p) for p in path.rglob("*") if p.is_file())
                files = [f for f in files if f.endswith(_PARQUET_SUFFIXES + _CSV_SUFFIXES)]
                # A folder holds one format; Parquet wins over stray CSV exports.
                parquet = [f for f in files if f.endswith(_PARQUET_SUFFIXES)]
                files = parquet or files
            else:
                files = [str(path)]
        for file in files:
            _inside_workspace(self.workspace_root, file, where)  # symlinks out are refused
        if not files:
            raise EngineError(f"{where}: no Parquet or CSV files match {source!r}")
        if all(f.endswith(_PARQUET_SUFFIXES) for f in files):
            return files, "read_parquet"
        if all(f.endswith(_CSV_SUFFIXES) for f in files):
            return files, "read_csv"
        raise EngineError(
            f"{where}: {source!r} must be Parquet (.parquet) or CSV (.csv) files, not a mix"
            " or other formats"
        )

    def _release(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()


def _inside_workspace(root: Path, relative: str, where: str) -> Path:
    """Resolve a path against the workspace and refuse one that leaves it."""
    resolved_root = root.resolve()
    # Resolve the part before any glob character; the pattern itself cannot be resolved.
    path = (resolved_root / relative).resolve() if not glob.has_magic(relative) else None
    if path is None:
        head = relative.split("*")[0].split("?")[0].split("[")[0]
        check = (resolved_root / head).resolve()
        path = resolved_root / relative
    else:
        check = path
    if not check.is_relative_to(resolved_root):
        raise EngineError(
            f"{where}: {relative!r} is outside the workspace ({root})",
            hint="keep data files inside the workspace folder",
        )
    return path


def _command_line() -> str:
    """This process's command line, short: ``activator run spring`` rather than full paths."""
    argv = list(sys.argv) or ["python"]
    argv[0] = Path(argv[0]).name or argv[0]
    return shlex.join(argv)


def _quoted(name: str) -> str:
    """An SQL identifier, double-quoted."""
    return '"' + name.replace('"', '""') + '"'

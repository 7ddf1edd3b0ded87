"""Helpers of the scheduler fault tests: workspaces, ``activator scheduler`` processes, and
readers of what they left (the metadata store, the folders, the travel log).

Everything runs for real: the CLI as a subprocess of this venv's interpreter, DuckDB files,
SQLite or PostgreSQL metadata stores. Reads of the store go through SQLAlchemy Core on the
store's own URL, so the same helpers serve both back ends.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa

SQLITE_STORE = "sqlite:///.activator/metadata.db"


def write_files(root: Path, files: Mapping[str, str]) -> None:
    """Write ``files`` (path relative to ``root`` → text) under ``root``."""
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)


def make_customers(root: Path, customers: int) -> None:
    """``data/shop.duckdb`` with ``customers`` customers 0..n-1 who all joined before 2026."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(root / "data" / "shop.duckdb"))
    try:
        con.execute(
            "CREATE TABLE customers AS SELECT range AS customer_id, "
            "'c' || range || '@example.com' AS email, 'name ' || range AS name, "
            "TIMESTAMP '2025-06-01' AS joined_at "
            f"FROM range({customers})"
        )
    finally:
        con.close()


def command(root: Path, *args: str) -> list[str]:
    """The command line of ``activator -w ROOT ARGS`` (this venv's interpreter)."""
    return [sys.executable, "-m", "activator", "-w", str(root), *args]


def environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without ACTIVATOR_WORKSPACE, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "ACTIVATOR_WORKSPACE"}
    env.update(extra or {})
    return env


def cli(
    root: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``activator -w ROOT ARGS`` to the end."""
    return subprocess.run(
        command(root, *args),
        capture_output=True,
        text=True,
        env=environment(env),
        timeout=timeout,
        check=False,
    )


def start(root: Path, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``activator -w ROOT ARGS`` in the background."""
    return subprocess.Popen(
        command(root, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(env),
    )


def tick(
    root: Path, at: datetime, *extra: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``activator scheduler --once --as-of AT --json`` to the end."""
    return cli(root, "scheduler", "--once", "--as-of", at.isoformat(), "--json", *extra, env=env)


def tick_report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The tick's JSON report; the process must have succeeded."""
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def kill_after(process: subprocess.Popen[str], delay: float) -> bool:
    """SIGKILL the process ``delay`` seconds from now; False if it had finished before."""
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline:
        if process.poll() is not None:
            process.communicate()
            return False
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    return True


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll ``condition`` every 10 ms until it holds; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


# -- reading the metadata store ------------------------------------------------------------------


@dataclass
class StoreReader:
    """Bare SQL reads of a metadata store (opening the store itself would be too slow to
    catch a delivery in the act, and would migrate it)."""

    url: str
    """SQLAlchemy URL; a relative SQLite path is relative to ``root``."""
    root: Path
    _engine: sa.Engine | None = None

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine, made on first use."""
        if self._engine is None:
            url = self.url
            if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
                url = f"sqlite:///{self.root / url.removeprefix('sqlite:///')}"
            elif url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
            self._engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        return self._engine

    def rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        """The rows of ``sql``; none when the store's tables do not exist yet."""
        try:
            with self.engine.connect() as con:
                return [tuple(r) for r in con.execute(sa.text(sql), params)]
        except sa.exc.OperationalError:
            return []
        except sa.exc.ProgrammingError:  # PostgreSQL: relation does not exist yet
            return []

    def runs(self) -> list[Run]:
        """Every run, oldest first."""
        found = self.rows(
            "SELECT run_id, kind, name, status, scheduled_for, trigger, error_kind, error "
            "FROM runs ORDER BY created_at, run_id"
        )
        return [Run(*row) for row in found]

    def delivered(self, run_id: str, task: str) -> int:
        """Delivered units of a run's task (publish excluded)."""
        found = self.rows(
            "SELECT count(*) FROM ledger_units WHERE run_id = :run AND task = :task "
            "AND state = 'delivered' AND idx >= 0",
            run=run_id,
            task=task,
        )
        return int(found[0][0]) if found else 0

    def events(self, run_id: str) -> list[str]:
        """The messages of a run's events, in order."""
        found = self.rows(
            "SELECT message FROM run_events WHERE run_id = :run ORDER BY id", run=run_id
        )
        return [str(m) for (m,) in found]

    def close(self) -> None:
        """Dispose of the engine."""
        if self._engine is not None:
            self._engine.dispose()


@dataclass(frozen=True)
class Run:
    """A row of the ``runs`` table."""

    run_id: str
    kind: str
    name: str
    status: str
    scheduled_for: Any
    trigger: str
    error_kind: str | None
    error: str | None

    @property
    def slot(self) -> str:
        """``scheduled_for`` as ``YYYY-MM-DD HH:MM`` (SQLite and PostgreSQL alike)."""
        return str(self.scheduled_for)[:16].replace("T", " ")


# -- reading files ---------------------------------------------------------------------------------


def csv_ids(path: Path, column: str = "customer_id") -> list[int]:
    """The ``column`` of every row of a (gzip) CSV file."""
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as handle:
        return [int(row[column]) for row in csv.DictReader(handle)]


@dataclass
class FolderWatcher:
    """Polls a folder tree while processes write into it, remembering the sizes every visible
    (not dot-named) file had; a file seen with a size it does not end with was visible while
    incomplete."""

    folder: Path
    interval: float = 0.003
    seen: dict[Path, set[int]] = field(default_factory=dict)
    polls: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> FolderWatcher:
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.polls += 1
            if self.folder.exists():
                for path in self.folder.rglob("*"):
                    if path.name.startswith("."):
                        continue
                    try:
                        size = path.stat().st_size
                    except FileNotFoundError:  # removed between listing and stat
                        continue
                    if path.is_file():
                        self.seen.setdefault(path, set()).add(size)
            time.sleep(self.interval)

    def partial(self) -> dict[str, list[int]]:
        """Files seen with another size than their final one (or gone at the end)."""
        bad: dict[str, list[int]] = {}
        for path, sizes in self.seen.items():
            final = path.stat().st_size if path.exists() else None
            if sizes != {final}:
                bad[path.name] = sorted(sizes)
        return bad

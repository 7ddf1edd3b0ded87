"""One writer for the embedded engine, checked with real second processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from activator.definitions.config import DuckDBEngineConfig
from activator.engines.registry import open_engine
from activator.errors import EngineLockedError
from tests.engines.conftest import customers_table

ROOT = Path(__file__).resolve().parents[2]

# A second Activator process: opens the same workspace's engine, writes a data-plane table
# (unless read-only), reads the customers back. Exit 3 with the message on EngineLockedError.
SECOND = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import ibis

    from activator.definitions.config import DuckDBEngineConfig
    from activator.engines.registry import open_engine
    from activator.errors import EngineLockedError

    read_only = sys.argv[2] == "ro"
    try:
        engine = open_engine(
            DuckDBEngineConfig(path="data/retail.duckdb"),
            workspace_root=Path(sys.argv[1]),
            read_only=read_only,
        )
    except EngineLockedError as exc:
        print(exc)
        sys.exit(3)
    with engine:
        if not read_only:
            engine.create_dataplane_table("second", ibis.memtable({"x": [1, 2, 3]}))
        print(engine.to_pyarrow(engine.table("customers").count()).as_py())
    """
)

# A process that holds the lock until told to stop; for "holder dies" tests.
HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from activator.definitions.config import DuckDBEngineConfig
    from activator.engines.registry import open_engine

    engine = open_engine(
        DuckDBEngineConfig(path="data/retail.duckdb"), workspace_root=Path(sys.argv[1])
    )
    print("ready", flush=True)
    sys.stdin.read()
    """
)


def _python(script: str, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
        **kwargs,
    )


def _workspace(tmp_path: Path) -> Path:
    with open_engine(
        DuckDBEngineConfig(path="data/retail.duckdb"), workspace_root=tmp_path
    ) as engine:
        engine.backend.create_table("customers", customers_table())  # type: ignore[attr-defined]
    return tmp_path


def test_second_writer_is_refused_with_the_holder_then_succeeds(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    holder = open_engine(DuckDBEngineConfig(path="data/retail.duckdb"), workspace_root=root)
    try:
        refused = _python(SECOND, str(root), "rw")
        assert refused.returncode == 3, refused.stderr
        message = refused.stdout.strip()
        assert message.startswith("data/retail.duckdb is in use by another Activator process")
        assert f"pid {os.getpid()}" in message
        assert "pytest" in message  # this process's command line
        assert "since 20" in message
        assert message.endswith("wait for it to finish or stop it") or "hint:" in message
        assert "Traceback" not in refused.stderr
    finally:
        holder.close()

    second = _python(SECOND, str(root), "rw")
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "200"
    with open_engine(DuckDBEngineConfig(path="data/retail.duckdb"), workspace_root=root) as again:
        assert again.to_pyarrow(again.table("customers").count()).as_py() == 200
        assert again.to_pyarrow(again.dataplane_table("second").x.sum()).as_py() == 6


def test_reader_is_told_who_writes(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    with open_engine(DuckDBEngineConfig(path="data/retail.duckdb"), workspace_root=root):
        refused = _python(SECOND, str(root), "ro")
    assert refused.returncode == 3, refused.stderr
    assert "in use by another Activator process" in refused.stdout
    assert f"pid {os.getpid()}" in refused.stdout
    readers = _python(SECOND, str(root), "ro")
    assert readers.returncode == 0, readers.stderr


def test_same_process_cannot_open_two_writers(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    config = DuckDBEngineConfig(path="data/retail.duckdb")
    with (
        open_engine(config, workspace_root=root),
        pytest.raises(EngineLockedError, match=f"pid {os.getpid()}"),
    ):
        open_engine(config, workspace_root=root)
    # And the refused attempt did not disturb the first: the lock is free after close.
    open_engine(DuckDBEngineConfig(path="data/retail.duckdb"), workspace_root=root).close()


def test_lock_dies_with_its_process(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", HOLDER, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(EngineLockedError, match=f"pid {holder.pid}, '-c"):
            open_engine(DuckDBEngineConfig(path="data/retail.duckdb"), workspace_root=root)
        os.kill(holder.pid, signal.SIGKILL)  # no clean-up runs
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(timeout=30)
        if holder.stdin:
            holder.stdin.close()
        if holder.stdout:
            holder.stdout.close()
    with open_engine(DuckDBEngineConfig(path="data/retail.duckdb"), workspace_root=root) as e:
        assert e.to_pyarrow(e.table("customers").count()).as_py() == 200


def test_non_activator_holder_is_named_from_duckdb(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    script = textwrap.dedent(
        """
        import sys, duckdb
        con = duckdb.connect(sys.argv[1])
        print("ready", flush=True)
        sys.stdin.read()
        """
    )
    other = subprocess.Popen(
        [sys.executable, "-c", script, str(root / "data" / "retail.duckdb")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout is not None
        assert other.stdout.readline().strip() == "ready"
        with pytest.raises(EngineLockedError) as raised:
            open_engine(DuckDBEngineConfig(path="data/retail.duckdb"), workspace_root=root)
        message = str(raised.value)
        assert message.startswith("data/retail.duckdb is in use by another process")
        assert f"pid {other.pid}" in message
        assert "python" in message
        # The refused open released its own lock: once DuckDB's holder is gone, it works.
    finally:
        assert other.stdin is not None
        other.stdin.close()
        other.wait(timeout=30)
        if other.stdout:
            other.stdout.close()
    with open_engine(DuckDBEngineConfig(path="data/retail.duckdb"), workspace_root=root) as e:
        assert e.to_pyarrow(e.table("customers").count()).as_py() == 200

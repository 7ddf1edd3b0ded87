"""DuckDB: the database file, files as tables, the data plane, read-only opening."""

from __future__ import annotations

from pathlib import Path

import ibis
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from activator.definitions.config import DuckDBEngineConfig
from activator.engines.duckdb import DuckDBEngine
from activator.engines.registry import open_engine
from activator.errors import EngineError
from tests.engines.conftest import customers_table


def _open(root: Path, **config: object) -> DuckDBEngine:
    engine = open_engine(DuckDBEngineConfig(**config), workspace_root=root)  # type: ignore[arg-type]
    assert isinstance(engine, DuckDBEngine)
    return engine


def test_capabilities_are_declared() -> None:
    assert DuckDBEngine.SINGLE_WRITER
    assert DuckDBEngine.EMBEDDED
    assert DuckDBEngine.SUPPORTS_TRANSACTIONS
    assert DuckDBEngine.DIALECT == "duckdb"


def test_database_file_is_created_inside_the_workspace(tmp_path: Path) -> None:
    with _open(tmp_path, path="data/retail.duckdb") as engine:
        engine.backend.create_table("customers", customers_table())  # type: ignore[attr-defined]
        assert engine.list_tables() == ["customers"]
    assert (tmp_path / "data" / "retail.duckdb").is_file()
    with _open(tmp_path, path="data/retail.duckdb") as engine:
        assert engine.to_pyarrow(engine.table("customers").count()).as_py() == 200
        assert engine.schema_of("customers")["customer_id"].is_integer()


def test_parquet_folder_csv_file_and_glob_become_tables(tmp_path: Path) -> None:
    orders = pa.table({"order_id": [1, 2, 3, 4], "total": [10, 20, 30, 40]})
    (tmp_path / "exports" / "orders").mkdir(parents=True)
    pq.write_table(orders.slice(0, 2), tmp_path / "exports" / "orders" / "part-0.parquet")
    pq.write_table(orders.slice(2, 2), tmp_path / "exports" / "orders" / "part-1.parquet")
    pacsv.write_csv(customers_table(), tmp_path / "exports" / "customers.csv")
    sources = {
        "orders": "exports/orders",
        "customers": "exports/customers.csv",
        "orders_glob": "exports/orders/part-*.parquet",
    }
    with _open(tmp_path, path="db.duckdb", sources=sources) as engine:
        assert engine.list_tables() == ["customers", "orders", "orders_glob"]
        assert engine.to_pyarrow(engine.table("orders").total.sum()).as_py() == 100
        assert engine.to_pyarrow(engine.table("orders_glob").count()).as_py() == 4
        customers = engine.table("customers")
        assert engine.to_pyarrow(customers.count()).as_py() == 200
        assert engine.schema_of("customers")["customer_id"].is_integer()
    # Views are temporary: the database file does not keep paths that could go stale.
    with _open(tmp_path, path="db.duckdb") as engine:
        assert engine.list_tables() == []


def test_source_changes_show_without_copying(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"x": [1]}), tmp_path / "in" / "a.parquet")
    with _open(tmp_path, sources={"t": "in"}) as engine:
        pq.write_table(pa.table({"x": [2]}), tmp_path / "in" / "b.parquet")
        # The folder was resolved at open; the same file's new contents are read, though.
        pq.write_table(pa.table({"x": [5, 6]}), tmp_path / "in" / "a.parquet")
        assert engine.to_pyarrow(engine.table("t").x.sum()).as_py() == 11


def test_missing_source_names_the_table_and_path(tmp_path: Path) -> None:
    with pytest.raises(
        EngineError, match=r"engine\.sources\.orders: 'exports/nope' does not exist"
    ):
        _open(tmp_path, sources={"orders": "exports/nope"})


def test_glob_matching_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=r"no Parquet or CSV files match 'x/\*\.parquet'"):
        _open(tmp_path, sources={"orders": "x/*.parquet"})


@pytest.mark.parametrize("source", ["../outside.parquet", "../*.parquet", "/etc/passwd"])
def test_source_outside_the_workspace_is_refused(tmp_path: Path, source: str) -> None:
    root = tmp_path / "workspace"
    root.mkdir()
    pq.write_table(pa.table({"x": [1]}), tmp_path / "outside.parquet")
    with pytest.raises(EngineError, match="is outside the workspace"):
        _open(root, sources={"t": source})


def test_symlink_out_of_the_workspace_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "workspace"
    root.mkdir()
    pq.write_table(pa.table({"x": [1]}), tmp_path / "outside.parquet")
    (root / "link.parquet").symlink_to(tmp_path / "outside.parquet")
    with pytest.raises(EngineError, match="is outside the workspace"):
        _open(root, sources={"t": "link.parquet"})


def test_database_path_outside_the_workspace_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=r"engine\.path: '\.\./x\.duckdb' is outside"):
        _open(tmp_path / "ws", path="../x.duckdb")


def test_unknown_file_format_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(EngineError, match="must be Parquet"):
        _open(tmp_path, sources={"t": "data.json"})


def test_dataplane_schema_name_is_configurable(tmp_path: Path) -> None:
    engine = open_engine(
        DuckDBEngineConfig(path="d.duckdb"), workspace_root=tmp_path, dataplane_schema="crm_ops"
    )
    with engine:
        engine.backend.create_table("customers", customers_table())  # type: ignore[attr-defined]
        engine.create_dataplane_table("recipients", engine.table("customers").select("email"))
        assert "crm_ops" in engine.backend.list_databases()  # type: ignore[attr-defined]
        assert "activator" not in engine.backend.list_databases()  # type: ignore[attr-defined]
        assert engine.list_dataplane_tables() == ["recipients"]
        assert engine.list_tables() == ["customers"]
        assert "crm_ops" in engine.compile(engine.dataplane_table("recipients"))


def test_read_only_engine_reads_but_refuses_writes(tmp_path: Path) -> None:
    with _open(tmp_path, path="d.duckdb") as engine:
        engine.backend.create_table("customers", customers_table())  # type: ignore[attr-defined]
    engine = open_engine(
        DuckDBEngineConfig(path="d.duckdb"), workspace_root=tmp_path, read_only=True
    )
    with engine:
        assert engine.to_pyarrow(engine.table("customers").count()).as_py() == 200
        with pytest.raises(EngineError, match="opened read-only"):
            engine.create_dataplane_table("x", ibis.memtable({"a": [1]}))
    assert (
        not (tmp_path / "d.duckdb.lock").exists() or (tmp_path / "d.duckdb.lock").read_text() == ""
    )


def test_read_only_needs_an_existing_file(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="does not exist, so it cannot be opened read-only"):
        open_engine(DuckDBEngineConfig(path="no.duckdb"), workspace_root=tmp_path, read_only=True)


def test_missing_table_is_an_engine_error(duckdb_engine: DuckDBEngine) -> None:
    with pytest.raises(EngineError, match="table 'nope' not found in the duckdb engine"):
        duckdb_engine.table("nope")


def test_closed_engine_says_so(tmp_path: Path) -> None:
    engine = _open(tmp_path)
    engine.close()
    engine.close()  # twice is fine
    with pytest.raises(EngineError, match="closed"):
        engine.list_tables()


def test_threads_and_memory_limit_are_applied(tmp_path: Path) -> None:
    with _open(tmp_path, threads=1, memory_limit="256MB") as engine:
        con = engine.backend.con  # type: ignore[attr-defined]
        assert con.execute("SELECT current_setting('threads')").fetchone()[0] == 1
        limit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        assert limit.replace(" ", "").startswith(("244.1MiB", "256.0MB", "256MB"))

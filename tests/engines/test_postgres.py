"""PostgreSQL specifics: passwords from the environment, never in messages."""

from __future__ import annotations

import socket
import traceback
from pathlib import Path

import pytest

from activator.definitions.config import PostgresEngineConfig
from activator.engines.postgres import PostgresEngine
from activator.engines.registry import open_engine
from activator.errors import EngineError
from tests.engines.conftest import customers_table, load_customer_data

SECRET = "s3cr3t-Pa55w0rd-do-not-show"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_server_is_an_engine_error_without_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_DB_PASSWORD", SECRET)
    port = _closed_port()
    config = PostgresEngineConfig(
        type="postgres",
        url=f"postgresql://marketing@127.0.0.1:{port}/shop",
        password_env="SHOP_DB_PASSWORD",
    )
    with pytest.raises(EngineError) as raised:
        open_engine(config, workspace_root=tmp_path)
    message = str(raised.value)
    assert message.startswith(f"cannot connect to PostgreSQL at postgresql://127.0.0.1:{port}/shop")
    assert "marketing@" not in message
    shown = "".join(traceback.format_exception(raised.value))
    assert SECRET not in shown
    assert SECRET not in repr(raised.value)


def test_password_in_the_url_is_masked_too(tmp_path: Path) -> None:
    port = _closed_port()
    config = PostgresEngineConfig(
        type="postgres", url=f"postgresql://marketing:{SECRET}@127.0.0.1:{port}/shop"
    )
    with pytest.raises(EngineError) as raised:
        open_engine(config, workspace_root=tmp_path)
    assert SECRET not in "".join(traceback.format_exception(raised.value))


def test_unset_password_variable_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOP_DB_PASSWORD", raising=False)
    config = PostgresEngineConfig(
        type="postgres", url="postgresql://127.0.0.1:5432/shop", password_env="SHOP_DB_PASSWORD"
    )
    with pytest.raises(EngineError, match="environment variable SHOP_DB_PASSWORD"):
        open_engine(config, workspace_root=tmp_path)


@pytest.mark.postgres
def test_customer_schema_and_read_only(postgres_url: str, tmp_path: Path) -> None:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA shop")
    config = PostgresEngineConfig.model_validate(
        {"type": "postgres", "url": postgres_url, "schema": "shop"}
    )
    with open_engine(config, workspace_root=tmp_path, dataplane_schema="ops") as engine:
        assert isinstance(engine, PostgresEngine)
        load_customer_data(engine, {"customers": customers_table()})
        engine.create_dataplane_table("seen", engine.table("customers").select("customer_id"))
        assert engine.list_tables() == ["customers"]
        assert engine.list_dataplane_tables() == ["seen"]
    with open_engine(config, workspace_root=tmp_path, read_only=True) as reader:
        assert reader.to_pyarrow(reader.table("customers").count()).as_py() == 200
        # The server enforces read-only, not just our check.
        with pytest.raises(Exception, match="read-only transaction"):
            reader.backend.raw_sql("CREATE TABLE shop.x (a int)")  # type: ignore[attr-defined]

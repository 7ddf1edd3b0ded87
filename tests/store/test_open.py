"""Opening a store: URL handling, SQLite settings, and clear errors without secrets."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from activator.errors import StoreError
from activator.store.store import MetadataStore


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_relative_sqlite_path_is_in_the_workspace_in_wal_mode(tmp_path: Path) -> None:
    url = "sqlite:///.activator/metadata.db"
    with MetadataStore.open(url, workspace_root=tmp_path) as store:
        with store.engine.connect() as connection:
            pragmas = [
                connection.execute(text(f"PRAGMA {name}")).scalar_one()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            ]
        assert pragmas == ["wal", 1, 10_000]
        assert store.url == f"sqlite:///{tmp_path.resolve()}/.activator/metadata.db"
    path = tmp_path / ".activator" / "metadata.db"
    # WAL is a property of the file: a plain sqlite3 connection sees it too.
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_sqlite_foreign_keys_are_enforced(tmp_path: Path) -> None:
    with (
        MetadataStore.open("sqlite:///m.db", workspace_root=tmp_path) as store,
        pytest.raises(IntegrityError, match="FOREIGN KEY"),
        store.engine.begin() as connection,
    ):
        connection.execute(
            text(
                "INSERT INTO definition_versions (definition_id, version, spec, content_hash,"
                " source, created_at) VALUES (42, 1, '{}', 'x', 'api', '2026-01-01')"
            )
        )


def test_sqlite_path_under_a_file_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("not a folder")
    with pytest.raises(StoreError, match=r"cannot open the metadata store sqlite:///.*taken/m\.db"):
        MetadataStore.open("sqlite:///taken/m.db", workspace_root=tmp_path)


def test_sqlite_path_that_is_a_folder_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "m.db").mkdir()
    with pytest.raises(StoreError, match=r"metadata store sqlite:///.*m\.db: .*unable to open"):
        MetadataStore.open("sqlite:///m.db", workspace_root=tmp_path)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "is not a valid SQLAlchemy URL"),
        ("mysql://bob:s3cret@db/meta", r"'mysql://bob:\*\*\*@db/meta': 'mysql' is not supported"),
    ],
)
def test_bad_urls_are_store_errors(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message) as raised:
        MetadataStore.open(url, workspace_root=tmp_path)
    assert "s3cret" not in str(raised.value)


@pytest.mark.postgres
def test_unreachable_postgres_names_the_url_without_its_password(tmp_path: Path) -> None:
    port = _closed_port()
    with pytest.raises(StoreError) as raised:
        MetadataStore.open(
            f"postgresql://bob:s3cret@127.0.0.1:{port}/meta", workspace_root=tmp_path
        )
    message = str(raised.value)
    assert f"postgresql+psycopg://bob:***@127.0.0.1:{port}/meta" in message
    assert "refused" in message
    assert "s3cret" not in message
    # The CLI shows the message, not a chain of driver exceptions.
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


@pytest.mark.postgres
def test_postgres_url_uses_psycopg_and_hides_the_password(
    postgres_url: str, tmp_path: Path
) -> None:
    # The test server trusts every connection, so any password is accepted.
    with_password = postgres_url.replace("@", ":s3cret@", 1)
    with MetadataStore.open(with_password, workspace_root=tmp_path) as store:
        assert store.engine.url.drivername == "postgresql+psycopg"
        assert ":***@" in store.url
        assert "s3cret" not in store.url

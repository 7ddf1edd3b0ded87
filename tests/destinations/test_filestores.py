"""File stores on real servers on loopback: S3 (moto), GCS (emulator), Azure (Azurite), SFTP
(asyncssh), and a local folder."""

from __future__ import annotations

import gzip
import hashlib
import io
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from activator.destinations.filestores import FileStore, ObjectStore, open_store, probe
from activator.destinations.secrets import SecretResolver
from activator.errors import ConfigError, DestinationError
from tests.fixtures.filestores import Destination, StoreServer, free_port


def _store(server: StoreServer, tmp_path: Path, prefix: str, *, bad: bool = False) -> FileStore:
    environ = server.bad_environ if bad else server.environ
    return open_store(
        server.destination(prefix=prefix), SecretResolver(tmp_path, environ=environ), tmp_path
    )


def _prefix(request: pytest.FixtureRequest) -> str:
    # One folder per test, so that session-wide servers do not mix tests' files.
    return "t-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:10]


def _no_secret(server: StoreServer, *texts: str) -> None:
    for text in texts:
        for value in server.secret_values:
            assert value not in text


def test_write_publish_read_list_delete(
    store_server: StoreServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = _store(store_server, tmp_path, _prefix(request))
    content = b"id,email\n" + b"".join(b"%d,user%d@example.com\n" % (i, i) for i in range(5000))
    final = "feeds/out.csv"
    temp = store.temp_name(final, "tok1")
    assert temp == "feeds/.out.csv.tok1.tmp"

    with store.open_write(temp) as handle:
        handle.write(content[:1000])
        handle.write(memoryview(content)[1000:])
    assert store.exists(temp)
    assert not store.exists(final)

    store.publish(temp, final)
    assert not store.exists(temp)
    assert store.exists(final)
    assert store.size(final) == len(content)
    assert store.checksum(final) == hashlib.sha256(content).hexdigest()
    assert store.read_bytes(final) == content
    assert store.list() == [final]

    store.delete(final)
    assert not store.exists(final)
    assert store.list() == []
    store.delete(final)  # deleting what is gone is not an error
    with pytest.raises(FileNotFoundError):
        store.size(final)
    store.close()


def test_publish_replaces_an_existing_final(
    store_server: StoreServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = _store(store_server, tmp_path, _prefix(request))
    for round_, body in enumerate([b"old content, longer than the new one\n", b"new\n"]):
        temp = store.temp_name("data.txt", f"r{round_}")
        with store.open_write(temp) as handle:
            handle.write(body)
        store.publish(temp, "data.txt")
    assert store.read_bytes("data.txt") == b"new\n"
    assert store.list() == ["data.txt"]
    store.close()


def test_handles_suit_compressors_and_parquet(
    store_server: StoreServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """What the file-drop connector writes through the handle: gzip streams and Parquet."""
    store = _store(store_server, tmp_path, _prefix(request))
    table = pa.table({"id": list(range(1000)), "email": [f"u{i}@example.com" for i in range(1000)]})
    with store.open_write("a.parquet") as handle:
        pq.write_table(table, handle)
    with store.open_write("a.csv.gz") as handle, gzip.GzipFile(fileobj=handle, mode="wb") as gz:
        gz.write(b"id\n1\n")
    assert pq.read_table(io.BytesIO(store.read_bytes("a.parquet"))).equals(table)
    assert gzip.decompress(store.read_bytes("a.csv.gz")) == b"id\n1\n"
    store.close()


def test_a_reader_never_sees_a_partial_final(
    store_server: StoreServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A second client polls the final name while the file is written and published: each
    time it sees the name, the content is complete. (A store is used by one thread at a time:
    the reader's store belongs to the polling thread.)"""
    prefix = _prefix(request)
    writer = _store(store_server, tmp_path, prefix)
    reader = _store(store_server, tmp_path, prefix)
    content = bytes(range(256)) * 4096  # 1 MiB
    digest = hashlib.sha256(content).hexdigest()
    seen: list[str] = []
    failures: list[BaseException] = []
    done = threading.Event()

    def poll() -> None:
        try:
            while not done.is_set():
                if "big.bin" in reader.list():
                    seen.append(reader.checksum("big.bin"))
        except BaseException as exc:  # reported by the test below
            failures.append(exc)
            done.set()

    temp = writer.temp_name("big.bin", "t")
    with writer.open_write(temp) as handle:
        thread = threading.Thread(target=poll)
        thread.start()
        for start in range(0, len(content), 65536):
            handle.write(content[start : start + 65536])
        assert not writer.exists("big.bin")
    assert not writer.exists("big.bin")
    writer.publish(temp, "big.bin")
    while not seen and not done.is_set():  # the reader sees the final at least once
        threading.Event().wait(0.05)
    done.set()
    thread.join(30)
    assert not failures
    assert set(seen) == {digest}
    assert reader.list() == ["big.bin"]
    writer.close()
    reader.close()


def test_probe_writes_publishes_reads_and_deletes(
    store_server: StoreServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = _store(store_server, tmp_path, _prefix(request))
    checks = probe(store)
    assert [c.ok for c in checks] == [True, True, True, True], checks
    assert "identical" in checks[2].detail
    assert store.list() == []
    store.close()


def test_wrong_credentials_are_a_configuration_error_without_the_secret(
    store_server: StoreServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = _store(store_server, tmp_path, _prefix(request), bad=True)
    with pytest.raises(DestinationError) as caught, store.open_write("x.txt") as handle:
        handle.write(b"x")
    error = caught.value
    assert error.attribution == "configuration"
    assert store.display in error.message
    assert not error.retryable
    _no_secret(store_server, str(error), repr(error), str(store), repr(store))
    _no_secret(store_server, *(str(a) for a in error.args))
    assert error.__cause__ is None
    assert error.__suppress_context__

    checks = probe(store)
    assert checks[0].ok is False
    assert "[configuration]" in checks[0].detail
    _no_secret(store_server, *(c.detail for c in checks))


def test_unreachable_endpoint_is_a_platform_error(
    store_server: StoreServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    closed = str(free_port())  # nothing listens there
    port = str(store_server.extra["port"])
    definition = store_server.destination(prefix=_prefix(request))
    options = {k: v.replace(port, closed) for k, v in getattr(definition, "options", {}).items()}
    environ = {k: v.replace(port, closed) for k, v in store_server.environ.items()}
    path = definition.path.replace(port, closed)
    moved = definition.model_copy(update={"options": options, "path": path})
    store = open_store(moved, SecretResolver(tmp_path, environ=environ), tmp_path)
    with pytest.raises(DestinationError) as caught:
        store.exists("x.txt")
    assert caught.value.attribution == "platform"
    assert "unreachable" in caught.value.message
    assert store.display in caught.value.message
    _no_secret(store_server, str(caught.value))


@pytest.mark.parametrize("server_name", ["s3_server", "gcs_server", "azure_server"])
def test_missing_bucket_is_a_configuration_error(
    server_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server: StoreServer = request.getfixturevalue(server_name)
    definition = server.destination()
    scheme = definition.path.split("://")[0]
    missing = definition.model_copy(update={"path": f"{scheme}://no-such-bucket/feeds"})
    store = open_store(missing, SecretResolver(tmp_path, environ=server.environ), tmp_path)
    assert isinstance(store, ObjectStore)
    with pytest.raises(DestinationError) as caught, store.open_write("x.txt") as handle:
        handle.write(b"x")
    assert caught.value.attribution == "configuration"
    assert "does not exist" in caught.value.message
    assert f"{scheme}://no-such-bucket/feeds" in caught.value.message
    assert store.list() == []
    assert not store.exists("x.txt")


def test_sftp_rename_onto_an_existing_file_is_posix_rename(
    sftp_server: StoreServer, tmp_path: Path
) -> None:
    """The server's plain rename refuses an existing target; publish replaces it."""
    root: Path = sftp_server.extra["root"]
    store = _store(sftp_server, tmp_path, "posix")
    (root / "posix").mkdir(exist_ok=True)
    (root / "posix" / "final.txt").write_bytes(b"old")
    (root / "posix" / ".final.txt.t.tmp").write_bytes(b"new")
    with pytest.raises(OSError, match="already exists"):
        store.fs.ftp.rename("/posix/.final.txt.t.tmp", "/posix/final.txt")  # type: ignore[attr-defined]
    store.publish(".final.txt.t.tmp", "final.txt")
    assert (root / "posix" / "final.txt").read_bytes() == b"new"
    assert not (root / "posix" / ".final.txt.t.tmp").exists()
    store.close()


def test_sftp_private_key_auth_and_host_key_check(sftp_server: StoreServer, tmp_path: Path) -> None:
    keyed = sftp_server.destination(
        prefix="keys", credentials={"private_key": {"env": "T_SFTP_KEY"}}
    )
    resolver = SecretResolver(tmp_path, environ=sftp_server.environ)
    store = open_store(keyed, resolver, tmp_path)
    with store.open_write("k.txt") as handle:
        handle.write(b"k")
    assert store.list() == ["k.txt"]
    store.close()

    # A server whose key is not the one in known_hosts is refused before any credential is sent.
    other = tmp_path / "known_hosts"
    other.write_text(
        f"[127.0.0.1]:{sftp_server.extra['port']} ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
    )
    options = {**getattr(keyed, "options", {}), "known_hosts": str(other)}
    spoofed = open_store(keyed.model_copy(update={"options": options}), resolver, tmp_path)
    with pytest.raises(DestinationError) as caught:
        spoofed.exists("k.txt")
    assert caught.value.attribution == "configuration"
    assert "host key" in caught.value.message


def test_azure_account_key_and_endpoint_options(
    azure_server: StoreServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    definition = Destination.model_validate(
        {
            "name": "blob",
            "type": "azure",
            "path": f"abfs://activator-tests/{_prefix(request)}",
            "options": {
                "account_name": azure_server.extra["account_name"],
                "endpoint_url": azure_server.extra["endpoint"],
                "attempts": "1",
            },
            "credentials": {"account_key": {"env": "KEY"}},
        }
    )
    resolver = SecretResolver(tmp_path, environ={"KEY": azure_server.extra["account_key"]})
    store = open_store(definition, resolver, tmp_path)
    assert [c.ok for c in probe(store)] == [True] * 4
    assert str(store) == f"AzureStore(abfs://activator-tests/{_prefix(request)})"


def test_local_store_publishes_atomically(tmp_path: Path) -> None:
    definition = Destination(name="disk", type="local", path="out")
    store = open_store(definition, SecretResolver(tmp_path, environ={}), tmp_path)
    with store.open_write(".a.tmp") as handle:
        handle.write(b"a")
    store.publish(".a.tmp", "a.txt")
    assert (tmp_path / "out" / "a.txt").read_bytes() == b"a"
    assert store.atomic_rename
    assert [c.ok for c in probe(store)] == [True] * 4


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"type": "s3", "path": "gs://bucket"}, "is not a s3 location"),
        ({"type": "gcs", "path": "bucket/prefix"}, "is not a gcs location"),
        ({"type": "azure", "path": "az://c", "options": {}}, "needs options.account_name"),
        ({"type": "s3", "path": "s3://b", "options": {"endpoint": "x"}}, "unknown option"),
        (
            {"type": "s3", "path": "s3://b", "credentials": {"password": {"env": "X"}}},
            "unknown credential",
        ),
        ({"type": "sftp", "path": "/feeds", "options": {"username": "u"}}, "needs a host"),
        (
            {"type": "sftp", "path": "sftp://h/f", "credentials": {"password": {"env": "P"}}},
            "needs a username",
        ),
        ({"type": "sftp", "path": "sftp://u:pw@h/f"}, "not in the path"),
    ],
)
def test_settings_are_checked_when_the_store_opens(
    settings: dict[str, object], message: str, tmp_path: Path
) -> None:
    definition = Destination.model_validate({"name": "d", **settings})
    with pytest.raises(ConfigError, match=message):
        open_store(definition, SecretResolver(tmp_path, environ={"P": "p", "X": "x"}), tmp_path)


def test_a_missing_secret_names_the_reference_not_a_value(tmp_path: Path) -> None:
    definition = Destination.model_validate(
        {
            "name": "d",
            "type": "s3",
            "path": "s3://b",
            "credentials": {
                "access_key_id": {"env": "KEY_ID"},
                "secret_access_key": {"env": "NOT_SET"},
            },
        }
    )
    with pytest.raises(ConfigError, match="NOT_SET"):
        open_store(definition, SecretResolver(tmp_path, environ={"KEY_ID": "AKIA"}), tmp_path)

"""PGP encryption of parts: a test key made with gpg, encrypted by the connector, decrypted by
gpg, compared with the source."""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from activator.destinations.files import FileConnector
from activator.destinations.secrets import SecretResolver
from activator.errors import DestinationError
from tests.destinations.test_files import (
    context,
    csv_rows,
    deliver,
    destination,
    expected_csv,
    manifest,
    source_table,
)
from tests.fixtures.ledger import MemoryLedger

GPG = "/usr/bin/gpg"


@pytest.fixture(scope="module")
def keyring() -> Iterator[tuple[Path, str]]:
    """A GNUPGHOME holding a fresh key pair (no passphrase), and the armored public key."""
    # A short path: gpg-agent's socket must fit in a Unix socket name.
    home = Path(tempfile.mkdtemp(prefix="gpgtest-", dir="/tmp"))
    try:
        subprocess.run(
            [GPG, "--homedir", str(home), "--batch", "--passphrase", "", "--quick-gen-key",
             "Recipient <recipient@example.com>", "default", "default", "never"],
            check=True, capture_output=True,
        )  # fmt: skip
        public = subprocess.run(
            [GPG, "--homedir", str(home), "--armor", "--export", "recipient@example.com"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        yield home, public
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)
        subprocess.run(["rm", "-rf", str(home)], check=False)


def _decrypt(home: Path, path: Path) -> bytes:
    return subprocess.run(
        [GPG, "--homedir", str(home), "--batch", "--quiet", "--decrypt", str(path)],
        check=True, capture_output=True,
    ).stdout  # fmt: skip


def test_parts_encrypted_with_a_key_file_decrypt_to_the_source(
    tmp_path: Path, keyring: tuple[Path, str]
) -> None:
    home, public = keyring
    (tmp_path / "recipient.asc").write_text(public)
    out = tmp_path / "out"
    table = source_table(40)
    definition = destination(
        out,
        format={"compression": "gzip"},
        split={"rows": 25},
        pgp={"public_key": str(tmp_path / "recipient.asc")},
    )
    keyrings = set(Path("/tmp").glob("act-gpg-*"))
    deliver(definition, table)
    assert set(Path("/tmp").glob("act-gpg-*")) == keyrings  # the temporary keyring is removed
    data = manifest(out)  # bytes and sha256 are the encrypted file's
    assert [f["name"] for f in data["files"]] == [
        "spring_20240502_00001.csv.gz.gpg",
        "spring_20240502_00002.csv.gz.gpg",
    ]
    rows = []
    for entry in data["files"]:
        encrypted = (out / entry["name"]).read_bytes()
        assert hashlib.sha256(encrypted).hexdigest() == entry["sha256"]
        assert not encrypted.startswith(b"\x1f\x8b")  # not the gzip itself
        rows += csv_rows(gzip.decompress(_decrypt(home, out / entry["name"])), ",")
    assert rows == expected_csv(table)


def test_a_key_from_a_secret_reference(tmp_path: Path, keyring: tuple[Path, str]) -> None:
    home, public = keyring
    definition = destination(
        tmp_path, format={"type": "ndjson"}, pgp={"public_key": {"env": "KEY"}}
    )
    secrets = SecretResolver(tmp_path, environ={"KEY": public})
    deliver(definition, source_table(5), secrets=secrets)
    (entry,) = manifest(tmp_path)["files"]
    assert entry["name"].endswith(".ndjson.gpg")
    assert _decrypt(home, tmp_path / entry["name"]).count(b"\n") == 5
    checks = FileConnector(definition, secrets, tmp_path).check()
    assert checks[-1].step == "pgp key"
    assert checks[-1].ok


def test_text_that_is_no_key_is_refused(tmp_path: Path) -> None:
    definition = destination(
        tmp_path, pgp={"public_key": "-----BEGIN PGP PUBLIC KEY BLOCK-----\nx"}
    )
    with pytest.raises(DestinationError, match="holds no OpenPGP public key"):
        deliver(definition, source_table(3))
    checks = FileConnector(definition, SecretResolver(tmp_path, environ={}), tmp_path).check()
    assert not checks[-1].ok
    assert "inline key" in checks[-1].detail


def test_a_missing_key_file_is_named(tmp_path: Path) -> None:
    definition = destination(tmp_path / "out", pgp={"public_key": "keys/none.asc"})
    connector = FileConnector(definition, SecretResolver(tmp_path, environ={}), tmp_path)
    with pytest.raises(DestinationError, match=r"cannot read the key file .*keys/none\.asc"):
        connector.open(context(), MemoryLedger())

"""Folders on local disk, S3, GCS, Azure Blob and SFTP, through fsspec, with atomic publish.

A :class:`FileStore` is the destination's folder. Files are written under a temporary name in
that folder (``.<name>.<token>.tmp``: readers skip dot-names) and then renamed to their final
name, so a reader never sees a partial file. On local folders and SFTP the rename is atomic;
on object stores (S3, GCS, Azure) the final object appears whole (a server-side copy), and
objects are only ever visible complete.
"""

from __future__ import annotations

__all__ = ["FileStore", "open_store"]

import hashlib
import posixpath
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from activator.destinations.secrets import SecretResolver
from activator.errors import ConfigError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from activator.definitions.files import FileDestination

CHUNK = 1 << 20


class FileStore:
    """One folder on one filesystem.

    Args:
        fs: The fsspec filesystem.
        root: The folder, in the filesystem's own path syntax (no protocol).
        display: How to show the folder in messages (``s3://bucket/prefix``).
    """

    def __init__(self, fs: AbstractFileSystem, root: str, display: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.display = display

    def path(self, name: str) -> str:
        """The full path of ``name`` inside the folder (``name`` was checked by the caller)."""
        return posixpath.join(self.root, name)

    def temp_name(self, name: str, token: str) -> str:
        """The temporary name ``name`` is written under before it is published."""
        folder, base = posixpath.split(name)
        return posixpath.join(folder, f".{base}.{token}.tmp")

    def open_write(self, name: str) -> IO[bytes]:
        """Open ``name`` for writing (creating its folders)."""
        full = self.path(name)
        parent = posixpath.dirname(full)
        if parent:
            self.fs.makedirs(parent, exist_ok=True)
        handle: IO[bytes] = self.fs.open(full, "wb")
        return handle

    def publish(self, temp: str, final: str) -> None:
        """Rename ``temp`` to ``final`` (replacing it if present)."""
        self.fs.mv(self.path(temp), self.path(final))

    def exists(self, name: str) -> bool:
        """Whether ``name`` exists."""
        return bool(self.fs.exists(self.path(name)))

    def size(self, name: str) -> int:
        """Size of ``name`` in bytes."""
        return int(self.fs.size(self.path(name)))

    def checksum(self, name: str) -> str:
        """SHA-256 of ``name``'s content, hex (read back in chunks)."""
        digest = hashlib.sha256()
        with self.fs.open(self.path(name), "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def delete(self, name: str) -> None:
        """Delete ``name`` if it exists."""
        if self.exists(name):
            self.fs.rm(self.path(name))

    def list(self) -> list[str]:
        """Names in the folder (recursively), relative to it."""
        if not self.fs.exists(self.root):
            return []
        found = self.fs.find(self.root)
        prefix = self.root + "/"
        return sorted(str(p)[len(prefix) :] for p in found if str(p).startswith(prefix))


def open_store(
    definition: FileDestination, secrets: SecretResolver, workspace_root: Path
) -> FileStore:
    """The folder a file destination writes to, with its credentials resolved.

    Raises:
        ConfigError: a credential is missing.
        MissingExtraError: the filesystem's client is not installed.
    """
    if definition.type == "local":
        return _local(definition, workspace_root)
    raise ConfigError(f"destination {definition.name}: type {definition.type} is not supported yet")


def _local(definition: FileDestination, workspace_root: Path) -> FileStore:
    from fsspec.implementations.local import LocalFileSystem

    folder = Path(definition.path)
    if not folder.is_absolute():
        folder = workspace_root / folder
    fs: Any = LocalFileSystem(auto_mkdir=True)
    return FileStore(fs, str(folder.resolve()), str(folder))

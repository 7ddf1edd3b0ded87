"""Folders on local disk, S3, GCS, Azure Blob and SFTP, through fsspec, with atomic publish.

A :class:`FileStore` is the destination's folder. Files are written under a temporary name in
that folder (``.<name>.<token>.tmp``: readers skip dot-names) and then published under their
final name, so a reader never sees a partial file:

* local folders and SFTP rename atomically (SFTP through the ``posix-rename@openssh.com``
  extension, which replaces an existing final file in one step);
* object stores (S3, GCS, Azure Blob) have no rename: :class:`ObjectStore` copies the object
  server-side and then deletes the temporary one. Objects only ever appear whole, so the final
  name shows the complete content or nothing.

Every failure of the store surfaces as a :class:`~activator.errors.DestinationError` naming the
folder and the reason, attributed to ``configuration`` (a refused credential, a missing bucket,
an unknown host key) or ``platform`` (unreachable, timeouts, 5xx). Credential values are
revealed only when the client is built, and are scrubbed from every message.
"""

from __future__ import annotations

__all__ = ["AzureStore", "FileStore", "ObjectStore", "SftpStore", "open_store", "probe"]

import errno
import hashlib
import io
import json
import posixpath
import secrets as token_source
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, cast
from urllib.parse import quote, urlsplit

from activator.destinations.base import Check
from activator.destinations.secrets import Secret, SecretResolver
from activator.errors import ConfigError, DestinationError, MissingExtraError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from activator.definitions.files import FileDestination

CHUNK = 1 << 20
DEFAULT_ATTEMPTS = 3
"""Tries per request on transient failures (the client libraries' own retries)."""

DEFAULT_TIMEOUT = 10.0
"""Seconds to wait for a connection."""

Attribution = Literal["configuration", "platform"]


class FileStore:
    """One folder on one filesystem.

    Args:
        fs: The fsspec filesystem, or None when ``connect`` builds it on first use.
        root: The folder, in the filesystem's own path syntax (no protocol).
        display: How to show the folder in messages (``s3://bucket/prefix``); never holds a
            credential.
        connect: Builds the filesystem (and reveals the credentials) on first use.
        secrets: The credentials the client was given, scrubbed from every error message.
    """

    atomic_rename: bool = True
    """Whether :meth:`publish` is one atomic rename (False: copy, then delete)."""

    def __init__(
        self,
        fs: AbstractFileSystem | None,
        root: str,
        display: str,
        *,
        connect: Callable[[], AbstractFileSystem] | None = None,
        secrets: Sequence[Secret] = (),
    ) -> None:
        if fs is None and connect is None:
            raise ValueError("FileStore needs a filesystem or a way to connect")
        self._fs = fs
        self._connect = connect
        self._secrets = tuple(secrets)
        self.root = root.rstrip("/")
        self.display = display

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.display})"

    __str__ = __repr__

    @property
    def fs(self) -> AbstractFileSystem:
        """The filesystem, connected on first use."""
        if self._fs is None:
            assert self._connect is not None
            with self._guard("connect"):
                self._fs = self._connect()
        return self._fs

    # --- names ------------------------------------------------------------------------------

    def path(self, name: str) -> str:
        """The full path of ``name`` inside the folder (``name`` was checked by the caller)."""
        return posixpath.join(self.root, name)

    def temp_name(self, name: str, token: str) -> str:
        """The temporary name ``name`` is written under before it is published."""
        folder, base = posixpath.split(name)
        return posixpath.join(folder, f".{base}.{token}.tmp")

    # --- operations -------------------------------------------------------------------------

    def open_write(self, name: str) -> IO[bytes]:
        """Open ``name`` for writing (creating its folders where the store has folders).

        The handle raises :class:`DestinationError` from ``write`` and ``close`` (object
        stores upload on close).
        """
        with self._guard(f"write {name}"):
            handle = self._open_write(self.path(name))
        return cast(IO[bytes], _Writer(handle, self, name))

    def _open_write(self, full: str) -> Any:
        parent = posixpath.dirname(full)
        if parent:
            self.fs.makedirs(parent, exist_ok=True)
        return self.fs.open(full, "wb")

    def publish(self, temp: str, final: str) -> None:
        """Give ``temp`` its final name, replacing ``final`` if present.

        A reader sees either the old final file or the new one, whole; never part of one.
        """
        with self._guard(f"publish {temp} as {final}"):
            self._rename(self.path(temp), self.path(final))

    def _rename(self, source: str, target: str) -> None:
        # LocalFileSystem.mv is os.rename: atomic, replaces the target on POSIX.
        self.fs.mv(source, target)

    def exists(self, name: str) -> bool:
        """Whether ``name`` exists."""
        with self._guard(f"look up {name}"):
            return bool(self.fs.exists(self.path(name)))

    def size(self, name: str) -> int:
        """Size of ``name`` in bytes.

        Raises:
            FileNotFoundError: ``name`` does not exist.
        """
        with self._guard(f"read the size of {name}"):
            return int(self.fs.size(self.path(name)))

    def checksum(self, name: str) -> str:
        """SHA-256 of ``name``'s content, hex (read back in chunks).

        Raises:
            FileNotFoundError: ``name`` does not exist.
        """
        digest = hashlib.sha256()
        with self._guard(f"read {name}"), self.fs.open(self.path(name), "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def read_bytes(self, name: str) -> bytes:
        """The whole content of ``name`` (for small files: probes, manifests).

        Raises:
            FileNotFoundError: ``name`` does not exist.
        """
        with self._guard(f"read {name}"):
            return bytes(self.fs.cat_file(self.path(name)))

    def delete(self, name: str) -> None:
        """Delete ``name`` if it exists."""
        with self._guard(f"delete {name}"):
            full = self.path(name)
            if self.fs.exists(full):
                self.fs.rm(full)

    def list(self) -> list[str]:
        """Names in the folder (recursively), relative to it."""
        with self._guard("list the folder"):
            if not self.fs.exists(self.root):
                return []
            found = self.fs.find(self.root)
        prefix = self.root + "/"
        return sorted(str(p)[len(prefix) :] for p in found if str(p).startswith(prefix))

    def close(self) -> None:
        """Release the connection, if the store holds one (SFTP)."""

    # --- errors -----------------------------------------------------------------------------

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn the client libraries' failures into errors that name the folder."""
        try:
            yield
        except (DestinationError, ConfigError, MissingExtraError):
            raise
        except FileNotFoundError:
            if self._container_missing():
                raise DestinationError(
                    f"{self.display}: cannot {action}: the {self._container_kind} does not exist",
                    hint=f"create it, or fix the destination's path ({self.display})",
                    attribution="configuration",
                ) from None
            # A missing name is an answer, not a failure of the store: callers handle it.
            raise FileNotFoundError(f"{self.display}: cannot {action}: it does not exist") from None
        except Exception as exc:
            raise self._error(action, exc) from None

    _container_kind = "folder"

    def _container_missing(self) -> bool:
        return False

    def _error(self, action: str, exc: BaseException) -> DestinationError:
        attribution, reason, hint = _classify(exc)
        return DestinationError(
            self.scrub(f"{self.display}: cannot {action}: {reason}"),
            hint=None if hint is None else self.scrub(hint),
            attribution=attribution,
        )

    def scrub(self, text: str) -> str:
        """``text`` with every credential value of this store masked."""
        for secret in self._secrets:
            value = secret.reveal()
            for form in {value, quote(value, safe=""), quote(value)}:
                if form:
                    text = text.replace(form, "***")
        return text


class ObjectStore(FileStore):
    """A bucket (or container) and prefix on S3, GCS or Azure Blob.

    Object stores have no rename: publish copies server-side, then deletes the temporary
    object. Objects appear whole, so the final name never shows a partial file; between the
    copy and the delete both names exist (a crash there leaves a temporary object behind, which
    readers skip as a dot-name).
    """

    atomic_rename = False

    def __init__(
        self,
        fs: AbstractFileSystem | None,
        root: str,
        display: str,
        *,
        connect: Callable[[], AbstractFileSystem] | None = None,
        secrets: Sequence[Secret] = (),
        container_kind: str = "bucket",
    ) -> None:
        super().__init__(fs, root, display, connect=connect, secrets=secrets)
        self._container_kind = container_kind

    @property
    def container(self) -> str:
        """The bucket (or container) name."""
        return self.root.split("/", 1)[0]

    def _open_write(self, full: str) -> Any:
        # No makedirs: on an object store it would create the bucket when it is missing.
        return self.fs.open(full, "wb")

    def _rename(self, source: str, target: str) -> None:
        self.fs.copy(source, target)
        self.fs.rm(source)

    def _container_missing(self) -> bool:
        try:
            return not self.fs.exists(self.container)
        except Exception:
            return False


class AzureStore(ObjectStore):
    """A container and prefix on Azure Blob Storage.

    adlfs starts a copy and returns at once; publish waits until the copy has finished, so
    that the temporary blob is deleted only once the final one is complete.
    """

    def _rename(self, source: str, target: str) -> None:
        from fsspec.asyn import sync

        sync(self.fs.loop, self._copy, source, target)
        self.fs.rm(source)

    async def _copy(self, source: str, target: str) -> None:
        import asyncio

        fs: Any = self.fs
        container, blob, _ = fs.split_path(source)
        target_container, target_blob, _ = fs.split_path(target)
        client = fs.service_client
        source_url = client.get_blob_client(container, blob).url
        if fs.sas_token:
            source_url += fs.sas_token if fs.sas_token.startswith("?") else "?" + fs.sas_token
        destination = client.get_blob_client(target_container, target_blob)
        result = await destination.start_copy_from_url(source_url)
        status = result.get("copy_status")
        while status == "pending":
            await asyncio.sleep(0.2)
            status = (await destination.get_blob_properties()).copy.status
        if status != "success":
            raise OSError(f"the server-side copy ended as {status}")
        fs.invalidate_cache(target_container)


class SftpStore(FileStore):
    """A folder on an SFTP server; publish is the server's atomic ``posix-rename``."""

    def _rename(self, source: str, target: str) -> None:
        # posix-rename@openssh.com replaces the target atomically; plain SFTP rename refuses
        # an existing target.
        self.fs.ftp.posix_rename(source, target)

    def close(self) -> None:
        """Close the SSH connection."""
        if self._fs is not None:
            client = getattr(self._fs, "client", None)
            if client is not None:
                client.close()
            self._fs = None


class _Writer(io.RawIOBase):
    """A write handle whose failures name the store (object stores upload on close)."""

    def __init__(self, inner: Any, store: FileStore, name: str) -> None:
        super().__init__()
        self._inner = inner
        self._store = store
        self._name = name
        self._written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        with self._store._guard(f"write {self._name}"):
            self._inner.write(data)
        size = memoryview(data).nbytes
        self._written += size
        return size

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        # IOBase.close flushes after our close has closed the inner handle.
        if not self.closed and not self._inner.closed:
            with self._store._guard(f"write {self._name}"):
                self._inner.flush()

    def close(self) -> None:
        if self.closed:
            return
        try:
            with self._store._guard(f"write {self._name}"):
                self._inner.close()
        finally:
            super().close()


# --- opening a destination's store ------------------------------------------------------------


def open_store(
    definition: FileDestination, secrets: SecretResolver, workspace_root: Path
) -> FileStore:
    """The folder a file destination writes to, with its credentials resolved.

    Nothing is contacted yet: remote stores connect on first use.

    Raises:
        ConfigError: the path does not suit the type, an option is wrong, or a credential is
            missing.
        MissingExtraError: the filesystem's client is not installed.
    """
    options: Mapping[str, str] = getattr(definition, "options", None) or {}
    if definition.type == "local":
        return _local(definition, workspace_root)
    if definition.type == "s3":
        return _s3(definition, options, secrets)
    if definition.type == "gcs":
        return _gcs(definition, options, secrets)
    if definition.type == "azure":
        return _azure(definition, options, secrets)
    if definition.type == "sftp":
        return _sftp(definition, options, secrets, workspace_root)
    raise ConfigError(f"destination {definition.name}: type {definition.type} is not supported")


def _local(definition: FileDestination, workspace_root: Path) -> FileStore:
    from fsspec.implementations.local import LocalFileSystem

    folder = Path(definition.path)
    if not folder.is_absolute():
        folder = workspace_root / folder
    fs: Any = LocalFileSystem(auto_mkdir=True)
    return FileStore(fs, str(folder.resolve()), str(folder))


def _bucket_path(definition: FileDestination, schemes: tuple[str, ...]) -> tuple[str, str]:
    """(``bucket/prefix``, display) from ``scheme://bucket/prefix``."""
    scheme, sep, rest = definition.path.partition("://")
    rest = rest.strip("/")
    if not sep or scheme not in schemes or not rest:
        example = f"{schemes[0]}://bucket/prefix"
        raise ConfigError(
            f"destination {definition.name}: path {definition.path!r} is not a "
            f"{definition.type} location",
            hint=f"write it as {example}",
        )
    return rest, f"{scheme}://{rest}"


def _option(options: Mapping[str, str], key: str, definition: FileDestination) -> str | None:
    value = options.get(key)
    return None if value is None or value == "" else str(value)


def _number(
    options: Mapping[str, str], key: str, default: float, definition: FileDestination
) -> float:
    value = _option(options, key, definition)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(
            f"destination {definition.name}: options.{key} must be a number, not {value!r}"
        ) from None
    if number < (1 if key == "attempts" else 0):
        raise ConfigError(f"destination {definition.name}: options.{key} is out of range")
    return number


def _flag(options: Mapping[str, str], key: str, definition: FileDestination) -> bool:
    value = (_option(options, key, definition) or "false").lower()
    if value not in {"true", "false", "yes", "no", "1", "0"}:
        raise ConfigError(
            f"destination {definition.name}: options.{key} must be true or false, not {value!r}"
        )
    return value in {"true", "yes", "1"}


def _known(options: Mapping[str, str], allowed: set[str], definition: FileDestination) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(
            f"destination {definition.name}: unknown option(s) for {definition.type}: "
            + ", ".join(unknown),
            hint="known options: " + ", ".join(sorted(allowed)),
        )


def _credentials(
    definition: FileDestination, secrets: SecretResolver, allowed: set[str]
) -> dict[str, Secret]:
    unknown = sorted(set(definition.credentials) - allowed)
    if unknown:
        raise ConfigError(
            f"destination {definition.name}: unknown credential(s) for {definition.type}: "
            + ", ".join(unknown),
            hint="known credentials: " + ", ".join(sorted(allowed)),
        )
    found: dict[str, Secret] = {}
    for key in sorted(allowed):
        secret = secrets.optional(
            definition.credentials, key, what=f"destination {definition.name}"
        )
        if secret is not None:
            found[key] = secret
    return found


_COMMON_OPTIONS = {"attempts", "timeout"}


def _s3(
    definition: FileDestination, options: Mapping[str, str], secrets: SecretResolver
) -> FileStore:
    _known(options, _COMMON_OPTIONS | {"endpoint_url", "region", "addressing_style"}, definition)
    root, display = _bucket_path(definition, ("s3",))
    creds = _credentials(
        definition, secrets, {"access_key_id", "secret_access_key", "session_token"}
    )
    if ("access_key_id" in creds) != ("secret_access_key" in creds):
        raise ConfigError(
            f"destination {definition.name}: give both credentials.access_key_id and "
            "credentials.secret_access_key, or neither (to use the AWS default credential chain)"
        )
    style = _option(options, "addressing_style", definition) or "auto"
    if style not in {"auto", "path", "virtual"}:
        raise ConfigError(
            f"destination {definition.name}: options.addressing_style is auto, path or virtual"
        )
    attempts = int(_number(options, "attempts", DEFAULT_ATTEMPTS, definition))
    timeout = _number(options, "timeout", DEFAULT_TIMEOUT, definition)
    endpoint = _option(options, "endpoint_url", definition)
    region = _option(options, "region", definition)

    def connect() -> AbstractFileSystem:
        try:
            from s3fs import S3FileSystem
        except ImportError:
            raise MissingExtraError("s3", "s3fs") from None
        client_kwargs: dict[str, Any] = {}
        if region:
            client_kwargs["region_name"] = region
        fs: Any = S3FileSystem(
            key=_reveal(creds.get("access_key_id")),
            secret=_reveal(creds.get("secret_access_key")),
            token=_reveal(creds.get("session_token")),
            endpoint_url=endpoint,
            client_kwargs=client_kwargs,
            config_kwargs={
                "retries": {"max_attempts": attempts, "mode": "standard"},
                "connect_timeout": timeout,
                "s3": {"addressing_style": style},
            },
            use_listings_cache=False,
            skip_instance_cache=True,
        )
        # s3fs retries on top of botocore; one pass of botocore's retries is enough.
        fs.retries = 1
        return cast("AbstractFileSystem", fs)

    return ObjectStore(None, root, display, connect=connect, secrets=list(creds.values()))


def _gcs(
    definition: FileDestination, options: Mapping[str, str], secrets: SecretResolver
) -> FileStore:
    _known(options, _COMMON_OPTIONS | {"endpoint_url", "project", "anonymous"}, definition)
    root, display = _bucket_path(definition, ("gs", "gcs"))
    creds = _credentials(definition, secrets, {"service_account_json"})
    anonymous = _flag(options, "anonymous", definition)
    if anonymous and creds:
        raise ConfigError(
            f"destination {definition.name}: options.anonymous and "
            "credentials.service_account_json exclude each other"
        )
    attempts = int(_number(options, "attempts", DEFAULT_ATTEMPTS, definition))
    timeout = _number(options, "timeout", DEFAULT_TIMEOUT, definition)
    endpoint = _option(options, "endpoint_url", definition)
    project = _option(options, "project", definition)
    account = creds.get("service_account_json")

    def connect() -> AbstractFileSystem:
        try:
            import aiohttp

            # The plain JSON-API filesystem: gcsfs's default class adds experimental gRPC
            # bucket-type lookups (zonal, HNS buckets) that emulators and proxies do not serve.
            from gcsfs.core import GCSFileSystem
            from gcsfs.retry import retry_request
        except ImportError:
            raise MissingExtraError("gcs", "gcsfs") from None
        token: Any
        if account is not None:
            try:
                token = json.loads(account.reveal())
            except ValueError:
                raise ConfigError(
                    f"destination {definition.name}: credentials.service_account_json "
                    f"({account.name}) is not JSON",
                    hint="give the service account's key file content (JSON)",
                ) from None
            if not isinstance(token, dict) or "private_key" not in token:
                raise ConfigError(
                    f"destination {definition.name}: credentials.service_account_json "
                    f"({account.name}) is not a service account key",
                    hint="create a key for the service account and give the JSON file content",
                )
        else:
            token = "anon" if anonymous else "google_default"

        # gcsfs fixes its retries (6, up to a minute of back-off) when the class is defined.
        class _GCSFileSystem(GCSFileSystem):  # type: ignore[misc]
            retries = attempts
            _request = retry_request(retries=attempts)(GCSFileSystem._request.__wrapped__)

        kwargs: dict[str, Any] = {
            "token": token,
            "endpoint_url": endpoint,
            "use_listings_cache": False,
            "skip_instance_cache": True,
            "session_kwargs": {"timeout": aiohttp.ClientTimeout(connect=timeout)},
        }
        if project:
            kwargs["project"] = project
        return cast("AbstractFileSystem", _GCSFileSystem(**kwargs))

    return ObjectStore(None, root, display, connect=connect, secrets=list(creds.values()))


def _azure(
    definition: FileDestination, options: Mapping[str, str], secrets: SecretResolver
) -> FileStore:
    _known(options, _COMMON_OPTIONS | {"account_name", "endpoint_url"}, definition)
    root, display = _bucket_path(definition, ("az", "abfs", "abfss"))
    creds = _credentials(definition, secrets, {"connection_string", "account_key", "sas_token"})
    if len(creds) > 1:
        raise ConfigError(
            f"destination {definition.name}: give one of credentials.connection_string, "
            "account_key or sas_token"
        )
    account = _option(options, "account_name", definition)
    endpoint = _option(options, "endpoint_url", definition)
    if "connection_string" not in creds and not account:
        raise ConfigError(
            f"destination {definition.name}: Azure needs options.account_name "
            "(or a credentials.connection_string)"
        )
    attempts = int(_number(options, "attempts", DEFAULT_ATTEMPTS, definition))
    timeout = _number(options, "timeout", DEFAULT_TIMEOUT, definition)

    def client() -> Any:
        from azure.storage.blob.aio import BlobServiceClient, ExponentialRetry

        settings: dict[str, Any] = {
            # The SDK's default waits 15 s, then 18 s, ... between tries.
            "retry_policy": ExponentialRetry(
                initial_backoff=1, increment_base=2, retry_total=attempts - 1
            ),
            "connection_timeout": timeout,
        }
        if "connection_string" in creds:
            return BlobServiceClient.from_connection_string(
                creds["connection_string"].reveal(), **settings
            )
        url = endpoint or f"https://{account}.blob.core.windows.net"
        credential: Any
        if "account_key" in creds:
            credential = {"account_name": account, "account_key": creds["account_key"].reveal()}
        elif "sas_token" in creds:
            from azure.core.credentials import AzureSasCredential

            credential = AzureSasCredential(creds["sas_token"].reveal().lstrip("?"))
        else:
            from azure.identity.aio import DefaultAzureCredential

            credential = DefaultAzureCredential()
        return BlobServiceClient(url, credential=credential, **settings)

    def connect() -> AbstractFileSystem:
        try:
            from adlfs import AzureBlobFileSystem
        except ImportError:
            raise MissingExtraError("azure", "adlfs") from None

        class _AzureBlobFileSystem(AzureBlobFileSystem):  # type: ignore[misc]
            # adlfs builds its client without retry or timeout settings; build our own.
            def do_connect(self) -> None:
                self.service_client = client()

        sas = creds.get("sas_token")
        fs = _AzureBlobFileSystem(
            account_name=account or "",
            # anon only stops adlfs from building a credential of its own; ours is in client().
            anon=True,
            sas_token=None if sas is None else sas.reveal(),
            assume_container_exists=True,
            use_listings_cache=False,
            skip_instance_cache=True,
        )
        return cast("AbstractFileSystem", fs)

    return AzureStore(
        None,
        root,
        display,
        connect=connect,
        secrets=list(creds.values()),
        container_kind="container",
    )


def _sftp(
    definition: FileDestination,
    options: Mapping[str, str],
    secrets: SecretResolver,
    workspace_root: Path,
) -> FileStore:
    _known(options, _COMMON_OPTIONS | {"host", "port", "username", "known_hosts"}, definition)
    creds = _credentials(definition, secrets, {"password", "private_key", "passphrase"})
    host = _option(options, "host", definition)
    port = _option(options, "port", definition)
    username = _option(options, "username", definition)
    folder = definition.path
    if definition.path.startswith("sftp://"):
        parts = urlsplit(definition.path)
        host = parts.hostname or host
        port = str(parts.port) if parts.port else port
        username = parts.username or username
        if parts.password:
            raise ConfigError(
                f"destination {definition.name}: put the SFTP password in "
                "credentials.password, not in the path"
            )
        folder = parts.path or "/"
    elif "://" in definition.path:
        raise ConfigError(
            f"destination {definition.name}: path {definition.path!r} is not an SFTP location",
            hint="write it as sftp://user@host:port/folder, or a folder with options.host",
        )
    if not host:
        raise ConfigError(
            f"destination {definition.name}: SFTP needs a host (sftp://host/folder or options.host)"
        )
    if not username:
        raise ConfigError(
            f"destination {definition.name}: SFTP needs a username (sftp://user@host/folder "
            "or options.username)"
        )
    if "password" not in creds and "private_key" not in creds:
        raise ConfigError(
            f"destination {definition.name}: SFTP needs credentials.password or "
            "credentials.private_key"
        )
    try:
        port_number = int(port or 22)
    except ValueError:
        raise ConfigError(f"destination {definition.name}: options.port must be a number") from None
    known_hosts = _option(options, "known_hosts", definition)
    known_path = Path(known_hosts).expanduser() if known_hosts else Path("~/.ssh/known_hosts")
    known_path = known_path.expanduser()
    if not known_path.is_absolute():
        known_path = workspace_root / known_path
    timeout = _number(options, "timeout", DEFAULT_TIMEOUT, definition)
    folder = "/" + folder.strip("/") if folder.strip("/") else "/"
    shown_port = "" if port_number == 22 else f":{port_number}"
    display = f"sftp://{username}@{host}{shown_port}{folder}"

    def connect() -> AbstractFileSystem:
        try:
            import paramiko
            from fsspec.implementations.sftp import SFTPFileSystem
        except ImportError:
            raise MissingExtraError("sftp", "paramiko") from None
        if not known_path.is_file():
            raise ConfigError(
                f"destination {definition.name}: the known_hosts file {known_path} is missing",
                hint=f"add the server's key: ssh-keyscan -p {port_number} {host} >> {known_path}",
            )
        host_keys = paramiko.HostKeys(str(known_path))
        kwargs: dict[str, Any] = {
            "port": port_number,
            "username": username,
            "timeout": timeout,
            "banner_timeout": timeout,
            "auth_timeout": timeout,
            # Credentials come from the definition only, never from ~/.ssh or an agent.
            "look_for_keys": False,
            "allow_agent": False,
            "host_key_policy": _known_hosts_policy(host_keys, str(known_path)),
        }
        if "password" in creds:
            kwargs["password"] = creds["password"].reveal()
        if "private_key" in creds:
            kwargs["pkey"] = _private_key(creds["private_key"], creds.get("passphrase"), definition)
        fs = SFTPFileSystem(host, skip_instance_cache=True, **kwargs)
        return cast("AbstractFileSystem", fs)

    return SftpStore(None, folder, display, connect=connect, secrets=list(creds.values()))


def _private_key(key: Secret, passphrase: Secret | None, definition: FileDestination) -> Any:
    import paramiko

    password = None if passphrase is None else passphrase.reveal()
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(key.reveal()), password=password)
        except paramiko.PasswordRequiredException:
            raise ConfigError(
                f"destination {definition.name}: credentials.private_key ({key.name}) is "
                "encrypted: give credentials.passphrase"
            ) from None
        except (paramiko.SSHException, ValueError):
            continue
    raise ConfigError(
        f"destination {definition.name}: credentials.private_key ({key.name}) is not an "
        "OpenSSH or PEM private key (Ed25519, ECDSA or RSA), or the passphrase is wrong"
    )


def _known_hosts_policy(keys: Any, path: str) -> Any:
    """A paramiko policy that accepts a server only when its key is in ``keys``."""
    import paramiko

    class KnownHostsPolicy(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
        # The client itself knows no key, so paramiko asks this policy about every server.
        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            entry = keys.lookup(hostname)
            if entry is None:
                raise paramiko.SSHException(
                    f"the host key of {hostname} is not in known_hosts ({path})"
                )
            expected = entry.get(key.get_name())
            if expected is None or expected != key:
                raise paramiko.BadHostKeyException(hostname, key, expected or key)

    return KnownHostsPolicy()


def _reveal(secret: Secret | None) -> str | None:
    return None if secret is None else secret.reveal()


# --- classifying failures ---------------------------------------------------------------------

_AUTH_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "ExpiredToken",
    "InvalidToken",
    "AuthorizationFailure",
    "AuthenticationFailed",
    "AuthorizationPermissionMismatch",
    "InvalidClientTokenId",
}
_MISSING_CODES = {"NoSuchBucket", "ContainerNotFound"}
_UNREACHABLE = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionClosedError",
    "ServiceRequestError",
    "ServiceResponseError",
    "ClientConnectorError",
    "ServerDisconnectedError",
    "NoValidConnectionsError",
    "TransportError",
}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _status(exc: BaseException) -> tuple[int | None, str | None]:
    """HTTP status and error code, from botocore, azure-core or gcsfs errors."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        error = response.get("Error", {})
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return (int(status) if status else None), error.get("Code")
    status = getattr(exc, "status_code", None)  # azure-core HttpResponseError
    if isinstance(status, int):
        return status, getattr(exc, "error_code", None)
    code = getattr(exc, "code", None)  # gcsfs HttpError
    if isinstance(code, int) and 100 <= code < 600:
        return code, None
    return None, None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."


def _classify(exc: BaseException) -> tuple[Attribution, str, str | None]:
    """(attribution, reason, hint) for a client library's exception."""
    chain = list(_chain(exc))
    names = {type(e).__name__ for e in chain}
    for error in chain:
        name = type(error).__name__
        if name in {"AuthenticationException", "BadAuthenticationType"}:
            return (
                "configuration",
                "the server refused the credentials",
                "check the username, password or private key",
            )
        if name == "BadHostKeyException":
            return (
                "configuration",
                "the server's host key does not match known_hosts",
                "if the server's key was changed on purpose, update known_hosts",
            )
        if name == "SSHException" and "known_hosts" in str(error):
            return (
                "configuration",
                _first_line(error),
                "add the server's key to the known_hosts file (ssh-keyscan)",
            )
        if name == "ClientAuthenticationError":
            return "configuration", "the server refused the credentials", "check the credentials"
        if name == "RefreshError":
            if getattr(error, "retryable", False):
                return "platform", f"the token service failed: {_first_line(error)}", None
            return (
                "configuration",
                f"the credentials were refused: {_first_line(error)}",
                "check credentials.service_account_json",
            )
        status, code = _status(error)
        if code in _AUTH_CODES or status in {401, 403}:
            return (
                "configuration",
                f"access denied ({code or status})",
                "check the credentials and their permissions on the bucket",
            )
        if code in _MISSING_CODES:
            return "configuration", f"the bucket or container does not exist ({code})", None
        if status is not None and (status >= 500 or status in {408, 429}):
            return "platform", f"the service failed ({status}): {_first_line(error)}", None
    if any(isinstance(e, PermissionError) for e in chain):
        return "configuration", "access denied", "check the credentials and their permissions"
    if any(isinstance(e, (FileExistsError, NotADirectoryError)) for e in chain):
        # A file where the folder should be: the path needs fixing, retrying will not help.
        return (
            "configuration",
            f"a file is in the way: {_first_line(exc)}",
            "the destination's path (or a folder in the file name) names an existing file",
        )
    if any(getattr(e, "errno", None) in (errno.ENOSPC, errno.EROFS, errno.EDQUOT) for e in chain):
        return (
            "configuration",
            f"the target cannot take the file: {_first_line(exc)}",
            "free space on the target, or make it writable",
        )
    if names & _UNREACHABLE or any(
        isinstance(e, (ConnectionError, TimeoutError, socket.gaierror)) for e in chain
    ):
        return (
            "platform",
            f"the server is unreachable: {_first_line(exc)}",
            "check the host, port or endpoint, and that the service is up",
        )
    if any(type(e).__name__ == "SSHException" for e in chain):
        return "platform", f"the SSH session failed: {_first_line(exc)}", None
    return "platform", f"{type(exc).__name__}: {_first_line(exc)}", None


# --- the connection test ----------------------------------------------------------------------


def probe(store: FileStore) -> list[Check]:
    """Write, publish, read back and delete a small object: ``destination test`` for files.

    The probe is a dot-name (``.activator-probe-<token>``), which readers skip. Steps after a
    failed one are not tried; whatever the probe left behind is removed on a best-effort basis.
    """
    token = token_source.token_hex(6)
    final = f".activator-probe-{token}"
    temp = store.temp_name(final, token)
    content = f"activator probe {token}\n".encode()
    checks: list[Check] = []

    def step(label: str, action: Callable[[], str | None]) -> bool:
        try:
            detail = action() or ""
        except (DestinationError, ConfigError, MissingExtraError, FileNotFoundError) as exc:
            text = store.scrub(str(exc))
            attribution = getattr(exc, "attribution", None)
            checks.append(Check(label, False, f"{text} [{attribution}]" if attribution else text))
            return False
        checks.append(Check(label, True, detail))
        return True

    def write() -> str:
        with store.open_write(temp) as handle:
            handle.write(content)
        return f"wrote {len(content)} bytes to {temp}"

    def publish() -> str:
        store.publish(temp, final)
        if store.exists(temp):
            raise DestinationError(
                f"{store.display}: the temporary object {temp} is still there after publish"
            )
        how = "renamed" if store.atomic_rename else "copied, then deleted the temporary object"
        return f"{how}: {final}"

    def read() -> str:
        back = store.read_bytes(final)
        if back != content:
            raise DestinationError(
                f"{store.display}: {final} reads back {len(back)} bytes that differ from the "
                f"{len(content)} written"
            )
        return f"read back {len(back)} bytes, identical"

    def delete() -> str:
        store.delete(final)
        if store.exists(final):
            raise DestinationError(f"{store.display}: {final} is still there after delete")
        return f"deleted {final}"

    ok = (
        step(f"write a probe file in {store.display}", write)
        and step("publish it under its final name", publish)
        and step("read it back", read)
        and step("delete it", delete)
    )
    if not ok:
        for name in (temp, final):
            try:
                store.delete(name)
            except Exception:
                continue
    return checks

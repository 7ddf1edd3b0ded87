"""Credentials: references in definitions, values resolved only at the moment of use.

Two kinds of reference (``activator.definitions.common``):

* ``{env: NAME}`` reads the environment variable ``NAME`` of the process doing the work;
* ``{secret: NAME}`` reads the workspace's local secrets store, ``.activator/secrets.json``,
  whose values are encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under a key taken from the
  environment variable ``ACTIVATOR_SECRETS_KEY``. The file can sit next to the workspace and even
  be committed: without the key it reveals only the names.

Values are wrapped in :class:`Secret`, whose ``str``/``repr`` never show the value; the one way
to read it is :meth:`Secret.reveal`, called by a connector right where it hands the value to a
client library. Errors name the reference (the variable or secret name), never the value.
"""

from __future__ import annotations

__all__ = [
    "KEY_VARIABLE",
    "Secret",
    "SecretResolver",
    "SecretsStore",
]

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from activator.definitions.common import EnvSecret, SecretRef, StoreSecret
from activator.errors import ConfigError

KEY_VARIABLE = "ACTIVATOR_SECRETS_KEY"
"""The environment variable holding the secrets store's Fernet key."""

STORE_PATH = Path(".activator") / "secrets.json"
"""The secrets store, relative to the workspace folder."""


class Secret:
    """A credential's value that does not print itself."""

    __slots__ = ("_name", "_value")

    def __init__(self, name: str, value: str) -> None:
        self._name = name
        self._value = value

    @property
    def name(self) -> str:
        """Where the value came from (``env:NAME`` or ``secret:NAME``): safe to show."""
        return self._name

    def reveal(self) -> str:
        """The value itself: hand it to the client library, never to a message or a log."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self._name}, ***)"

    __str__ = __repr__


def describe(ref: SecretRef) -> str:
    """A safe description of a reference: ``env:NAME`` or ``secret:NAME``."""
    return f"env:{ref.env}" if isinstance(ref, EnvSecret) else f"secret:{ref.secret}"


class SecretsStore:
    """The workspace's encrypted secrets file: names in clear, values Fernet-encrypted."""

    def __init__(self, workspace_root: Path, environ: Mapping[str, str] | None = None) -> None:
        self.path = workspace_root / STORE_PATH
        self._environ = os.environ if environ is None else environ

    def _fernet(self) -> Fernet:
        key = self._environ.get(KEY_VARIABLE)
        if not key:
            raise ConfigError(
                f"the secrets store needs a key in the environment variable {KEY_VARIABLE}",
                hint="create one with `activator secrets key`, keep it in your secret manager "
                f"and export {KEY_VARIABLE} before running",
            )
        try:
            return Fernet(key.encode())
        except ValueError as exc:
            raise ConfigError(
                f"{KEY_VARIABLE} is not a valid key (32 url-safe base64-encoded bytes)",
                hint="create one with `activator secrets key`",
            ) from exc

    def _read(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.path}: cannot read the secrets store: {exc}") from exc
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ConfigError(f"{self.path}: not a secrets store (expected name → token)")
        return data

    def names(self) -> list[str]:
        """The names of the stored secrets (no key needed)."""
        return sorted(self._read())

    def get(self, name: str) -> Secret:
        """Decrypt one secret."""
        data = self._read()
        if name not in data:
            raise ConfigError(
                f"secret {name!r} is not in the secrets store {self.path}",
                hint=f"add it with `activator secrets set {name}`",
            )
        try:
            value = self._fernet().decrypt(data[name].encode()).decode()
        except InvalidToken as exc:
            raise ConfigError(
                f"secret {name!r} cannot be decrypted with the key in {KEY_VARIABLE}",
                hint="the key differs from the one the secret was stored with",
            ) from exc
        return Secret(f"secret:{name}", value)

    def set(self, name: str, value: str) -> None:
        """Encrypt and store one secret (the file is replaced atomically, mode 0600)."""
        data = self._read()
        data[name] = self._fernet().encrypt(value.encode()).decode()
        self._write(data)

    def delete(self, name: str) -> bool:
        """Remove a secret; False when there was none by that name."""
        data = self._read()
        if data.pop(name, None) is None:
            return False
        self._write(data)
        return True

    def _write(self, data: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".secrets.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, indent=2, sort_keys=True)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class SecretResolver:
    """Resolves secret references for connectors, from the environment or the store."""

    def __init__(self, workspace_root: Path, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._store = SecretsStore(workspace_root, self._environ)

    def resolve(self, ref: SecretRef, *, what: str) -> Secret:
        """The value of ``ref``; ``what`` names the setting for error messages.

        Raises:
            ConfigError: the variable is unset or the secret missing (naming the reference,
                never a value).
        """
        if isinstance(ref, StoreSecret):
            return self._store.get(ref.secret)
        value = self._environ.get(ref.env)
        if value is None:
            raise ConfigError(
                f"{what}: environment variable {ref.env} is not set",
                hint=f"export {ref.env} in the environment that runs Activator",
            )
        return Secret(f"env:{ref.env}", value)

    def optional(self, refs: Mapping[str, SecretRef], key: str, *, what: str) -> Secret | None:
        """Resolve ``refs[key]`` when the destination gives it, else None."""
        ref = refs.get(key)
        return None if ref is None else self.resolve(ref, what=f"{what}.credentials.{key}")

"""Credentials: references resolved at the moment of use, values never shown or stored plain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from activator.definitions.common import EnvSecret, StoreSecret
from activator.destinations.secrets import KEY_VARIABLE, SecretResolver, SecretsStore
from activator.errors import ConfigError

VALUE = "s3cr3t-Value-42"


@pytest.fixture
def environ() -> dict[str, str]:
    return {KEY_VARIABLE: Fernet.generate_key().decode(), "API_TOKEN": VALUE}


def test_environment_references_resolve_and_never_print_their_value(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    secret = SecretResolver(tmp_path, environ).resolve(EnvSecret(env="API_TOKEN"), what="hook")
    assert secret.reveal() == VALUE
    assert secret.name == "env:API_TOKEN"
    assert VALUE not in repr(secret)
    assert VALUE not in str(secret)
    assert VALUE not in f"{secret}"


def test_a_missing_variable_names_the_setting_and_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"hook\.credentials\.token: environment variable NOPE"):
        SecretResolver(tmp_path, {}).resolve(EnvSecret(env="NOPE"), what="hook.credentials.token")


def test_the_store_encrypts_values_at_rest_and_decrypts_with_the_key(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    store = SecretsStore(tmp_path, environ)
    store.set("db_password", VALUE)
    text = store.path.read_text()
    assert VALUE not in text
    assert list(json.loads(text)) == ["db_password"]
    assert oct(store.path.stat().st_mode & 0o777) == "0o600"
    resolved = SecretResolver(tmp_path, environ).resolve(
        StoreSecret(secret="db_password"), what="x"
    )
    assert resolved.reveal() == VALUE
    assert store.names() == ["db_password"]
    assert store.delete("db_password")
    assert not store.delete("db_password")
    assert store.names() == []


def test_a_wrong_or_missing_key_is_a_clear_error_without_the_value(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    SecretsStore(tmp_path, environ).set("token", VALUE)
    other = {KEY_VARIABLE: Fernet.generate_key().decode()}
    with pytest.raises(ConfigError, match="cannot be decrypted") as wrong:
        SecretsStore(tmp_path, other).get("token")
    assert VALUE not in str(wrong.value)
    with pytest.raises(ConfigError, match=KEY_VARIABLE):
        SecretsStore(tmp_path, {}).get("token")
    with pytest.raises(ConfigError, match="not a valid key"):
        SecretsStore(tmp_path, {KEY_VARIABLE: "short"}).get("token")
    with pytest.raises(ConfigError, match="'missing' is not in the secrets store"):
        SecretsStore(tmp_path, environ).get("missing")

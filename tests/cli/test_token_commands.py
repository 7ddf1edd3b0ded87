"""``activator token create | list | revoke``, as a user runs them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from activator.store.store import MetadataStore
from tests.cli.runner import activator, as_json

pytestmark = pytest.mark.e2e

STORE_URL = "sqlite:///.activator/metadata.db"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    result = activator("init", str(root))
    assert result.returncode == 0, result.stderr
    return root


def _store(root: Path) -> MetadataStore:
    return MetadataStore.open(STORE_URL, workspace_root=root)


def test_create_list_revoke(workspace: Path) -> None:
    created = activator("-w", str(workspace), "token", "create", "--role", "editor", "--json")
    assert created.returncode == 0, created.stderr
    document = as_json(created)
    assert set(document) == {"token_id", "name", "role", "token", "created_at"}
    token_id, plain = document["token_id"], document["token"]
    assert document["name"] == f"token-{token_id}"
    assert document["role"] == "editor"
    assert plain.startswith("act_")
    assert "not shown again" in created.stderr

    named = activator(
        "-w", str(workspace), "token", "create", "--role", "viewer", "--name", "dashboard"
    )
    assert named.returncode == 0, named.stderr
    assert "dashboard" in named.stdout
    assert "not shown again" in named.stdout
    dashboard_token = next(w for w in named.stdout.split() if w.startswith("act_"))

    with _store(workspace) as store:
        found = store.authenticate(plain)
        assert found is not None
        assert (found.token_id, found.role) == (token_id, "editor")
        viewer = store.authenticate(dashboard_token)
        assert viewer is not None
        assert (viewer.name, viewer.role, viewer.created_by) == ("dashboard", "viewer", "cli")

    listed = activator("-w", str(workspace), "token", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    tokens = as_json(listed)["tokens"]
    assert [(t["name"], t["role"], t["revoked_at"]) for t in tokens] == [
        (f"token-{token_id}", "editor", None),
        ("dashboard", "viewer", None),
    ]
    assert set(tokens[0]) == {
        "token_id",
        "name",
        "role",
        "created_at",
        "created_by",
        "last_used_at",
        "revoked_at",
    }
    # Neither the values nor their hashes are ever listed.
    digest = hashlib.sha256(plain.encode()).hexdigest()
    assert plain not in listed.stdout
    assert digest not in listed.stdout
    table = activator("-w", str(workspace), "token", "list")
    assert "dashboard" in table.stdout
    assert plain not in table.stdout
    assert dashboard_token not in table.stdout

    revoked = activator("-w", str(workspace), "token", "revoke", token_id, "--json")
    assert revoked.returncode == 0, revoked.stderr
    revoked_doc = as_json(revoked)
    assert revoked_doc["token_id"] == token_id
    assert revoked_doc["revoked_at"] is not None
    again = activator("-w", str(workspace), "token", "revoke", token_id, "--json")
    assert again.returncode == 0, again.stderr
    assert as_json(again)["revoked_at"] == revoked_doc["revoked_at"]

    with _store(workspace) as store:
        assert store.authenticate(plain) is None
        assert store.authenticate(dashboard_token) is not None
        entries = store.audit_log(kind="token")
    # Newest first; the second revoke changed nothing and is not recorded.
    assert [(e.actor, e.action, e.name) for e in entries] == [
        ("cli", "revoke", f"token-{token_id}"),
        ("cli", "create", "dashboard"),
        ("cli", "create", f"token-{token_id}"),
    ]
    assert entries[-1].detail == {"token_id": token_id, "role": "editor"}


def test_bad_role_and_unknown_token_exit_2(workspace: Path) -> None:
    bad = activator("-w", str(workspace), "token", "create", "--role", "owner", "--json")
    assert bad.returncode == 2
    error = as_json(bad)["error"]
    assert error["type"] == "StoreError"
    assert (
        error["message"] == "unknown role 'owner': a token's role is one of viewer, editor, admin"
    )

    unknown = activator("-w", str(workspace), "token", "revoke", "abc123")
    assert unknown.returncode == 2
    assert "no API token 'abc123'" in unknown.stderr

    empty = activator("-w", str(workspace), "token", "list")
    assert empty.returncode == 0, empty.stderr
    assert "No API tokens yet" in empty.stdout

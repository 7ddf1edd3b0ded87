"""Who may do what, checked on every operation of the live OpenAPI document.

The table :data:`REQUIRED_ROLE` names the least role each mutating operation needs; the tests
compare it with the document (a new endpoint without an entry fails), then call every
mutating operation without a token (401), with each role below the one it needs (403, and
nothing changes: definitions, runs, tokens, secrets, files and the audit log are as before)
and with the role it needs (admitted: 404 or 422 on purpose-made wrong input, never 401/403).
Every read needs a token too, except the health check and the API's own documentation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.api import ApiServer, error_of

ROLES = ("viewer", "editor", "admin")
"""From the least to the most powerful."""

MUTATING = ("post", "put", "patch", "delete")

REQUIRED_ROLE: dict[str, str] = {
    # runs
    "retry_run": "editor",
    "restart_run": "editor",
    "cancel_run": "editor",
    # segments
    "create_segment": "editor",
    "update_segment": "editor",
    "delete_segment": "editor",
    # destinations hold references to credentials: admins only
    "create_destination": "admin",
    "update_destination": "admin",
    "delete_destination": "admin",
    "test_destination": "admin",
    # campaigns
    "create_campaign": "editor",
    "update_campaign": "editor",
    "delete_campaign": "editor",
    "run_campaign": "editor",
    "pause_campaign": "editor",
    "resume_campaign": "editor",
    "archive_campaign": "editor",
    "test_send_campaign": "editor",
    # journeys
    "create_journey": "editor",
    "update_journey": "editor",
    "delete_journey": "editor",
    "run_journey": "editor",
    "pause_journey": "editor",
    "resume_journey": "editor",
    "end_journey": "editor",
    "archive_journey": "editor",
    # orchestrations
    "create_orchestration": "editor",
    "update_orchestration": "editor",
    "delete_orchestration": "editor",
    "run_orchestration": "editor",
    "pause_orchestration": "editor",
    "resume_orchestration": "editor",
    "end_orchestration": "editor",
    "archive_orchestration": "editor",
    "test_send_orchestration": "editor",
    # orchestration groups
    "create_group": "editor",
    "update_group": "editor",
    "delete_group": "editor",
    "run_group": "editor",
    "pause_group": "editor",
    "resume_group": "editor",
    "end_group": "editor",
    "archive_group": "editor",
    "test_send_group": "editor",
    # tokens and secrets
    "create_token": "admin",
    "revoke_token": "admin",
    "set_secret": "admin",
    "delete_secret": "admin",
}
"""operation_id → the least role allowed to call it."""

ADMIN_READS = frozenset({"list_tokens", "list_audit", "list_secrets"})
"""Reads only admins may do."""

PUBLIC = ("/api/health", "/openapi.json", "/docs")
"""What answers without a token."""

PLURALS = ("segments", "destinations", "campaigns", "journeys", "orchestrations", "groups")

NEW_DEFINITIONS: dict[str, dict[str, Any]] = {
    "segments": {"name": "made", "rules": {"attribute": "customers.parity", "op": "=",
                                           "value": 1}},
    "destinations": {"name": "made", "type": "local", "path": "made", "format": {"type": "csv"}},
    "campaigns": {
        "name": "made",
        "audience": {"include": ["everyone"]},
        "destinations": [{"destination": "drop", "mapping": {"customer_id": "customer_id"}}],
        "remaining": {"groups": [{"name": "all", "percent": 100}]},
    },
    "journeys": {
        "name": "made",
        "start": {"entry": ["everyone"]},
        "nodes": [{"id": "hello", "type": "activate", "destinations": [{"destination": "drop"}]}],
        "schedule": {"type": "recurring", "every": "daily"},
    },
    "orchestrations": {"name": "made", "query": "SELECT customer_id FROM customers",
                       "destination": "drop"},
    "groups": {"name": "made", "orchestrations": ["feed"]},
}  # fmt: skip
"""A valid new definition of each kind (named ``made``)."""

PROBE_VALUE = "probe-canary-4b1d9e"
"""The value of the secret ``probe`` that :func:`prepare` sets."""

FINISHED = frozenset({"succeeded", "warning", "failed", "canceled"})


@dataclass(frozen=True)
class Operation:
    """One operation of the OpenAPI document."""

    method: str
    path: str
    operation_id: str


@dataclass(frozen=True)
class Names:
    """Real path parameters in the test workspace."""

    definitions: dict[str, str]
    """URL segment (``segments``...) → the name of one definition of that kind."""

    secret: str
    run_id: str
    token_id: str
    customer_id: str = "2"

    def path(self, template: str) -> str:
        """``template`` with its parameters filled in."""
        collection = template.split("/")[2]
        if "{name}" in template:
            name = self.secret if collection == "secrets" else self.definitions[collection]
            template = template.replace("{name}", name)
        values = {
            "{run_id}": self.run_id,
            "{token_id}": self.token_id,
            "{customer_id}": self.customer_id,
        }
        for placeholder, value in values.items():
            template = template.replace(placeholder, value)
        assert "{" not in template, f"no test value for a parameter of {template}"
        return template

    def missing(self, template: str) -> str:
        """``template`` with every parameter naming something that does not exist."""
        missing = Names(
            definitions=dict.fromkeys(PLURALS, "no-such-name"),
            secret="no-such-secret",
            run_id="no-such-run",
            token_id="no-such-token",
            customer_id="no-such-customer",
        )
        return missing.path(template)


def operations(server: ApiServer) -> list[Operation]:
    """Every operation of the live OpenAPI document."""
    response = server.client(None).get("/openapi.json")
    assert response.status_code == 200
    return [
        Operation(method=method, path=path, operation_id=op["operationId"])
        for path, ops in response.json()["paths"].items()
        for method, op in ops.items()
    ]


def wait_for_run(client: httpx.Client, run_id: str, timeout: float = 60) -> dict[str, Any]:
    """The run once it has finished."""
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = client.get(f"/api/runs/{run_id}").json()
        if run["status"] in FINISHED:
            return run
        assert time.monotonic() < deadline, f"run {run_id} did not finish: {run['status']}"
        time.sleep(0.1)


def prepare(server: ApiServer) -> Names:
    """Add a journey, a group, a secret and a finished run to the fixture workspace."""
    editor, admin = server.client("editor"), server.client("admin")
    for plural in ("journeys", "groups"):
        body = {**NEW_DEFINITIONS[plural], "name": "first"}
        assert editor.post(f"/api/{plural}", json=body).status_code == 201
    assert admin.put("/api/secrets/probe", json={"value": PROBE_VALUE}).status_code == 204
    launched = editor.post("/api/orchestrations/feed/runs")
    assert launched.status_code == 202, launched.text
    run_id = launched.json()["run_id"]
    assert wait_for_run(editor, run_id)["status"] == "succeeded"
    tokens = {t["name"]: t["token_id"] for t in admin.get("/api/tokens").json()}
    return Names(
        definitions={
            "segments": "everyone",
            "destinations": "drop",
            "campaigns": "promo",
            "journeys": "first",
            "orchestrations": "feed",
            "groups": "first",
        },
        secret="probe",
        run_id=run_id,
        token_id=tokens["viewer-token"],
    )


def request_for(
    op: Operation, names: Names, admin: httpx.Client
) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """A body and headers with which ``op`` would change something, if it were allowed."""
    collection = op.path.split("/")[2]
    if op.operation_id.startswith("create_") and collection in NEW_DEFINITIONS:
        return NEW_DEFINITIONS[collection], {}
    if op.operation_id.startswith("update_"):
        current = admin.get(names.path(op.path))
        assert current.status_code == 200, current.text
        spec = {**current.json()["spec"], "description": "changed"}
        return spec, {"If-Match": current.headers["etag"]}
    bodies: dict[str, dict[str, Any]] = {
        "create_token": {"role": "admin", "name": "sneaky"},
        "set_secret": {"value": "overwritten"},
        "test_send_campaign": {"sample": 1},
        "test_send_orchestration": {"sample": 1},
        "test_send_group": {"sample": 1},
    }
    return bodies.get(op.operation_id), {}


def snapshot(server: ApiServer) -> dict[str, Any]:
    """What a refused request must leave as it was."""
    admin = server.client("admin")
    definitions = {
        plural: admin.get(f"/api/{plural}", params={"include_archived": True}).json()
        for plural in PLURALS
    }
    runs = admin.get("/api/runs", params={"include_tests": True, "limit": 500}).json()
    tokens = [{k: v for k, v in t.items() if k != "last_used_at"}
              for t in admin.get("/api/tokens").json()]  # fmt: skip
    files = {
        str(path.relative_to(server.root)): path.read_bytes()
        for path in sorted(server.root.rglob("*"))
        if path.is_file() and not _changes_on_reads(path.relative_to(server.root))
    }
    return {
        "definitions": definitions,
        "runs": runs,
        "tokens": tokens,
        "secrets": admin.get("/api/secrets").json(),
        "audit": admin.get("/api/audit", params={"limit": 1000}).json(),
        "files": files,
    }


def _changes_on_reads(relative: Path) -> bool:
    # The metadata store records each token's last use; the engine's file is DuckDB's.
    return relative.parts[0] == "data" or relative.name.startswith("metadata.db")


def test_the_role_table_covers_exactly_the_mutating_operations(api_server: ApiServer) -> None:
    mutating = {op.operation_id for op in operations(api_server) if op.method in MUTATING}
    assert sorted(mutating - set(REQUIRED_ROLE)) == [], "operations missing from REQUIRED_ROLE"
    assert sorted(set(REQUIRED_ROLE) - mutating) == [], "REQUIRED_ROLE names unknown operations"
    assert set(REQUIRED_ROLE.values()) <= {"editor", "admin"}


def test_every_mutation_without_a_valid_token_is_401(api_server: ApiServer) -> None:
    names = prepare(api_server)
    before = snapshot(api_server)
    admin = api_server.client("admin")
    anonymous = api_server.client(None)
    unknown = api_server.client(None, Authorization="Bearer act_not-a-real-token")
    not_bearer = api_server.client(None, Authorization=f"Basic {api_server.tokens['admin']}")
    wrong = []
    for op in operations(api_server):
        if op.method not in MUTATING:
            continue
        body, headers = request_for(op, names, admin)
        for client, message in (
            (anonymous, "this request needs an API token: Authorization: Bearer <token>"),
            (unknown, "the API token is unknown or revoked"),
            (not_bearer, "this request needs an API token: Authorization: Bearer <token>"),
        ):
            response = client.request(op.method, names.path(op.path), json=body, headers=headers)
            got = (response.status_code, response.headers.get("www-authenticate"))
            if got != (401, "Bearer"):
                wrong.append(f"{op.operation_id}: {got} {response.text[:200]}")
                continue
            error = error_of(response)
            if (error["type"], error["message"]) != ("unauthenticated", message):
                wrong.append(f"{op.operation_id}: {error}")
    assert wrong == []
    assert snapshot(api_server) == before


def test_every_mutation_below_its_role_is_403_and_changes_nothing(api_server: ApiServer) -> None:
    names = prepare(api_server)
    admin = api_server.client("admin")
    clients = {role: api_server.client(role) for role in ROLES}
    requests = [
        (op, *request_for(op, names, admin))
        for op in operations(api_server)
        if op.method in MUTATING
    ]
    before = snapshot(api_server)
    wrong = []
    tried = 0
    for op, body, headers in requests:
        needed = REQUIRED_ROLE[op.operation_id]
        for role in ROLES[: ROLES.index(needed)]:
            tried += 1
            response = clients[role].request(
                op.method, names.path(op.path), json=body, headers=headers
            )
            if response.status_code != 403:
                wrong.append(f"{op.operation_id} as {role}: {response.status_code} "
                             f"{response.text[:200]}")  # fmt: skip
                continue
            # The message names the role needed and the caller's token and role.
            error = error_of(response)
            message = error["message"]
            if error["type"] != "forbidden" or not (
                message.startswith(f"this needs the {needed} role; token '{role}-token' ")
                and message.endswith(f" {role} role")
            ):
                wrong.append(f"{op.operation_id} as {role}: {error}")
    assert wrong == []
    # Each operation is refused to every role below the one it needs.
    assert tried == sum(ROLES.index(role) for role in REQUIRED_ROLE.values())
    assert snapshot(api_server) == before
    # The refused creations were valid: the role needed makes them.
    for op, body, headers in requests:
        if op.operation_id.startswith("create_"):
            made = clients[REQUIRED_ROLE[op.operation_id]].post(op.path, json=body, headers=headers)
            assert made.status_code == 201, (op.operation_id, made.text)


def test_the_role_needed_is_admitted(api_server: ApiServer) -> None:
    names = prepare(api_server)
    admin = api_server.client("admin")
    clients = {role: api_server.client(role) for role in ROLES}
    before = snapshot(api_server)
    wrong = []
    for op in operations(api_server):
        if op.method not in MUTATING or op.operation_id == "set_secret":
            continue
        role = REQUIRED_ROLE[op.operation_id]
        if "{" in op.path:
            # Something that does not exist: the role is admitted, then the name is not found.
            body, headers = request_for(op, names, admin)
            path = names.missing(op.path)
            expected = (404, "not_found")
        else:
            body, headers, path = {}, {}, op.path
            expected = (422, "validation")
        response = clients[role].request(op.method, path, json=body, headers=headers)
        got = (response.status_code, error_of(response)["type"])
        if got != expected:
            wrong.append(f"{op.operation_id} as {role}: {got} {response.text[:200]}")
    # Setting a secret creates it: an empty value is refused after the role is admitted.
    response = clients["admin"].put("/api/secrets/probe", json={"value": ""})
    assert (response.status_code, error_of(response)["type"]) == (422, "validation")
    assert wrong == []
    assert snapshot(api_server) == before


def test_every_read_needs_a_token_except_health_and_docs(api_server: ApiServer) -> None:
    names = prepare(api_server)
    anonymous = api_server.client(None)
    reads = [op for op in operations(api_server) if op.method == "get"]
    assert {op.path for op in reads if op.operation_id == "health"} == {"/api/health"}
    wrong = []
    for op in reads:
        if op.operation_id == "health":
            continue
        response = anonymous.get(names.path(op.path), params={"conversion": "orders"})
        if response.status_code != 401 or response.headers.get("www-authenticate") != "Bearer":
            wrong.append(f"{op.operation_id}: {response.status_code} {response.text[:200]}")
        elif error_of(response)["type"] != "unauthenticated":
            wrong.append(f"{op.operation_id}: {response.text}")
    assert wrong == []
    for path in PUBLIC:
        assert anonymous.get(path).status_code == 200, path
    assert anonymous.get("/api/health").json()["status"] == "ok"


def test_a_viewer_reads_every_list_and_only_admins_read_tokens_audit_and_secrets(
    api_server: ApiServer,
) -> None:
    lists = [
        op
        for op in operations(api_server)
        if op.method == "get" and "{" not in op.path and op.operation_id != "health"
    ]
    assert {op.operation_id for op in lists} == {
        "list_activations", "list_runs", "list_segments", "list_destinations", "list_campaigns",
        "list_journeys", "list_orchestrations", "list_groups", *ADMIN_READS,
    }  # fmt: skip
    clients = {role: api_server.client(role) for role in ROLES}
    for op in lists:
        for role in ROLES:
            response = clients[role].get(op.path)
            allowed = op.operation_id not in ADMIN_READS or role == "admin"
            if allowed:
                assert response.status_code == 200, (op.operation_id, role, response.text)
            else:
                assert response.status_code == 403, (op.operation_id, role, response.text)
                assert error_of(response)["type"] == "forbidden"


def test_a_revoked_token_is_refused_on_its_next_request(api_server: ApiServer) -> None:
    admin = api_server.client("admin")
    created = admin.post("/api/tokens", json={"role": "editor", "name": "short-lived"})
    assert created.status_code == 201
    token = created.json()["token"]
    token_id = created.json()["token_id"]
    holder = api_server.client(None, Authorization=f"Bearer {token}")
    assert holder.get("/api/segments").status_code == 200

    revoked = admin.delete(f"/api/tokens/{token_id}")
    assert revoked.status_code == 200
    assert revoked.json()["token_id"] == token_id
    assert revoked.json()["revoked_at"] is not None

    for method, path in (("GET", "/api/segments"), ("POST", "/api/campaigns/promo/pause")):
        response = holder.request(method, path)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        error = error_of(response)
        assert (error["type"], error["message"]) == (
            "unauthenticated",
            "the API token is unknown or revoked",
        )
    assert admin.get("/api/campaigns/promo").json()["status"] == "draft"
    listed = {t["token_id"]: t for t in admin.get("/api/tokens").json()}
    assert listed[token_id]["revoked_at"] == revoked.json()["revoked_at"]
    # The other tokens still work.
    assert api_server.client("editor").get("/api/segments").status_code == 200
    # Revoking again changes nothing: the first revocation's time stays.
    again = admin.delete(f"/api/tokens/{token_id}")
    assert again.status_code == 200
    assert again.json() == revoked.json()

"""Credentials and tokens go into the API and never come out.

Secrets are set through ``PUT /api/secrets/{name}`` with distinctive values, destinations
reference them, a destination check and real deliveries use them; then every read of the
API, the error answers to bad bodies and the server's log are searched for every secret value
and every token value. Token values are shown once, when created, and stored only as hashes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, make_url, text

from tests.api.test_roles import PROBE_VALUE, Names, operations, prepare, wait_for_run
from tests.fixtures.api import ApiServer, error_of
from tests.fixtures.receiver import Receiver

PG_PASSWORD = "pg-canary-0c7e51-password"
BEARER = "bearer-canary-93ad2f-value"

TOKEN_FIELDS = {"token_id", "name", "role", "created_at", "created_by", "last_used_at",
                "revoked_at"}  # fmt: skip
"""What the API shows of a token (never its value, nor its hash)."""


class Seen:
    """Every response a set of clients received, read in full."""

    def __init__(self) -> None:
        self.responses: list[httpx.Response] = []

    def watch(self, client: httpx.Client) -> httpx.Client:
        """Record the responses of ``client``."""
        client.event_hooks["response"] = [self._record]
        return client

    def _record(self, response: httpx.Response) -> None:
        response.read()
        self.responses.append(response)

    def leaks(self, values: dict[str, str]) -> list[str]:
        """``request → what leaked`` for each response showing one of ``values``."""
        found = []
        for response in self.responses:
            shown = f"{response.status_code} {response.headers.multi_items()} {response.text}"
            for label, value in values.items():
                if value in shown:
                    found.append(f"{response.request.method} {response.request.url}: {label}")
        return found


def in_logs(server: ApiServer, values: dict[str, str]) -> list[str]:
    """The labels of ``values`` found in the server's log."""
    log = "\n".join(server.logs)
    return [label for label, value in values.items() if value in log]


def webhook(url: str, **extra: Any) -> dict[str, Any]:
    """A webhook destination to the receiver, signing with the secret ``hook-signing``."""
    return {
        "name": "hook",
        "type": "webhook",
        "url": url,
        "allow_private": True,
        "credentials": {"signing_secret": {"secret": "hook-signing"},
                        "bearer_token": {"env": "HOOK_BEARER"}},
        **extra,
    }  # fmt: skip


WAREHOUSE = {
    "name": "warehouse",
    "type": "postgres",
    "url": "postgresql://activator@127.0.0.1:1/marketing",
    "table": "audience",
    "credentials": {"password": {"secret": "pg-password"}},
}
"""A PostgreSQL destination nobody listens for (port 1: refused at once)."""


def secret_values(receiver: Receiver) -> dict[str, str]:
    """Every credential's value the test sets, by a label."""
    payload = receiver.secret.removeprefix("whsec_")
    return {
        "signing secret": receiver.secret,
        "signing key": payload,
        "postgres password": PG_PASSWORD,
        "bearer token": BEARER,
        "probe secret": PROBE_VALUE,
    }


def token_values(server: ApiServer) -> dict[str, str]:
    """The fixture's token values and their hashes."""
    values = {f"{role} token": token for role, token in server.tokens.items()}
    hashes = {f"{label} hash": hashlib.sha256(token.encode()).hexdigest()
              for label, token in values.items()}  # fmt: skip
    return {**values, **hashes}


def every_path(
    template: str, names: Names, destinations: list[str], runs: list[dict[str, Any]]
) -> list[str]:
    """``template`` filled in for each of ``destinations`` and each of ``runs`` it names."""
    return sorted(
        {
            Names(
                definitions={**names.definitions, "destinations": destination},
                secret=names.secret,
                run_id=run["run_id"],
                token_id=names.token_id,
            ).path(template)
            for destination in destinations
            for run in runs
        }
    )


def test_credentials_never_appear_in_responses_or_logs(
    api_server: ApiServer, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_BEARER", BEARER)
    names = prepare(api_server)
    seen = Seen()
    admin = seen.watch(api_server.client("admin"))
    editor = seen.watch(api_server.client("editor"))
    viewer = seen.watch(api_server.client("viewer"))

    for name, value in (("hook-signing", receiver.secret), ("pg-password", PG_PASSWORD)):
        response = admin.put(f"/api/secrets/{name}", json={"value": value})
        assert (response.status_code, response.content) == (204, b"")
    created = admin.post("/api/destinations", json=webhook(receiver.url))
    assert created.status_code == 201, created.text
    assert created.json()["spec"]["credentials"] == {
        "signing_secret": {"secret": "hook-signing"},
        "bearer_token": {"env": "HOOK_BEARER"},
    }
    created = admin.post("/api/destinations", json=WAREHOUSE)
    assert created.status_code == 201, created.text
    assert created.json()["spec"]["credentials"] == {"password": {"secret": "pg-password"}}

    # The destination checks use the credentials.
    checked = admin.post("/api/destinations/hook/test")
    assert checked.status_code == 200, checked.text
    address = receiver.url.removeprefix("http://").split(":")[0]
    assert checked.json() == [
        {"step": "address", "ok": True, "detail": f"{receiver.url} → {address}"},
        {"step": "signing secret", "ok": True, "detail": "a whsec_ key"},
        {"step": "signed probe", "ok": True, "detail": "HTTP 200"},
    ]
    assert (receiver.statuses(), receiver.bad_signatures) == ([200], 0)
    checked = admin.post("/api/destinations/warehouse/test")
    assert checked.status_code == 200, checked.text
    [connect] = checked.json()
    assert (connect["step"], connect["ok"]) == ("connect", False)
    assert connect["detail"].startswith(
        "destination warehouse: cannot connect to PostgreSQL at "
        "postgresql://activator@127.0.0.1:1/marketing"
    )

    # Real deliveries: one succeeds (signed, with the bearer token), one cannot connect.
    outcomes = {}
    for destination in ("hook", "warehouse"):
        body = {"name": f"to-{destination}", "destination": destination,
                "query": "SELECT customer_id, email FROM customers"}  # fmt: skip
        assert editor.post("/api/orchestrations", json=body).status_code == 201
        launched = editor.post(f"/api/orchestrations/to-{destination}/runs")
        assert launched.status_code == 202, launched.text
        outcomes[destination] = wait_for_run(viewer, launched.json()["run_id"])["status"]
    assert outcomes == {"hook": "succeeded", "warehouse": "failed"}
    assert len(receiver.records()) == 200
    assert receiver.bad_signatures == 0
    assert {h.get("authorization") for h in receiver.headers.values()} == {f"Bearer {BEARER}"}

    # Bad bodies: the answers name the fields, never the values sent in them.
    current = admin.get("/api/destinations/hook")
    etag = current.headers["etag"]
    bad: list[tuple[str, str, dict[str, Any], dict[str, str], int]] = [
        ("POST", "/api/destinations",
         webhook(receiver.url, name="leaky", credentials={"signing_secret": receiver.secret}),
         {}, 422),
        ("POST", "/api/destinations",
         {**WAREHOUSE, "name": "leaky", "credentials": {"password": PG_PASSWORD}}, {}, 422),
        ("POST", "/api/destinations",
         {**WAREHOUSE, "name": "leaky", "url": f"postgresql://activator:{PG_PASSWORD}@db/m"},
         {}, 422),
        ("POST", "/api/destinations",
         {**WAREHOUSE, "name": "leaky", "url": f"postgresql://db/m?password={PG_PASSWORD}"},
         {}, 422),
        ("POST", "/api/destinations",
         webhook(receiver.url, name="leaky", headers={"Authorization": f"Bearer {BEARER}"}),
         {}, 422),
        ("PUT", "/api/destinations/hook",
         webhook(receiver.url, credentials={"signing_secret": {"secret": receiver.secret},
                                            "bearer_token": BEARER}),
         {"If-Match": etag}, 422),
        ("PUT", "/api/destinations/hook", webhook(receiver.url, description="x"),
         {"If-Match": '"99"'}, 409),
        ("PUT", "/api/destinations/hook", webhook(receiver.url, description="x"), {}, 428),
        ("PUT", "/api/secrets/pg-password", {"value": [PG_PASSWORD]}, {}, 422),
        ("PUT", "/api/secrets/pg-password", {"values": PG_PASSWORD}, {}, 422),
        ("POST", "/api/tokens", {"role": "root", "name": "x" * 200}, {}, 422),
    ]  # fmt: skip
    for method, path, body, headers, status in bad:
        response = admin.request(method, path, json=body, headers=headers)
        assert response.status_code == status, (path, body, response.text)
        error_of(response)

    # Every read, as an admin and as a viewer.
    runs = viewer.get("/api/runs", params={"limit": 500}).json()["items"]
    assert len(runs) == 3
    expected = {"campaign_results": 400}
    for op in operations(api_server):
        if op.method != "get":
            continue
        for path in every_path(op.path, names, ["drop", "hook", "warehouse"], runs):
            for client in (admin, viewer):
                response = client.get(path, params={"conversion": "orders"})
                wanted = expected.get(op.operation_id, 200)
                if op.operation_id in ("list_tokens", "list_audit", "list_secrets"):
                    wanted = 200 if client is admin else 403
                assert response.status_code == wanted, (path, response.text)
    filtered: list[tuple[str, dict[str, str | int | bool]]] = [
        ("/api/audit", {"kind": "secret"}),
        ("/api/audit", {"kind": "destination", "limit": 1000}),
        ("/api/destinations", {"q": "hook", "include_archived": True}),
        ("/api/activations", {"q": "to-", "limit": 1000}),
        ("/api/runs", {"status": "failed", "include_tests": True}),
        ("/openapi.json", {}),
        ("/docs", {}),
        ("/api/health", {}),
    ]
    for path, params in filtered:
        assert admin.get(path, params=params).status_code == 200, path
    audit = admin.get("/api/audit", params={"kind": "secret"}).json()
    assert [(e["action"], e["name"], e["detail"]) for e in audit] == [
        ("set", "pg-password", {}),
        ("set", "hook-signing", {}),
        ("set", "probe", {}),
    ]
    details = {d["name"]: d for d in admin.get("/api/destinations").json()}
    assert details["warehouse"]["spec"]["credentials"] == WAREHOUSE["credentials"]

    secrets = secret_values(receiver)
    tokens = token_values(api_server)
    assert len(seen.responses) > 100
    # The search finds what is there: the secrets' names are shown, in answers and the log.
    assert len(seen.leaks({"a secret's name": "hook-signing"})) > 5
    assert in_logs(api_server, {"a secret's name": "PUT /api/secrets/hook-signing"}) != []
    assert seen.leaks({**secrets, **tokens}) == []
    assert in_logs(api_server, {**secrets, **tokens}) == []
    # Nor in any file of the workspace (the secrets store is encrypted; with SQLite, the
    # metadata store is a file here too).
    plain = {**secrets, **{k: v for k, v in tokens.items() if not k.endswith("hash")}}
    stored = [
        f"{path.relative_to(api_server.root)}: {label}"
        for path in api_server.root.rglob("*")
        if path.is_file()
        for label, value in plain.items()
        if value.encode() in path.read_bytes()
    ]
    assert stored == []


def test_a_password_typed_into_a_url_is_not_echoed(api_server: ApiServer) -> None:
    seen = Seen()
    admin = seen.watch(api_server.client("admin"))
    body = {**WAREHOUSE, "url": f"//activator:{PG_PASSWORD}@db.internal/marketing"}
    response = admin.post("/api/destinations", json=body)
    assert response.status_code == 422
    assert error_of(response)["field"] == "postgres.url"
    assert seen.leaks({"postgres password": PG_PASSWORD}) == []


def test_secrets_are_listed_by_name_only(api_server: ApiServer) -> None:
    admin = api_server.client("admin")
    assert admin.get("/api/secrets").json() == {"names": []}
    for name, value in (("zeta", "zeta-canary-1"), ("alpha", "alpha-canary-2")):
        assert admin.put(f"/api/secrets/{name}", json={"value": value}).status_code == 204
    listed = admin.get("/api/secrets")
    assert listed.json() == {"names": ["alpha", "zeta"]}
    # Setting again replaces the value; the name is listed once.
    assert admin.put("/api/secrets/zeta", json={"value": "zeta-canary-3"}).status_code == 204
    assert admin.get("/api/secrets").json() == {"names": ["alpha", "zeta"]}
    assert admin.delete("/api/secrets/zeta").status_code == 204
    assert admin.get("/api/secrets").json() == {"names": ["alpha"]}
    missing = admin.delete("/api/secrets/zeta")
    assert missing.status_code == 404
    assert error_of(missing)["type"] == "not_found"
    log = "\n".join(api_server.logs)
    assert [v for v in ("zeta-canary-1", "alpha-canary-2", "zeta-canary-3") if v in log] == []
    stored = (api_server.root / ".activator" / "secrets.json").read_bytes()
    assert b"alpha" in stored
    assert b"alpha-canary-2" not in stored


def test_a_token_value_is_shown_once(api_server: ApiServer) -> None:
    seen = Seen()
    admin = seen.watch(api_server.client("admin"))
    created = admin.post("/api/tokens", json={"role": "viewer", "name": "ci"})
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {*TOKEN_FIELDS, "token"}
    assert (body["name"], body["role"], body["created_by"]) == ("ci", "viewer", "token:admin-token")
    token = body["token"]
    assert token.startswith("act_")
    assert len(token) > 32
    digest = hashlib.sha256(token.encode()).hexdigest()

    # Shown in the answer to its creation, and nowhere else.
    shown = {"token": token, "hash": digest}
    assert seen.leaks(shown) == [f"POST {api_server.url}/api/tokens: token"]
    seen.responses.clear()
    holder = seen.watch(api_server.client(None, Authorization=f"Bearer {token}"))
    assert holder.get("/api/segments").status_code == 200
    watched = seen.watch(api_server.client("admin"))
    listed = watched.get("/api/tokens").json()
    assert [set(t) for t in listed] == [TOKEN_FIELDS] * 4
    [mine] = [t for t in listed if t["token_id"] == body["token_id"]]
    assert mine["last_used_at"] is not None
    assert watched.get("/api/audit").status_code == 200
    assert watched.get("/api/activations").status_code == 200
    assert watched.get("/openapi.json").status_code == 200
    assert seen.leaks(shown) == []
    assert in_logs(api_server, shown) == []


def test_tokens_are_stored_as_hashes(api_server: ApiServer) -> None:
    created = api_server.client("admin").post("/api/tokens", json={"role": "editor"})
    assert created.status_code == 201
    tokens = [*api_server.tokens.values(), created.json()["token"]]
    url = make_url(api_server.store_url)
    if url.get_backend_name() == "sqlite":
        url = url.set(database=str(api_server.root / ".activator" / "metadata.db"))
    else:
        url = url.set(drivername="postgresql+psycopg")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(text("SELECT * FROM api_tokens"))]
    finally:
        engine.dispose()
    assert len(rows) == 4
    cells = [str(value) for row in rows for value in row.values()]
    assert [t for t in tokens if any(t in cell for cell in cells)] == []
    assert sorted(row["token_hash"] for row in rows) == sorted(
        hashlib.sha256(t.encode()).hexdigest() for t in tokens
    )

"""A property-based fuzz run of the live OpenAPI document: no operation answers with a 5xx.

Schemathesis generates requests from the document for every operation (valid ones naming
random things, valid ones naming the workspace's segments, runs, destinations..., and ones
breaking the schema) and sends them, with an admin token, to a real server on a SQLite
metadata store. Whatever it sends, the server answers with a 2xx or a 4xx; an internal error
is a bug. Bounded: a few examples per operation, no shrinking, derandomized (the same cases
every run, so a failure reproduces). The other tests here pin down what the fuzzer found.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from unittest.mock import ANY

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from tests.api.test_roles import Names, prepare, wait_for_run
from tests.fixtures.api import ApiServer, error_of

SKIPPED = {
    "follow_run_events": "it streams until the run ends",
    "revoke_token": "it could revoke the admin token mid-run",
}
"""Operations left out of the fuzz run, and why."""

RANDOM_NAMES, REAL_NAMES, BROKEN = 2, 4, 3
"""Examples per operation: valid requests naming random things (mostly 404s), valid requests
naming things of the workspace (operations with path parameters), requests breaking the
schema. The whole run stays under a minute on two busy cores."""


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        phases=[Phase.explicit, Phase.generate],
        derandomize=True,
    )


FAILED = re.compile(r"^activator\.api ERROR request (\w+) failed: (\w+)$")
"""How the server logs an unexpected error (``errors.unexpected``)."""


def without_security(server: ApiServer) -> dict[str, Any]:
    """The live OpenAPI document without its bearer scheme.

    The fuzzer sends the admin token with every case; left in, the scheme makes schemathesis
    spend half the negative cases on dropping the token (401s, which test_roles covers).
    """
    response = server.client(None).get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    assert document["components"].pop("securitySchemes") == {"HTTPBearer": ANY}
    for operations in document["paths"].values():
        for operation in operations.values():
            operation.pop("security", None)
    return document


def real_parameters(path: str, names: Names) -> dict[str, str]:
    """The path parameters of ``path`` naming things of the test workspace."""
    wanted = re.findall(r"{(\w+)}", path)
    values = {"run_id": names.run_id, "token_id": names.token_id,
              "customer_id": names.customer_id}  # fmt: skip
    if "name" in wanted:
        collection = path.split("/")[2]
        values["name"] = names.secret if collection == "secrets" else names.definitions[collection]
    return {parameter: values[parameter] for parameter in wanted}


@dataclass
class ServerError:
    """A 5xx answer to a generated case."""

    operation_id: str
    mode: GenerationMode
    curl: str
    status: int
    body: str

    def request_id(self) -> str | None:
        """The request id an internal error's answer names."""
        found = re.search(r"\(request (\w+)\)", self.body)
        return found.group(1) if found else None


@dataclass
class Fuzzer:
    """Sends generated cases to the server with an admin token, tallying the answers and
    keeping every 5xx."""

    url: str
    auth: dict[str, str]
    session: requests.Session
    statuses: Counter[tuple[GenerationMode, int]] = field(default_factory=Counter)
    errors: list[ServerError] = field(default_factory=list)

    def run(self, operation_id: str, strategy: Any, mode: GenerationMode, examples: int) -> None:
        """Send ``examples`` cases of ``strategy``."""

        @given(case=strategy)
        @_settings(examples)
        def send(case: schemathesis.Case[Any]) -> None:
            response = case.call(
                base_url=self.url, session=self.session, headers=self.auth, timeout=60
            )
            self.statuses[mode, response.status_code] += 1
            if response.status_code >= 500:
                curl = case.as_curl_command(headers=self.auth)
                self.errors.append(
                    ServerError(operation_id, mode, curl, response.status_code, response.text)
                )

        # Unsatisfiable: nothing to break (negative mode on an operation without parameters).
        with contextlib.suppress(Unsatisfiable):
            send()


@pytest.mark.slow
@pytest.mark.parametrize("api_server", ["sqlite"], indirect=True)
def test_no_operation_answers_with_a_server_error(api_server: ApiServer) -> None:
    schema = schemathesis.openapi.from_dict(without_security(api_server))
    auth = {"Authorization": f"Bearer {api_server.tokens['admin']}"}
    tried: set[str] = set()
    names = prepare(api_server)
    with requests.Session() as session:
        fuzzer = Fuzzer(api_server.url, auth, session)
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result.err()
            operation = result.ok()
            operation_id = operation.definition.raw["operationId"]
            if operation_id in SKIPPED:
                continue
            tried.add(operation_id)
            positive, negative = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
            fuzzer.run(operation_id, operation.as_strategy(), positive, RANDOM_NAMES)
            if "{" in operation.path:
                real = real_parameters(operation.path, names)
                strategy = operation.as_strategy(path_parameters=real)
                fuzzer.run(operation_id, strategy, positive, REAL_NAMES)
            strategy = operation.as_strategy(generation_mode=negative)
            fuzzer.run(operation_id, strategy, negative, BROKEN)
    paths = schema.raw_schema["paths"].values()
    every = {op["operationId"] for ops in paths for op in ops.values()}
    assert tried == every - set(SKIPPED)

    # Every 5xx is an internal error the server logged, with the exception's name.
    logged = {m[1]: m[2] for line in api_server.logs if (m := FAILED.match(line))}
    found = [
        f"{error.operation_id} ({error.mode.value}): {error.curl} → {error.status} "
        f"{error.body[:300]} [{logged.get(error.request_id() or '', 'not logged')}]"
        for error in fuzzer.errors
    ]
    assert found == []
    assert len(logged) == len(fuzzer.errors)
    crashes = [line for line in api_server.logs if "Exception in ASGI" in line]
    assert len(crashes) == len(fuzzer.errors)  # no stream broke after its answer began
    # The cases reached the operations: the token was accepted, many answers were 2xx, and
    # the broken cases were refused with 4xx.
    statuses = Counter(status for _mode, status in fuzzer.statuses.elements())
    assert (statuses[401], statuses[403]) == (0, 0)
    assert sum(n for (mode, status), n in fuzzer.statuses.items()
               if mode is GenerationMode.POSITIVE and status < 300) > 100  # fmt: skip
    assert sum(n for (mode, status), n in fuzzer.statuses.items()
               if mode is GenerationMode.NEGATIVE and status in (400, 404, 422)) > 100  # fmt: skip


@pytest.mark.parametrize("api_server", ["sqlite"], indirect=True)
def test_an_unterminated_quote_in_sql_is_a_validation_error(api_server: ApiServer) -> None:
    """The fuzzer found this one: sqlglot's TokenError escaped the check of user SQL."""
    editor = api_server.client("editor")
    for plural, body in (
        ("segments", {"name": "quoted", "sql": 'SELECT customer_id AS "id FROM customers'}),
        ("orchestrations", {"name": "quoted", "destination": "drop",
                            "query": "SELECT 'a AS b FROM customers"}),
    ):  # fmt: skip
        response = editor.post(f"/api/{plural}", json=body)
        assert response.status_code == 422, (plural, response.text)
        error = error_of(response)
        assert error["type"] == "validation"
        field = "sql" if plural == "segments" else "query"
        assert error["message"].startswith(f"{field}: SQL does not parse as duckdb: ")
        assert editor.get(f"/api/{plural}/quoted").status_code == 404


def test_what_the_fuzzer_found_is_refused_cleanly(api_server: ApiServer) -> None:
    """Ids beyond the store's (32-bit on PostgreSQL) and non-ASCII digits once made 500s."""
    editor = api_server.client("editor")
    launched = editor.post("/api/orchestrations/feed/runs")
    assert launched.status_code == 202
    run_id = launched.json()["run_id"]
    assert wait_for_run(editor, run_id)["status"] == "succeeded"
    huge = "99999999999999999999"
    admin = api_server.client("admin")
    for value in (huge, f"-{huge}", str(2**31), "-1"):
        response = admin.get("/api/audit", params={"before": value})
        assert response.status_code == 422
        assert error_of(response)["field"] == "query:before"
    for value in (huge, str(2**31)):
        response = admin.get(f"/api/runs/{run_id}/events", params={"after": value})
        assert response.status_code == 422
        assert error_of(response)["field"] == "query:after"

    spec = admin.get("/api/segments/even").json()["spec"]
    superscript_two = "\u00b2".encode("latin-1")  # str.isdigit() says yes; int() says no
    for method, body in (("PUT", spec), ("DELETE", None)):
        response = admin.request(
            method, "/api/segments/even", json=body, headers={b"If-Match": superscript_two}
        )
        assert response.status_code == 422, response.text
        assert error_of(response)["field"] == "header:if-match"
    assert admin.get("/api/segments/even").json()["version"] == 1

    # A Last-Event-ID beyond every id: no events, then the end; one that is not a number: all.
    events = {}
    for last in (huge.encode(), superscript_two):
        response = admin.get(f"/api/runs/{run_id}/events", headers={b"Last-Event-ID": last})
        assert response.status_code == 200
        events[last] = [line for line in response.text.splitlines() if line.startswith("event:")]
    assert events[huge.encode()] == ["event: status", "event: end"]
    assert events[superscript_two][-2:] == ["event: status", "event: end"]
    assert events[superscript_two].count("event: event") > 1

"""The OpenAPI document: complete, stable operation ids, security on every operation but the
health check, an example for every definition body that validates like a workspace file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from activator.api import create_app
from activator.workspace.loader import definition_from_data

STABLE = Path(__file__).with_name("operation_ids.txt")


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # The document is built without starting the server (no workspace is read).
    found: dict[str, Any] = create_app(tmp_path_factory.mktemp("ws")).openapi()
    return found


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


def test_operation_ids_are_the_committed_ones(document: dict[str, Any]) -> None:
    ids = sorted(op["operationId"] for _, _, op in _operations(document))
    assert len(ids) == len(set(ids)), "operation ids must be unique"
    committed = [
        line for line in STABLE.read_text().splitlines() if line and not line.startswith("#")
    ]
    assert ids == committed, "an operation id changed: clients break (update operation_ids.txt)"


def test_every_operation_but_health_needs_a_token_and_documents_errors(
    document: dict[str, Any],
) -> None:
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for method, path, operation in _operations(document):
        if path == "/api/health":
            assert "security" not in operation
            continue
        assert operation.get("security") == [{"HTTPBearer": []}], (method, path)
        for code in ("401", "403", "422"):
            schema = operation["responses"][code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, code)
        assert operation.get("summary"), (method, path)


def test_definition_bodies_have_examples_that_validate(document: dict[str, Any]) -> None:
    checked = set()
    for method, path, operation in _operations(document):
        if not operation["operationId"].startswith(("create_", "update_")):
            continue
        if operation["operationId"] == "create_token":
            continue
        kind = operation["operationId"].split("_", 1)[1]
        body = operation["requestBody"]["content"]["application/json"]
        (example,) = body["schema"]["examples"]
        loaded = definition_from_data(kind, example, shown_as=f"{method} {path}")
        assert loaded.kind == kind
        checked.add(kind)
    assert checked == {"segment", "destination", "campaign", "journey", "orchestration", "group"}

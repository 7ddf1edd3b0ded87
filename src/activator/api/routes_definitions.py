"""Definitions over HTTP: list, create, read, change (with ``If-Match``), archive, versions,
for every kind; and the activations' status actions and "run now".

One router per kind is built by :func:`definition_router` with that kind's Pydantic model as
the request body, so the OpenAPI document describes each kind exactly as the YAML files are
described, and the same validation applies (then the same cross-reference checks).
"""

# No `from __future__ import annotations`: FastAPI reads the body's model from the signature.

__all__ = ["ERRORS", "definition_router", "execute_queued"]

import threading
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Response
from pydantic import BaseModel, Field

from activator.api.context import ROLE_RANK, ApiState, Principal, State, requires
from activator.api.errors import ApiError, ErrorResponse, not_found
from activator.api.schemas import DefinitionOut, RunOut, StatusOut
from activator.services.definitions import (
    KIND_ACTIONS,
    archive_definition,
    change_activation_status,
    save_definition,
)
from activator.services.run import execute_run, queue_run
from activator.store import StoredDefinition
from activator.workspace.loader import load_workspace

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (401, "No valid API token."),
        (403, "The token's role does not allow this."),
        (404, "No such definition."),
        (409, "A conflicting edit (the version changed) or state."),
        (422, "The request is invalid; `errors` names each field."),
    )
}


class RunRequest(BaseModel):
    """How to run an activation now."""

    as_of: datetime | None = Field(default=None, examples=["2026-11-30T02:00:00Z"])
    """The run's as-of time (aware); default: now."""


EXAMPLES: dict[str, dict[str, Any]] = {
    "segment": {
        "name": "vip",
        "description": "Spent 2,500 or more in the last year",
        "labels": ["loyalty"],
        "rules": {
            "behavior": "total_value",
            "table": "orders",
            "value": {"op": ">=", "value": 2500},
            "window": {"last": "365d"},
        },
    },
    "destination": {
        "name": "crm",
        "type": "webhook",
        "url": "https://crm.example.com/hooks/activator",
        "batch_size": 500,
        "credentials": {"signing_secret": {"secret": "CRM_SIGNING_SECRET"}},
    },
    "campaign": {
        "name": "vip-thank-you",
        "audience": {"include": ["vip"]},
        "destinations": [{"destination": "crm", "mapping": {"email": "email"}}],
        "remaining": {
            "groups": [
                {"name": "treatment", "percent": 90},
                {"name": "control", "percent": 10, "control": True},
            ]
        },
        "schedule": {"type": "cron", "cron": "0 9 * * 1", "timezone": "Europe/London"},
        "status": "active",
    },
    "journey": {
        "name": "welcome",
        "start": {"entry": ["new-customers"]},
        "nodes": [
            {
                "id": "hello",
                "type": "activate",
                "next": "wait",
                "destinations": [{"destination": "crm", "mapping": {"email": "email"}}],
            },
            {"id": "wait", "type": "delay", "wait": "3d", "next": "done"},
            {"id": "done", "type": "exit"},
        ],
        "schedule": {"type": "recurring", "every": "daily", "at": "06:00"},
    },
    "orchestration": {
        "name": "customer-360",
        "query": "SELECT customer_id, email, lifetime_value FROM customer_360",
        "destination": "bucket",
        "schedule": {"type": "cron", "cron": "0 2 * * *", "timezone": "UTC"},
        "status": "active",
    },
    "group": {
        "name": "nightly-feeds",
        "kind": "group",
        "orchestrations": ["customer-360", "orders-feed"],
        "schedule": {"type": "cron", "cron": "0 3 * * *"},
    },
}
"""An example body per kind for the OpenAPI document (docs/workspace.md has every key)."""


def _version(if_match: str | None, *, required: bool) -> int | None:
    if if_match is None:
        if required:
            raise ApiError(
                428,
                "precondition_required",
                "send If-Match with the version you edited (the ETag of GET on the definition)",
                field="header:if-match",
            )
        return None
    text = if_match.strip().removeprefix("W/").strip('"')
    if not (text.isascii() and text.isdigit()):  # int() refuses '²', which isdigit() accepts
        raise ApiError(
            422,
            "validation",
            f'If-Match must be a version number such as "3", not {if_match!r}',
            field="header:if-match",
        )
    return int(text)


def _stored(st: State, kind: str, name: str) -> StoredDefinition:
    found = st.store.get(kind, name)
    if found is None:
        raise not_found(f"{kind} named {name!r}")
    return found


def _with_etag(response: Response, stored: StoredDefinition) -> DefinitionOut:
    response.headers["ETag"] = f'"{stored.version}"'
    return DefinitionOut.of(stored)


def definition_router(kind: str, plural: str, model: Any, write_role: str) -> APIRouter:
    """The routes of one definition kind under ``/api/{plural}``."""
    router = APIRouter(prefix=f"/api/{plural}", tags=[plural], responses=ERRORS)
    Writer = Annotated[Principal, requires_dependency(write_role)]
    Reader = Annotated[Principal, requires_dependency("viewer")]

    @router.get("", operation_id=f"list_{plural}", summary=f"List {plural}")
    def list_definitions(
        st: State,
        _caller: Reader,
        status: Annotated[str | None, Query(description="Only this status.")] = None,
        label: Annotated[str | None, Query(description="Only definitions with this label.")] = None,
        q: Annotated[str | None, Query(description="Search in names and descriptions.")] = None,
        include_archived: bool = False,
    ) -> list[DefinitionOut]:
        found = []
        needle = (q or "").lower()
        for stored in st.store.current(kind):
            if stored.status == "archived" and not include_archived and status != "archived":
                continue
            if status is not None and stored.status != status:
                continue
            if label is not None and label not in (stored.spec.get("labels") or ()):
                continue
            text = f"{stored.name} {stored.spec.get('description') or ''}".lower()
            if needle and needle not in text:
                continue
            found.append(DefinitionOut.of(stored))
        return found

    @router.post(
        "",
        operation_id=f"create_{kind}",
        summary=f"Create a {kind}",
        status_code=201,
    )
    def create_definition(
        st: State,
        caller: Writer,
        response: Response,
        body: Annotated[model, Body(examples=[EXAMPLES[kind]])],
    ) -> DefinitionOut:
        data = body.model_dump(mode="json", by_alias=True, exclude_unset=True)
        result = save_definition(
            st.root, st.store, kind, data, expected_version=0, actor=caller.actor
        )
        response.headers["Location"] = f"/api/{plural}/{result.name}"
        return _with_etag(response, _stored(st, kind, result.name))

    @router.get("/{name}", operation_id=f"get_{kind}", summary=f"Read a {kind}")
    def get_definition(st: State, _caller: Reader, name: str, response: Response) -> DefinitionOut:
        return _with_etag(response, _stored(st, kind, name))

    @router.put(
        "/{name}",
        operation_id=f"update_{kind}",
        summary=f"Change a {kind} (a new version)",
        responses={428: {"model": ErrorResponse, "description": "If-Match is missing."}},
    )
    def update_definition(
        st: State,
        caller: Writer,
        name: str,
        response: Response,
        body: Annotated[model, Body(examples=[EXAMPLES[kind]])],
        if_match: Annotated[
            str | None,
            Header(description='The version the change was made on, e.g. "3" (the ETag).'),
        ] = None,
    ) -> DefinitionOut:
        expected = _version(if_match, required=True)
        assert expected is not None
        _stored(st, kind, name)
        data = body.model_dump(mode="json", by_alias=True, exclude_unset=True)
        save_definition(
            st.root, st.store, kind, data, expected_version=expected, name=name, actor=caller.actor
        )
        return _with_etag(response, _stored(st, kind, name))

    @router.delete(
        "/{name}",
        operation_id=f"delete_{kind}",
        summary=f"Archive a {kind} (its versions and history are kept)",
    )
    def delete_definition(
        st: State,
        caller: Writer,
        name: str,
        if_match: Annotated[str | None, Header(description="Archive only at this version.")] = None,
    ) -> StatusOut:
        stored = _stored(st, kind, name)
        expected = _version(if_match, required=False)
        if expected is not None and expected != stored.version:
            raise ApiError(
                409,
                "conflict",
                f"{kind} {name!r} is at version {stored.version}, not {expected}",
                hint="read it again before archiving",
            )
        status = archive_definition(st.root, st.store, kind, name, actor=caller.actor)
        return StatusOut(kind=kind, name=name, status=status)

    @router.get(
        "/{name}/versions",
        operation_id=f"list_{kind}_versions",
        summary=f"Every version of a {kind}, oldest first",
    )
    def list_versions(st: State, _caller: Reader, name: str) -> list[DefinitionOut]:
        versions = st.store.versions(kind, name)
        if not versions:
            raise not_found(f"{kind} named {name!r}")
        return [DefinitionOut.of(v) for v in versions]

    if kind in KIND_ACTIONS:
        _activation_routes(router, kind)
    return router


def requires_dependency(role: str) -> Any:
    """``Depends`` on the caller having ``role``."""
    assert role in ROLE_RANK
    return Depends(requires(role))


def _activation_routes(router: APIRouter, kind: str) -> None:
    Editor = Annotated[Principal, requires_dependency("editor")]

    @router.post(
        "/{name}/runs",
        operation_id=f"run_{kind}",
        summary=f"Run a {kind} now",
        status_code=202,
        description="Records the run (queued) and answers with it at once; the server's "
        "worker executes it next. Follow it with `GET /api/runs/{run_id}/events`.",
    )
    def run_now(
        st: State,
        caller: Editor,
        name: str,
        body: Annotated[RunRequest | None, Body()] = None,
    ) -> RunOut:
        _stored(st, kind, name)
        as_of = (body.as_of if body and body.as_of else None) or st.clock()
        if as_of.tzinfo is None:
            raise ApiError(422, "validation", "as_of needs a time zone", field="as_of")
        run = queue_run(st.store, name, as_of=as_of, trigger="api")
        st.store.audit(
            actor=caller.actor, action="launch", kind=kind, name=name, detail={"run_id": run.run_id}
        )
        st.worker.submit(lambda stop: execute_queued(st, run.run_id, stop))
        return RunOut.of(run)

    for action in KIND_ACTIONS[kind]:
        _action_route(router, kind, action)


def execute_queued(st: ApiState, run_id: str, stop: threading.Event) -> None:
    """The worker's job for a run the API recorded (run now, retry, restart): execute it,
    unless something else (a scheduler that found its lease lapsed) already has."""
    run = st.store.get_run(run_id)
    if run is None or run.status not in ("queued", "running"):
        return
    ws = load_workspace(st.root, definitions=False)
    execute_run(ws, st.store, run, stop=stop, engine_wait=ws.config.scheduler.engine_wait_seconds)


def _action_route(router: APIRouter, kind: str, action: str) -> None:
    Editor = Annotated[Principal, requires_dependency("editor")]

    @router.post(
        f"/{{name}}/{action}",
        operation_id=f"{action}_{kind}",
        summary=f"{action.capitalize()} a {kind}",
    )
    def act(st: State, caller: Editor, name: str) -> StatusOut:
        _stored(st, kind, name)
        status = change_activation_status(st.root, kind, name, action, actor=caller.actor)
        return StatusOut(kind=kind, name=name, status=status)

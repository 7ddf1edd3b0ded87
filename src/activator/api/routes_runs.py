"""Runs over HTTP: list and filter, detail, retry, restart, cancel, and live events (SSE);
and the Activations list."""

# No `from __future__ import annotations`: FastAPI reads the models from the signatures.

__all__ = ["activations_router", "runs_router"]

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from activator.api.context import ApiState, Editor, State, Viewer
from activator.api.errors import ApiError, not_found
from activator.api.routes_definitions import ERRORS, execute_queued
from activator.api.schemas import ActivationOut, ActivationsPage, RunDetailOut, RunOut, RunsPage
from activator.errors import ActivatorError
from activator.runtime.ledger import LEASE_TTL
from activator.runtime.runner import owner_id
from activator.services.run import (
    cancel_stored_run,
    prepare_retry,
    queue_restart,
    run_detail,
)
from activator.store import FINISHED_RUN_STATUSES, RunSummary

runs_router = APIRouter(prefix="/api/runs", tags=["runs"], responses=ERRORS)
activations_router = APIRouter(prefix="/api", tags=["activations"], responses=ERRORS)

_POLL = 0.5
"""Seconds between two looks at a followed run's events."""


def _run(st: ApiState, run_id: str) -> RunSummary:
    run = st.store.get_run(run_id)
    if run is None:
        raise not_found(f"run {run_id}")
    return run


@runs_router.get("", operation_id="list_runs", summary="Runs, newest first, filtered")
def list_runs(
    st: State,
    _caller: Viewer,
    kind: Literal["campaign", "journey", "orchestration", "group"] | None = None,
    name: str | None = None,
    status: Literal["queued", "running", "succeeded", "warning", "failed", "canceled"]
    | None = None,
    trigger: str | None = None,
    since: Annotated[datetime | None, Query(description="Created at or after (aware).")] = None,
    until: Annotated[datetime | None, Query(description="Created before (aware).")] = None,
    include_tests: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after: Annotated[str | None, Query(description="`next_after` of the previous page.")] = None,
) -> RunsPage:
    for label, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise ApiError(422, "validation", f"{label} needs a time zone", field=f"query:{label}")
    if after is not None and st.store.get_run(after) is None:
        raise ApiError(422, "validation", f"no run {after}", field="query:after")
    runs = st.store.find_runs(
        kind=kind,
        name=name,
        status=status,
        trigger=trigger,
        since=since,
        until=until,
        include_tests=include_tests,
        limit=limit + 1,
        after=after,
    )
    page = runs[:limit]
    return RunsPage(
        items=[RunOut.of(r) for r in page],
        next_after=page[-1].run_id if len(runs) > limit else None,
    )


@runs_router.get("/{run_id}", operation_id="get_run", summary="A run with tasks and events")
def get_run(
    st: State,
    _caller: Viewer,
    run_id: str,
    events: Annotated[int, Query(ge=0, le=10_000)] = 200,
    rejected: Annotated[int, Query(ge=0, le=1_000)] = 20,
) -> RunDetailOut:
    _run(st, run_id)
    return RunDetailOut.of_detail(run_detail(st.store, run_id, events=events, rejected=rejected))


@runs_router.post(
    "/{run_id}/retry",
    operation_id="retry_run",
    summary="Retry a failed or interrupted run (same version, same as-of)",
    status_code=202,
)
def retry_run(st: State, caller: Editor, run_id: str) -> RunOut:
    _run(st, run_id)
    prepare_retry(st.store, run_id)
    # Taken now (running, leased to this server) so that nobody else resumes it meanwhile and
    # a client following it sees it start again; the worker executes it next.
    st.store.claim_run(run_id, owner_id(), LEASE_TTL)
    run = _run(st, run_id)
    st.store.audit(actor=caller.actor, action="retry", kind=run.kind, name=run.name,
                   detail={"run_id": run_id})  # fmt: skip
    st.worker.submit(lambda stop: execute_queued(st, run_id, stop))
    return RunOut.of(run)


@runs_router.post(
    "/{run_id}/restart",
    operation_id="restart_run",
    summary="Run the activation again with its current definition, same as-of",
    status_code=202,
)
def restart_run(st: State, caller: Editor, run_id: str) -> RunOut:
    _run(st, run_id)
    run = queue_restart(st.store, run_id)
    st.store.audit(actor=caller.actor, action="restart", kind=run.kind, name=run.name,
                   detail={"run_id": run.run_id, "restarts": run_id})  # fmt: skip
    st.worker.submit(lambda stop: execute_queued(st, run.run_id, stop))
    return RunOut.of(run)


@runs_router.post("/{run_id}/cancel", operation_id="cancel_run", summary="Cancel a run")
def cancel_run(st: State, caller: Editor, run_id: str) -> RunOut:
    run = _run(st, run_id)
    if run.status in FINISHED_RUN_STATUSES:
        raise ApiError(409, "conflict", f"run {run_id} has already finished ({run.status})")
    ended = cancel_stored_run(st.store, run_id)
    st.store.audit(actor=caller.actor, action="cancel", kind=run.kind, name=run.name,
                   detail={"run_id": run_id})  # fmt: skip
    return RunOut.of(ended)


@runs_router.get(
    "/{run_id}/events",
    operation_id="follow_run_events",
    summary="Follow a run live (server-sent events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "text/event-stream": {
                    "example": 'id: 7\nevent: event\ndata: {"level"'
                    ': "info", "message": "run succeeded"}\n\n'
                }
            },
            "description": "`event` lines for each run event (id = the event's id), `status` "
            "when the run's status changes, and `end` once it has finished.",
        }
    },
)
async def follow_run(
    request: Request,
    st: State,
    _caller: Viewer,
    run_id: str,
    after: Annotated[int, Query(ge=0, le=2**31 - 1, description="Only events after this id.")] = 0,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    await run_in_threadpool(_run, st, run_id)
    if last_event_id and last_event_id.isascii() and last_event_id.isdigit():
        after = max(after, min(int(last_event_id), 2**31 - 1))  # ids: 32-bit on PostgreSQL

    async def stream() -> AsyncIterator[str]:
        try:
            async for chunk in follow():
                yield chunk
        except ActivatorError as exc:
            # The response has begun: the error goes in the stream, then the stream ends.
            data = {"type": "store_error", "message": exc.message}
            yield f"event: error\ndata: {json.dumps(data)}\n\n"

    async def follow() -> AsyncIterator[str]:
        seen = after
        shown: str | None = None
        yield "retry: 2000\n\n"
        while True:
            run = await run_in_threadpool(st.store.get_run, run_id)
            events = await run_in_threadpool(st.store.events, run_id, after=seen)
            for event in events:
                seen = event.id
                data = {
                    "at": event.at.isoformat(),
                    "level": event.level,
                    "task": event.task,
                    "message": event.message,
                    "fields": event.fields,
                }
                yield f"id: {event.id}\nevent: event\ndata: {json.dumps(data, default=str)}\n\n"
            if run is None:
                return
            if run.shown_status != shown:
                shown = run.shown_status
                yield f"event: status\ndata: {json.dumps({'status': shown})}\n\n"
            if run.status in FINISHED_RUN_STATUSES:
                yield f"event: end\ndata: {json.dumps(RunOut.of(run).model_dump(mode='json'))}\n\n"
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(_POLL)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@activations_router.get(
    "/activations",
    operation_id="list_activations",
    summary="The Activations list: campaigns, journeys, orchestrations and groups",
    description="Each with its status, last run and next run; filter by type, status and "
    "label, search names and descriptions. Up to date within a second: the server computes "
    "the list again when the metadata store changed.",
    response_model=ActivationsPage,
)
async def list_activations(
    st: State,
    _caller: Viewer,
    type: Literal["campaign", "journey", "orchestration", "group"] | None = None,
    status: str | None = None,
    label: str | None = None,
    q: Annotated[str | None, Query(description="Search in names and descriptions.")] = None,
    include_archived: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    key = (type, status, label, q, include_archived, limit, offset)
    # A page already rendered from a list checked within the second is answered here, on
    # the event loop; looking at the store, computing or rendering goes to a thread.
    snapshot = st.activations.fresh()
    body = None if snapshot is None else st.activations.page(snapshot, key)
    if body is None:
        body = await run_in_threadpool(_page, st, key)
    return Response(body, media_type="application/json")


def _page(st: ApiState, key: tuple[Any, ...]) -> bytes:
    """A page of the Activations list as JSON: rendered once per computed list."""
    snapshot = st.activations.current()
    body = st.activations.page(snapshot, key)
    if body is not None:
        return body
    type, status, label, q, include_archived, limit, offset = key
    needle = (q or "").lower()
    rows = [
        r
        for r in snapshot.rows
        if (type is None or r.type == type)
        and (status is None or r.status == status)
        and (include_archived or status == "archived" or r.status != "archived")
        and (label is None or label in r.labels)
        and (not needle or needle in f"{r.name} {r.description or ''}".lower())
    ]
    page = ActivationsPage(
        items=[ActivationOut.of(r) for r in rows[offset : offset + limit]],
        total=len(rows),
        offset=offset,
        limit=limit,
    )
    body = page.model_dump_json().encode()
    st.activations.keep(snapshot, key, body)
    return body

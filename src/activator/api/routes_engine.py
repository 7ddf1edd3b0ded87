"""What reads the engine: segment previews, compiled SQL and "why is this customer in";
destination checks; campaign plans, test sends and results; journey counters, milestones and
log; orchestration plans.

All of it runs on the server's worker thread (``Worker.call``), one at a time with the runs:
the server owns the embedded engine. Segments come from the metadata store, as the runs use
them.
"""

# No `from __future__ import annotations`: FastAPI reads the models from the signatures.

__all__ = ["engine_router"]

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field

from activator.api.context import Admin, ApiState, Editor, Principal, State, Viewer
from activator.api.errors import ApiError, not_found
from activator.api.routes_definitions import ERRORS
from activator.api.schemas import RunOut
from activator.services import campaign as campaigns
from activator.services import journey as journeys
from activator.services import orchestration as orchestrations
from activator.services import segment as segments
from activator.services.definitions import stored_workspace
from activator.services.destination import test_destination
from activator.workspace.loader import definition_from_data

engine_router = APIRouter(prefix="/api", responses=ERRORS)

ENGINE_TIMEOUT = 120.0
"""Seconds a request waits for the engine (behind a run in flight) before 503."""

AsOf = Annotated[datetime | None, Query(description="The as-of time (aware); default: now.")]


def _as_of(st: ApiState, value: datetime | None) -> datetime:
    if value is None:
        return st.clock()
    if value.tzinfo is None:
        raise ApiError(422, "validation", "as_of needs a time zone", field="query:as_of")
    return value


def _need(st: ApiState, kind: str, name: str) -> None:
    if st.store.get(kind, name) is None:
        raise not_found(f"{kind} named {name!r}")


def _on_engine(st: ApiState, fn: Any) -> Any:
    return st.worker.call(fn, timeout=ENGINE_TIMEOUT)


@engine_router.get(
    "/segments/{name}/preview",
    operation_id="preview_segment",
    summary="A segment's size, a masked sample and insights",
    tags=["segments"],
)
def preview_segment(
    st: State,
    _caller: Viewer,
    name: str,
    as_of: AsOf = None,
    limit: Annotated[int, Query(ge=0, le=100)] = 10,
) -> dict[str, Any]:
    _need(st, "segment", name)
    moment = _as_of(st, as_of)

    def work() -> Any:
        ws = stored_workspace(st.root, st.store)
        return segments.preview(st.root, name, as_of=moment, limit=limit, workspace=ws)

    result = _on_engine(st, work)
    insights = result.insights
    revenue = insights.revenue_last_year
    return {
        "segment": result.segment,
        "as_of": result.as_of.isoformat(),
        "count": result.count,
        "columns": result.columns,
        "sample": jsonable_encoder(result.sample),
        "insights": {
            "unique_customers": insights.unique_customers,
            "active_last_year": insights.active_last_year,
            "revenue_last_year": None if revenue is None else str(revenue),
            "reachable": insights.reachable,
        },
        "purchase_table": result.purchase_table,
    }


@engine_router.get(
    "/segments/{name}/sql",
    operation_id="segment_sql",
    summary="The SQL a segment compiles to",
    tags=["segments"],
)
def segment_sql(
    st: State,
    _caller: Viewer,
    name: str,
    dialect: Annotated[
        str, Query(description="duckdb, spark, postgres, trino, bigquery or snowflake.")
    ] = "duckdb",
    as_of: AsOf = None,
) -> dict[str, str]:
    _need(st, "segment", name)
    moment = _as_of(st, as_of)

    def work() -> str:
        ws = stored_workspace(st.root, st.store)
        return segments.compiled_sql(st.root, name, dialect=dialect, as_of=moment, workspace=ws)

    return {"segment": name, "dialect": dialect, "sql": _on_engine(st, work)}


@engine_router.get(
    "/segments/{name}/why/{customer_id}",
    operation_id="explain_segment_membership",
    summary="Why a customer is, or is not, in a segment",
    tags=["segments"],
)
def segment_why(
    st: State, _caller: Viewer, name: str, customer_id: str, as_of: AsOf = None
) -> dict[str, Any]:
    _need(st, "segment", name)
    moment = _as_of(st, as_of)

    def work() -> Any:
        ws = stored_workspace(st.root, st.store)
        return segments.why(st.root, name, customer_id, as_of=moment, workspace=ws)

    result = _on_engine(st, work)
    return {
        "segment": result.segment,
        "customer_id": jsonable_encoder(result.customer_id),
        "as_of": result.as_of.isoformat(),
        "member": result.member,
        "conditions": jsonable_encoder(result.result),
    }


class CheckOut(BaseModel):
    """One step of a destination check."""

    step: str
    ok: bool
    detail: str


@engine_router.post(
    "/destinations/{name}/test",
    operation_id="test_destination",
    summary="Check a destination: connect, write and delete a probe",
    tags=["destinations"],
)
def check_destination(st: State, _caller: Admin, name: str) -> list[CheckOut]:
    stored = st.store.get("destination", name)
    if stored is None:
        raise not_found(f"destination named {name!r}")
    model = definition_from_data("destination", stored.spec, shown_as=f"destination {name}").model
    checks = _on_engine(st, lambda: test_destination(st.root, name, definition=model))
    return [CheckOut(step=c.step, ok=c.ok, detail=c.detail) for c in checks]


@engine_router.get(
    "/campaigns/{name}/plan",
    operation_id="plan_campaign",
    summary="What a run would send, without sending",
    tags=["campaigns"],
)
def plan_campaign(st: State, _caller: Viewer, name: str, as_of: AsOf = None) -> dict[str, Any]:
    _need(st, "campaign", name)
    moment = _as_of(st, as_of)
    plan = _on_engine(st, lambda: campaigns.plan_campaign(st.root, name, as_of=moment))
    return jsonable_encoder(plan.to_json())  # type: ignore[no-any-return]


class TestSendRequest(BaseModel):
    """A sample sent as a test run: of a campaign's treatment groups, or of an
    orchestration's rows."""

    sample: int = Field(default=10, ge=1, le=1000)
    destination: str | None = None
    """A campaign: only this destination of it (default: each of them). An orchestration:
    send to this destination instead of its own (a test folder or table)."""

    as_of: datetime | None = None


def _test_send(
    st: ApiState, caller: Principal, kind: str, name: str, body: TestSendRequest | None
) -> list[RunOut]:
    """Send samples as test runs: of a campaign, an orchestration, or each orchestration of a
    group; recorded in the audit log."""
    _need(st, kind, name)
    request = body or TestSendRequest()
    moment = _as_of(st, request.as_of)

    def campaign() -> list[Any]:
        return [
            campaigns.send_sample(
                st.root, name, sample=request.sample, as_of=moment, destination=request.destination
            )
        ]

    def orchestration(member: str) -> Any:
        return orchestrations.send_orchestration_sample(
            st.root, member, sample=request.sample, as_of=moment, destination=request.destination
        )

    if kind == "campaign":
        runs = _on_engine(st, campaign)
    else:
        if request.destination is not None:
            _need(st, "destination", request.destination)
        members = [name]
        if kind == "group":
            stored = st.store.get("group", name)
            assert stored is not None
            members = list(stored.spec.get("orchestrations") or [])
        runs = _on_engine(st, lambda: [orchestration(m) for m in members])
    st.store.audit(actor=caller.actor, action="test-send", kind=kind, name=name,
                   detail={"run_ids": [r.run_id for r in runs]})  # fmt: skip
    return [RunOut.of(r) for r in runs]


@engine_router.post(
    "/campaigns/{name}/test-send",
    operation_id="test_send_campaign",
    summary="Send a sample to the campaign's destinations, as a test run",
    tags=["campaigns"],
)
def send_test_sample(
    st: State,
    caller: Editor,
    name: str,
    body: Annotated[TestSendRequest | None, Body()] = None,
) -> RunOut:
    (run,) = _test_send(st, caller, "campaign", name, body)
    return run


@engine_router.get(
    "/campaigns/{name}/results",
    operation_id="campaign_results",
    summary="Conversion and revenue per group, with lift against the control",
    tags=["campaigns"],
)
def campaign_results(
    st: State,
    _caller: Viewer,
    name: str,
    conversion: Annotated[str, Query(description="The event table counting as a conversion.")],
    days: Annotated[int, Query(ge=1, le=365)] = 7,
    as_of: AsOf = None,
) -> dict[str, Any]:
    _need(st, "campaign", name)
    moment = _as_of(st, as_of)
    results = _on_engine(
        st,
        lambda: campaigns.campaign_results(
            st.root, name, conversion=conversion, days=days, as_of=moment
        ),
    )
    return jsonable_encoder(results.to_json())  # type: ignore[no-any-return]


@engine_router.get(
    "/journeys/{name}/overview",
    operation_id="journey_overview",
    summary="A journey's graph with counters per node, milestones and split comparisons",
    tags=["journeys"],
)
def journey_overview(
    st: State, _caller: Viewer, name: str, as_of: AsOf = None, goal: str | None = None
) -> dict[str, Any]:
    _need(st, "journey", name)
    moment = _as_of(st, as_of)
    overview = _on_engine(
        st, lambda: journeys.journey_overview(st.root, name, as_of=moment, goal=goal)
    )
    return jsonable_encoder(overview.to_json())  # type: ignore[no-any-return]


@engine_router.get(
    "/journeys/{name}/log",
    operation_id="journey_log",
    summary="The travel log, newest first",
    tags=["journeys"],
)
def journey_log(
    st: State,
    _caller: Viewer,
    name: str,
    customer: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    _need(st, "journey", name)
    rows = _on_engine(
        st, lambda: journeys.journey_log(st.root, name, customer=customer, limit=limit)
    )
    return jsonable_encoder(rows)  # type: ignore[no-any-return]


@engine_router.get(
    "/orchestrations/{name}/plan",
    operation_id="plan_orchestration",
    summary="Rows, columns and target files or table, without writing",
    tags=["orchestrations"],
)
def plan_orchestration(st: State, _caller: Viewer, name: str, as_of: AsOf = None) -> dict[str, Any]:
    _need(st, "orchestration", name)
    moment = _as_of(st, as_of)
    plan = _on_engine(st, lambda: orchestrations.plan_orchestration(st.root, name, as_of=moment))
    return jsonable_encoder(plan.to_json())  # type: ignore[no-any-return]


@engine_router.post(
    "/orchestrations/{name}/test-send",
    operation_id="test_send_orchestration",
    summary="Send the first rows to the destination (or another), as a test run",
    tags=["orchestrations"],
)
def send_orchestration_sample(
    st: State,
    caller: Editor,
    name: str,
    body: Annotated[TestSendRequest | None, Body()] = None,
) -> RunOut:
    (run,) = _test_send(st, caller, "orchestration", name, body)
    return run


@engine_router.post(
    "/groups/{name}/test-send",
    operation_id="test_send_group",
    summary="Send the first rows of each orchestration of the group, as test runs",
    tags=["groups"],
)
def send_group_sample(
    st: State,
    caller: Editor,
    name: str,
    body: Annotated[TestSendRequest | None, Body()] = None,
) -> list[RunOut]:
    return _test_send(st, caller, "group", name, body)


@engine_router.get(
    "/groups/{name}/plan",
    operation_id="plan_group",
    summary="The plan of each orchestration of the group, in order, without writing",
    tags=["groups"],
)
def plan_group(st: State, _caller: Viewer, name: str, as_of: AsOf = None) -> list[dict[str, Any]]:
    stored = st.store.get("group", name)
    if stored is None:
        raise not_found(f"group named {name!r}")
    moment = _as_of(st, as_of)
    members = list(stored.spec.get("orchestrations") or [])
    plans = _on_engine(
        st,
        lambda: [orchestrations.plan_orchestration(st.root, m, as_of=moment) for m in members],
    )
    return [jsonable_encoder(plan.to_json()) for plan in plans]

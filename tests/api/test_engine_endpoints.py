"""The endpoints that read the engine, each with what it answers: a segment's SQL and why a
customer is in it, campaign plans and results, journey overviews, logs and versions,
orchestration and group plans, group runs and test sends."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.fixtures.api import ApiServer, error_of

AS_OF = "2026-03-02T09:00:00Z"

JOURNEY = {
    "name": "welcome",
    "start": {"entry": ["even"], "goals": ["everyone"]},
    "nodes": [
        {"id": "hello", "type": "activate", "next": "done",
         "destinations": [{"destination": "drop", "mapping": {"customer_id": "customer_id"}}]},
        {"id": "done", "type": "exit"},
    ],
    "schedule": {"type": "once"},
    "status": "active",
}  # fmt: skip


def _finished(client: httpx.Client, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        run: dict[str, Any] = client.get(f"/api/runs/{run_id}").json()
        if run["status"] not in ("queued", "running"):
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.1)


def test_segment_sql_and_why(api_server: ApiServer) -> None:
    viewer = api_server.client("viewer")
    sql = viewer.get("/api/segments/even/sql", params={"dialect": "postgres"}).json()
    assert sql["dialect"] == "postgres"
    assert '"parity" = 0' in sql["sql"]
    oracle = viewer.get("/api/segments/even/sql", params={"dialect": "oracle"})
    assert (oracle.status_code, error_of(oracle)["type"]) == (400, "bad_request")
    assert "use one of: duckdb, spark" in error_of(oracle)["hint"]
    member = viewer.get("/api/segments/even/why/4", params={"as_of": AS_OF}).json()
    assert (member["customer_id"], member["member"]) == (4, True)
    assert member["conditions"]["met"] is True
    outsider = viewer.get("/api/segments/even/why/5", params={"as_of": AS_OF}).json()
    assert outsider["member"] is False
    unknown = viewer.get("/api/segments/even/why/999999")
    assert unknown.status_code == 404
    assert "customer '999999' not found" in error_of(unknown)["message"]
    naive = viewer.get("/api/segments/even/why/4", params={"as_of": "2026-03-02T09:00:00"})
    assert (naive.status_code, error_of(naive)["field"]) == (422, "query:as_of")


def test_campaign_plan_run_and_results(api_server: ApiServer) -> None:
    editor = api_server.client("editor")
    plan = editor.get("/api/campaigns/promo/plan", params={"as_of": AS_OF}).json()
    assert (plan["campaign"], plan["audience"], plan["new"]) == ("promo", 100, 100)
    run = editor.post("/api/campaigns/promo/runs", json={"as_of": AS_OF}).json()
    assert _finished(editor, run["run_id"])["status"] == "succeeded"
    replan = editor.get("/api/campaigns/promo/plan", params={"as_of": AS_OF}).json()
    assert (replan["previous_run"], replan["staying"], replan["new"]) == (run["run_id"], 100, 0)
    results = editor.get(
        "/api/campaigns/promo/results", params={"conversion": "customers", "as_of": AS_OF}
    )
    # The test workspace has no event tables: the conversion table is refused by name.
    assert results.status_code in (400, 404), results.text
    assert "customers" in error_of(results)["message"]


def test_journey_versions_overview_and_log(api_server: ApiServer) -> None:
    editor = api_server.client("editor")
    assert editor.post("/api/journeys", json=JOURNEY).status_code == 201
    changed = editor.put(
        "/api/journeys/welcome",
        headers={"If-Match": '"1"'},
        json={**JOURNEY, "description": "second version"},
    )
    assert changed.status_code == 200, changed.text
    versions = editor.get("/api/journeys/welcome/versions").json()
    assert [v["version"] for v in versions] == [1, 2]
    run = editor.post("/api/journeys/welcome/runs", json={"as_of": AS_OF}).json()
    assert _finished(editor, run["run_id"])["status"] == "succeeded"
    overview = editor.get("/api/journeys/welcome/overview", params={"as_of": AS_OF}).json()
    assert (overview["journey"], overview["version"], overview["last_run"]) == (
        "welcome", 2, run["run_id"],
    )  # fmt: skip
    nodes = {n["id"]: n for n in overview["nodes"]}
    assert nodes["hello"]["total"] == 100
    assert {m["kind"] for m in overview["milestones"]} >= {"goal", "exit"}
    log = editor.get("/api/journeys/welcome/log", params={"customer": "4"}).json()
    assert {row["node"] for row in log} >= {"hello", "done"}
    assert all(str(row["traveller"]) == "4" for row in log)
    assert editor.post("/api/journeys/welcome/archive").status_code == 400  # active: end first
    assert editor.post("/api/journeys/welcome/end").json()["status"] == "ended"
    assert editor.post("/api/journeys/welcome/archive").json()["status"] == "archived"


def test_orchestration_and_group_plans_runs_and_test_sends(api_server: ApiServer) -> None:
    editor = api_server.client("editor")
    plan = editor.get("/api/orchestrations/feed/plan", params={"as_of": AS_OF}).json()
    assert plan["rows"] == 200
    assert [c["name"] for c in plan["columns"]] == ["customer_id", "email"]
    group = editor.post("/api/groups", json={"name": "nightly", "orchestrations": ["feed"]})
    assert group.status_code == 201, group.text
    plans = editor.get("/api/groups/nightly/plan", params={"as_of": AS_OF}).json()
    assert [p["rows"] for p in plans] == [200]
    (sent,) = editor.post("/api/groups/nightly/test-send", json={"sample": 2}).json()
    assert (sent["name"], sent["is_test"], sent["status"]) == ("feed", True, "succeeded")
    run = editor.post("/api/groups/nightly/runs", json={"as_of": AS_OF}).json()
    ended = _finished(editor, run["run_id"])
    assert (ended["kind"], ended["status"]) == ("group", "succeeded")
    members = editor.get("/api/runs", params={"name": "feed"}).json()["items"]
    assert len(members) == 1
    unknown = editor.post("/api/groups/nightly/test-send", json={"destination": "nowhere"})
    assert unknown.status_code == 404

"""Runs over HTTP, end to end: define a segment, a destination and a campaign over the API,
run it, follow its events live, read its run; retry, restart and cancel; run listings."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from activator.store import MetadataStore
from tests.fixtures.api import ApiServer, error_of, make_workspace


def _follow(client: httpx.Client, run_id: str) -> list[tuple[str, dict[str, Any], str | None]]:
    """Every server-sent event of a run until its ``end``: (event, data, id)."""
    seen: list[tuple[str, dict[str, Any], str | None]] = []
    event, data, ident = "message", "", None
    with client.stream("GET", f"/api/runs/{run_id}/events") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = line.removeprefix("data: ")
            elif line.startswith("id: "):
                ident = line.removeprefix("id: ")
            elif not line and data:
                seen.append((event, json.loads(data), ident))
                event, data, ident = "message", "", None
    return seen


def test_define_run_follow_and_read_a_campaign_end_to_end(api_server: ApiServer) -> None:
    editor = api_server.client("editor")
    admin = api_server.client("admin")
    segment = editor.post(
        "/api/segments",
        json={"name": "odd", "rules": {"attribute": "customers.parity", "op": "=", "value": 1}},
    )
    assert segment.status_code == 201, segment.text
    preview = editor.get("/api/segments/odd/preview", params={"limit": 3})
    assert preview.status_code == 200, preview.text
    assert preview.json()["count"] == 100
    assert [row["customer_id"] for row in preview.json()["sample"]] == [1, 3, 5]
    assert preview.json()["sample"][0]["email"] != "c1@example.com"  # PII masked
    destination = admin.post(
        "/api/destinations",
        json={"name": "outbox", "type": "local", "path": "outbox", "format": {"type": "csv"}},
    )
    assert destination.status_code == 201, destination.text
    assert all(c["ok"] for c in admin.post("/api/destinations/outbox/test").json())
    campaign = editor.post(
        "/api/campaigns",
        json={
            "name": "odd-promo",
            "audience": {"include": ["odd"]},
            "destinations": [{"destination": "outbox", "mapping": {"customer_id": "customer_id"}}],
            "remaining": {"groups": [{"name": "all", "percent": 100}]},
        },
    )
    assert campaign.status_code == 201, campaign.text

    launched = editor.post("/api/campaigns/odd-promo/runs", json={"as_of": "2026-03-02T09:00:00Z"})
    assert launched.status_code == 202, launched.text
    run = launched.json()
    assert (run["status"], run["trigger"], run["as_of"]) == (
        "queued", "api", "2026-03-02T09:00:00Z",
    )  # fmt: skip

    events = _follow(editor, run["run_id"])
    kinds = [e for e, _, _ in events]
    assert kinds[-1] == "end"
    statuses = [d["status"] for e, d, _ in events if e == "status"]
    assert statuses[-1] == "succeeded"
    messages = [d["message"] for e, d, _ in events if e == "event"]
    assert messages[-1] == "run succeeded"
    ids = [int(i) for e, _, i in events if e == "event" and i is not None]
    assert ids == sorted(ids)
    assert len(ids) == len(messages)
    assert events[-1][1]["status"] == "succeeded"

    # Resuming the stream after the last event id sends nothing again but the end.
    with editor.stream(
        "GET", f"/api/runs/{run['run_id']}/events", headers={"Last-Event-ID": str(ids[-1])}
    ) as stream:
        replay = "".join(stream.iter_text())
    assert "event: event" not in replay
    assert "event: end" in replay

    detail = editor.get(f"/api/runs/{run['run_id']}").json()
    assert detail["status"] == "succeeded"
    assert detail["audience"] == 100
    (delivery,) = detail["deliveries"]
    assert (delivery["destination"], delivery["customers"], delivery["rows"]) == (
        "outbox", 100, 100,
    )  # fmt: skip
    tasks = [t["task"] for t in detail["tasks"]]
    assert "evaluate" in tasks
    assert [t for t in tasks if t.startswith("deliver:")] == ["deliver:outbox:all-remaining/all"]
    assert detail["events"][-1]["message"] == "run succeeded"
    files = list((api_server.root / "outbox").glob("*.csv"))
    rows = sum(len(f.read_text().splitlines()) - 1 for f in files)
    assert rows == 100

    # A finished run cannot be canceled or retried; a restart is a new run.
    assert editor.post(f"/api/runs/{run['run_id']}/cancel").status_code == 409
    retry = editor.post(f"/api/runs/{run['run_id']}/retry")
    assert retry.status_code == 400
    assert "nothing to retry" in error_of(retry)["message"]
    restarted = editor.post(f"/api/runs/{run['run_id']}/restart")
    assert restarted.status_code == 202
    again = restarted.json()
    assert again["run_id"] != run["run_id"]
    assert again["trigger"] == "restart"
    assert _follow(editor, again["run_id"])[-1][1]["status"] == "succeeded"

    listed = editor.get("/api/runs", params={"name": "odd-promo"}).json()
    assert [r["run_id"] for r in listed["items"]] == [again["run_id"], run["run_id"]]
    first = editor.get("/api/runs", params={"name": "odd-promo", "limit": 1}).json()
    assert first["next_after"] == again["run_id"]
    second = editor.get(
        "/api/runs", params={"name": "odd-promo", "limit": 1, "after": first["next_after"]}
    ).json()
    assert ([r["run_id"] for r in second["items"]], second["next_after"]) == ([run["run_id"]], None)
    assert editor.get("/api/runs", params={"status": "failed"}).json()["items"] == []

    row = next(
        r for r in editor.get("/api/activations").json()["items"] if r["name"] == "odd-promo"
    )
    assert row["last_run"]["run_id"] == again["run_id"]
    actions = [
        (a["action"], a["kind"], a["name"])
        for a in admin.get("/api/audit", params={"limit": 20}).json()
    ]
    assert ("launch", "campaign", "odd-promo") in actions
    assert ("restart", "campaign", "odd-promo") in actions


def test_cancel_of_a_queued_run_and_retry_of_a_failed_one(api_server: ApiServer) -> None:
    editor = api_server.client("editor")
    with MetadataStore.open(api_server.store_url, workspace_root=api_server.root) as store:
        stored = store.get("orchestration", "feed")
        assert stored is not None
        queued = store.create_run(
            kind="orchestration", name="feed", definition_version=stored.version,
            trigger="manual", as_of=stored.updated_at,
        )  # fmt: skip
    canceled = editor.post(f"/api/runs/{queued.run_id}/cancel")
    assert canceled.status_code == 200, canceled.text
    assert (canceled.json()["status"], canceled.json()["error"]) == (
        "canceled", "canceled on request",
    )  # fmt: skip

    # A run that fails for want of its output folder is retried once the folder exists.
    out = api_server.root / "out"
    out.write_text("a file where the folder should be")
    failed = editor.post("/api/orchestrations/feed/runs").json()
    end = _follow(editor, failed["run_id"])[-1][1]
    assert end["status"] == "failed", end
    out.unlink()
    retried = editor.post(f"/api/runs/{failed['run_id']}/retry")
    assert retried.status_code == 202, retried.text
    assert _follow(editor, failed["run_id"])[-1][1]["status"] == "succeeded"
    assert len(list(out.glob("*.csv"))) == 1
    assert editor.get("/api/runs/nope").status_code == 404


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
@pytest.mark.e2e
def test_activator_serve_runs_the_api_and_the_scheduler(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    make_workspace(root, "sqlite:///.activator/metadata.db")
    made = subprocess.run(
        [sys.executable, "-m", "activator", "-w", str(root), "token", "create", "--role",
         "editor", "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)["token"]
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "ACTIVATOR_WORKSPACE"}
    with subprocess.Popen(
        [sys.executable, "-m", "activator", "-w", str(root), "serve", "--port", str(port),
         "--interval", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    ) as process:  # fmt: skip
        try:
            client = httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            deadline = time.monotonic() + 60
            while True:
                try:
                    health = client.get("/api/health")
                    break
                except httpx.TransportError:
                    assert process.poll() is None, process.stdout.read() if process.stdout else ""
                    assert time.monotonic() < deadline, "activator serve did not answer in 60 s"
                    time.sleep(0.2)
            assert health.json()["scheduler"] is True
            assert client.get("/api/activations").status_code == 200
            assert client.get("/openapi.json").json()["info"]["title"] == "Activator API"
            run = client.post("/api/orchestrations/feed/runs").json()
            deadline = time.monotonic() + 60
            while client.get(f"/api/runs/{run['run_id']}").json()["status"] != "succeeded":
                assert time.monotonic() < deadline, "the run did not finish in 60 s"
                time.sleep(0.2)
            client.close()
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=60)
    # uvicorn shuts down gracefully, then ends by the signal it caught, as servers do.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert "alembic" not in output  # no migration chatter at each tick
    assert token not in output


def test_test_sends_are_test_runs_and_statuses_follow_actions(api_server: ApiServer) -> None:
    editor = api_server.client("editor")
    sent = editor.post("/api/orchestrations/feed/test-send", json={"sample": 5})
    assert sent.status_code == 200, sent.text
    run = sent.json()
    assert (run["status"], run["trigger"], run["is_test"]) == ("succeeded", "test", True)
    (part,) = (api_server.root / "out").glob("*.csv")
    assert len(part.read_text().splitlines()) == 1 + 5
    assert editor.get("/api/runs").json()["items"] == []  # test runs are not listed by default
    listed = editor.get("/api/runs", params={"include_tests": True}).json()["items"]
    assert [r["run_id"] for r in listed] == [run["run_id"]]
    (feed,) = editor.get("/api/activations", params={"type": "orchestration"}).json()["items"]
    assert feed["last_run"] is None

    missing = editor.post("/api/orchestrations/feed/test-send", json={"destination": "nowhere"})
    assert missing.status_code == 404

    campaign = editor.post("/api/campaigns/promo/test-send", json={"sample": 3})
    assert campaign.status_code == 200, campaign.text
    assert campaign.json()["is_test"] is True

    assert editor.post("/api/orchestrations/feed/end").json()["status"] == "ended"
    refused = editor.post("/api/orchestrations/feed/runs")
    assert refused.status_code == 400
    assert "is ended: it does not run" in error_of(refused)["message"]
    assert editor.post("/api/orchestrations/feed/resume").status_code == 400
    assert editor.post("/api/orchestrations/feed/archive").json()["status"] == "archived"
    assert editor.get("/api/activations").json()["total"] == 1
    archived = editor.get("/api/activations", params={"status": "archived"}).json()["items"]
    assert [r["name"] for r in archived] == ["feed"]

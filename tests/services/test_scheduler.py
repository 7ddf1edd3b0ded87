"""The scheduler's ticks: slots, catch-up, one run per slot, dependencies, groups, broken
definitions, and run control (retry, restart, cancel)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb
import pytest

from activator.errors import ConfigError
from activator.services.run import cancel_run, restart_run, retry_run, run_activation
from activator.services.scheduler import Scheduler
from activator.services.workspace import apply_workspace, change_status
from activator.store.store import MetadataStore

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday

CONFIG = """\
engine: {type: duckdb, path: data/shop.duckdb}
timezone: UTC
data_model:
  customers: {table: customers, key: customer_id}
"""

DROP = """\
type: local
path: out
filename: "{activation}_{run_time:%Y%m%dT%H%M}"
format: {type: csv}
"""


def _orchestration(
    query: str = "SELECT customer_id FROM customers",
    *,
    cron: str | None = "0 * * * *",
    after: list[str] | None = None,
    status: str = "active",
) -> str:
    lines = [f"query: {query}", "destination: drop", f"status: {status}"]
    if cron is not None:
        lines.append(f'schedule: {{type: cron, cron: "{cron}", timezone: UTC}}')
    if after:
        lines.append(f"after: [{', '.join(after)}]")
    return "\n".join(lines) + "\n"


def _workspace(root: Path, orchestrations: dict[str, str], extra: str = "") -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(root / "data" / "shop.duckdb"))
    con.execute("CREATE TABLE IF NOT EXISTS customers AS SELECT range AS customer_id FROM range(5)")
    con.close()
    (root / "activator.yaml").write_text(CONFIG + extra)
    (root / "destinations").mkdir(exist_ok=True)
    (root / "destinations" / "drop.yml").write_text(DROP)
    (root / "orchestrations").mkdir(exist_ok=True)
    for name, text in orchestrations.items():
        (root / "orchestrations" / f"{name}.yml").write_text(text)
    apply_workspace(root)
    return root


def _runs(root: Path) -> list[tuple[str, str, datetime | None, str]]:
    """(name, trigger, slot, status) of every run, by slot then name."""
    with MetadataStore.open("sqlite:///.activator/metadata.db", workspace_root=root) as store:
        found = [
            (r.name, r.trigger, r.scheduled_for, r.status)
            for d in store.current()
            for r in store.list_runs(d.kind, d.name, limit=1000)
        ]
    return sorted(found, key=lambda r: (r[2] or T0, r[0]))


def _files(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "out").glob("*.csv")) if (root / "out").exists() else []


def test_a_new_activation_starts_at_its_next_slot(tmp_path: Path) -> None:
    root = _workspace(tmp_path, {"hourly": _orchestration()})
    first = Scheduler(root).tick(T0 + timedelta(minutes=30))
    assert first.runs == []  # first seen at 00:30: the 00:00 slot was before it was scheduled
    second = Scheduler(root).tick(T0 + timedelta(hours=1, minutes=5))
    assert [(r.name, r.scheduled_for, r.status) for r in second.runs] == [
        ("hourly", T0 + timedelta(hours=1), "succeeded")
    ]
    # The run is as of its slot, not of the tick.
    assert second.runs[0].as_of == T0 + timedelta(hours=1)
    assert _files(root) == ["hourly_20260302T0100.csv"]
    assert Scheduler(root).tick(T0 + timedelta(hours=1, minutes=10)).runs == []


@pytest.mark.parametrize(
    ("policy", "expected_slots", "skipped"),
    [
        ("latest", [5], 4),
        ("all", [1, 2, 3, 4, 5], 0),
        ("none", [], 5),
    ],
)
def test_catch_up_after_downtime(
    tmp_path: Path, policy: str, expected_slots: list[int], skipped: int
) -> None:
    root = _workspace(tmp_path, {"hourly": _orchestration()})
    Scheduler(root).tick(T0 + timedelta(minutes=1))
    # Down from 00:01 to 05:30: slots 01:00..05:00 were missed.
    report = Scheduler(root, catch_up=policy).tick(T0 + timedelta(hours=5, minutes=30))  # type: ignore[arg-type]
    assert [r.scheduled_for for r in report.runs] == [
        T0 + timedelta(hours=h) for h in expected_slots
    ]
    assert report.skipped == ([("orchestration", "hourly", skipped)] if skipped else [])
    if policy == "latest":
        assert report.runs[0].inputs == {
            "missed_slots": 4,
            "first_missed": (T0 + timedelta(hours=1)).isoformat(),
        }
    # Whatever the policy, those slots are considered: nothing more runs for them.
    assert Scheduler(root).tick(T0 + timedelta(hours=5, minutes=31)).runs == []


def test_catch_up_none_runs_a_slot_within_the_grace_period(tmp_path: Path) -> None:
    root = _workspace(tmp_path, {"hourly": _orchestration()})
    Scheduler(root).tick(T0 + timedelta(minutes=1))
    report = Scheduler(root, catch_up="none").tick(T0 + timedelta(hours=1, minutes=10))
    assert [r.scheduled_for for r in report.runs] == [T0 + timedelta(hours=1)]


def test_two_schedulers_never_run_a_slot_twice(tmp_path: Path) -> None:
    root = _workspace(tmp_path, {"a": _orchestration(), "b": _orchestration()})
    Scheduler(root).tick(T0)
    now = T0 + timedelta(hours=1)
    reports: list[Any] = []
    barrier = threading.Barrier(2)

    def tick() -> None:
        barrier.wait()
        reports.append(Scheduler(root).tick(now))

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ran = sorted(r.name for report in reports for r in report.runs)
    taken = sorted(t[1] for report in reports for t in report.taken)
    assert sorted(ran + taken) == ["a", "a", "b", "b"]
    assert [r[:3] for r in _runs(root)] == [
        ("a", "schedule", now),
        ("b", "schedule", now),
    ]
    assert _files(root) == ["a_20260302T0100.csv", "b_20260302T0100.csv"]


def test_paused_activations_do_not_run_nor_catch_up_when_resumed(tmp_path: Path) -> None:
    root = _workspace(tmp_path, {"hourly": _orchestration()})
    Scheduler(root).tick(T0)
    change_status(root, "orchestration", "hourly", "pause", {"pause": ({"active"}, "paused")})
    assert Scheduler(root).tick(T0 + timedelta(hours=3, minutes=5)).runs == []
    change_status(root, "orchestration", "hourly", "resume", {"resume": ({"paused"}, "active")})
    report = Scheduler(root).tick(T0 + timedelta(hours=3, minutes=10))
    assert report.runs == []  # the 01:00-03:00 slots passed while it was paused
    report = Scheduler(root).tick(T0 + timedelta(hours=4, minutes=1))
    assert [r.scheduled_for for r in report.runs] == [T0 + timedelta(hours=4)]


def test_after_runs_once_all_upstreams_succeeded(tmp_path: Path) -> None:
    root = _workspace(
        tmp_path,
        {
            "extract": _orchestration(cron="0 * * * *"),
            "enrich": _orchestration(cron="0 */2 * * *"),
            "publish": _orchestration(cron=None, after=["extract", "enrich"]),
        },
    )
    Scheduler(root).tick(T0 + timedelta(minutes=1))
    one = Scheduler(root).tick(T0 + timedelta(hours=1, minutes=1))
    assert [r.name for r in one.runs] == ["extract"]  # enrich has not run yet: publish waits
    two = Scheduler(root).tick(T0 + timedelta(hours=2, minutes=1))
    assert [r.name for r in two.runs] == ["enrich", "extract", "publish"]
    publish = two.runs[-1]
    assert publish.trigger == "after"
    assert publish.inputs["after"] == {"extract": two.runs[1].run_id, "enrich": two.runs[0].run_id}
    assert publish.as_of == T0 + timedelta(hours=2)
    three = Scheduler(root).tick(T0 + timedelta(hours=3, minutes=1))
    assert [r.name for r in three.runs] == ["extract"]  # enrich did not run again
    # A manual run of enrich completes the pair again.
    run_activation(root, "enrich", as_of=T0 + timedelta(hours=3, minutes=2))
    four = Scheduler(root).tick(T0 + timedelta(hours=3, minutes=3))
    assert [(r.name, r.trigger) for r in four.runs] == [("publish", "after")]
    assert Scheduler(root).tick(T0 + timedelta(hours=3, minutes=4)).runs == []


def test_upstream_scheduled_in_the_same_slot_runs_first(tmp_path: Path) -> None:
    root = _workspace(
        tmp_path,
        {
            "b-downstream": _orchestration(after=["z-upstream"]),
            "z-upstream": _orchestration(),
        },
    )
    Scheduler(root).tick(T0)
    report = Scheduler(root).tick(T0 + timedelta(hours=1))
    assert [(r.name, r.trigger) for r in report.runs] == [
        ("z-upstream", "schedule"),
        ("b-downstream", "schedule"),
        ("b-downstream", "after"),
    ]


def test_a_broken_definition_fails_alone(tmp_path: Path) -> None:
    root = _workspace(
        tmp_path,
        {
            "good": _orchestration(),
            "broken": _orchestration("SELECT * FROM no_such_table"),
            "also-good": _orchestration(),
        },
    )
    Scheduler(root).tick(T0)
    # A file that no longer parses does not matter: the scheduler reads the applied versions.
    (root / "orchestrations" / "good.yml").write_text("query: [unclosed\n")
    report = Scheduler(root).tick(T0 + timedelta(hours=1))
    outcome = {r.name: r.status for r in report.runs}
    assert outcome == {"also-good": "succeeded", "broken": "failed", "good": "succeeded"}
    broken = next(r for r in report.runs if r.name == "broken")
    assert broken.error_kind == "configuration"
    assert "no_such_table" in (broken.error or "")
    assert _files(root) == ["also-good_20260302T0100.csv", "good_20260302T0100.csv"]


GROUP = """\
kind: group
orchestrations: [first, broken, last]
schedule: {type: cron, cron: "0 6 * * *", timezone: UTC}
status: active
"""


def test_a_group_runs_every_member_and_names_the_failed_ones(tmp_path: Path) -> None:
    root = _workspace(
        tmp_path,
        {
            "first": _orchestration(cron=None),
            "broken": _orchestration("SELECT * FROM missing_table", cron=None),
            "last": _orchestration(cron=None),
            "nightly": GROUP,
        },
    )
    Scheduler(root).tick(T0)
    report = Scheduler(root).tick(T0 + timedelta(hours=6, minutes=1))
    assert [(r.kind, r.name, r.status) for r in report.runs] == [("group", "nightly", "failed")]
    group = report.runs[0]
    members = group.counts["members"]
    assert {n: m["status"] for n, m in members.items()} == {
        "first": "succeeded",
        "broken": "failed",
        "last": "succeeded",
    }
    assert group.error is not None
    assert group.error.startswith("1 of 3 failed: broken: ")
    assert group.error_kind == "configuration"
    assert _files(root) == ["first_20260302T0600.csv", "last_20260302T0600.csv"]
    # Fix the table, retry the group: only the failed member runs again.
    con = duckdb.connect(str(root / "data" / "shop.duckdb"))
    con.execute("CREATE TABLE missing_table AS SELECT 1 AS x")
    con.close()
    retried = retry_run(root, group.run_id)
    assert retried.status == "succeeded"
    assert retried.counts["members"]["first"]["run_id"] == members["first"]["run_id"]
    assert retried.counts["members"]["broken"]["run_id"] == members["broken"]["run_id"]
    assert _files(root) == [
        "broken_20260302T0600.csv",
        "first_20260302T0600.csv",
        "last_20260302T0600.csv",
    ]


def test_retry_keeps_the_version_restart_takes_the_current_one(tmp_path: Path) -> None:
    root = _workspace(tmp_path, {"feed": _orchestration("SELECT * FROM later_table", cron=None)})
    failed = run_activation(root, "feed", as_of=T0)
    assert failed.status == "failed"
    with pytest.raises(ConfigError, match="no run nope"):
        retry_run(root, "nope")
    again = retry_run(root, failed.run_id)
    assert (again.run_id, again.status, again.definition_version) == (failed.run_id, "failed", 1)
    # Fix the definition (version 2) and restart: a new run of v2 as of the same time.
    (root / "orchestrations" / "feed.yml").write_text(_orchestration(cron=None))
    apply_workspace(root)
    restarted = restart_run(root, failed.run_id)
    assert restarted.run_id != failed.run_id
    assert (restarted.status, restarted.definition_version, restarted.trigger) == (
        "succeeded",
        2,
        "restart",
    )
    assert restarted.as_of == T0
    assert restarted.inputs == {"restarts": failed.run_id}
    with pytest.raises(ConfigError, match=r"already finished \(succeeded\): nothing to retry"):
        retry_run(root, restarted.run_id)


def test_cancel_an_idle_run_at_once(tmp_path: Path) -> None:
    root = _workspace(tmp_path, {"feed": _orchestration(cron=None)})
    with MetadataStore.open("sqlite:///.activator/metadata.db", workspace_root=root) as store:
        stored = store.get("orchestration", "feed")
        assert stored is not None
        run = store.create_run(
            kind="orchestration", name="feed", definition_version=1, trigger="manual", as_of=T0
        )
    canceled = cancel_run(root, run.run_id)
    assert (canceled.status, canceled.error) == ("canceled", "canceled on request")
    with pytest.raises(ConfigError, match=r"already finished \(canceled\)"):
        cancel_run(root, run.run_id)
    with pytest.raises(ConfigError, match="runs restart"):
        retry_run(root, run.run_id)
    # The scheduler does not resume it.
    assert Scheduler(root).tick(T0).resumed == []


def test_the_scheduler_resumes_a_run_left_queued(tmp_path: Path) -> None:
    root = _workspace(tmp_path, {"feed": _orchestration(cron=None)})
    with MetadataStore.open("sqlite:///.activator/metadata.db", workspace_root=root) as store:
        run = store.create_run(
            kind="orchestration", name="feed", definition_version=1, trigger="manual", as_of=T0
        )
    report = Scheduler(root).tick(T0)
    assert [(r.run_id, r.status) for r in report.resumed] == [(run.run_id, "succeeded")]
    assert _files(root) == ["feed_20260302T0000.csv"]


# -- alerts ----------------------------------------------------------------------------------


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        length = int(self.headers["content-length"])
        type(self).received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(_Hook):
        pass

    Handler.received = received
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", received
    server.shutdown()


def test_alerts_on_failure_and_success(
    tmp_path: Path, hook: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, received = hook
    monkeypatch.setenv("SLACK_HOOK", url + "/slack/T000/B000/XXXX")
    alerts = f"""\
alerts:
  - name: ops
    url: {url}/ops
    allow_private: true
    on: [failure, success]
    activations: [broken, good]
  - name: slack
    url: {{env: SLACK_HOOK}}
    format: slack
    allow_private: true
"""
    root = _workspace(
        tmp_path,
        {
            "good": _orchestration(cron=None),
            "broken": _orchestration("SELECT * FROM nope", cron=None),
            "quiet": _orchestration(cron=None),
        },
        extra=alerts,
    )
    good = run_activation(root, "good", as_of=T0)
    broken = run_activation(root, "broken", as_of=T0)
    run_activation(root, "quiet", as_of=T0)
    ops = [r for r in received if "type" in r]
    slack = [r for r in received if "blocks" in r]
    assert [(r["type"], r["activation"]["name"], r["run"]["id"]) for r in ops] == [
        ("activator.run.success", "good", good.run_id),
        ("activator.run.failure", "broken", broken.run_id),
    ]
    failure = ops[1]
    assert failure["attribution"] == "configuration"
    assert "nope" in failure["error"]
    assert failure["run"]["status"] == "failed"
    # Slack: failures only (the default), a text and blocks naming the run and the error.
    assert len(slack) == 1
    assert slack[0]["text"].startswith("orchestration broken: run failed\n")
    assert broken.run_id in slack[0]["text"]
    assert "configuration" in slack[0]["blocks"][1]["text"]["text"]


def test_an_alert_that_cannot_be_sent_is_a_warning_on_the_run(tmp_path: Path) -> None:
    secret_path = "/hooks/T1/B2/very-secret-token"
    alerts = f"""\
alerts:
  - name: down
    url: http://127.0.0.1:9{secret_path}
    allow_private: true
    on: [success]
"""
    root = _workspace(tmp_path, {"good": _orchestration(cron=None)}, extra=alerts)
    run = run_activation(root, "good", as_of=T0)
    assert run.status == "succeeded"
    with MetadataStore.open("sqlite:///.activator/metadata.db", workspace_root=root) as store:
        events = store.events(run.run_id)
    warning = [e for e in events if e.level == "warning"]
    assert len(warning) == 1
    assert warning[0].message.startswith("alert down (success) could not be sent: ")
    assert "very-secret-token" not in json.dumps([e.message for e in events])


def test_a_long_running_alert_is_sent_once(
    tmp_path: Path, hook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = hook
    alerts = f"""\
alerts:
  - name: slow
    url: {url}
    allow_private: true
    on: [long_running]
    longer_than_minutes: 30
"""
    root = _workspace(tmp_path, {"feed": _orchestration(cron=None)}, extra=alerts)
    with MetadataStore.open("sqlite:///.activator/metadata.db", workspace_root=root) as store:
        run = store.create_run(
            kind="orchestration",
            name="feed",
            definition_version=1,
            trigger="manual",
            as_of=T0,
            owner="elsewhere:1",
            lease=timedelta(days=365),
        )
        store.claim_run(run.run_id, "elsewhere:1", timedelta(days=365))
        from activator.services.alerts import alert_long_running
        from activator.workspace.loader import load_workspace

        ws = load_workspace(root, definitions=False)
        started = store.get_run(run.run_id)
        assert started is not None
        assert started.started_at is not None
        assert alert_long_running(ws, store, now=started.started_at + timedelta(minutes=29)) == []
        later = started.started_at + timedelta(minutes=31)
        assert alert_long_running(ws, store, now=later) == [run.run_id]
        assert alert_long_running(ws, store, now=later + timedelta(minutes=5)) == []
    assert [(r["type"], r["run"]["id"]) for r in received] == [
        ("activator.run.long_running", run.run_id)
    ]


def test_a_schedule_ends_after_max_runs(tmp_path: Path) -> None:
    limited = _orchestration().replace("timezone: UTC}", "timezone: UTC, max_runs: 2}")
    root = _workspace(tmp_path, {"twice": limited})
    Scheduler(root).tick(T0)
    ran = [
        [r.scheduled_for for r in Scheduler(root).tick(T0 + timedelta(hours=h, minutes=1)).runs]
        for h in (1, 2, 3)
    ]
    assert ran == [[T0 + timedelta(hours=1)], [T0 + timedelta(hours=2)], []]

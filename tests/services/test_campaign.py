"""Campaigns end to end on DuckDB: runs into files and a webhook, recipients, the three modes,
plans, test sends, pause/resume/archive, statuses, and a failed run resumed."""

from __future__ import annotations

import csv
import dataclasses
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from activator.errors import ConfigError, DefinitionError
from activator.services import campaign as campaigns
from activator.services.run import list_runs, resume_run, run_activation, run_json, show_run
from activator.services.workspace import apply_workspace, status
from activator.store.store import MetadataStore
from tests.fixtures.receiver import Receiver

T1 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
T2 = T1 + timedelta(days=7)

CONFIG = """\
engine: {type: duckdb, path: data/shop.duckdb}
data_model:
  customers: {table: customers, key: customer_id}
"""

SEGMENTS = {
    # Customers who signed up before the as-of time: the audience grows between runs.
    "signed-up": "rules: {attribute: customers.signup_at, op: before, value: today}\n",
    "gold": "rules: {attribute: customers.tier, op: equals, value: gold}\n",
    "opted-out": "rules: {attribute: customers.opted_out, op: is_true}\n",
    "promo-recipients": "rules: {campaign: promo}\n",
}

DROP = """\
type: local
path: out
filename: "{campaign}_{run_time:%Y%m%d}"
format: {type: csv}
"""

PROMO = """\
audience: {include: [signed-up], exclude: [opted-out]}
destinations:
  - destination: drop
    mapping: {id: customer_id, email: {source: email, required: true}, group: run.group}
sub_audiences:
  - name: gold
    segment: gold
    groups:
      - {name: offer, percent: 80}
      - {name: holdout, percent: 20, control: true}
remaining:
  name: others
  groups:
    - {name: reminder, percent: 90}
    - {name: holdout, percent: 10, control: true}
schedule: {type: recurring, every: weekly, at: "06:00"}
mode: MODE
status: active
"""


def _customers(con: duckdb.DuckDBPyConnection, n: int) -> None:
    # Customer i signed up on day i // 100 after 2026-02-01: 2,900 by T1, 3,600 by T2.
    # Every 9th is gold, every 13th opted out, every 50th has no e-mail (shrink).
    con.execute(
        f"""CREATE OR REPLACE TABLE customers AS SELECT range AS customer_id,
        CASE WHEN range % 50 = 0 THEN NULL ELSE 'c' || range || '@x.com' END AS email,
        CASE WHEN range % 9 = 0 THEN 'gold' ELSE 'basic' END AS tier,
        range % 13 = 0 AS opted_out,
        TIMESTAMP '2026-02-01' + INTERVAL (range // 100) DAY AS signup_at
        FROM range({n})"""
    )


def _audience(as_of: datetime) -> set[int]:
    days = (as_of.date() - datetime(2026, 2, 1).date()).days
    return {i for i in range(days * 100) if i % 13}


def make_workspace(
    root: Path, *, mode: str = "incremental", extra: dict[str, str] | None = None
) -> Path:
    (root / "data").mkdir(parents=True)
    con = duckdb.connect(str(root / "data" / "shop.duckdb"))
    _customers(con, 4000)
    con.close()
    (root / "activator.yaml").write_text(CONFIG)
    files = {
        **{f"segments/{name}": text for name, text in SEGMENTS.items()},
        "destinations/drop": DROP,
        "campaigns/promo": PROMO.replace("MODE", mode),
        **(extra or {}),
    }
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / f"{path}.yml").write_text(text)
    apply_workspace(root)
    return root


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws")


def read_files(root: Path, pattern: str) -> dict[str, list[dict[str, str]]]:
    found = {}
    for path in sorted((root / "out").glob(pattern)):
        with path.open(newline="") as handle:
            found[path.name] = list(csv.DictReader(handle))
    return found


def query(root: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(root / "data" / "shop.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def group_of(root: Path, run_id: str) -> dict[int, tuple[str, str, bool]]:
    table = "activator.campaign_audience_" + run_id.replace("-", "")
    return {
        c: (s, g, ctl)
        for c, s, g, ctl in query(
            root, f"SELECT customer_id, sub_audience, treatment_group, control FROM {table}"
        )
    }


# -- runs -----------------------------------------------------------------------------------


def test_a_run_sends_each_group_to_its_own_file_and_records_recipients(workspace: Path) -> None:
    run = run_activation(workspace, "promo", as_of=T1)
    assert run.status == "succeeded"
    groups = group_of(workspace, run.run_id)
    assert set(groups) == _audience(T1)
    files = read_files(workspace, "*.csv")
    assert sorted(files) == [
        "promo_20260302_gold_offer.csv",
        "promo_20260302_others_reminder.csv",
    ]
    for name, (sub, group) in {
        "promo_20260302_gold_offer.csv": ("gold", "offer"),
        "promo_20260302_others_reminder.csv": ("others", "reminder"),
    }.items():
        expected = {c for c, (s, g, _) in groups.items() if (s, g) == (sub, group) and c % 50}
        assert {int(r["id"]) for r in files[name]} == expected
        assert {r["group"] for r in files[name]} == {group}
    gold = {c for c, (s, _, _) in groups.items() if s == "gold"}
    assert gold == {c for c in _audience(T1) if c % 9 == 0}
    holdout = {c for c, (s, g, _) in groups.items() if (s, g) == ("gold", "holdout")}
    assert len(holdout) == round(len(gold) * 0.2)

    doc = run_json(run)
    assert doc["audience"] == len(_audience(T1))
    # Sent: the treatment customers (shrink drops no customer from "sent": it counts
    # customers routed to a delivery that succeeded).
    treatment = {c for c, (_, _, control) in groups.items() if not control}
    assert doc["sent"] == len(treatment)
    deliveries = {(d["sub_audience"], d["group"]): d for d in doc["deliveries"]}
    offer = deliveries[("gold", "offer")]
    offer_customers = {c for c, (s, g, _) in groups.items() if (s, g) == ("gold", "offer")}
    assert offer["destination"] == "drop"
    assert offer["customers"] == len(offer_customers)
    assert offer["shrink"] == sum(1 for c in offer_customers if c % 50 == 0)
    assert offer["rows"] == offer["customers"] - offer["shrink"]
    assert (offer["expansion"], offer["rejected"]) == (0, 0)

    recipients = query(
        workspace,
        "SELECT customer_id, sub_audience, treatment_group, control, destination, action, "
        "timezone('UTC', sent_at) FROM activator.recipients",
    )
    assert len(recipients) == len(groups)
    for customer, sub, group, control, destination, action, sent_at in recipients:
        assert (sub, group, control) == groups[customer]
        assert destination == (None if control else "drop")
        assert action == "add"
        assert sent_at == T1.replace(tzinfo=None)


def test_the_second_run_sends_only_the_newly_qualified(workspace: Path) -> None:
    first = run_activation(workspace, "promo", as_of=T1)
    before = group_of(workspace, first.run_id)
    second = run_activation(workspace, "promo", as_of=T2)
    assert second.status == "succeeded"
    after = group_of(workspace, second.run_id)
    assert all(after[c] == g for c, g in before.items())
    new = set(after) - set(before)
    assert new == _audience(T2) - _audience(T1)
    doc = run_json(second)
    assert doc["audience"] == len(_audience(T2))
    assert doc["sent"] == sum(1 for c in new if not after[c][2])
    sent = read_files(workspace, "promo_20260309_*.csv")
    assert {int(r["id"]) for rows in sent.values() for r in rows} == {
        c for c in new if not after[c][2] and c % 50
    }
    per_run = query(workspace, "SELECT run_id, count(*) FROM activator.recipients GROUP BY run_id")
    assert dict(per_run) == {first.run_id: len(before), second.run_id: len(new)}
    # Run snapshots are dropped on success, and only the latest audience table is kept: it is
    # the next run's baseline.
    tables = {
        name
        for (name,) in query(
            workspace,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'activator'",
        )
    }
    assert tables == {
        "campaign_assignments",
        "recipients",
        "campaign_audience_" + second.run_id.replace("-", ""),
    }


def test_full_mode_resends_everyone(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", mode="full")
    run_activation(root, "promo", as_of=T1)
    second = run_activation(root, "promo", as_of=T2)
    groups = group_of(root, second.run_id)
    assert run_json(second)["sent"] == sum(1 for g in groups.values() if not g[2])


def test_mirror_mode_sends_additions_and_removals_in_separate_files(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", mode="mirror")
    first = run_activation(root, "promo", as_of=T1)
    before = group_of(root, first.run_id)
    # Customers 100-199 opt out: they leave the audience.
    query_rw(root, "UPDATE customers SET opted_out = true WHERE customer_id BETWEEN 100 AND 199")
    second = run_activation(root, "promo", as_of=T2)
    after = group_of(root, second.run_id)
    files = read_files(root, "promo_20260309_*.csv")
    assert sorted(files) == [
        "promo_20260309_gold_offer_added.csv",
        "promo_20260309_gold_offer_removed.csv",
        "promo_20260309_others_reminder_added.csv",
        "promo_20260309_others_reminder_removed.csv",
    ]
    removed = {int(r["id"]) for n, rows in files.items() if "removed" in n for r in rows}
    left = {c for c in set(before) - set(after) if not before[c][2] and c % 50}
    assert removed == left
    assert left == {c for c in range(100, 200) if c % 13 and c % 50 and not before[c][2]}
    added = {int(r["id"]) for n, rows in files.items() if "added" in n for r in rows}
    assert added == {c for c in set(after) - set(before) if not after[c][2] and c % 50}
    # The mapping gains an `action` field, so a receiver can tell the two apart.
    assert {r["action"] for n, rows in files.items() for r in rows if "removed" in n} == {"remove"}
    actions = dict(
        query(root, "SELECT action, count(*) FROM activator.recipients WHERE run_id = "
              f"'{second.run_id}' GROUP BY action")
    )  # fmt: skip
    assert actions["remove"] == sum(1 for c in set(before) - set(after) if not before[c][2])


def query_rw(root: Path, sql: str) -> None:
    con = duckdb.connect(str(root / "data" / "shop.duckdb"))
    try:
        con.execute(sql)
    finally:
        con.close()


def test_a_segment_on_campaign_activity_suppresses_earlier_recipients(tmp_path: Path) -> None:
    follow_up = """\
audience: {include: [signed-up], exclude: [promo-recipients]}
destinations: [{destination: drop, mapping: {id: customer_id}}]
remaining: {groups: [{name: all, percent: 100}]}
status: active
"""
    root = make_workspace(tmp_path / "ws", extra={"campaigns/follow-up": follow_up})
    first = run_activation(root, "promo", as_of=T1)
    later = run_activation(root, "follow-up", as_of=T2)
    # Everyone promo was sent is out; its control customers, who were sent nothing, stay in.
    sent = {c for c, (_, _, control) in group_of(root, first.run_id).items() if not control}
    signed_up = set(range(3600))
    assert set(group_of(root, later.run_id)) == signed_up - sent


# -- plan, test sends -----------------------------------------------------------------------


def test_plan_shows_new_staying_and_leaving_without_writing(workspace: Path) -> None:
    first = run_activation(workspace, "promo", as_of=T1)
    query_rw(workspace, "UPDATE customers SET opted_out = true WHERE customer_id < 100")
    tables_before = query(workspace, "SELECT table_name FROM information_schema.tables")
    plan = campaigns.plan_campaign(workspace, "promo", as_of=T2).to_json()
    assert query(workspace, "SELECT table_name FROM information_schema.tables") == tables_before
    before = group_of(workspace, first.run_id)
    now = _audience(T2) - set(range(100))
    assert plan["previous_run"] == first.run_id
    assert plan["audience"] == len(now)
    assert plan["new"] == len(now - set(before))
    assert plan["staying"] == len(now & set(before))
    assert plan["leaving"] == len(set(before) - now)
    subs = {s["name"]: s for s in plan["sub_audiences"]}
    assert subs["gold"]["customers"] == sum(1 for c in now if c % 9 == 0)
    offer = next(d for d in plan["deliveries"] if d["group"] == "offer")
    gold_new = {c for c in now - set(before) if c % 9 == 0}
    joining = next(g for g in subs["gold"]["groups"] if g["group"] == "offer")["joining"]
    assert offer["customers"] == joining <= len(gold_new)
    # The plan created no run.
    assert [r.run_id for r in list_runs(workspace, "promo")] == [first.run_id]


def test_a_test_send_is_recorded_as_a_test_and_changes_nothing(workspace: Path) -> None:
    test = campaigns.send_sample(workspace, "promo", sample=25, as_of=T1, destination="drop")
    assert (test.status, test.is_test, test.trigger) == ("succeeded", True, "test")
    sent = {int(r["id"]) for rows in read_files(workspace, "*.csv").values() for r in rows}
    assert (run_json(test)["sent"], run_json(test)["audience"]) == (25, None)
    assert query(
        workspace,
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'recipients'",
    ) == [(0,)]
    # The next real run still sends everyone: a test is never the previous run.
    real = run_activation(workspace, "promo", as_of=T1)
    groups = group_of(workspace, real.run_id)
    assert run_json(real)["sent"] == sum(1 for g in groups.values() if not g[2])
    # The sample was the 25 lowest IDs of the treatment groups (the same groups the real run
    # assigned: a test send records no assignment), less those without an e-mail (shrink).
    sample = sorted(c for c, (_, _, control) in groups.items() if not control)[:25]
    assert sent == {c for c in sample if c % 50}
    with pytest.raises(ConfigError, match="sends nothing to 'nowhere'"):
        campaigns.send_sample(workspace, "promo", sample=5, as_of=T1, destination="nowhere")


# -- status ---------------------------------------------------------------------------------


def _status(root: Path, as_of: datetime = T1) -> str:
    (row,) = [r for r in status(root, as_of=as_of) if r.name == "promo"]
    return row.status


def test_pause_resume_archive_and_the_statuses_they_show(workspace: Path) -> None:
    assert _status(workspace) == "scheduled"
    run_activation(workspace, "promo", as_of=T1)
    assert _status(workspace) == "scheduled"
    assert campaigns.set_campaign_status(workspace, "promo", "pause") == "paused"
    assert _status(workspace) == "paused"
    with pytest.raises(ConfigError, match="is paused"):
        run_activation(workspace, "promo", as_of=T2)
    assert campaigns.set_campaign_status(workspace, "promo", "resume") == "active"
    assert campaigns.set_campaign_status(workspace, "promo", "archive") == "archived"
    assert _status(workspace) == "archived"
    with pytest.raises(ConfigError, match="is archived: it cannot resume"):
        campaigns.set_campaign_status(workspace, "promo", "resume")


def test_once_campaigns_are_draft_then_delivered_and_failures_show_as_error(
    tmp_path: Path,
) -> None:
    once = PROMO.replace('schedule: {type: recurring, every: weekly, at: "06:00"}\n', "")
    root = make_workspace(tmp_path / "ws", extra={"campaigns/promo": once.replace("MODE", "full")})
    assert _status(root) == "draft"
    run_activation(root, "promo", as_of=T1)
    assert _status(root) == "delivered"
    # The destination folder's place is taken by a file: the delivery cannot write.
    shutil.rmtree(root / "out")
    (root / "out").write_text("not a folder")
    failed = run_activation(root, "promo", as_of=T2)
    assert failed.status == "failed"
    assert failed.error_kind == "configuration"
    assert _status(root) == "error"


# -- webhooks, failures ---------------------------------------------------------------------


def test_a_webhook_gets_every_group_in_one_stream_and_a_failed_run_resumes(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMO_HOOK_SECRET", receiver.secret)
    hook = (
        f"type: webhook\nurl: {receiver.url}\nallow_private: true\nbatch_size: 200\n"
        "retries: {max_attempts: 1}\n"
        "credentials: {signing_secret: {env: PROMO_HOOK_SECRET}}\n"
    )
    promo = PROMO.replace("MODE", "incremental").replace(
        "destinations:\n  - destination: drop\n",
        "destinations:\n  - destination: hook\n",
    )
    root = make_workspace(
        tmp_path / "ws", extra={"destinations/hook": hook, "campaigns/promo": promo}
    )
    receiver.fail_next(3, 503)
    failed = run_activation(root, "promo", as_of=T1)
    assert failed.status == "failed"
    with receiver.lock:  # the receiver is back
        receiver.script.clear()
    resumed = resume_run(root, failed.run_id)
    assert resumed.status == "succeeded", resumed.error
    groups = group_of(root, failed.run_id)
    records = receiver.records()
    got = [(int(r["id"]), r["group"]) for r in records]
    expected = {(c, g) for c, (_, g, control) in groups.items() if not control and c % 50}
    assert len(got) == len(set(got))
    assert set(got) == expected
    recipients = query(
        root, "SELECT count(*), count(DISTINCT customer_id) FROM activator.recipients"
    )
    assert recipients == [(len(groups), len(groups))]
    [task] = [t for t in show_run(root, failed.run_id).tasks if t.task.startswith("deliver:")]
    assert task.task == "deliver:hook:all"


def test_one_file_for_all_groups_says_each_row_s_group(tmp_path: Path) -> None:
    promo = PROMO.replace("MODE", "incremental").replace(
        "mapping: {id: customer_id, email: {source: email, required: true}, group: run.group}",
        "files: combined\n    mapping: {id: customer_id, sub: run.sub_audience, group: run.group}",
    )
    root = make_workspace(tmp_path / "ws", extra={"campaigns/promo": promo})
    run = run_activation(root, "promo", as_of=T1)
    files = read_files(root, "*.csv")
    assert list(files) == ["promo_20260302.csv"]
    groups = group_of(root, run.run_id)
    assert {(int(r["id"]), r["sub"], r["group"]) for r in files["promo_20260302.csv"]} == {
        (c, s, g) for c, (s, g, control) in groups.items() if not control
    }
    [delivery] = run_json(run)["deliveries"]
    assert (delivery["sub_audience"], delivery["group"]) == (None, None)


def test_segments_on_another_activation_id_are_refused(tmp_path: Path) -> None:
    by_email = "sql: SELECT email AS address FROM customers\nactivation_id: address\n"
    promo = PROMO.replace("MODE", "full").replace(
        "include: [signed-up]", "include: [signed-up, by-email]"
    )
    with pytest.raises(DefinitionError) as caught:
        make_workspace(
            tmp_path / "ws", extra={"segments/by-email": by_email, "campaigns/promo": promo}
        )
    [issue] = [i for i in caught.value.issues if i.path.startswith("audience")]
    assert issue.path == "audience.include[1]"
    assert "identifies customers by 'address'" in issue.message
    assert "'signed-up'" in issue.message


def test_a_schedule_ending_after_n_runs_has_no_next_run_after_them(tmp_path: Path) -> None:
    promo = PROMO.replace("MODE", "incremental").replace(
        'at: "06:00"}', 'at: "06:00", max_runs: 2}'
    )
    root = make_workspace(tmp_path / "ws", extra={"campaigns/promo": promo})

    def row() -> tuple[str, datetime | None]:
        (found,) = [r for r in status(root, as_of=T2) if r.name == "promo"]
        return found.status, found.next_run

    assert row() == ("scheduled", T2 + timedelta(days=7))
    run_activation(root, "promo", as_of=T1)
    assert row()[0] == "scheduled"
    run_activation(root, "promo", as_of=T2)
    assert row() == ("delivered", None)


@pytest.mark.parametrize(
    ("definition", "last", "upcoming", "shown"),
    [
        ("archived", "failed", True, "archived"),
        ("paused", "running", True, "paused"),
        ("active", "running", True, "running"),
        ("active", "queued", False, "running"),
        ("active", "failed", True, "error"),
        ("active", "warning", True, "warning"),
        ("active", "succeeded", True, "scheduled"),
        ("active", None, True, "scheduled"),
        ("active", "succeeded", False, "delivered"),
        ("active", None, False, "draft"),
        ("draft", None, False, "draft"),
    ],
)
def test_the_status_a_campaign_shows(
    workspace: Path, definition: str, last: str | None, upcoming: bool, shown: str
) -> None:
    from activator.services.workspace import campaign_status

    run = None
    if last is not None:
        run = run_activation(workspace, "promo", as_of=T1)
        run = dataclasses.replace(run, status=last)
    assert campaign_status(definition, run, T2 if upcoming else None) == shown


def test_recipients_interrupted_while_recording_are_not_recorded_twice(workspace: Path) -> None:
    run = run_activation(workspace, "promo", as_of=T1)
    expected = query(workspace, "SELECT count(*) FROM activator.recipients")
    assert expected[0][0] == len(group_of(workspace, run.run_id))
    # As if the process died after inserting the rows but before noting it: the task says
    # the parts were being recorded, and the run did not finish.
    store_url = "sqlite:///.activator/metadata.db"
    with MetadataStore.open(store_url, workspace_root=workspace) as store:
        store.update_task(
            run.run_id, "recipients", status="running",
            detail={"parts": [], "attempting": [-1, 0, 1]},
        )  # fmt: skip
    with sqlite3.connect(workspace / ".activator" / "metadata.db") as db:
        db.execute("UPDATE runs SET status = 'failed' WHERE run_id = ?", (run.run_id,))
    resumed = resume_run(workspace, run.run_id)
    assert resumed.status == "succeeded"
    assert query(workspace, "SELECT count(*) FROM activator.recipients") == expected

"""The scheduler under faults: ``kill -9``, SIGTERM, two schedulers at once, broken definitions.

Every case runs ``activator scheduler --once --as-of T`` as real processes of this venv's
interpreter against real DuckDB files, PostgreSQL (destination, engine and metadata store), a
local folder and a Standard Webhooks receiver on 127.0.0.1:

* ``kill -9`` at random (seeded) moments of a tick running an orchestration to files split in
  parts, an orchestration to a PostgreSQL table, a campaign to a webhook and a journey, then
  ticks again until nothing is unfinished: one run per slot, every record exactly once
  everywhere, no partial file ever visible;
* SIGTERM mid-delivery: the batch in flight ends, the run goes back to the queue, the process
  exits 0; the next tick resumes the run through the ledger, sending no unit twice;
* two schedulers ticking at the same simulated times against one PostgreSQL metadata store:
  every slot runs exactly once, none is skipped;
* a malformed definition beside good ones: ``apply`` refuses it, the good ones keep their
  slots, and a definition broken at run time fails on its own.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.faults.scheduler_support import (
    SQLITE_STORE,
    FolderWatcher,
    StoreReader,
    cli,
    csv_ids,
    kill_after,
    make_customers,
    start,
    tick,
    tick_report,
    wait_for,
    write_files,
)
from tests.fixtures.receiver import Receiver, running_receiver

CONFIG = """\
engine: {type: duckdb, path: data/shop.duckdb}
data_model:
  customers: {table: customers, key: customer_id}
"""

EVERYONE = "rules: {attribute: customers.joined_at, op: before, value: now}\n"

DAILY = "schedule: {type: cron, cron: '0 9 * * *'}\nstatus: active\n"

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
"""The first tick: the scheduler sees the activations (no slot before it is run)."""

SLOT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
T = SLOT + timedelta(minutes=1)
"""The tick that runs the slot."""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StoreReader]:
    """Reads of the SQLite metadata store of the workspace ``tmp_path / 'ws'``."""
    reader = StoreReader(SQLITE_STORE, tmp_path / "ws")
    try:
        yield reader
    finally:
        reader.close()


def _unfinished(store: StoreReader) -> list[str]:
    return [r.run_id for r in store.runs() if r.status in ("queued", "running")]


# -- kill -9 ---------------------------------------------------------------------------------------

CUSTOMERS = 20_000
PART_ROWS = 2_000
HOOK_BATCH = 500
ACTIVATIONS = {
    ("orchestration", "files"),
    ("orchestration", "table"),
    ("campaign", "promo"),
    ("journey", "welcome"),
}
TASKS = ("deliver:drop", "deliver:warehouse", "deliver:hook")
"""The delivering tasks of the four activations (the journey's is ``deliver:drop`` too)."""


def _kill_workspace(root: Path, postgres_url: str, hook_url: str) -> None:
    """Four daily activations at 09:00, applied, and a first tick at ``T0``."""
    make_customers(root, CUSTOMERS)
    write_files(
        root,
        {
            "activator.yaml": CONFIG,
            "segments/everyone.yml": EVERYONE,
            "destinations/drop.yml": (
                "type: local\npath: out\n"
                'filename: "{activation}_{run_time:%Y%m%d%H%M}_{part}"\n'
                f"format: {{type: csv, compression: gzip}}\nsplit: {{rows: {PART_ROWS}}}\n"
            ),
            "destinations/warehouse.yml": (
                f"type: postgres\nurl: {postgres_url}\ntable: feed\nmode: append\n"
            ),
            "destinations/hook.yml": (
                f"type: webhook\nurl: {hook_url}\nallow_private: true\n"
                f"batch_size: {HOOK_BATCH}\n"
                "credentials: {signing_secret: {env: SCHED_FAULT_SECRET}}\n"
            ),
            "orchestrations/files.yml": (
                "query: SELECT customer_id, email, name FROM customers\ndestination: drop\n" + DAILY
            ),
            "orchestrations/table.yml": (
                "query: SELECT customer_id, email FROM customers\ndestination: warehouse\n" + DAILY
            ),
            "campaigns/promo.yml": (
                "audience: {include: [everyone]}\n"
                "destinations: [{destination: hook, mapping: {customer_id: customer_id}}]\n"
                "remaining: {groups: [{name: all, percent: 100}]}\n" + DAILY
            ),
            "journeys/welcome.yml": (
                "start: {entry: [everyone]}\nnodes:\n"
                "  - {id: hello, type: activate, next: done, destinations: "
                "[{destination: drop, mapping: {customer_id: customer_id, email: email}}]}\n"
                "  - {id: done, type: exit}\n" + DAILY
            ),
        },
    )
    applied = cli(root, "apply", "--json")
    assert applied.returncode == 0, applied.stderr
    assert tick_report(tick(root, T0))["runs"] == []


def _expected_files() -> set[str]:
    stamp = SLOT.strftime("%Y%m%d%H%M")
    names: set[str] = set()
    for activation in ("files", "welcome"):
        base = f"{activation}_{stamp}"
        names |= {f"{base}_{i:05d}.csv.gz" for i in range(1, CUSTOMERS // PART_ROWS + 1)}
        names |= {f"{base}.manifest.json", f"{base}.DONE"}
    return names


def _published_consistently(out: Path) -> None:
    """What a reader sees is whole: every visible part is a complete gzip CSV, and a visible
    ``.DONE`` has its manifest, whose files are all there with their recorded sizes."""
    if not out.exists():
        return
    for part in out.glob("*.csv.gz"):
        assert csv_ids(part), part
    for done in out.glob("*.DONE"):
        manifest = json.loads(done.with_suffix(".manifest.json").read_text())
        for entry in manifest["files"]:
            assert (out / entry["name"]).stat().st_size == entry["bytes"], entry


def _delivered_units(store: StoreReader) -> int:
    found = store.rows("SELECT count(*) FROM ledger_units WHERE state = 'delivered' AND idx >= 0")
    return int(found[0][0]) if found else 0


def _kill_mid_delivery(
    process: subprocess.Popen[str], store: StoreReader, units: int, extra: float
) -> bool:
    """SIGKILL ``extra`` seconds after the ledger holds ``units`` more delivered units than
    now; False if the process ended first."""
    target = _delivered_units(store) + units
    while _delivered_units(store) < target:
        if process.poll() is not None:
            process.communicate()
            return False
        time.sleep(0.01)
    return kill_after(process, extra)


def _kill_before_delivery(process: subprocess.Popen[str], store: StoreReader, delay: float) -> bool:
    """SIGKILL ``delay`` seconds from now, or as soon as the first unit is delivered if that
    comes first (a fast machine gets there within the delay); False if the process ended first."""
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline and _delivered_units(store) == 0:
        if process.poll() is not None:
            process.communicate()
            return False
        time.sleep(0.01)
    if process.poll() is not None:
        process.communicate()
        return False
    process.kill()
    process.communicate()
    return True


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("seed", [21, 22])
def test_kill_9_of_the_scheduler_then_restart_delivers_every_slot_exactly_once(
    tmp_path: Path,
    seed: int,
    postgres_url: str,
    receiver: Receiver,
    store: StoreReader,
) -> None:
    import psycopg

    root = tmp_path / "ws"
    _kill_workspace(root, postgres_url, receiver.url)
    env = {"SCHED_FAULT_SECRET": receiver.secret}
    out = root / "out"
    rng = random.Random(seed)
    as_of = ("scheduler", "--once", "--as-of", T.isoformat(), "--json")
    kills = 0
    with FolderWatcher(out) as watcher:
        # 1. start-up / evaluation: a random moment before the first unit is delivered.
        kills += _kill_before_delivery(start(root, *as_of, env=env), store, rng.uniform(0.5, 5.0))
        _published_consistently(out)
        # 2. mid-delivery: a random few milliseconds after a random number of units.
        process = start(root, *as_of, env=env)
        kills += _kill_mid_delivery(process, store, rng.randint(1, 30), rng.uniform(0, 0.05))
        _published_consistently(out)
        # Then ticks at the same time until every run has ended.
        for _ in range(5):
            report = tick_report(tick(root, T, env=env))
            assert report["errors"] == [], report["errors"]
            if not _unfinished(store) and len(store.runs()) == len(ACTIVATIONS):
                break
        else:
            pytest.fail(f"runs still unfinished after 5 ticks: {store.runs()}")
    assert kills == 2, "the kills did not land"
    # The kill mid-delivery left a run in flight, which a later tick resumed.
    resumed = [r for r in store.runs() if "resumed by the scheduler" in store.events(r.run_id)]
    assert resumed

    # One run per (activation, slot), every one succeeded, on schedule.
    runs = store.runs()
    assert Counter((r.kind, r.name, r.slot) for r in runs) == Counter(
        {(kind, name, "2026-03-02 09:00"): 1 for kind, name in ACTIVATIONS}
    )
    assert {(r.status, r.trigger) for r in runs} == {("succeeded", "schedule")}

    # Files: exactly a clean run's names, whole, each record once per activation; no file was
    # ever visible while incomplete; nothing temporary left.
    assert {p.name for p in out.iterdir()} == _expected_files()
    for activation in ("files", "welcome"):
        base = f"{activation}_{SLOT:%Y%m%d%H%M}"
        manifest = json.loads((out / f"{base}.manifest.json").read_text())
        parts = sorted(out.glob(f"{base}_*.csv.gz"))
        assert [f["name"] for f in manifest["files"]] == [p.name for p in parts]
        assert manifest["rows"] == CUSTOMERS
        ids = [i for part in parts for i in csv_ids(part)]
        assert sorted(ids) == list(range(CUSTOMERS)), activation
    assert watcher.partial() == {}
    assert watcher.polls > 100

    # PostgreSQL: exactly the rows, once; no staging table left.
    with psycopg.connect(postgres_url) as con:
        rows = con.execute("SELECT customer_id, email FROM feed ORDER BY customer_id").fetchall()
        stages = con.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE '_activator_stage_%'"
        ).fetchone()
    assert rows == [(i, f"c{i}@example.com") for i in range(CUSTOMERS)]
    assert stages == (0,)

    # Webhooks: deduplicated on webhook-id, every record once; every batch id once.
    records = receiver.records()
    assert sorted(int(r["customer_id"]) for r in records) == list(range(CUSTOMERS))
    assert len(receiver.accepted) == CUSTOMERS // HOOK_BATCH
    assert receiver.bad_signatures == 0

    # The travel log: each traveller once per stage, all from the one journey run.
    (journey_run,) = [r.run_id for r in runs if r.kind == "journey"]
    with duckdb.connect(str(root / "data" / "shop.duckdb"), read_only=True) as con:
        logged = con.execute(
            "SELECT run_id, stage, node, count(*), count(DISTINCT traveller) "
            "FROM activator.journey_log WHERE journey = 'welcome' GROUP BY ALL ORDER BY 2, 3"
        ).fetchall()
    assert logged == [
        (journey_run, "complete", "hello", CUSTOMERS, CUSTOMERS),
        (journey_run, "exit", "done", CUSTOMERS, CUSTOMERS),
        (journey_run, "start", "done", CUSTOMERS, CUSTOMERS),
        (journey_run, "start", "hello", CUSTOMERS, CUSTOMERS),
    ]


# -- SIGTERM ---------------------------------------------------------------------------------------

LONG = 10_000
LONG_BATCH = 100


def _long_workspace(root: Path, hook_url: str) -> None:
    """One daily orchestration sending ``LONG`` customers to a webhook in batches of 100."""
    make_customers(root, LONG)
    write_files(
        root,
        {
            "activator.yaml": CONFIG,
            "destinations/hook.yml": (
                f"type: webhook\nurl: {hook_url}\nallow_private: true\n"
                f"batch_size: {LONG_BATCH}\n"
                "credentials: {signing_secret: {env: SCHED_FAULT_SECRET}}\n"
            ),
            "orchestrations/feed.yml": (
                "query: SELECT customer_id, email FROM customers\ndestination: hook\n" + DAILY
            ),
        },
    )
    applied = cli(root, "apply", "--json")
    assert applied.returncode == 0, applied.stderr
    assert tick_report(tick(root, T0))["runs"] == []


@dataclass
class Stopped:
    """What a scheduler stopped by SIGTERM mid-delivery, then ticked again, left."""

    root: Path
    receiver: Receiver
    took: float
    returncode: int
    stderr: str
    first: dict[str, Any]
    events: list[str]
    status: str
    delivered: int
    requests: int
    accepted: int
    second: dict[str, Any]
    final: list[tuple[str, str]]
    resent: list[str]


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stopped]:
    """A tick sending ``LONG`` records in 100 units, stopped by SIGTERM after ten delivered
    units; then the next tick."""
    root = tmp_path_factory.mktemp("sigterm") / "ws"
    with running_receiver() as receiver:
        _long_workspace(root, receiver.url)
        store = StoreReader(SQLITE_STORE, root)
        env = {"SCHED_FAULT_SECRET": receiver.secret}
        receiver.delay = 0.02  # about 2 s of delivery: the signal lands well inside it
        process = start(root, "scheduler", "--once", "--as-of", T.isoformat(), "--json", env=env)
        wait_for(
            lambda: any(store.delivered(r.run_id, "deliver:hook") >= 10 for r in store.runs()),
            timeout=60,
            what="ten delivered units",
        )
        process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        stdout, stderr = process.communicate(timeout=30)
        took = time.monotonic() - sent
        first = json.loads(stdout) if stdout.strip() else {}
        (run,) = store.runs()
        events = store.events(run.run_id)
        delivered = store.delivered(run.run_id, "deliver:hook")
        with receiver.lock:
            requests, accepted = len(receiver.requests), len(receiver.accepted)
        second = tick_report(tick(root, T, env=env))
        yield Stopped(
            root=root,
            receiver=receiver,
            took=took,
            returncode=process.returncode,
            stderr=stderr,
            first=first,
            events=events,
            status=run.status,
            delivered=delivered,
            requests=requests,
            accepted=accepted,
            second=second,
            final=[(r.run_id, r.status) for r in store.runs()],
            resent=store.events(run.run_id)[len(events) :],
        )
        store.close()


@pytest.mark.slow
def test_sigterm_stops_the_tick_requeues_the_run_and_the_next_tick_resumes_it(
    stopped: Stopped,
) -> None:
    # The process ends on its own, soon, successfully, saying it stopped.
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.took < 5, stopped.took
    assert stopped.first["stopped"] is True
    ((run_id, status),) = [(r["run_id"], r["status"]) for r in stopped.first["runs"]]
    assert status == "queued"
    # The run is back in the queue, saying why; part of it was delivered.
    assert stopped.status == "queued"
    assert (
        "stopped by SIGTERM: the run goes back to the queue and resumes where it stopped"
        in stopped.events
    )
    assert 10 <= stopped.delivered < LONG // LONG_BATCH
    assert stopped.requests >= stopped.delivered
    # The next tick resumes the run from the ledger; the slot is not run a second time.
    second = stopped.second
    assert [(r["run_id"], r["status"]) for r in second["resumed"]] == [(run_id, "succeeded")]
    # (The stopped tick recorded the slot as considered: its run exists, queued.)
    assert second["runs"] == second["taken"] == []
    assert stopped.resent[0] == "resumed by the scheduler"
    assert stopped.final == [(run_id, "succeeded")]
    # Every record once (deduplicated on webhook-id), every batch id once.
    records = stopped.receiver.records()
    assert sorted(int(r["customer_id"]) for r in records) == list(range(LONG))
    assert len(stopped.receiver.accepted) == LONG // LONG_BATCH
    assert stopped.receiver.bad_signatures == 0


@pytest.mark.slow
def test_sigterm_records_the_units_in_flight_so_none_is_sent_twice(stopped: Stopped) -> None:
    # "SIGTERM finishes the batch in flight, records the state": what the receiver accepted
    # before the process exited is what the ledger says was delivered ...
    assert stopped.accepted == stopped.delivered
    # ... so the resume sends no unit again: one request per batch in all.
    assert "unit resent after an interruption" not in stopped.resent
    assert stopped.receiver.duplicates == []
    assert len(stopped.receiver.requests) == LONG // LONG_BATCH


# -- two schedulers, one PostgreSQL metadata store ---------------------------------------------

TICKS = 5
PAIR = [f"o{n}" for n in range(1, 4)]
EVERY_5 = "schedule: {type: cron, cron: '*/5 * * * *'}\nstatus: active\n"
FIRST = datetime(2026, 3, 2, 8, 2, tzinfo=UTC)
"""The scheduler's first look: the slots from 08:05 on are theirs."""


def _slot(i: int) -> datetime:
    return datetime(2026, 3, 2, 8, 0, tzinfo=UTC) + timedelta(minutes=5 * i)


def _file_snapshot(out: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.iterdir()}


@pytest.mark.slow
@pytest.mark.postgres
def test_two_schedulers_on_one_postgres_store_run_every_slot_exactly_once(
    tmp_path: Path, postgres_url: str
) -> None:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute("CREATE SCHEMA shop")
        con.execute(
            "CREATE TABLE shop.customers AS SELECT g AS customer_id, "
            "'c' || g || '@example.com' AS email FROM generate_series(0, 99) AS g"
        )
    metadata = "postgresql+psycopg://" + postgres_url.removeprefix("postgresql://")
    root = tmp_path / "ws"
    write_files(
        root,
        {
            "activator.yaml": (
                f"engine: {{type: postgres, url: '{postgres_url}', schema: shop}}\n"
                f"metadata: {{url: '{metadata}'}}\n"
                "data_model:\n  customers: {table: customers, key: customer_id}\n"
            ),
            "destinations/drop.yml": (
                'type: local\npath: out\nfilename: "{activation}_{run_time:%Y%m%d%H%M}"\n'
                "format: {type: csv}\n"
            ),
            **{
                f"orchestrations/{name}.yml": (
                    "query: SELECT customer_id, email FROM customers\ndestination: drop\n" + EVERY_5
                )
                for name in PAIR
            },
        },
    )
    applied = cli(root, "apply", "--json")
    assert applied.returncode == 0, applied.stderr
    store = StoreReader(metadata, root)
    out = root / "out"
    started: Counter[tuple[str, str]] = Counter()
    written: dict[str, tuple[int, int]] = {}
    try:
        for i in range(TICKS + 1):
            at = FIRST if i == 0 else _slot(i) + timedelta(minutes=1)
            args = ("scheduler", "--once", "--as-of", at.isoformat(), "--json")
            both = [start(root, *args), start(root, *args)]
            reports = []
            for process in both:
                stdout, stderr = process.communicate(timeout=120)
                assert process.returncode == 0, stderr
                reports.append(json.loads(stdout))
            for report in reports:
                assert report["errors"] == [], report
                assert report["skipped"] == [], report
                assert report["resumed"] == [], report
                for run in report["runs"]:
                    assert run["status"] == "succeeded", run
                    started[(run["name"], run["scheduled_for"])] += 1
            if out.exists():
                now = _file_snapshot(out)
                # A file, once written, is never written again by a later tick.
                assert {k: now[k] for k in written} == written
                written = now
        runs = store.runs()
    finally:
        store.close()
    slots = [_slot(i) for i in range(1, TICKS + 1)]
    expected = Counter({(name, slot.isoformat()): 1 for name in PAIR for slot in slots})
    # The two ticks' reports: each slot started exactly once, by one of the two.
    assert started == expected
    # The store: one run per (activation, slot), all succeeded, none skipped.
    assert Counter((r.name, r.slot) for r in runs) == Counter(
        {(name, f"{slot:%Y-%m-%d %H:%M}"): 1 for name in PAIR for slot in slots}
    )
    assert {(r.status, r.trigger) for r in runs} == {("succeeded", "schedule")}
    # The files: one per slot and activation (with its manifest and .DONE), every row once.
    stamps = [f"{slot:%Y%m%d%H%M}" for slot in slots]
    data = {f"{name}_{stamp}.csv" for name in PAIR for stamp in stamps}
    assert {p.name for p in out.glob("*.csv")} == data
    assert {p.name for p in out.glob("*.DONE")} == {n.replace(".csv", ".DONE") for n in data}
    for name in data:
        assert sorted(csv_ids(out / name)) == list(range(100)), name


# -- a malformed definition beside good ones -------------------------------------------------------

GOOD = ("g1", "g2")
MALFORMED = "query: [SELECT customer_id\ndestination: drop\n" + EVERY_5
"""A YAML syntax error (an unclosed flow sequence) on line 2."""

MISSING = "query: SELECT customer_id FROM no_such_table\ndestination: drop\n" + EVERY_5
"""Valid, but its query reads a table the engine does not have."""


def _good_workspace(root: Path) -> None:
    """Two scheduled orchestrations every 5 minutes, applied, first seen at ``FIRST``."""
    make_customers(root, 100)
    write_files(
        root,
        {
            "activator.yaml": CONFIG,
            "destinations/drop.yml": (
                'type: local\npath: out\nfilename: "{activation}_{run_time:%Y%m%d%H%M}"\n'
                "format: {type: csv}\n"
            ),
            **{
                f"orchestrations/{name}.yml": (
                    "query: SELECT customer_id FROM customers\ndestination: drop\n" + EVERY_5
                )
                for name in GOOD
            },
        },
    )
    applied = cli(root, "apply", "--json")
    assert applied.returncode == 0, applied.stderr
    assert tick_report(tick(root, FIRST))["runs"] == []


def _refused(root: Path) -> None:
    """``apply`` refuses the whole workspace, naming the malformed file and line."""
    refused = cli(root, "apply", "--json")
    assert refused.returncode == 2, refused.stderr
    (issue,) = json.loads(refused.stdout)["error"]["issues"]
    assert (issue["file"], issue["line"]) == ("orchestrations/malformed.yml", 2)
    assert issue["message"].startswith("invalid YAML: ")


@pytest.mark.slow
def test_a_malformed_file_does_not_stop_the_schedules_of_the_applied_ones(
    tmp_path: Path, store: StoreReader
) -> None:
    root = tmp_path / "ws"
    _good_workspace(root)
    write_files(root, {"orchestrations/malformed.yml": MALFORMED})
    _refused(root)
    report = tick_report(tick(root, _slot(1) + timedelta(minutes=1)))
    assert [(r["name"], r["status"]) for r in report["runs"]] == [
        ("g1", "succeeded"),
        ("g2", "succeeded"),
    ]
    assert report["errors"] == []


@pytest.mark.slow
def test_a_definition_broken_at_run_time_fails_alone_at_each_slot(
    tmp_path: Path, store: StoreReader
) -> None:
    root = tmp_path / "ws"
    _good_workspace(root)
    write_files(
        root,
        {"orchestrations/malformed.yml": MALFORMED, "orchestrations/missing.yml": MISSING},
    )
    # All or nothing: the malformed file keeps the valid new one out too.
    _refused(root)
    (root / "orchestrations" / "malformed.yml").unlink()
    applied = cli(root, "apply", "--json")
    assert applied.returncode == 0, applied.stderr
    changes = {a["name"]: a["change"] for a in json.loads(applied.stdout)["applied"]}
    assert changes == {
        "drop": "unchanged",
        "g1": "unchanged",
        "g2": "unchanged",
        "missing": "created",
    }
    # The scheduler first sees ``missing`` at the first slot's tick: its slots start after it.
    for i in (1, 2, 3):
        report = tick_report(tick(root, _slot(i) + timedelta(minutes=1)))
        ran = [(r["name"], r["status"], r["scheduled_for"]) for r in report["runs"]]
        slot = _slot(i).isoformat()
        good = [(name, "succeeded", slot) for name in GOOD]
        assert ran == (good if i == 1 else [*good, ("missing", "failed", slot)])
        # The failure is the run's own: the tick itself has nothing to report.
        assert report["errors"] == []
    runs = store.runs()
    errors = {str(r.error) for r in runs if r.name == "missing"}
    assert len(errors) == 1
    assert "no_such_table" in errors.pop()
    assert Counter((r.name, r.status, r.error_kind) for r in runs) == Counter(
        {
            ("g1", "succeeded", None): 3,
            ("g2", "succeeded", None): 3,
            ("missing", "failed", "configuration"): 2,
        }
    )
    out = root / "out"
    stamps = [f"{_slot(i):%Y%m%d%H%M}" for i in (1, 2, 3)]
    assert {p.name for p in out.glob("*.csv")} == {f"{g}_{s}.csv" for g in GOOD for s in stamps}

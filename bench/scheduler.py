"""Scheduler benchmark: the time of one ``Scheduler.tick`` over 1,000 orchestrations, against
the bare work of reading the definitions and computing their next slots.

Usage:
    python bench/scheduler.py [--orchestrations 1000] [--repeat 20] [--store-url URL]
        [--skip-runs] [--profile] [--workdir DIR]

The workspace: ``--orchestrations`` orchestrations (``SELECT 1 AS x`` from a DuckDB file, to a
``type: local`` CSV destination), applied to the metadata store (SQLite in the workspace, or
``--store-url``, e.g. a PostgreSQL database: it must be empty). By ``i % 20``:

* 0-3: cron daily at 06:00; 4-7: cron hourly; 8-11: cron every 15 minutes; 12-14: recurring
  weekly at 07:30; each in one of six time zones (UTC, Europe/Paris, America/New_York,
  Asia/Tokyo, Australia/Sydney, Asia/Kolkata, by ``i % 6``);
* 15: as 0-14 by ``i // 20 % 15``, but ``status: paused``;
* 16: no schedule, ``after`` orchestration ``i - 16`` (daily); 17: ``after`` two, ``i - 13``
  (hourly) and ``i - 9`` (every 15 minutes);
* 18-19: as 0-14 by ``i // 20 % 15``.

Every other orchestration is active. ``Scheduler(root).tick(now)`` is called in this process
(timed with ``perf_counter``; catch-up ``latest``, the default), at:

1. **first**: T0 (2026-03-02 00:01 UTC), once: the scheduler sees every activation for the
   first time (one ``schedule_state`` row each), nothing runs;
2. **idle**: T0 + 5 s, + 10 s, ... (``--repeat`` ticks): no slot falls in between, nothing
   runs, no run history (no upstream has succeeded);
3. **taken**: T1 (a week after T0), where every active scheduled orchestration has slots due,
   but "another scheduler" already ran them: before the ticks the benchmark records each
   one's latest slot's run, succeeded, under another owner, and the runs ``after`` them
   (``trigger: after``, with the upstream run in its inputs), so the tick meets
   ``RunSlotTakenError`` for each slot and finds every ``after`` satisfied. Once as a
   **catch-up** (every state at T0: a week of missed slots enumerated), then ``--repeat``
   ticks with **one slot due each** (before each, every state set one second before that
   orchestration's slot);
4. **runs** (unless ``--skip-runs``): T2 (a week after T1), once, with one slot due each
   (states set as in 3): every slot runs for real (the run recorded, DuckDB opened, one row
   written as a CSV file through the ledger), then each ``after`` orchestration; the per-run
   overhead is (tick - idle tick) / runs;
5. **idle after runs**: T2 + 5 s, ... (``--repeat`` ticks): as 2, with each upstream's
   latest success and each ``after`` orchestration's latest ``after`` run to read.

Every SQL statement the tick sends is counted with a SQLAlchemy ``before_cursor_execute``
listener on the ``Engine`` class (the tick opens its own store), by its first word;
``BEGIN`` and SQLite's ``PRAGMA`` are counted apart as "protocol".

**Baseline**, in the same process, ``--repeat`` times: a new SQLAlchemy engine on the store,
one SELECT of every current definition (joined with its version's spec), the spec parsed as
JSON, and for each active scheduled one its next slot with ``croniter`` alone (in its time
zone, from T0). The ratio is idle tick / baseline (medians). Peak RSS is this process's
(``ru_maxrss``), after each stage. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import json
import os
import platform
import pstats
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import sqlalchemy
from croniter import croniter
from sqlalchemy import Engine, bindparam, create_engine, event, text, update

from activator.runtime.schedule import slots
from activator.services.scheduler import Scheduler, TickReport
from activator.services.workspace import apply_workspace, open_store
from activator.store import MetadataStore
from activator.store.models import ScheduleStateRow
from activator.workspace.loader import load_workspace

T0 = dt.datetime(2026, 3, 2, 0, 1, tzinfo=dt.UTC)
"""The first tick; no slot of any schedule falls in the idle ticks' window after it."""
T1 = T0 + dt.timedelta(days=7)
T2 = T1 + dt.timedelta(days=7)
IDLE_STEP = dt.timedelta(seconds=5)
OTHER_OWNER = "other-scheduler:1"

ZONES = [
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Asia/Kolkata",
]

CONFIG = """\
engine: {type: duckdb, path: data/bench.duckdb}
metadata: {url: "@STORE@"}
timezone: UTC
data_model:
  customers: {table: customers, key: customer_id}
"""

DESTINATION = """\
type: local
path: out
filename: "{orchestration}_{run_time:%Y%m%d%H%M%S}"
format: {type: csv}
"""


def schedule_of(kind: int, zone: str) -> str:
    """The schedule (YAML flow mapping) of a schedule kind 0-14."""
    if kind < 4:
        return f'{{type: cron, cron: "0 6 * * *", timezone: {zone}}}'
    if kind < 8:
        return f'{{type: cron, cron: "0 * * * *", timezone: {zone}}}'
    if kind < 12:
        return f'{{type: cron, cron: "*/15 * * * *", timezone: {zone}}}'
    return f'{{type: recurring, every: weekly, at: "07:30", timezone: {zone}}}'


def orchestration_yaml(i: int) -> tuple[str, str]:
    """(the file's YAML, its role: scheduled, paused or after) of orchestration ``i``."""
    head = "query: SELECT 1 AS x\ndestination: drop\n"
    mod = i % 20
    if mod == 16:
        return head + f"after: [o{i - 16:04d}]\nstatus: active\n", "after"
    if mod == 17:
        return head + f"after: [o{i - 13:04d}, o{i - 9:04d}]\nstatus: active\n", "after"
    kind = mod if mod < 15 else (i // 20) % 15
    schedule = schedule_of(kind, ZONES[i % len(ZONES)])
    status = "paused" if mod == 15 else "active"
    return head + f"schedule: {schedule}\nstatus: {status}\n", (
        "paused" if status == "paused" else "scheduled"
    )


def make_workspace(root: Path, count: int, store_url: str | None) -> Counter[str]:
    """Write the workspace; the number of orchestrations per role."""
    (root / "data").mkdir(parents=True)
    with duckdb.connect(str(root / "data" / "bench.duckdb")) as con:
        con.execute("CREATE TABLE customers AS SELECT 1 AS customer_id")
    url = store_url or "sqlite:///.activator/metadata.db"
    (root / "activator.yaml").write_text(CONFIG.replace("@STORE@", url))
    (root / "destinations").mkdir()
    (root / "destinations" / "drop.yml").write_text(DESTINATION)
    (root / "orchestrations").mkdir()
    roles: Counter[str] = Counter()
    for i in range(count):
        body, role = orchestration_yaml(i)
        (root / "orchestrations" / f"o{i:04d}.yml").write_text(body)
        roles[role] += 1
    return roles


# -- counting statements -----------------------------------------------------------------------


class StatementCounter:
    """Counts the SQL statements every SQLAlchemy engine sends while ``active``."""

    def __init__(self) -> None:
        self.active = False
        self.counts: Counter[str] = Counter()
        event.listen(Engine, "before_cursor_execute", self._seen)

    def _seen(self, *args: Any) -> None:
        if self.active:
            statement: str = args[2]
            self.counts[statement.lstrip().split(None, 1)[0].upper()] += 1

    @contextmanager
    def counting(self) -> Iterator[Counter[str]]:
        """Count the statements of the block into a new counter."""
        self.counts = Counter()
        self.active = True
        try:
            yield self.counts
        finally:
            self.active = False


def summarize(counts: Counter[str]) -> dict[str, Any]:
    """Statement counts: protocol (BEGIN, PRAGMA, COMMIT) apart from the queries."""
    protocol = {"BEGIN", "PRAGMA", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"}
    queries = {k: v for k, v in sorted(counts.items()) if k not in protocol}
    return {
        "queries": sum(queries.values()),
        "by_statement": queries,
        "protocol": sum(v for k, v in counts.items() if k in protocol),
    }


# -- measuring ---------------------------------------------------------------------------------


def peak_rss_mib() -> int:
    """This process's peak RSS so far."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def timed_tick(
    scheduler: Scheduler, now: dt.datetime, counter: StatementCounter
) -> tuple[float, TickReport, Counter[str]]:
    """One tick: seconds, its report, the statements it sent."""
    with counter.counting() as counts:
        start = time.perf_counter()
        report = scheduler.tick(now)
        seconds = time.perf_counter() - start
    if report.errors:
        raise SystemExit(f"tick at {now.isoformat()}: errors {report.errors[:5]}")
    return seconds, report, counts


def idle_ticks(
    scheduler: Scheduler, start: dt.datetime, repeat: int, counter: StatementCounter
) -> dict[str, Any]:
    """``repeat`` ticks after ``start``, each 5 s later; none may find anything due."""
    seconds: list[float] = []
    counts: Counter[str] = Counter()
    for k in range(1, repeat + 1):
        took, report, counts = timed_tick(scheduler, start + k * IDLE_STEP, counter)
        if report.runs or report.taken or report.resumed or report.skipped:
            raise SystemExit(f"idle tick {k} found work: {report.to_json()}")
        seconds.append(took)
    return {
        "ticks": repeat,
        "median_ms": round(statistics.median(seconds) * 1000, 1),
        "min_ms": round(min(seconds) * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1),
        "statements_per_tick": summarize(counts),
    }


def due_slots(store: MetadataStore, since: dt.datetime, now: dt.datetime) -> dict[str, dt.datetime]:
    """Name → the latest slot in (since, now] of every active scheduled orchestration."""
    from activator.definitions.common import CronSchedule, RecurringSchedule

    latest: dict[str, dt.datetime] = {}
    for stored in store.current("orchestration"):
        spec = stored.spec.get("schedule")
        if stored.status != "active" or spec is None:
            continue
        model: CronSchedule | RecurringSchedule = (
            CronSchedule.model_validate(spec)
            if spec["type"] == "cron"
            else RecurringSchedule.model_validate(spec)
        )
        found = list(slots(model, after=since, until=now, timezone="UTC"))
        if found:
            latest[stored.name] = found[-1]
    return latest


def take_slots(store: MetadataStore, due: dict[str, dt.datetime]) -> int:
    """Record, as another scheduler would have, each due slot's run (succeeded) and each
    ``after`` orchestration's run on it; the number of slot runs."""
    version = {d.name: d.version for d in store.current("orchestration")}
    succeeded: dict[str, Any] = {}
    for name, slot in due.items():
        run = store.create_run(
            kind="orchestration",
            name=name,
            definition_version=version[name],
            trigger="schedule",
            as_of=slot,
            scheduled_for=slot,
            owner=OTHER_OWNER,
        )
        succeeded[name] = store.finish_run(run.run_id, status="succeeded")
    for stored in store.current("orchestration"):
        ups = stored.spec.get("after") or []
        if not ups or stored.status != "active":
            continue
        latest = [succeeded[u] for u in ups]
        slot = max(r.finished_at for r in latest)
        run = store.create_run(
            kind="orchestration",
            name=stored.name,
            definition_version=stored.version,
            trigger="after",
            as_of=max(r.as_of for r in latest),
            scheduled_for=slot,
            inputs={"after": {u: r.run_id for u, r in zip(ups, latest, strict=True)}},
            owner=OTHER_OWNER,
        )
        store.finish_run(run.run_id, status="succeeded")
    return len(due)


def reset_states(
    store: MetadataStore, until: dt.datetime, due: dict[str, dt.datetime] | None = None
) -> None:
    """Put every ``schedule_state`` row back to checked until ``until``; with ``due``, each
    of those orchestrations to one second before its slot (one slot due each)."""
    table = ScheduleStateRow.metadata.tables["schedule_state"]
    with store.engine.begin() as connection:
        connection.execute(update(table).values(checked_until=until))
        if due:
            connection.execute(
                update(table)
                .where(table.c.kind == "orchestration", table.c.name == bindparam("n"))
                .values(checked_until=bindparam("at")),
                [{"n": n, "at": slot - dt.timedelta(seconds=1)} for n, slot in due.items()],
            )


def taken_ticks(
    root: Path, scheduler: Scheduler, repeat: int, counter: StatementCounter
) -> dict[str, Any]:
    """Ticks at T1 where every due slot was already run by another scheduler: first once
    after a week without a tick (catch-up), then ``repeat`` times with one slot due each."""
    ws = load_workspace(root, definitions=False)
    since = T0 + (repeat + 1) * IDLE_STEP
    with open_store(ws) as store:
        start = time.perf_counter()
        due = due_slots(store, since, T1)
        slot_runs = take_slots(store, due)
        prepared = time.perf_counter() - start
        reset_states(store, since)
    took, report, catch_counts = timed_tick(scheduler, T1, counter)
    catch_up = {
        "ms": round(took * 1000, 1),
        "slots_taken": len(report.taken),
        "slots_passed_over": sum(c for _, _, c in report.skipped),
        "statements": summarize(catch_counts),
    }
    seconds: list[float] = []
    counts: Counter[str] = Counter()
    taken = 0
    for _ in range(repeat):
        with open_store(ws) as store:
            reset_states(store, T1, due)
        took, report, counts = timed_tick(scheduler, T1, counter)
        if report.runs or report.resumed:
            raise SystemExit(f"the taken tick ran something: {report.to_json()}")
        taken = len(report.taken)
        seconds.append(took)
    if taken != slot_runs:
        raise SystemExit(f"taken tick: {taken} slots taken, expected {slot_runs}")
    median = statistics.median(seconds)
    return {
        "ticks": repeat,
        "slots_taken": taken,
        "prepare_seconds": round(prepared, 1),
        "median_ms": round(median * 1000, 1),
        "min_ms": round(min(seconds) * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1),
        "ms_per_taken_slot": round(median * 1000 / taken, 2),
        "statements_per_tick": summarize(counts),
        "catch_up_after_a_week": catch_up,
    }


def runs_tick(
    root: Path, scheduler: Scheduler, counter: StatementCounter, idle_ms: float
) -> dict[str, Any]:
    """The tick at T2 where one slot of each active scheduled orchestration is due and runs
    for real, then each ``after`` orchestration."""
    ws = load_workspace(root, definitions=False)
    with open_store(ws) as store:
        reset_states(store, T2, due_slots(store, T1, T2))
    took, report, counts = timed_tick(scheduler, T2, counter)
    bad = [r for r in report.runs if r.status != "succeeded"]
    if bad or report.taken:
        raise SystemExit(f"runs tick: {len(bad)} not succeeded, {len(report.taken)} taken")
    by_trigger = Counter(r.trigger for r in report.runs)
    walls = sorted(
        (r.finished_at - r.created_at).total_seconds()
        for r in report.runs
        if r.finished_at is not None
    )
    runs = len(report.runs)
    return {
        "runs": runs,
        "by_trigger": dict(by_trigger),
        "seconds": round(took, 1),
        "ms_per_run": round((took * 1000 - idle_ms) / runs, 1),
        "median_run_wall_ms": round(statistics.median(walls) * 1000, 1),
        "statements": summarize(counts),
        "statements_per_run": round(sum(counts.values()) / runs, 1),
    }


# -- baseline ----------------------------------------------------------------------------------

BASELINE_SELECT = text(
    "SELECT d.kind, d.name, d.status, v.spec FROM definitions AS d"
    " JOIN definition_versions AS v"
    " ON v.definition_id = d.id AND v.version = d.current_version"
)

EVERY = {"weekly": "{m} {h} * * 1"}


def baseline(url: sqlalchemy.URL, repeat: int) -> dict[str, Any]:
    """A new engine, one SELECT of the definitions, each active schedule's next slot."""
    seconds: list[float] = []
    computed = 0
    for _ in range(repeat):
        start = time.perf_counter()
        engine = create_engine(url)
        with engine.connect() as connection:
            rows = connection.execute(BASELINE_SELECT).all()
        engine.dispose()
        nexts: list[dt.datetime] = []
        for _kind, _name, status, spec in rows:
            spec = json.loads(spec) if isinstance(spec, str) else spec
            schedule = spec.get("schedule")
            if status != "active" or not schedule:
                continue
            if schedule["type"] == "cron":
                expression = schedule["cron"]
            else:
                hours, minutes = schedule["at"].split(":")
                expression = EVERY[schedule["every"]].format(m=int(minutes), h=int(hours))
            zone = ZoneInfo(schedule.get("timezone") or "UTC")
            nexts.append(croniter(expression, T0.astimezone(zone)).get_next(dt.datetime))
        seconds.append(time.perf_counter() - start)
        computed = len(nexts)
    return {
        "repeat": repeat,
        "definitions_read": len(rows),
        "next_slots_computed": computed,
        "median_ms": round(statistics.median(seconds) * 1000, 1),
        "min_ms": round(min(seconds) * 1000, 1),
    }


# -- profiling ---------------------------------------------------------------------------------


def profile(call: Callable[[], object], top: int = 25) -> str:
    """cProfile of one call: the ``top`` functions by cumulative time."""
    profiler = cProfile.Profile()
    profiler.runcall(call)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main() -> None:
    """Build the workspace, run the stages, print one JSON document."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--orchestrations", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20, help="idle and taken ticks, baseline")
    parser.add_argument("--store-url", default=None, help="an empty metadata store (PostgreSQL)")
    parser.add_argument("--skip-runs", action="store_true", help="skip the tick that runs")
    parser.add_argument("--profile", action="store_true", help="profile an idle tick (stderr)")
    parser.add_argument("--workdir", type=Path, default=None, help="kept when given")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="activator-bench-"))
    root = workdir / "scheduler_ws"
    shutil.rmtree(root, ignore_errors=True)
    roles = make_workspace(root, args.orchestrations, args.store_url)
    start = time.perf_counter()
    _, applied = apply_workspace(root, check_engine=False)
    apply_seconds = time.perf_counter() - start
    ws = load_workspace(root, definitions=False)
    with open_store(ws) as store:
        url = store.engine.url
        dialect = store.engine.dialect.name
    counter = StatementCounter()
    scheduler = Scheduler(root)
    result: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlalchemy": sqlalchemy.__version__,
        "store": dialect,
        "orchestrations": args.orchestrations,
        "roles": dict(roles),
        "apply_seconds": round(apply_seconds, 1),
        "definitions_applied": len(applied),
        "load": round(os.getloadavg()[0], 2),
    }
    took, _, counts = timed_tick(scheduler, T0, counter)
    result["first_tick"] = {"ms": round(took * 1000, 1), "statements": summarize(counts)}
    result["idle"] = idle_ticks(scheduler, T0, args.repeat, counter)
    result["baseline"] = baseline(url, args.repeat)
    result["ratio_idle_to_baseline"] = round(
        result["idle"]["median_ms"] / result["baseline"]["median_ms"], 1
    )
    result["peak_rss_mib_after_idle"] = peak_rss_mib()
    if args.profile:
        later = T0 + (args.repeat + 1) * IDLE_STEP
        print(profile(lambda: scheduler.tick(later)), file=sys.stderr)
    result["taken"] = taken_ticks(root, scheduler, args.repeat, counter)
    result["peak_rss_mib_after_taken"] = peak_rss_mib()
    if args.profile:
        with open_store(ws) as store:
            reset_states(store, T1, due_slots(store, T0 + (args.repeat + 1) * IDLE_STEP, T1))
        print(profile(lambda: scheduler.tick(T1)), file=sys.stderr)
    if not args.skip_runs:
        result["runs"] = runs_tick(root, scheduler, counter, result["idle"]["median_ms"])
        result["idle_after_runs"] = idle_ticks(scheduler, T2, args.repeat, counter)
        result["peak_rss_mib"] = peak_rss_mib()
        if args.profile:
            later = T2 + (args.repeat + 1) * IDLE_STEP
            print(profile(lambda: scheduler.tick(later)), file=sys.stderr)
    result["load_after"] = round(os.getloadavg()[0], 2)
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

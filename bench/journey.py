"""Journey benchmark: one daily ``activator run`` of a journey against hand-written DuckDB SQL,
and a 30-day ``activator journey simulate``.

Usage:
    python bench/journey.py [--travellers 10000000] [--customers 1000000] [--workdir DIR]
        [--repeat 3] [--parts run simulate] [--memory-limit 1GB] [--check] [--keep]

**Daily run** (``--travellers``): an eight-node journey, ``welcome``:

    holdout (percent split: treatment 90%, control 10% with control: true) -> welcome
    welcome (activate: Parquet file) -> wait-3d
    wait-3d (delay 3d) -> tier
    tier (conditional split: loyal -> gold-offer; otherwise -> rejoin)
    gold-offer (activate: Parquet file) -> rejoin
    rejoin (merge) -> bought
    bought (wait until recent-buyers, timeout 7d: met -> done; timed out -> end)
    done (exit)

with entry ``new-customers`` (signed up since yesterday's start, before now), exclusion
``do-not-contact`` (closed account or no e-mail), exit ``unsubscribed``, ``reentry: never``.
The data, made with SQL: a ``customers`` table (travellers plus 10% newcomers) and the travel
log ``activator.journey_log`` as ten daily runs at 09:00 would have left it: traveller ``i``
entered ``1 + i % 10`` days before the measured run T (2026-03-01 09:00 UTC), so the ten daily
cohorts wait at ``wait-3d`` (entered 1 to 3 days ago; due at T for the third) or at ``bought``
(arrived 1 to 7 days ago; timing out at T for the seventh), each with the ``start`` and
``complete`` rows of every node it passed (control by the same MD5 bucket, path by loyalty
tier), about 9.5 log rows per traveller. At T, 1 customer in 25 has ordered since yesterday
(``bought`` is met), 1 in 331 has unsubscribed (exit), and the newcomers (a tenth of the
travellers) enter unless excluded or unsubscribed.

Each side runs in its own child process (peak RSS from ``wait4``), each from a fresh copy of the
prepared database file, ``--repeat`` times, the sides alternating which goes first; medians:

* **activator**: ``activator run welcome --as-of T``: the run recorded, every segment flag in
  one plan, the positions (open ``start`` rows of the log), exits, entries, the advance in
  rounds, one INSERT into the log, then one delivery per activate node (Parquet file through
  the ledger, manifest, ``.DONE``).
* **sql**: hand-written DuckDB SQL doing the same moves: the flags in one scan of
  ``customers``, the positions by an ``ANTI JOIN`` of the log's ``start`` rows with its
  ending rows, exits, entries (anti-join
  against every earlier traveller), the same rounds (one ``CASE`` statement per round over
  every node, until nobody moves), its rows appended to the log in one INSERT, and one ``COPY
  ... TO`` Parquet per activate node.

``--check`` compares the rows both sides appended to the log (traveller, entry, node, parent,
path, control, stage, due_at) and the ids sent per activate node: any difference stops the
benchmark.

**Simulation** (``--customers``): ``activator journey simulate welcome --start S --days 30``
over customers whose sign-ups are spread over the 30 days before and after S, in its own
process (time, peak RSS); no hand-written counterpart. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import ibis.expr.datatypes as idt

from activator.compiler.journey import LOG_COLUMNS

JOURNEY = "welcome"
T = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
"""The measured run's as-of time (the journey runs daily at 09:00)."""
COHORTS = 10
"""Daily cohorts of travellers: entered 1 to COHORTS days before T."""
SIM_START = T
SIM_DAYS = 30
CONTROL_BP = 9000
"""The holdout's control starts at this bucket (treatment 90%, control 10%)."""

CONFIG = """\
engine: {type: duckdb, path: data/shop.duckdb@LIMIT@}
metadata: {url: "sqlite:///.activator/metadata.db"}
timezone: UTC
data_model:
  customers: {table: customers, key: customer_id}
"""

SEGMENTS = {
    "new-customers": "rules: {all: [{attribute: customers.signup_at, op: on_or_after, value: "
    "yesterday}, {attribute: customers.signup_at, op: before, value: now}]}\n",
    "do-not-contact": "rules: {any: [{attribute: customers.status, op: equals, value: closed},"
    " {attribute: customers.email, op: empty}]}\n",
    "unsubscribed": "rules: {attribute: customers.unsubscribed_at, op: before, value: now}\n",
    "loyal": "rules: {attribute: customers.loyalty_tier, op: in, value: [gold, platinum]}\n",
    "recent-buyers": "rules: {all: [{attribute: customers.last_order_at, op: on_or_after, value: "
    "yesterday}, {attribute: customers.last_order_at, op: before, value: now}]}\n",
}

DESTINATION = """\
type: local
path: out
filename: "{journey}_{node}_{run_time:%Y%m%d}"
format: {type: parquet}
"""

MAPPING = "{id: customer_id, email: email}"
JOURNEY_YAML = f"""\
description: Welcome new customers; a gold offer for the loyal; wait for a first order.
start:
  entry: [new-customers]
  exclude: [do-not-contact]
  exit: [unsubscribed]
  reentry: never
nodes:
  - id: holdout
    type: percent_split
    paths:
      - {{name: treatment, percent: 90, next: welcome}}
      - {{name: control, percent: 10, control: true, next: welcome}}
  - {{id: welcome, type: activate, next: wait-3d,
     destinations: [{{destination: drop, mapping: {MAPPING}}}]}}
  - {{id: wait-3d, type: delay, wait: 3d, next: tier}}
  - id: tier
    type: conditional_split
    paths: [{{name: gold, segment: loyal, next: gold-offer}}]
    otherwise: rejoin
  - {{id: gold-offer, type: activate, next: rejoin,
     destinations: [{{destination: drop, mapping: {MAPPING}}}]}}
  - {{id: rejoin, type: merge, next: bought}}
  - {{id: bought, type: wait_until, segment: recent-buyers, timeout: 7d, met: done}}
  - {{id: done, type: exit}}
schedule: {{type: recurring, every: daily, at: "09:00"}}
status: active
"""
ACTIVATE = ["welcome", "gold-offer"]
WAITS = {"wait-3d": "3 days", "bought": "7 days"}


def _ts(moment: dt.datetime) -> str:
    return f"TIMESTAMPTZ '{moment.isoformat()}'"


def _day(moment: dt.datetime, days: int) -> str:
    """The start of the day ``days`` before ``moment``'s date (UTC), as a SQL literal."""
    return _ts(dt.datetime.combine(moment.date() - dt.timedelta(days=days), dt.time(), dt.UTC))


def _bucket(salt: str, column: str) -> str:
    """``stable_bucket``: the first 8 hex digits of md5(salt:id), modulo 10,000."""
    return f"(('0x' || substr(md5('{salt}:' || {column}), 1, 8))::BIGINT % 10000)"


HOLDOUT_BUCKET = _bucket(f"{JOURNEY}:holdout", "traveller")

HISTORY_COLUMNS = (
    "journey, version, traveller, entry, entry_at, node, parent, path, control, entered_at,"
    " due_at, qualified, run_id, stage"
)
"""The log columns the history sets (any other column of ``LOG_COLUMNS`` is left NULL)."""
STEPPED = "step" in LOG_COLUMNS
"""Whether the log records each row's step of the run (the hand-written SQL writes it too)."""


def _log_ddl() -> list[str]:
    """The travel log's columns as DuckDB DDL, from the engine's own ``LOG_COLUMNS``."""
    columns = []
    for name, kind in LOG_COLUMNS.items():
        if kind is None or isinstance(kind, idt.Int64):
            sql = "BIGINT"  # None: the traveller, the customer key's type
        elif isinstance(kind, idt.Timestamp):
            sql = "TIMESTAMPTZ"
        elif isinstance(kind, idt.Boolean):
            sql = "BOOLEAN"
        elif isinstance(kind, idt.String):
            sql = "VARCHAR"
        else:
            raise SystemExit(f"journey_log.{name}: no DuckDB type for {kind}")
        columns.append(f'"{name}" {sql}')
    return columns


def _upgrade_log(path: Path) -> None:
    """Add the columns ``LOG_COLUMNS`` gained since ``path`` was generated (left NULL)."""
    con = duckdb.connect(str(path))
    have = {r[0] for r in con.execute("DESCRIBE activator.journey_log").fetchall()}
    for name, ddl in zip(LOG_COLUMNS, _log_ddl(), strict=True):
        if name not in have:
            con.execute(f"ALTER TABLE activator.journey_log ADD COLUMN {ddl}")
    con.close()


# -- data ------------------------------------------------------------------------------------

CUSTOMER_COLUMNS = """
    i AS customer_id,
    CASE WHEN i % 97 = 0 THEN NULL ELSE 'user.' || i || '@example.com' END AS email,
    CASE WHEN (i * 31) % 100 < 50 THEN 'bronze' WHEN (i * 31) % 100 < 80 THEN 'silver'
         WHEN (i * 31) % 100 < 95 THEN 'gold' ELSE 'platinum' END AS loyalty_tier,
    CASE WHEN i % 53 = 0 THEN 'closed' ELSE 'active' END AS status,
    {signup} AS signup_at,
    {ordered} AS last_order_at,
    {unsubscribed} AS unsubscribed_at
"""


def make_run_data(path: Path, travellers: int) -> dict[str, Any]:
    """Customers (travellers, then a tenth more newcomers) and the travel log as ten daily runs
    left it before T (see the module's docstring)."""
    newcomers = travellers // 10
    day = 86400
    con = duckdb.connect(str(path))
    con.execute("SET TimeZone = 'UTC'")
    # Traveller i entered at the run 1 + i % COHORTS days before T, having signed up in the
    # day before that run; newcomers signed up in the day before T.
    signup = (
        f"CASE WHEN i < {travellers} THEN {_ts(T)} - to_days(1 + i % {COHORTS}) "
        f"ELSE {_ts(T)} END - to_seconds(1 + (i * 7919) % {day - 1})"
    )
    ordered = (
        f"CASE WHEN i % 25 = 0 THEN {_ts(T)} - to_hours((i * 13) % 36) "
        f"WHEN i % 3 = 0 THEN {_ts(T)} - to_days(100 + i % 200) END"
    )
    unsubscribed = f"CASE WHEN i % 331 = 0 THEN {_ts(T)} - to_hours(i % 48) END"
    con.execute(
        "CREATE TABLE customers AS SELECT "
        + CUSTOMER_COLUMNS.format(signup=signup, ordered=ordered, unsubscribed=unsubscribed)
        + f" FROM (SELECT range AS i FROM range({travellers + newcomers}))"
    )
    con.execute("CREATE SCHEMA activator")
    con.execute(f"CREATE TABLE activator.journey_log ({', '.join(_log_ddl())})")
    # The rows a traveller's history holds, in order: (seq, stage, node, parent, path kind,
    # at: 0 the entry run / 3 three days later, due_at: wait from `at`, who has it).
    templates = """VALUES
        (1, 'start', 'holdout', NULL, NULL, 0, NULL, 'all'),
        (2, 'complete', 'holdout', NULL, 'holdout', 0, NULL, 'all'),
        (3, 'start', 'welcome', 'holdout', 'holdout', 0, NULL, 'all'),
        (4, 'complete', 'welcome', NULL, NULL, 0, NULL, 'all'),
        (5, 'start', 'wait-3d', 'welcome', NULL, 0, '3 days', 'all'),
        (6, 'complete', 'wait-3d', NULL, NULL, 3, NULL, 'passed'),
        (7, 'start', 'tier', 'wait-3d', NULL, 3, NULL, 'passed'),
        (8, 'complete', 'tier', NULL, 'tier', 3, NULL, 'passed'),
        (9, 'start', 'gold-offer', 'tier', 'tier', 3, NULL, 'loyal'),
        (10, 'complete', 'gold-offer', NULL, NULL, 3, NULL, 'loyal'),
        (11, 'start', 'rejoin', 'gold-offer', NULL, 3, NULL, 'loyal'),
        (12, 'start', 'rejoin', 'tier', 'tier', 3, NULL, 'other'),
        (13, 'complete', 'rejoin', NULL, NULL, 3, NULL, 'passed'),
        (14, 'start', 'bought', 'rejoin', NULL, 3, '7 days', 'passed')
    """
    con.execute(
        f"""
        INSERT INTO activator.journey_log ({HISTORY_COLUMNS})
        WITH travellers AS (
            SELECT customer_id AS traveller,
                   {_ts(T)} - to_days(1 + customer_id % {COHORTS}) AS entry_at,
                   1 + customer_id % {COHORTS} > 3 AS passed,
                   loyalty_tier IN ('gold', 'platinum') AS loyal,
                   {HOLDOUT_BUCKET} >= {CONTROL_BP} AS ctl
            FROM customers WHERE customer_id < {travellers}
        ),
        rows AS (
            SELECT t.*, r.*, t.entry_at + to_days(r.days) AS moment
            FROM travellers t, ({templates}) r(seq, stage, node, parent, kind, days, wait, who)
            WHERE r.who = 'all' OR (t.passed AND (r.who = 'passed'
                  OR (r.who = 'loyal' AND t.loyal) OR (r.who = 'other' AND NOT t.loyal)))
        )
        SELECT '{JOURNEY}', 1, traveller, 1, entry_at, node, parent,
               CASE kind WHEN 'holdout' THEN CASE WHEN ctl THEN 'control' ELSE 'treatment' END
                         WHEN 'tier' THEN CASE WHEN loyal THEN 'gold' ELSE 'everyone-else' END
               END,
               ctl AND seq > 2, moment, moment + CAST(wait AS INTERVAL), NULL,
               'history-' || strftime(moment, '%Y%m%d'), stage
        FROM rows
        """
    )
    counts = {
        "customers": travellers + newcomers,
        "travellers": travellers,
        "log_rows": int(con.execute("SELECT count(*) FROM activator.journey_log").fetchone()[0]),  # type: ignore[index]
    }
    con.close()
    return counts


def make_sim_data(path: Path, customers: int) -> None:
    """Customers signing up over the 30 days before and the 30 days after the simulation's
    start; a quarter order 0 to 14 days after signing up, 1 in 97 unsubscribes 0 to 9 days
    after."""
    span = 60 * 86400
    signup = f"{_ts(SIM_START)} - to_days(30) + to_seconds((i * 48271) % {span})"
    ordered = f"CASE WHEN i % 4 = 0 THEN {signup} + to_hours((i * 31) % 336) END"
    unsubscribed = f"CASE WHEN i % 97 = 1 THEN {signup} + to_days(i % 10) END"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE customers AS SELECT "
        + CUSTOMER_COLUMNS.format(signup=signup, ordered=ordered, unsubscribed=unsubscribed)
        + f" FROM (SELECT range AS i FROM range({customers}))"
    )
    con.close()


def make_workspace(root: Path, data: Path, memory_limit: str | None) -> None:
    """The workspace: config, segments, the destination, the journey; the data copied in;
    applied."""
    (root / "data").mkdir(parents=True)
    shutil.copyfile(data, root / "data" / "shop.duckdb")
    limit = f", memory_limit: {memory_limit}" if memory_limit else ""
    (root / "activator.yaml").write_text(CONFIG.replace("@LIMIT@", limit))
    for folder in ("segments", "destinations", "journeys"):
        (root / folder).mkdir()
    for name, text in SEGMENTS.items():
        (root / "segments" / f"{name}.yml").write_text(text)
    (root / "destinations" / "drop.yml").write_text(DESTINATION)
    (root / "journeys" / f"{JOURNEY}.yml").write_text(JOURNEY_YAML)
    subprocess.run(
        [sys.executable, "-m", "activator", "-w", str(root), "apply"],
        check=True,
        capture_output=True,
    )


# -- the hand-written SQL --------------------------------------------------------------------

FLAGS = ["e0", "x0", "q0", "c0", "w0"]
LOG_ROW = "traveller, entry, entry_at, node, parent, path, control, due_at, qualified, stage"


def sql_run(as_of: dt.datetime, out: Path) -> list[tuple[str, Any]]:
    """The hand-written run as of ``as_of``: (step, SQL) pairs; the step ``rounds`` holds the
    round's statements, repeated until nobody moves."""
    now, yesterday = _ts(as_of), _day(as_of, 1)
    flags = ", ".join(FLAGS)
    qualified = "(e0 AND NOT x0)"
    due = " ".join(f"WHEN '{node}' THEN {now} + INTERVAL '{wait}'" for node, wait in WAITS.items())
    steps: list[tuple[str, Any]] = [
        (
            "flags",
            f"""
SET TimeZone = 'UTC';
CREATE TEMP TABLE flags AS
SELECT customer_id AS traveller,
       coalesce(signup_at >= {yesterday} AND signup_at < {now}, false) AS e0,
       coalesce(status = 'closed', false) OR coalesce(email, '') = '' AS x0,
       coalesce(unsubscribed_at < {now}, false) AS q0,
       coalesce(loyalty_tier IN ('gold', 'platinum'), false) AS c0,
       coalesce(last_order_at >= {yesterday} AND last_order_at < {now}, false) AS w0
FROM customers;
""",
        ),
        (
            "positions",
            f"""
CREATE TEMP TABLE here AS
SELECT p.*, {flags} FROM (
    SELECT s.traveller, s.entry, s.entry_at, s.node, s.control, s.due_at
    FROM activator.journey_log s
    ANTI JOIN (SELECT traveller, entry, node FROM activator.journey_log
               WHERE journey = '{JOURNEY}' AND stage IN ('complete', 'exit', 'orphan')) e
    USING (traveller, entry, node)
    WHERE s.journey = '{JOURNEY}' AND s.stage = 'start') p
JOIN flags f USING (traveller);
""",
        ),
        (
            "exits and entries",
            f"""
CREATE TEMP TABLE moves AS
SELECT traveller, entry, entry_at, node, NULL::VARCHAR AS parent, 'unsubscribed' AS path,
       control, NULL::TIMESTAMPTZ AS due_at, {qualified} AS qualified, 'exit' AS stage,
       0 AS step
FROM here WHERE q0;
CREATE TEMP TABLE frontier AS
SELECT traveller, entry, entry_at, node, control, due_at, {flags} FROM here WHERE NOT q0
UNION ALL
SELECT traveller, 1, {now}, 'holdout', false, NULL::TIMESTAMPTZ, {flags}
FROM flags f
WHERE e0 AND NOT x0 AND NOT q0 AND NOT EXISTS (
    SELECT 1 FROM activator.journey_log l
    WHERE l.journey = '{JOURNEY}' AND l.traveller = f.traveller);
INSERT INTO moves
SELECT traveller, entry, entry_at, node, NULL, NULL, control, due_at, NULL, 'start', 0
FROM frontier WHERE node = 'holdout';
""",
        ),
        (
            "rounds",
            {
                "decide": f"""
CREATE OR REPLACE TEMP TABLE decided AS
SELECT *,
       CASE node WHEN 'holdout' THEN CASE WHEN bucket < {CONTROL_BP} THEN 'treatment'
                                          ELSE 'control' END
                 WHEN 'tier' THEN CASE WHEN c0 THEN 'gold' ELSE 'everyone-else' END
                 WHEN 'bought' THEN CASE WHEN w0 THEN 'met' ELSE 'timed-out' END
                 WHEN 'done' THEN 'exit-node' END AS taken,
       CASE node WHEN 'holdout' THEN 'welcome' WHEN 'welcome' THEN 'wait-3d'
                 WHEN 'wait-3d' THEN 'tier'
                 WHEN 'tier' THEN CASE WHEN c0 THEN 'gold-offer' ELSE 'rejoin' END
                 WHEN 'gold-offer' THEN 'rejoin' WHEN 'rejoin' THEN 'bought'
                 WHEN 'bought' THEN CASE WHEN w0 THEN 'done' END END AS target,
       control OR coalesce(bucket >= {CONTROL_BP}, false) AS now_control
FROM (SELECT *, CASE WHEN node = 'holdout' THEN {HOLDOUT_BUCKET} END AS bucket FROM frontier)
WHERE CASE node WHEN 'wait-3d' THEN due_at <= {now}
                WHEN 'bought' THEN w0 OR due_at <= {now}
                ELSE true END;
""",
                "record": f"""
INSERT INTO moves
SELECT traveller, entry, entry_at, node, NULL,
       CASE WHEN target IS NULL THEN coalesce(taken, 'end') ELSE taken END, control, NULL,
       CASE WHEN target IS NULL THEN {qualified} END,
       CASE WHEN target IS NULL THEN 'exit' ELSE 'complete' END, @ROUND@
FROM decided;
CREATE OR REPLACE TEMP TABLE frontier AS
SELECT traveller, entry, entry_at, target AS node, now_control AS control,
       CASE target {due} END AS due_at, {flags}, node AS parent, taken AS path
FROM decided WHERE target IS NOT NULL;
INSERT INTO moves
SELECT traveller, entry, entry_at, node, parent, path, control, due_at, NULL, 'start',
       @ROUND@
FROM frontier;
ALTER TABLE frontier DROP COLUMN parent;
ALTER TABLE frontier DROP COLUMN path;
""",
            },
        ),
        (
            "insert",
            f"""
INSERT INTO activator.journey_log ({HISTORY_COLUMNS}{", step" if STEPPED else ""})
SELECT '{JOURNEY}', 1, traveller, entry, entry_at, node, parent, path, control, {now},
       due_at, qualified, 'handsql', stage{", step" if STEPPED else ""}
FROM moves;
""",
        ),
    ]
    copies = [
        f"COPY (SELECT c.customer_id AS id, c.email FROM moves m "
        f"JOIN customers c ON c.customer_id = m.traveller "
        f"WHERE m.stage = 'start' AND m.node = '{node}' AND NOT m.control) "
        f"TO '{out / f'{node}.parquet'}' (FORMAT parquet);"
        for node in ACTIVATE
    ]
    steps.append(("copy", "\n".join(copies)))
    return steps


SQL_RUNNER = """
import duckdb, json, sys, time
con = duckdb.connect(sys.argv[1])
con.execute("SET enable_progress_bar = false")
if sys.argv[3]:
    con.execute(f"SET memory_limit = '{sys.argv[3]}'")
seconds = {}
rounds = []
for step, sql in json.load(open(sys.argv[2])):
    start = time.perf_counter()
    if step == "rounds":
        while True:
            con.execute(sql["decide"])
            moved = con.execute("SELECT count(*) FROM decided").fetchone()[0]
            if not moved:
                break
            rounds.append(moved)
            con.execute(sql["record"].replace("@ROUND@", str(len(rounds))))
    else:
        con.execute(sql)
    seconds[step] = round(time.perf_counter() - start, 3)
start = time.perf_counter()
con.close()
seconds["close"] = round(time.perf_counter() - start, 3)
print(json.dumps({"steps": seconds, "rounds": rounds}))
"""

# -- running ---------------------------------------------------------------------------------


def timed(command: list[str], cwd: Path | None = None) -> tuple[float, float, str]:
    """Run a command; its wall seconds, peak RSS in MiB and standard output."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if status != 0:
            raise SystemExit(f"{' '.join(command)} failed: {err.read().decode()[-3000:]}")
        return seconds, usage.ru_maxrss / 1024, out.read().decode()


def _at(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def run_activator(root: Path, as_of: dt.datetime) -> dict[str, Any]:
    """``activator run`` of the journey; time, peak RSS, what moved and where the time went."""
    activator = [sys.executable, "-m", "activator", "-w", str(root)]
    seconds, rss, out = timed([*activator, "run", JOURNEY, "--as-of", as_of.isoformat(), "--json"])
    run = json.loads(out)
    if run["status"] != "succeeded":
        raise SystemExit(f"activator run ended {run['status']}: {run.get('error')}")
    shown = subprocess.run(
        [*activator, "runs", "show", run["run_id"], "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    detail = json.loads(shown.stdout)
    step = next(t for t in detail["tasks"] if t["task"] == "step")
    counts = step["counts"]
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(rss),
        "run_id": run["run_id"],
        "entered": counts["entered"],
        "moved": counts["moved"],
        "exited": counts["exited"],
        "sent": run["sent"],
        "rows_moved": counts["moved"] + counts["exited"],
        "phase_seconds": _phases(detail, seconds),
    }


def _phases(detail: dict[str, Any], wall: float) -> dict[str, float]:
    """Where a run's time went: the run's tasks, and the step's phases from its events."""
    tasks = detail["tasks"]
    step = next(t for t in tasks if t["task"] == "step")
    deliveries = [t for t in tasks if t["task"].startswith("deliver:")]
    created, finished = _at(detail["created_at"]), _at(detail["finished_at"])
    events = [e for e in detail["events"] if e.get("task") == "step"]
    marks = [(e["message"], _at(e["at"])) for e in events]
    step_start, step_end = _at(step["started_at"]), _at(step["finished_at"])
    phases: dict[str, float] = {
        "process": wall - (finished - created).total_seconds(),
        "plan": (step_start - created).total_seconds(),
    }
    bounds = [*marks, ("", step_end)]
    if marks:
        phases["step: setup"] = (marks[0][1] - step_start).total_seconds()
    for (message, begin), (_, end) in itertools.pairwise(bounds):
        phases[f"step: {message}"] = (end - begin).total_seconds()
    last = max((_at(t["finished_at"]) for t in deliveries), default=step_end)
    phases["snapshot and deliver"] = (last - step_end).total_seconds()
    for t in deliveries:
        phases[t["task"]] = (_at(t["finished_at"]) - _at(t["started_at"])).total_seconds()
    phases["finish"] = (finished - last).total_seconds()
    return {name: round(seconds, 3) for name, seconds in phases.items()}


def run_sql(db: Path, as_of: dt.datetime, out: Path, limit: str | None) -> dict[str, Any]:
    """The hand-written SQL in its own process; time, peak RSS, seconds per step, rounds."""
    out.mkdir(parents=True, exist_ok=True)
    script = out / "steps.json"
    script.write_text(json.dumps(sql_run(as_of, out)))
    seconds, rss, printed = timed(
        [sys.executable, "-c", SQL_RUNNER, str(db), str(script), limit or ""]
    )
    found = json.loads(printed.strip().splitlines()[-1])
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(rss),
        "step_seconds": found["steps"],
        "round_sizes": found["rounds"],
    }


# -- checking --------------------------------------------------------------------------------

PROJECTED = (
    "traveller, entry, node, parent, path, control, stage, timezone('UTC', due_at) AS due_at"
)


def check(ours_db: Path, ours_out: Path, theirs_db: Path, theirs_out: Path, run_id: str) -> int:
    """Both sides appended the same rows to the log and sent the same ids per activate node;
    returns the log rows compared, raises SystemExit on any difference."""
    con = duckdb.connect()
    con.execute(f"ATTACH '{ours_db}' AS ours (READ_ONLY)")
    con.execute(f"ATTACH '{theirs_db}' AS theirs (READ_ONLY)")
    mine = f"SELECT {PROJECTED} FROM ours.activator.journey_log WHERE run_id = '{run_id}'"
    yours = f"SELECT {PROJECTED} FROM theirs.activator.journey_log WHERE run_id = 'handsql'"
    a = con.execute(f"SELECT count(*) FROM ({mine})").fetchone()[0]  # type: ignore[index]
    b = con.execute(f"SELECT count(*) FROM ({yours})").fetchone()[0]  # type: ignore[index]
    differ = con.execute(
        f"SELECT * FROM (({mine} EXCEPT ALL {yours}) UNION ALL ({yours} EXCEPT ALL {mine})) LIMIT 5"
    ).fetchall()
    if a != b or differ:
        raise SystemExit(f"log rows: activator {a}, sql {b}; first differences: {differ}")
    for node in ACTIVATE:
        ours = ours_out / f"{JOURNEY}_{node}_{T:%Y%m%d}.parquet"
        sent = (
            con.execute(f"SELECT id FROM read_parquet('{ours}') ORDER BY id").fetchall()
            if ours.exists()
            else []
        )
        theirs = con.execute(
            f"SELECT id FROM read_parquet('{theirs_out / f'{node}.parquet'}') ORDER BY id"
        ).fetchall()
        if sent != theirs or not sent:
            raise SystemExit(f"{node}: activator sent {len(sent)} ids, sql {len(theirs)}")
    con.close()
    return int(a)


# -- the benchmark ---------------------------------------------------------------------------


def bench_run(
    travellers: int, workdir: Path, memory_limit: str | None, *, verify: bool, repeat: int
) -> dict[str, Any]:
    """The daily run on both sides, ``repeat`` times, each from a fresh copy of the prepared
    workspace, the sides alternating which goes first."""
    data = workdir / f"journey_{travellers}.duckdb"
    made: dict[str, Any] = {}
    if not data.exists():
        start = time.perf_counter()
        made = make_run_data(data, travellers)
        made["generate_seconds"] = round(time.perf_counter() - start, 1)
    else:
        _upgrade_log(data)
    prepared = workdir / f"ws_{travellers}.prepared"
    shutil.rmtree(prepared, ignore_errors=True)
    make_workspace(prepared, data, memory_limit)
    ours, theirs = workdir / f"ws_{travellers}", workdir / f"sql_{travellers}"
    tries = []
    for attempt in range(repeat):
        found: dict[str, Any] = {}
        ours_first = attempt % 2 == 0
        for side in ("activator", "sql") if ours_first else ("sql", "activator"):
            if side == "activator":
                shutil.rmtree(ours, ignore_errors=True)
                shutil.copytree(prepared, ours)
                found[side] = run_activator(ours, T)
            else:
                shutil.rmtree(theirs, ignore_errors=True)
                theirs.mkdir()
                shutil.copyfile(prepared / "data" / "shop.duckdb", theirs / "shop.duckdb")
                found[side] = run_sql(theirs / "shop.duckdb", T, theirs / "out", memory_limit)
        found["ratio"] = round(found["activator"]["seconds"] / found["sql"]["seconds"], 2)
        found["load"] = round(os.getloadavg()[0], 2)
        if verify and attempt == repeat - 1:
            found["log_rows_checked"] = check(
                ours / "data" / "shop.duckdb",
                ours / "out",
                theirs / "shop.duckdb",
                theirs / "out",
                found["activator"]["run_id"],
            )
        tries.append(found)
        print(json.dumps(found), file=sys.stderr, flush=True)  # progress: one line per try
    ours_s = sorted(t["activator"]["seconds"] for t in tries)[len(tries) // 2]
    theirs_s = sorted(t["sql"]["seconds"] for t in tries)[len(tries) // 2]
    moved = tries[0]["activator"]["rows_moved"]
    return {
        "travellers": travellers,
        "as_of": T.isoformat(),
        **made,
        "entered": tries[0]["activator"]["entered"],
        "rows_moved": moved,
        "sent": tries[0]["activator"]["sent"],
        "activator_median_seconds": ours_s,
        "sql_median_seconds": theirs_s,
        "ratio_of_medians": round(ours_s / theirs_s, 2),
        "activator_moved_per_second": round(moved / ours_s),
        "sql_moved_per_second": round(moved / theirs_s),
        "activator_peak_rss_mib": max(t["activator"]["peak_rss_mib"] for t in tries),
        "sql_peak_rss_mib": max(t["sql"]["peak_rss_mib"] for t in tries),
        "tries": tries,
    }


def bench_simulation(customers: int, workdir: Path, memory_limit: str | None) -> dict[str, Any]:
    """``activator journey simulate`` over SIM_DAYS days in its own process."""
    data = workdir / f"simulate_{customers}.duckdb"
    if not data.exists():
        make_sim_data(data, customers)
    root = workdir / f"sim_{customers}"
    shutil.rmtree(root, ignore_errors=True)
    make_workspace(root, data, memory_limit)
    command = [sys.executable, "-m", "activator", "-w", str(root), "journey", "simulate", JOURNEY]
    command += ["--start", SIM_START.isoformat(), "--days", str(SIM_DAYS), "--json"]
    seconds, rss, out = timed(command)
    runs = json.loads(out)["runs"]
    return {
        "customers": customers,
        "start": SIM_START.isoformat(),
        "days": SIM_DAYS,
        "seconds": round(seconds, 2),
        "seconds_per_day": round(seconds / SIM_DAYS, 2),
        "peak_rss_mib": round(rss),
        "entered": sum(r["entered"] for r in runs),
        "exited": sum(r["exited"] for r in runs),
        "sends": sum(r["sends"] for r in runs),
        "travelling_at_end": sum(n["waiting"] for n in runs[-1]["nodes"].values()),
        "load": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    """Parse the arguments, run the parts, print one JSON document."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--travellers", type=int, default=10_000_000, help="daily run")
    parser.add_argument("--customers", type=int, default=1_000_000, help="simulation")
    parser.add_argument("--workdir", type=Path, default=None, help="keeps the generated data")
    parser.add_argument(
        "--parts", nargs="+", choices=["run", "simulate"], default=["run", "simulate"]
    )
    parser.add_argument(
        "--memory-limit",
        default=None,
        help="DuckDB's memory_limit for both sides (e.g. 1GB); default: DuckDB's (80%% of RAM)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="compare both sides' log rows and sent ids (use a small size, e.g. 50000)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="times the run is measured")
    parser.add_argument("--keep", action="store_true", help="keep the workspaces in the workdir")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="activator-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "cores": os.cpu_count(),
        "duckdb": duckdb.__version__,
        "memory_limit": args.memory_limit,
    }
    if "run" in args.parts:
        result["run"] = bench_run(
            args.travellers,
            workdir,
            args.memory_limit,
            verify=args.check,
            repeat=args.repeat,
        )
    if "simulate" in args.parts:
        result["simulation"] = bench_simulation(args.customers, workdir, args.memory_limit)
    if not args.keep:
        for pattern in ("ws_*", "sql_*", "sim_*"):
            for folder in workdir.glob(pattern):
                shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

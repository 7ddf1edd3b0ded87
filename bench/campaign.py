"""Recurring campaign benchmark: ``activator run`` of a campaign against hand-written DuckDB SQL.

Usage:
    python bench/campaign.py [--customers 1000000 10000000] [--workdir DIR] [--repeat 3]
        [--memory-limit 1GB] [--check] [--keep]

For each size it builds a DuckDB file with a ``customers`` table (id, e-mail with upper-case
letters, country, loyalty tier, e-mail opt-in, account status, spend DECIMAL, signup
timestamp) with SQL, then plays a weekly campaign twice:

* **run 1**, as of T1: the first run sends every treatment customer;
* between the runs the data changes: 1% new customers sign up, 0.5% spend more (some of them
  become big spenders, some move to the ``high-spend`` sub-audience), 0.2% become platinum
  (they move sub-audience), 0.1% close their account (they leave the audience); and the
  signup-based conditions slide by a week (``on_or_after 60 days ago``);
* **run 2**, as of T2 = T1 + 7 days: the measured one, incremental: only who is new to their
  sub-audience is sent; earlier customers keep their group (sticky assignment). It is measured
  ``--repeat`` times, each from a copy of the state after run 1, the sides alternating which
  goes first; the medians are reported.

The campaign: three include segments (big spenders, recent signups, loyal opted-in members)
minus one exclusion segment (closed accounts, no e-mail); four sub-audiences by first match,
each with a 10% control (the first with two offers of 45.5% and 44.5%), and *All remaining*;
two file destinations (gzip CSV and Parquet), one file per sub-audience and treatment group,
with the mapping ``id``, ``email`` (lower-cased), ``group`` (``run.group``) and
``sub_audience`` (``run.sub_audience``).

Each side runs in its own child process (peak RSS from ``wait4``) on the same data:

* **activator**: ``activator run spring --as-of T``: the run recorded, audience, allocation,
  sticky assignment (newcomers ranked by ``md5(salt:id)`` fill each group's shortfall), the
  audience frozen per run, new assignments recorded, the diff against the previous run,
  rows routed to deliveries and snapshotted, streamed through the mapping into the files
  (temporary names, renames, ledger, manifests, ``.DONE``), recipients recorded.
* **sql**: hand-written DuckDB SQL doing the same work: the segments in one scan of
  ``customers`` with the first-match sub-audience as a CASE, the earlier assignments joined,
  the newcomer quotas computed exactly like ``activator.compiler.campaign.quotas`` with
  window functions, newcomers ranked by ``md5(salt:id)``, the run's audience frozen, new
  assignments and recipients inserted, the anti-join against the previous run's audience, and
  ``COPY ... TO`` one file per sub-audience, treatment group and format. It keeps its own
  state (schema ``handsql``), so each side reads only what it wrote itself.

``--check`` compares, per destination, sub-audience and group, the rows of both sides' files
(sorted row sets) for both runs, and the two run-2 audiences (with controls); any difference
stops the benchmark. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import datetime as dt
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

CAMPAIGN = "spring"
SALT = CAMPAIGN  # no salt in the definition: the campaign's name
T1 = dt.datetime(2026, 3, 1, 6, 0, tzinfo=dt.UTC)
T2 = T1 + dt.timedelta(days=7)
FIRST_SIGNUP = dt.datetime(2023, 3, 1, tzinfo=dt.UTC)
NEW_SHARE = 100
"""One customer in NEW_SHARE signs up between T1 and T2."""

CONFIG = """\
engine: {type: duckdb, path: data/shop.duckdb@LIMIT@}
metadata: {url: "sqlite:///.activator/metadata.db"}
timezone: UTC
data_model:
  customers: {table: customers, key: customer_id}
"""

# Segments: (name, YAML rules, the same condition in SQL over ``customers``, a function of the
# as-of time for relative dates).
SEGMENTS: dict[str, tuple[str, Any]] = {
    "big-spenders": (
        '{attribute: customers.spend, op: ">=", value: "1500"}',
        lambda as_of: "spend >= 1500",
    ),
    "recent-signups": (
        "{attribute: customers.signup_at, op: on_or_after, value: 60 days ago}",
        lambda as_of: f"signup_at >= {_day(as_of, 60)}",
    ),
    "loyal-members": (
        "{all: [{attribute: customers.loyalty_tier, op: in, value: [gold, platinum]},"
        " {attribute: customers.email_opt_in, op: is_true}]}",
        lambda as_of: "loyalty_tier IN ('gold', 'platinum') AND email_opt_in",
    ),
    "do-not-contact": (
        "{any: [{attribute: customers.status, op: equals, value: closed},"
        " {attribute: customers.email, op: empty}]}",
        lambda as_of: "(status = 'closed' OR coalesce(email, '') = '')",
    ),
}
INCLUDE = ["big-spenders", "recent-signups", "loyal-members"]
EXCLUDE = ["do-not-contact"]

# Sub-audiences in order (first match), then All remaining: (name, YAML rules or None, SQL
# condition or None, groups as (name, percent, control)).
DEFAULT_GROUPS = [("treatment", 90.0, False), ("control", 10.0, True)]
PARTS: list[tuple[str, str | None, Any, list[tuple[str, float, bool]]]] = [
    (
        "platinum",
        "{attribute: customers.loyalty_tier, op: equals, value: platinum}",
        lambda as_of: "loyalty_tier = 'platinum'",
        [("offer-a", 45.5, False), ("offer-b", 44.5, False), ("holdout", 10.0, True)],
    ),
    (
        "high-spend",
        '{attribute: customers.spend, op: ">=", value: "1800"}',
        lambda as_of: "spend >= 1800",
        DEFAULT_GROUPS,
    ),
    (
        "new-customers",
        "{attribute: customers.signup_at, op: on_or_after, value: 30 days ago}",
        lambda as_of: f"signup_at >= {_day(as_of, 30)}",
        DEFAULT_GROUPS,
    ),
    (
        "europe",
        "{attribute: customers.country, op: in, value: [FR, DE, GB, ES, IT]}",
        lambda as_of: "country IN ('FR', 'DE', 'GB', 'ES', 'IT')",
        DEFAULT_GROUPS,
    ),
    ("everyone-else", None, None, DEFAULT_GROUPS),
]

DESTINATIONS = {
    # name: (destination YAML format, DuckDB COPY options, file extension)
    "drop-csv": (
        "format: {type: csv, compression: gzip}",
        "FORMAT csv, COMPRESSION gzip",
        "csv.gz",
    ),
    "drop-parquet": ("format: {type: parquet}", "FORMAT parquet", "parquet"),
}
MAPPING = """\
    mapping:
      id: customer_id
      email: {source: email, transforms: [lowercase]}
      group: run.group
      sub_audience: run.sub_audience
"""
COLUMNS = ["id", "email", "group", "sub_audience"]


def _day(as_of: dt.datetime, days: int) -> str:
    """The start of the day ``days`` before the as-of date (UTC), as a SQL literal."""
    day = as_of.date() - dt.timedelta(days=days)
    return f"TIMESTAMPTZ '{day.isoformat()} 00:00:00+00'"


def _groups_yaml(groups: list[tuple[str, float, bool]], indent: str) -> str:
    lines = [f"{indent}groups:\n"]
    for name, percent, control in groups:
        extra = ", control: true" if control else ""
        lines.append(f"{indent}  - {{name: {name}, percent: {percent:g}{extra}}}\n")
    return "".join(lines)


def campaign_yaml() -> str:
    """The campaign definition."""
    text = (
        "description: Weekly spring offer, recurring and incremental.\n"
        f"audience: {{include: [{', '.join(INCLUDE)}], exclude: [{', '.join(EXCLUDE)}]}}\n"
        "destinations:\n"
    )
    for name in DESTINATIONS:
        text += f"  - destination: {name}\n" + MAPPING
    text += "sub_audiences:\n"
    for name, rules, _, groups in PARTS[:-1]:
        text += f"  - name: {name}\n    rules: {rules}\n" + _groups_yaml(groups, "    ")
    name, _, _, groups = PARTS[-1]
    text += f"remaining:\n  name: {name}\n" + _groups_yaml(groups, "  ")
    text += 'schedule: {type: recurring, every: weekly, at: "06:00"}\nmode: incremental\n'
    text += "status: active\n"
    return text


# -- data ------------------------------------------------------------------------------------

CUSTOMER_COLUMNS = """
    {id} AS customer_id,
    CASE WHEN {id} % 97 = 0 THEN NULL ELSE 'User.' || {id} || '@Example.COM' END AS email,
    ['US', 'FR', 'DE', 'GB', 'ES', 'IT', 'CA', 'BR'][1 + ({id} * 7919) % 8] AS country,
    CASE WHEN ({id} * 31) % 100 < 50 THEN 'bronze' WHEN ({id} * 31) % 100 < 80 THEN 'silver'
         WHEN ({id} * 31) % 100 < 95 THEN 'gold' ELSE 'platinum' END AS loyalty_tier,
    {id} % 10 <> 0 AS email_opt_in,
    CASE WHEN {id} % 53 = 0 THEN 'closed' ELSE 'active' END AS status,
    CAST((({id} * 2654435761) % 200000) * 0.01 AS DECIMAL(12, 2)) AS spend,
    {signup} AS signup_at
"""


def make_data(path: Path, customers: int) -> None:
    """The customers table as of T1: signups spread over the three years before T1."""
    span = int((T1 - FIRST_SIGNUP).total_seconds())
    signup = f"TIMESTAMPTZ '{FIRST_SIGNUP.isoformat()}' + to_seconds((range * 48271) % {span})"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE customers AS SELECT "
        + CUSTOMER_COLUMNS.format(id="range", signup=signup)
        + f" FROM range({customers})"
    )
    con.close()


def change_data(path: Path, customers: int) -> dict[str, int]:
    """What happens between T1 and T2: signups, bigger spenders, upgrades, closed accounts."""
    new = customers // NEW_SHARE
    week = int((T2 - T1).total_seconds())
    signup = f"TIMESTAMPTZ '{T1.isoformat()}' + to_seconds((range * 48271) % {week})"
    con = duckdb.connect(str(path))
    con.execute(
        "INSERT INTO customers SELECT "
        + CUSTOMER_COLUMNS.format(id="range", signup=signup)
        + f" FROM range({customers}, {customers + new})"
    )
    changed = {"new_customers": new}
    for name, statement in (
        ("spend_up", "UPDATE customers SET spend = spend + 1000 WHERE customer_id % 200 = 7"),
        ("upgraded", "UPDATE customers SET loyalty_tier = 'platinum' WHERE customer_id % 500 = 3"),
        ("closed", "UPDATE customers SET status = 'closed' WHERE customer_id % 1000 = 11"),
    ):
        changed[name] = int(con.execute(statement).fetchone()[0])  # type: ignore[index]
    con.close()
    return changed


def make_workspace(root: Path, data: Path, memory_limit: str | None) -> None:
    """The workspace: config, segments, destinations, the campaign; the data copied in."""
    (root / "data").mkdir(parents=True)
    shutil.copyfile(data, root / "data" / "shop.duckdb")
    limit = f", memory_limit: {memory_limit}" if memory_limit else ""
    (root / "activator.yaml").write_text(CONFIG.replace("@LIMIT@", limit))
    for folder in ("segments", "destinations", "campaigns"):
        (root / folder).mkdir()
    for name, (rules, _) in SEGMENTS.items():
        (root / "segments" / f"{name}.yml").write_text(f"rules: {rules}\n")
    for name, (fmt, _, _) in DESTINATIONS.items():
        (root / "destinations" / f"{name}.yml").write_text(
            f'type: local\npath: out/{name}\nfilename: "feed_{{run_time:%Y%m%d}}"\n{fmt}\n'
        )
    (root / "campaigns" / f"{CAMPAIGN}.yml").write_text(campaign_yaml())


# -- the hand-written SQL --------------------------------------------------------------------


def _groups_values() -> str:
    """The groups as a VALUES list: sub-audience and group in declared order, basis points."""
    rows = []
    for sub_pos, (sub, _, _, groups) in enumerate(PARTS):
        for pos, (group, percent, control) in enumerate(groups):
            rows.append(
                f"('{sub}', {sub_pos}, '{group}', {pos}, {round(percent * 100)}, {control})"
            )
    return ",\n        ".join(rows)


def sql_run(as_of: dt.datetime, run: int, out: Path) -> list[tuple[str, str]]:
    """The hand-written run ``run`` (1, 2, ...) as of ``as_of``: (step, SQL) pairs.

    State lives in schema ``handsql``: ``assignments`` (sticky groups, insert-only),
    ``audience_<run>`` (each run's audience with groups), ``recipients``.
    """
    include = " OR ".join(f"({SEGMENTS[name][1](as_of)})" for name in INCLUDE)
    exclude = " OR ".join(f"({SEGMENTS[name][1](as_of)})" for name in EXCLUDE)
    first_match = "\n".join(
        f"            WHEN {cond(as_of)} THEN '{sub}'" for sub, _, cond, _ in PARTS[:-1]
    )
    remaining = PARTS[-1][0]
    previous = f"handsql.audience_{run - 1}"
    current = f"handsql.audience_{run}"
    stamp = f"TIMESTAMPTZ '{as_of.isoformat()}'"
    steps = [
        (
            "setup",
            f"""
CREATE SCHEMA IF NOT EXISTS handsql;
CREATE TABLE IF NOT EXISTS handsql.assignments (customer_id BIGINT, sub_audience VARCHAR,
    treatment_group VARCHAR, run INTEGER);
CREATE TABLE IF NOT EXISTS handsql.recipients (customer_id BIGINT, sub_audience VARCHAR,
    treatment_group VARCHAR, control BOOLEAN, destination VARCHAR, run INTEGER,
    sent_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS {previous} (customer_id BIGINT, sub_audience VARCHAR,
    treatment_group VARCHAR, control BOOLEAN);
CREATE OR REPLACE TEMP TABLE groups (sub_audience VARCHAR, sub_pos INTEGER,
    treatment_group VARCHAR, pos INTEGER, bp BIGINT, control BOOLEAN);
INSERT INTO groups VALUES
        {_groups_values()};
""",
        ),
        (
            # Segments, exclusion and first match in one scan; earlier groups joined.
            "audience",
            f"""
CREATE OR REPLACE TEMP TABLE prepared AS
WITH allocated AS (
    SELECT customer_id,
           CASE
{first_match}
            ELSE '{remaining}'
           END AS sub_audience
    FROM customers
    WHERE ({include}) AND NOT coalesce({exclude}, false)
),
earlier AS (
    SELECT a.customer_id, a.sub_audience, a.treatment_group
    FROM handsql.assignments a JOIN groups g USING (sub_audience, treatment_group)
)
SELECT allocated.customer_id, allocated.sub_audience, earlier.treatment_group AS previous
FROM allocated LEFT JOIN earlier USING (customer_id, sub_audience);
""",
        ),
        (
            # quotas(): targets apportion the sub-audience by basis points (cumulative,
            # rounded half up); newcomers apportion each group's shortfall the same way.
            "quotas",
            """
CREATE OR REPLACE TEMP TABLE plan AS
WITH counts AS (
    SELECT sub_audience, previous, count(*) AS n FROM prepared GROUP BY ALL
),
kept AS (
    SELECT g.*, coalesce(k.n, 0) AS kept, coalesce(c.n, 0) AS newcomers,
           sum(g.bp) OVER (PARTITION BY g.sub_audience ORDER BY g.pos) AS cum_bp,
           sum(g.bp) OVER (PARTITION BY g.sub_audience) AS whole_bp
    FROM groups g
    LEFT JOIN counts k ON k.sub_audience = g.sub_audience AND k.previous = g.treatment_group
    LEFT JOIN counts c ON c.sub_audience = g.sub_audience AND c.previous IS NULL
),
targets AS (
    SELECT *,
           (2 * total * cum_bp + whole_bp) // (2 * whole_bp)
           - (2 * total * (cum_bp - bp) + whole_bp) // (2 * whole_bp) AS target
    FROM (SELECT *, sum(kept) OVER (PARTITION BY sub_audience) + newcomers AS total FROM kept)
),
shortfalls AS (
    SELECT *,
           sum(short) OVER (PARTITION BY sub_audience ORDER BY pos) AS cum_short,
           sum(short) OVER (PARTITION BY sub_audience) AS whole_short
    FROM (SELECT *, greatest(0, target - kept) AS short FROM targets)
),
joining AS (
    SELECT *,
           CASE WHEN whole_short = 0 THEN 0
                ELSE (2 * newcomers * cum_short + whole_short) // (2 * whole_short)
                     - (2 * newcomers * (cum_short - short) + whole_short) // (2 * whole_short)
           END AS joins
    FROM shortfalls
)
SELECT sub_audience, treatment_group, control,
       sum(joins) OVER (PARTITION BY sub_audience ORDER BY pos) - joins AS first,
       sum(joins) OVER (PARTITION BY sub_audience ORDER BY pos) AS "end"
FROM joining;
""",
        ),
        (
            "assign",
            f"""
CREATE OR REPLACE TABLE {current} AS
WITH everyone AS (
    SELECT customer_id, sub_audience, previous AS treatment_group
    FROM prepared WHERE previous IS NOT NULL
    UNION ALL
    SELECT n.customer_id, n.sub_audience, p.treatment_group
    FROM (
        SELECT customer_id, sub_audience,
               row_number() OVER (
                   PARTITION BY sub_audience
                   ORDER BY md5('{SALT}:' || customer_id), customer_id
               ) - 1 AS rnk
        FROM prepared WHERE previous IS NULL
    ) n
    JOIN plan p ON p.sub_audience = n.sub_audience AND n.rnk >= p.first AND n.rnk < p."end"
)
SELECT e.customer_id, e.sub_audience, e.treatment_group, g.control
FROM everyone e JOIN groups g USING (sub_audience, treatment_group);
INSERT INTO handsql.assignments
SELECT customer_id, sub_audience, treatment_group, {run}
FROM {current} a
WHERE NOT EXISTS (
    SELECT 1 FROM handsql.assignments s
    WHERE s.customer_id = a.customer_id AND s.sub_audience = a.sub_audience
);
""",
        ),
        (
            # Incremental: who is new to their sub-audience since the previous run.
            "diff",
            f"""
CREATE OR REPLACE TEMP TABLE sent AS
SELECT a.customer_id, a.sub_audience, a.treatment_group, a.control, lower(c.email) AS email
FROM {current} a
JOIN customers c USING (customer_id)
WHERE NOT EXISTS (
    SELECT 1 FROM {previous} p
    WHERE p.customer_id = a.customer_id AND p.sub_audience = a.sub_audience
);
INSERT INTO handsql.recipients
SELECT customer_id, sub_audience, treatment_group, control, d.destination, {run}, {stamp}
FROM sent LEFT JOIN (VALUES {", ".join(f"('{d}')" for d in DESTINATIONS)}) d(destination)
    ON NOT control;
""",
        ),
    ]
    for name, (_, options, extension) in DESTINATIONS.items():
        folder = out / name
        copies = []
        for sub, _, _, groups in PARTS:
            for group, _, control in groups:
                if control:
                    continue
                target = folder / f"{sub}_{group}.{extension}"
                copies.append(
                    f'COPY (SELECT customer_id AS id, email, treatment_group AS "group", '
                    f"sub_audience FROM sent WHERE sub_audience = '{sub}' "
                    f"AND treatment_group = '{group}') TO '{target}' ({options});"
                )
        steps.append((f"copy {name}", "\n".join(copies)))
    return steps


SQL_RUNNER = """
import duckdb, json, sys, time
con = duckdb.connect(sys.argv[1])
con.execute("SET enable_progress_bar = false")
if sys.argv[3]:
    con.execute(f"SET memory_limit = '{sys.argv[3]}'")
seconds = {}
for step, sql in json.load(open(sys.argv[2])):
    start = time.perf_counter()
    con.execute(sql)
    seconds[step] = round(time.perf_counter() - start, 3)
con.close()
print(json.dumps(seconds))
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


def run_activator(root: Path, as_of: dt.datetime) -> dict[str, Any]:
    """``activator run`` of the campaign; time, peak RSS and where the run's time went."""
    activator = [sys.executable, "-m", "activator", "-w", str(root)]
    seconds, rss, out = timed([*activator, "run", CAMPAIGN, "--as-of", as_of.isoformat(), "--json"])
    run = json.loads(out)
    if run["status"] != "succeeded":
        raise SystemExit(f"activator run ended {run['status']}: {run.get('error')}")
    shown = subprocess.run(
        [*activator, "runs", "show", run["run_id"], "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(rss),
        "run_id": run["run_id"],
        "audience": run["audience"],
        "sent": run["sent"],
        "rows_written": sum(d["rows"] for d in run["deliveries"]),
        "phase_seconds": _phases(json.loads(shown.stdout), seconds),
    }


def _phases(run: dict[str, Any], wall: float) -> dict[str, float]:
    """Where a run's time went, from the times its tasks started and finished."""

    def at(value: str) -> dt.datetime:
        return dt.datetime.fromisoformat(value)

    tasks = run["tasks"]
    evaluate = next(t for t in tasks if t["task"] == "evaluate")
    deliveries = [t for t in tasks if t["task"].startswith("deliver:")]
    created, finished = at(run["created_at"]), at(run["finished_at"])
    last = max(at(t["finished_at"]) for t in deliveries)
    phases = {
        # Interpreter start, imports, loading the workspace; printing the result.
        "process": wall - (finished - created).total_seconds(),
        "plan": (at(evaluate["started_at"]) - created).total_seconds(),
        "evaluate": (at(evaluate["finished_at"]) - at(evaluate["started_at"])).total_seconds(),
        "deliver": (last - at(evaluate["finished_at"])).total_seconds(),
        # Recipients recorded, counts per group, the run closed.
        "finish": (finished - last).total_seconds(),
    }
    for name in DESTINATIONS:
        phases[f"deliver {name}"] = sum(
            (at(t["finished_at"]) - at(t["started_at"])).total_seconds()
            for t in deliveries
            if t["task"].startswith(f"deliver:{name}:")
        )
    return {name: round(seconds, 3) for name, seconds in phases.items()}


def run_sql(db: Path, as_of: dt.datetime, run: int, out: Path, limit: str | None) -> dict[str, Any]:
    """The hand-written SQL in its own process; time, peak RSS and seconds per step."""
    for name in DESTINATIONS:
        (out / name).mkdir(parents=True, exist_ok=True)
    script = out / "steps.json"
    script.write_text(json.dumps(sql_run(as_of, run, out)))
    seconds, rss, printed = timed(
        [sys.executable, "-c", SQL_RUNNER, str(db), str(script), limit or ""]
    )
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(rss),
        "step_seconds": json.loads(printed.strip().splitlines()[-1]),
    }


# -- checking --------------------------------------------------------------------------------


def _reader(path: Path) -> str:
    cast = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in COLUMNS)
    if path.name.endswith(".parquet"):
        return f"SELECT {cast} FROM read_parquet('{path}')"
    return f"SELECT {cast} FROM read_csv('{path}', header = true, all_varchar = true)"


def check(root: Path, sql_out: Path, as_of: dt.datetime, run_id: str, run: int) -> int:
    """Both sides' files hold the same rows per destination and group; and the audiences
    (run 2) match. Returns the rows compared; raises SystemExit on any difference."""
    con = duckdb.connect()
    compared = 0
    for name, (_, _, extension) in DESTINATIONS.items():
        for sub, _, _, groups in PARTS:
            for group, _, control in groups:
                if control:
                    continue
                ours = root / "out" / name / f"feed_{as_of:%Y%m%d}_{sub}_{group}.{extension}"
                theirs = sql_out / name / f"{sub}_{group}.{extension}"
                if ours.exists():
                    mine = _reader(ours)
                else:  # no rows: Activator writes no part, only the manifest and .DONE
                    manifest = ours.parent / f"feed_{as_of:%Y%m%d}_{sub}_{group}.manifest.json"
                    assert json.loads(manifest.read_text())["rows"] == 0, manifest
                    mine = _reader(theirs) + " LIMIT 0"
                a = con.execute(f"SELECT * FROM ({mine}) ORDER BY ALL").fetchall()
                b = con.execute(f"SELECT * FROM ({_reader(theirs)}) ORDER BY ALL").fetchall()
                if a != b:
                    raise SystemExit(
                        f"run {run}, {name} {sub}/{group}: activator {len(a)} rows, sql {len(b)};"
                        f" first differences: {sorted(set(a) ^ set(b))[:5]}"
                    )
                compared += len(a)
    con.close()
    if run == 2:
        db = duckdb.connect(str(root / "data" / "shop.duckdb"), read_only=True)
        table = "campaign_audience_" + run_id.replace("-", "")
        query = """
            SELECT count(*) FROM (
                (SELECT customer_id, sub_audience, treatment_group, control FROM activator.{t}
                 EXCEPT ALL SELECT * FROM handsql.audience_2)
                UNION ALL
                (SELECT * FROM handsql.audience_2
                 EXCEPT ALL SELECT customer_id, sub_audience, treatment_group, control
                 FROM activator.{t}))
        """
        differ = db.execute(query.format(t=table)).fetchone()
        db.close()
        if differ is None or differ[0] != 0:
            raise SystemExit(f"run 2: the audiences differ in {differ} rows")
    return compared


# -- the benchmark ---------------------------------------------------------------------------


def _pair(
    root: Path,
    as_of: dt.datetime,
    run: int,
    memory_limit: str | None,
    verify: bool,
    ours_first: bool,
) -> dict[str, Any]:
    """Run ``run`` on both sides, in the given order; optionally compare their outputs."""
    db = root / "data" / "shop.duckdb"
    sql_out = root / "sql" / f"run{run}"
    found: dict[str, Any] = {}
    for side in ("activator", "sql") if ours_first else ("sql", "activator"):
        if side == "activator":
            found[side] = run_activator(root, as_of)
        else:
            found[side] = run_sql(db, as_of, run, sql_out, memory_limit)
    found["ratio"] = round(found["activator"]["seconds"] / found["sql"]["seconds"], 2)
    found["load"] = round(os.getloadavg()[0], 2)
    if verify:
        found["rows_checked"] = check(root, sql_out, as_of, found["activator"]["run_id"], run)
    return found


def bench(
    customers: int,
    workdir: Path,
    memory_limit: str | None,
    *,
    verify: bool,
    repeat: int,
    keep: bool,
) -> dict[str, Any]:
    """Both runs of the campaign on both sides for one size; run 2 ``repeat`` times, each
    from a copy of the state after run 1, the sides alternating which goes first."""
    data = workdir / f"customers_{customers}.duckdb"
    if not data.exists():
        make_data(data, customers)
    root = workdir / f"ws_{customers}"
    saved = workdir / f"ws_{customers}.after-run1"
    for folder in (root, saved):
        shutil.rmtree(folder, ignore_errors=True)
    make_workspace(root, data, memory_limit)
    subprocess.run(
        [sys.executable, "-m", "activator", "-w", str(root), "apply"],
        check=True,
        capture_output=True,
    )
    result: dict[str, Any] = {"customers": customers}
    result["run1"] = {"as_of": T1.isoformat(), **_pair(root, T1, 1, memory_limit, verify, True)}
    result["changes"] = change_data(root / "data" / "shop.duckdb", customers)
    shutil.copytree(root, saved)
    tries = []
    for attempt in range(repeat):
        if attempt:
            shutil.rmtree(root)
            shutil.copytree(saved, root)
        last = attempt == repeat - 1
        tries.append(_pair(root, T2, 2, memory_limit, verify and last, attempt % 2 == 0))
    ours = sorted(t["activator"]["seconds"] for t in tries)[len(tries) // 2]
    theirs = sorted(t["sql"]["seconds"] for t in tries)[len(tries) // 2]
    result["run2"] = {
        "as_of": T2.isoformat(),
        "activator_median_seconds": ours,
        "sql_median_seconds": theirs,
        "ratio_of_medians": round(ours / theirs, 2),
        "activator_peak_rss_mib": max(t["activator"]["peak_rss_mib"] for t in tries),
        "sql_peak_rss_mib": max(t["sql"]["peak_rss_mib"] for t in tries),
        "tries": tries,
    }
    if not keep:
        for folder in (root, saved):
            shutil.rmtree(folder, ignore_errors=True)
    return result


def main() -> None:
    """Parse the arguments, run every size, print one JSON document."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--workdir", type=Path, default=None, help="keeps the generated data")
    parser.add_argument(
        "--memory-limit",
        default=None,
        help="DuckDB's memory_limit for both sides (e.g. 1GB); default: DuckDB's (80%% of RAM)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="compare both sides' files and audiences (use a small size, e.g. 50000)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="times run 2 is measured (the median is kept)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the workspaces and files in the workdir"
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="activator-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = [
        bench(
            n,
            workdir,
            args.memory_limit,
            verify=args.check,
            repeat=args.repeat,
            keep=args.keep,
        )
        for n in args.customers
    ]
    print(
        json.dumps(
            {
                "date": dt.date.today().isoformat(),
                "cores": os.cpu_count(),
                "duckdb": duckdb.__version__,
                "memory_limit": args.memory_limit,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

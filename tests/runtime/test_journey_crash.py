"""``kill -9`` a journey run at random moments, resume it: nothing is lost, nothing doubled.

A journey ``welcome`` takes 200,000 customers in at T: ``hello`` (activate) → ``wait`` (delay
1d) → ``nudge`` (activate) → ``done`` (exit), each activate node sending to a gzip CSV file
destination split into parts of 10,000 rows and to a webhook receiver (batches of 1,000).

``activator run welcome`` runs as a real process and is killed with SIGKILL at random (seeded)
moments: during start-up, during the journey's step in the engine (a random moment after one
of the step's progress events), and mid-delivery (a random few milliseconds after a random
number of delivered units); ``activator runs resume RUN`` is killed the same way until the
moments are used up, then resumed to the end. After every kill, what a reader can see is
consistent: the travel log holds none or all of the run's rows (one INSERT), and every visible
file is whole. At the end every destination holds every traveller exactly once (files: whole
parts, no temporary files, manifests counting 200,000 rows; webhooks: the deduplicated records
with exact ids and valid signatures), the travel log (read with DuckDB directly) holds
exactly the run's rows, once, and the data plane holds no staging table or snapshot. A second
run at T+1d, killed the same way, sends ``nudge`` once.

One case is deterministic: the run is killed as soon as its events say "writing the travel
log", again while the resumed step writes, then once its ``step`` task is recorded as
succeeded; the state a kill between the step's INSERT and that record leaves (the rows in the
log, the task still ``running``) is then made exactly, and the resumed run recognises the
rows: it neither steps again nor loses rows.
"""

from __future__ import annotations

import csv
import gzip
import json
import random
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.cli.runner import activator, as_json
from tests.fixtures.receiver import Receiver
from tests.runtime.test_crash import _kill_at, _start

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CUSTOMERS = 200_000
PART_ROWS = 10_000
BATCH = 1000
T = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NEXT_DAY = T + timedelta(days=1)
JOURNEY = "welcome"

CONFIG = """\
engine: {type: duckdb, path: data/shop.duckdb}
data_model:
  customers: {table: customers, key: customer_id}
"""

JOINED = "rules: {attribute: customers.joined_at, op: before, value: now}\n"

DROP = """\
type: local
path: out
filename: "{journey}_{node}_{run_time:%Y%m%d}_{part}"
format: {type: csv, compression: gzip}
split: {rows: 10000}
"""

HOOK = """\
type: webhook
url: {url}
allow_private: true
batch_size: 1000
credentials: {{signing_secret: {{env: JOURNEY_CRASH_SECRET}}}}
"""

MAPPING = "{customer_id: customer_id, email: email, node: run.node}"

STEP_EVENTS = (
    "evaluating the journey's segments",
    "finding every traveller's position",
    "entering the newly qualified",
    "advancing travellers",
    "writing the travel log",
)
"""The step's progress events, in order (``runtime/journey.py``)."""

Group = tuple[str, str, str | None, str | None]
"""Travel log rows of one kind: (stage, node, parent, path)."""

LOGGED: dict[datetime, list[Group]] = {
    T: [
        ("start", "hello", None, None),
        ("complete", "hello", None, None),
        ("start", "wait", "hello", None),
    ],
    NEXT_DAY: [
        ("complete", "wait", None, None),
        ("start", "nudge", "wait", None),
        ("complete", "nudge", None, None),
        ("start", "done", "nudge", None),
        ("exit", "done", None, "exit-node"),
    ],
}
"""The rows each run writes: every customer once per kind."""

SENT = {T: "hello", NEXT_DAY: "nudge"}
"""The activate node each run sends."""

STEPPED_AT_T = {
    "entered": CUSTOMERS,
    "moved": CUSTOMERS,
    "exited": 0,
    "goals": 0,
    "orphaned": 0,
    "nodes": {"hello": {"start": CUSTOMERS, "complete": CUSTOMERS}, "wait": {"start": CUSTOMERS}},
}
"""The step's counts of the run at T."""


def make_workspace(root: Path, destinations: dict[str, str]) -> Path:
    """A workspace whose journey ``welcome`` sends to ``destinations`` (name → YAML) at both
    activate nodes; every customer joined before T."""
    (root / "data").mkdir(parents=True)
    con = duckdb.connect(str(root / "data" / "shop.duckdb"))
    con.execute(
        f"CREATE TABLE customers AS SELECT range AS customer_id, "
        f"'c' || range || '@example.com' AS email, TIMESTAMP '2026-01-01' AS joined_at "
        f"FROM range({CUSTOMERS})"
    )
    con.close()
    uses = ", ".join(f"{{destination: {name}, mapping: {MAPPING}}}" for name in destinations)
    journey = (
        "start: {entry: [joined]}\n"
        "nodes:\n"
        f"  - {{id: hello, type: activate, destinations: [{uses}], next: wait}}\n"
        "  - {id: wait, type: delay, wait: 1d, next: nudge}\n"
        f"  - {{id: nudge, type: activate, destinations: [{uses}], next: done}}\n"
        "  - {id: done, type: exit}\n"
        'schedule: {type: recurring, every: daily, at: "09:00"}\n'
        "status: active\n"
    )
    files = {
        "segments/joined": JOINED,
        **{f"destinations/{name}": text for name, text in destinations.items()},
        f"journeys/{JOURNEY}": journey,
    }
    (root / "activator.yaml").write_text(CONFIG)
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / f"{path}.yml").write_text(text)
    applied = activator("-w", str(root), "apply", "--json")
    assert applied.returncode == 0, applied.stderr
    return root


# -- reading the metadata store and the travel log -------------------------------------------


def _query(root: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    # Bare reads of the store's tables: opening the store each time would be too slow to catch
    # a fast step or delivery in the act.
    with closing(sqlite3.connect(root / ".activator" / "metadata.db", timeout=10)) as con:
        rows = con.execute(sql, params).fetchall()
        con.commit()  # an UPDATE's
        return rows


def _run_at(root: Path, as_of: datetime) -> str | None:
    """The journey's run as of ``as_of`` (None: not recorded yet)."""
    rows = _query(
        root, "SELECT run_id, as_of FROM runs WHERE kind = 'journey' AND name = ?", JOURNEY
    )
    stamp = as_of.strftime("%Y-%m-%d %H:%M:%S")
    found = [run_id for run_id, at in rows if str(at).startswith(stamp)]
    assert len(found) <= 1, found
    return found[0] if found else None


def _events(root: Path, run_id: str, message: str) -> int:
    """How many events of the run say ``message``."""
    ((count,),) = _query(
        root, "SELECT count(*) FROM run_events WHERE run_id = ? AND message = ?", run_id, message
    )
    return int(count)


def _step_events(root: Path, run_id: str | None) -> int:
    if run_id is None:
        return 0
    marks = ", ".join("?" for _ in STEP_EVENTS)
    ((count,),) = _query(
        root,
        f"SELECT count(*) FROM run_events WHERE run_id = ? AND task = 'step' "
        f"AND message IN ({marks})",
        run_id,
        *STEP_EVENTS,
    )
    return int(count)


def _task(root: Path, run_id: str, task: str) -> str | None:
    """The task's status (None: not created yet)."""
    rows = _query(root, "SELECT status FROM run_tasks WHERE run_id = ? AND task = ?", run_id, task)
    return str(rows[0][0]) if rows else None


def _delivered(root: Path, run_id: str | None, task: str) -> int:
    if run_id is None:
        return 0
    ((count,),) = _query(
        root,
        "SELECT count(*) FROM ledger_units WHERE run_id = ? AND task = ? "
        "AND state = 'delivered' AND idx >= 0",
        run_id,
        task,
    )
    return int(count)


def _status(root: Path, run_id: str) -> str:
    ((status,),) = _query(root, "SELECT status FROM runs WHERE run_id = ?", run_id)
    return str(status)


def _log_groups(root: Path) -> dict[tuple[str, Group], tuple[int, int, int, int]]:
    """(run, (stage, node, parent, path)) → (rows, distinct travellers, lowest, highest), read
    from the travel log with DuckDB directly (read-only)."""
    with duckdb.connect(str(root / "data" / "shop.duckdb"), read_only=True) as con:
        tables = con.execute(
            "SELECT count(*) FROM duckdb_tables() "
            "WHERE schema_name = 'activator' AND table_name = 'journey_log'"
        ).fetchone()
        if tables == (0,):
            return {}
        rows = con.execute(
            "SELECT run_id, stage, node, parent, path, count(*), count(DISTINCT traveller), "
            "min(traveller), max(traveller) FROM activator.journey_log WHERE journey = ? "
            "GROUP BY ALL",
            [JOURNEY],
        ).fetchall()
    return {(r[0], (r[1], r[2], r[3], r[4])): (r[5], r[6], r[7], r[8]) for r in rows}


def _log_rows(root: Path) -> Counter[str]:
    """Rows per run in the travel log."""
    found: Counter[str] = Counter()
    for (run_id, _), (rows, *_) in _log_groups(root).items():
        found[run_id] += rows
    return found


def _doubled(root: Path) -> int:
    """Travel log rows of the same traveller, entry, node and stage beyond the first."""
    with duckdb.connect(str(root / "data" / "shop.duckdb"), read_only=True) as con:
        (extra,) = con.execute(
            "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n "
            "FROM activator.journey_log WHERE journey = ? "
            "GROUP BY traveller, entry, node, stage)",
            [JOURNEY],
        ).fetchone() or (None,)
    return int(extra)


def _expected_log(runs: dict[datetime, str]) -> dict[tuple[str, Group], tuple[int, int, int, int]]:
    whole = (CUSTOMERS, CUSTOMERS, 0, CUSTOMERS - 1)
    return {(run_id, group): whole for at, run_id in runs.items() for group in LOGGED[at]}


def _dataplane(root: Path) -> set[str]:
    """The data plane's tables."""
    with duckdb.connect(str(root / "data" / "shop.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'activator'"
        ).fetchall()
    return {name for (name,) in rows}


def check_log(root: Path, runs: dict[datetime, str]) -> None:
    """The travel log holds exactly the rows of ``runs`` (as of → run), each once."""
    assert _log_groups(root) == _expected_log(runs)
    assert _doubled(root) == 0


def check_nothing_left(root: Path) -> None:
    """The finished runs left nothing but the travel log in the data plane: no staging table
    of a step, no snapshot, no half-made table."""
    assert _dataplane(root) == {"journey_log"}


# -- the destinations ------------------------------------------------------------------------


def _base(node: str, at: datetime) -> str:
    return f"{JOURNEY}_{node}_{at:%Y%m%d}"


def _parts(out: Path, node: str, at: datetime) -> list[Path]:
    return sorted(out.glob(f"{_base(node, at)}_*.csv.gz"))


def _visible_files_are_whole(out: Path) -> None:
    """Every visible part is a complete gzip file of whole CSV rows from its node."""
    if not out.exists():
        return
    for part in out.glob("*.csv.gz"):
        with gzip.open(part, "rt", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == PART_ROWS, part
        node = part.name.split("_")[1]
        assert all(row["customer_id"] and row["node"] == node for row in rows), part


def check_files(out: Path, at: datetime) -> None:
    """The run at ``at`` sent its activate node's 200,000 travellers once in whole parts, and
    an empty manifest for the other activate node; no temporary file is left."""
    node = SENT[at]
    ids: list[int] = []
    for part in _parts(out, node, at):
        with gzip.open(part, "rt", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == PART_ROWS, part
        assert {row["node"] for row in rows} == {node}
        ids.extend(int(row["customer_id"]) for row in rows)
    assert len(ids) == CUSTOMERS
    assert set(ids) == set(range(CUSTOMERS))
    manifest = json.loads((out / f"{_base(node, at)}.manifest.json").read_text())
    assert manifest["rows"] == CUSTOMERS
    assert [f["name"] for f in manifest["files"]] == [p.name for p in _parts(out, node, at)]
    assert len(manifest["files"]) == CUSTOMERS // PART_ROWS
    assert (out / f"{_base(node, at)}.DONE").exists()
    (other,) = set(SENT.values()) - {node}
    empty = json.loads((out / f"{_base(other, at)}.manifest.json").read_text())
    assert (empty["rows"], empty["files"]) == (0, [])
    assert _parts(out, other, at) == []
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def check_webhook(receiver: Receiver, node: str) -> None:
    """The receiver holds (deduplicated by ``webhook-id``) every traveller of ``node`` once."""
    ids = [int(r["customer_id"]) for r in receiver.records() if r["node"] == node]
    assert len(ids) == CUSTOMERS
    assert set(ids) == set(range(CUSTOMERS))
    assert receiver.bad_signatures == 0


# -- killing and resuming --------------------------------------------------------------------


def _kill_when(process: subprocess.Popen[str], ready: Callable[[], bool], extra: float) -> bool:
    """SIGKILL the process ``extra`` seconds after ``ready()`` holds; False if it finished
    first."""
    while not ready():
        if process.poll() is not None:
            process.communicate()
            return False
        time.sleep(0.005)
    return _kill_at(process, extra)


@dataclass
class Crashes:
    """One run of the journey as of ``as_of``, killed at random moments, then finished.

    Attributes:
        deliveries: Every deliver task of the run → the units it delivers.
        landed: Where each kill that landed hit: ``start-up`` (before the attempt did any
            work), ``step`` (the journey's step had begun and was not recorded as done;
            ``step, after its INSERT`` when the run's rows were in the travel log already),
            ``before delivering`` (the step is done, the attempt delivered nothing), ``delivery``
            (the attempt delivered units).
    """

    root: Path
    as_of: datetime
    rng: random.Random
    deliveries: dict[str, int]
    check_visible: Callable[[str], None]
    run_id: str | None = None
    landed: list[str] = field(default_factory=list)

    def attempt(self) -> subprocess.Popen[str]:
        if self.run_id is None:
            return _start(self.root, "run", JOURNEY, "--as-of", self.as_of.isoformat())
        return _start(self.root, "runs", "resume", self.run_id)

    def recorded(self) -> bool:
        if self.run_id is None:
            self.run_id = _run_at(self.root, self.as_of)
        return self.run_id is not None

    def step_done(self) -> bool:
        return self.run_id is not None and _task(self.root, self.run_id, "step") == "succeeded"

    def kill(self, moment: str) -> bool:
        """One attempt killed at ``moment`` (``start-up``, ``step``, ``late step`` or
        ``delivery``); False when the attempt finished first (the run is over)."""
        steps = _step_events(self.root, self.run_id)
        sent = {task: _delivered(self.root, self.run_id, task) for task in self.deliveries}
        process = self.attempt()
        if moment == "start-up" and self.run_id is None:
            # As soon as the run is recorded: claimed, perhaps, but not started.
            landed = _kill_when(process, self.recorded, self.rng.uniform(0, 0.3))
        elif moment == "start-up":
            landed = _kill_at(process, self.rng.uniform(0.2, 1.0))
        elif moment in ("step", "late step"):
            # A random moment after one of the step's progress events (the last one: up to
            # the INSERT and just beyond, as the step then freezes and appends ~600,000 rows;
            # not much later, or on a fast machine the deliveries are over before the kill
            # and no kill lands mid-delivery).
            message = self.rng.choice(STEP_EVENTS[:-1] if moment == "step" else STEP_EVENTS)
            extra = self.rng.uniform(0, 0.6 if message == STEP_EVENTS[-1] else 0.4)
            before = _events(self.root, self.run_id, message) if self.run_id else 0

            def stepped() -> bool:
                return self.recorded() and _events(self.root, str(self.run_id), message) > before

            landed = _kill_when(process, stepped, extra)
        else:
            # Mid-delivery: a random few milliseconds after a random number of units of a
            # task with units left (in the first half of what is left).
            left = {t: n - sent[t] for t, n in self.deliveries.items() if n > sent[t]}
            task = self.rng.choice(sorted(left))
            target = sent[task] + self.rng.randint(1, max(1, left[task] // 2))

            def delivering() -> bool:
                return self.recorded() and _delivered(self.root, self.run_id, task) >= target

            landed = _kill_when(process, delivering, self.rng.uniform(0, 0.05))
        self.recorded()
        if landed:
            self.landed.append(self._where(steps, sent))
            if self.run_id is not None:
                self.check_visible(self.run_id)
        return landed

    def _where(self, steps: int, sent: dict[str, int]) -> str:
        if any(_delivered(self.root, self.run_id, t) > n for t, n in sent.items()):
            return "delivery"
        if self.step_done():
            return "before delivering"
        if _step_events(self.root, self.run_id) == steps:
            return "start-up"
        inserted = _log_rows(self.root)[str(self.run_id)] > 0
        return "step, after its INSERT" if inserted else "step"

    def run(self, moments: Sequence[str]) -> dict[str, Any]:
        """Kill the run at ``moments`` in turn (those a finished step or delivery makes moot
        are skipped), then resume it to the end; returns the finished run's JSON."""
        for moment in moments:
            if moment in ("step", "late step") and self.step_done():
                continue
            if moment == "delivery" and all(
                self.run_id is not None and _task(self.root, self.run_id, t) == "succeeded"
                for t in self.deliveries
            ):
                continue
            if not self.kill(moment):
                break
        assert self.run_id is not None
        if _status(self.root, self.run_id) == "succeeded":  # the last attempt beat its kill
            shown = activator("-w", str(self.root), "runs", "show", self.run_id, "--json")
            return dict(as_json(shown))
        final = activator("-w", str(self.root), "runs", "resume", self.run_id, "--json")
        document = as_json(final)
        assert document["status"] == "succeeded", final.stderr
        return dict(document)


def _sent(run: dict[str, Any]) -> dict[str, int]:
    """Rows each delivery of a finished run sent (``destination:node`` → rows)."""
    return {label: int(d["rows"]) for label, d in run["counts"]["deliveries"].items()}


def _resumed_mid_delivery(root: Path, run_id: str) -> int:
    """How many attempts resumed a delivery after some units were already delivered."""
    rows = _query(
        root,
        "SELECT fields FROM run_events WHERE run_id = ? AND message = 'resuming' "
        "AND task LIKE 'deliver:%'",
        run_id,
    )
    return sum(1 for (fields,) in rows if json.loads(fields).get("from_row", 0) > 0)


def _tasks(node: str, units: dict[str, int]) -> dict[str, int]:
    """The deliver tasks of ``node``, to each destination (→ its units)."""
    return {f"deliver:{destination}:{node}": n for destination, n in units.items()}


def _atomic_log(root: Path, done: dict[datetime, str], as_of: datetime) -> Callable[[str], None]:
    """After a kill: earlier runs' rows are intact, and the run has none or all of its rows
    (its step appends them in one INSERT); visible files are whole."""

    def check(run_id: str) -> None:
        rows = _log_rows(root)
        assert {r: n for r, n in rows.items() if r != run_id} == {
            r: len(LOGGED[at]) * CUSTOMERS for at, r in done.items()
        }
        assert rows[run_id] in (0, len(LOGGED[as_of]) * CUSTOMERS)
        _visible_files_are_whole(root / "out")

    return check


# -- the cases -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [21, 22])
def test_a_journey_killed_at_random_moments_sends_and_logs_everything_once(
    tmp_path: Path, seed: int, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNEY_CRASH_SECRET", receiver.secret)
    root = make_workspace(tmp_path / "ws", {"drop": DROP, "hook": HOOK.format(url=receiver.url)})
    rng = random.Random(seed)
    units = {"drop": CUSTOMERS // PART_ROWS, "hook": CUSTOMERS // BATCH}

    # At T: killed during start-up, twice during the step, twice mid-delivery.
    first = Crashes(root, T, rng, _tasks("hello", units), _atomic_log(root, {}, T))
    run = first.run(["start-up", "step", "late step", "delivery", "delivery"])
    assert {"start-up", "step", "delivery"} <= set(first.landed), first.landed
    assert first.run_id is not None
    check_log(root, {T: first.run_id})
    check_files(root / "out", T)
    check_webhook(receiver, "hello")
    assert _sent(run) == {"drop:hello": CUSTOMERS, "hook:hello": CUSTOMERS, "drop:nudge": 0,
                          "hook:nudge": 0}  # fmt: skip
    assert run["counts"]["journey"] == STEPPED_AT_T
    assert _resumed_mid_delivery(root, first.run_id) >= 1

    # At T+1d the wait is over: killed during the step and a delivery again.
    second = Crashes(
        root,
        NEXT_DAY,
        rng,
        _tasks("nudge", units),
        _atomic_log(root, {T: first.run_id}, NEXT_DAY),
    )
    run = second.run(["step", "delivery"])
    assert {"step", "delivery"} <= set(second.landed), second.landed
    assert second.run_id is not None
    check_log(root, {T: first.run_id, NEXT_DAY: second.run_id})
    check_files(root / "out", NEXT_DAY)
    check_files(root / "out", T)  # untouched by the second run
    check_webhook(receiver, "nudge")
    check_webhook(receiver, "hello")
    assert len(receiver.records()) == 2 * CUSTOMERS
    assert _sent(run) == {"drop:hello": 0, "hook:hello": 0, "drop:nudge": CUSTOMERS,
                          "hook:nudge": CUSTOMERS}  # fmt: skip
    assert run["counts"]["journey"]["exited"] == CUSTOMERS
    assert _resumed_mid_delivery(root, second.run_id) >= 1
    check_nothing_left(root)


def test_a_step_killed_around_its_insert_writes_the_travel_log_once(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws", {"drop": DROP})
    out = root / "out"
    whole = len(LOGGED[T]) * CUSTOMERS
    process = _start(root, "run", JOURNEY, "--as-of", T.isoformat())

    def writing(attempt: int) -> Callable[[], bool]:
        def ready() -> bool:
            run_id = _run_at(root, T)
            return run_id is not None and _events(root, run_id, STEP_EVENTS[-1]) >= attempt

        return ready

    # Killed as soon as the step says it is writing the travel log: it first freezes the
    # run's ~600,000 rows in a staging table, so the INSERT has not happened yet.
    assert _kill_when(process, writing(1), 0.0)
    run_id = _run_at(root, T)
    assert run_id is not None
    assert _task(root, run_id, "step") == "running"
    assert _log_rows(root)[run_id] == 0

    # Resumed (the step starts again) and killed while it writes: none or all of the rows.
    process = _start(root, "runs", "resume", run_id)
    assert _kill_when(process, writing(2), 0.3)
    assert _task(root, run_id, "step") == "running"
    assert _log_rows(root)[run_id] in (0, whole)

    # Resumed, and killed as soon as the step is recorded: its rows are in the log once,
    # nothing was delivered yet.
    process = _start(root, "runs", "resume", run_id)
    assert _kill_when(process, lambda: _task(root, run_id, "step") == "succeeded", 0.0)
    check_log(root, {T: run_id})
    assert _delivered(root, run_id, "deliver:drop:hello") == 0
    writes = _events(root, run_id, STEP_EVENTS[-1])

    # What a kill between the step's INSERT and its record leaves: the rows are in the log,
    # the `step` task still says running. The resumed run recognises the rows by its run id.
    _query(
        root,
        "UPDATE run_tasks SET status = 'running', finished_at = NULL, counts = '{}' "
        "WHERE run_id = ? AND task = 'step'",
        run_id,
    )
    final = as_json(activator("-w", str(root), "runs", "resume", run_id, "--json"))
    assert final["status"] == "succeeded"
    assert _events(root, run_id, STEP_EVENTS[-1]) == writes  # not stepped again
    assert _events(root, run_id, STEP_EVENTS[0]) == writes
    check_log(root, {T: run_id})
    check_files(out, T)
    assert final["counts"]["journey"] == STEPPED_AT_T  # the recognised step's, from the log

    # The next day's run moves everyone on once, from the log as the crashes left it.
    after = as_json(
        activator("-w", str(root), "run", JOURNEY, "--as-of", NEXT_DAY.isoformat(), "--json")
    )
    assert after["status"] == "succeeded"
    check_log(root, {T: run_id, NEXT_DAY: str(after["run_id"])})
    check_files(out, NEXT_DAY)
    check_nothing_left(root)

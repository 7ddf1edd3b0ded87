"""``kill -9`` a delivering process at random moments, resume, and check exactly-once delivery.

Each case runs ``activator run`` as a real process, kills it with SIGKILL at a random moment
(seeded), then resumes the run with ``activator runs resume`` (killed again at random a few
times) until it finishes. Every destination must end with every record exactly once, and no
partial file may ever be visible.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from activator.store.store import MetadataStore
from tests.cli.runner import activator, as_json
from tests.fixtures.receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CUSTOMERS = 200_000

CONFIG = """\
engine: {type: duckdb, path: data/shop.duckdb}
data_model:
  customers: {table: customers, key: customer_id}
"""


def make_workspace(root: Path, destination: str, mapping: str = "") -> Path:
    """A workspace whose orchestration ``feed`` sends every customer to ``destination``."""
    (root / "data").mkdir(parents=True)
    con = duckdb.connect(str(root / "data" / "shop.duckdb"))
    con.execute(
        f"CREATE TABLE customers AS SELECT range AS customer_id, "
        f"'c' || range || '@example.com' AS email, 'name ' || range AS name, "
        f"CAST(range % 1000 AS DECIMAL(10, 2)) AS spend FROM range({CUSTOMERS})"
    )
    con.close()
    (root / "activator.yaml").write_text(CONFIG)
    (root / "destinations").mkdir()
    (root / "destinations" / "target.yml").write_text(destination)
    (root / "orchestrations").mkdir()
    (root / "orchestrations" / "feed.yml").write_text(
        "query: SELECT * FROM customers\ndestination: target\n" + mapping
    )
    applied = activator("-w", str(root), "apply", "--json")
    assert applied.returncode == 0, applied.stderr
    return root


def _start(root: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "ACTIVATOR_WORKSPACE"}
    return subprocess.Popen(
        [sys.executable, "-m", "activator", "-w", str(root), *args, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _kill_at(process: subprocess.Popen[str], delay: float) -> bool:
    """SIGKILL the process after ``delay`` seconds; False if it had already finished."""
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline:
        if process.poll() is not None:
            process.communicate()
            return False
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    return True


def _only_run(root: Path) -> str | None:
    with MetadataStore.open("sqlite:///.activator/metadata.db", workspace_root=root) as store:
        runs = store.list_runs("orchestration", "feed")
    assert len(runs) <= 1
    return runs[0].run_id if runs else None


def _delivered_units(root: Path, run_id: str) -> int:
    # A bare read of the ledger table: opening the store each time would be too slow to
    # catch a fast delivery in the act.
    with sqlite3.connect(root / ".activator" / "metadata.db", timeout=10) as con:
        (count,) = con.execute(
            "SELECT count(*) FROM ledger_units WHERE run_id = ? AND task = 'deliver:target' "
            "AND state = 'delivered' AND idx >= 0",
            (run_id,),
        ).fetchone()
    return int(count)


def _kill_when_delivered(
    process: subprocess.Popen[str], root: Path, run_id: str, units: int, extra: float
) -> bool:
    """SIGKILL the process ``extra`` seconds after the ledger holds ``units`` delivered units
    (so the kill lands mid-delivery); False if it finished first."""
    while _delivered_units(root, run_id) < units:
        if process.poll() is not None:
            process.communicate()
            return False
        time.sleep(0.01)
    return _kill_at(process, extra)


def _wait_for_run(process: subprocess.Popen[str], root: Path) -> None:
    while _only_run(root) is None and process.poll() is None:
        time.sleep(0.01)
    if process.poll() is None:
        _kill_at(process, 0.0)


def crash_and_resume(
    root: Path,
    seed: int,
    *,
    units: int,
    kills: int = 3,
    check_visible: Callable[[], None] | None = None,
) -> dict[str, object]:
    """Run ``feed``, kill it at random moments ``kills`` times, then let a resume finish.

    The first kill lands at a random time (often during start-up or evaluation); the next
    ones land mid-delivery, a random few milliseconds after a random number of the task's
    ``units`` were delivered. ``check_visible`` runs after every kill: what a reader can see
    must be consistent. Returns the finished run's JSON.
    """
    rng = random.Random(seed)
    # The first kill lands early (start-up, the run's creation, evaluation): the process takes
    # about a second to start, so it is still running then.
    process = _start(root, "run", "feed")
    killed = int(_kill_at(process, rng.uniform(0.2, 1.0)))
    run_id = _only_run(root)
    if run_id is None:  # killed before the run was recorded: nothing to resume, run again
        process = _start(root, "run", "feed")
        _wait_for_run(process, root)
        run_id = _only_run(root)
    assert run_id is not None
    if check_visible is not None:
        check_visible()
    # The next ones land mid-delivery, a random few milliseconds after a random number of
    # units (in the first half, so a fast delivery is not over before the kill).
    thresholds = sorted(rng.randint(1, max(1, units // 2)) for _ in range(kills - 1))
    for threshold in thresholds:
        process = _start(root, "runs", "resume", run_id)
        if not _kill_when_delivered(process, root, run_id, threshold, rng.uniform(0, 0.05)):
            break
        killed += 1
        if check_visible is not None:
            check_visible()
    final = activator("-w", str(root), "runs", "resume", run_id, "--json")
    if final.returncode != 0:
        # The last killed attempt may have finished just before its kill landed.
        shown = as_json(activator("-w", str(root), "runs", "show", run_id, "--json"))
        assert shown["status"] == "succeeded", final.stderr
        return dict(shown)
    document = as_json(final)
    assert document["status"] == "succeeded", document
    assert killed >= 1, "no kill landed"
    return dict(document)


def resumed_mid_delivery(root: Path, run_id: str) -> int:
    """How many attempts resumed a delivery after some units were already delivered."""
    with MetadataStore.open("sqlite:///.activator/metadata.db", workspace_root=root) as store:
        events = store.events(run_id)
    return sum(1 for e in events if e.message == "resuming" and e.fields.get("from_row", 0) > 0)


# -- files -----------------------------------------------------------------------------------

FILES = """\
type: local
path: out
filename: "feed_{part}"
format: {type: csv, compression: gzip}
split: {rows: 10000}
"""


def _visible_files_are_whole(out: Path) -> None:
    """Every visible part is a complete gzip file of whole CSV rows, listed nowhere twice."""
    if not out.exists():
        return
    for part in out.glob("feed_*.csv.gz"):
        with gzip.open(part, "rt", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert rows, part
        assert all(row["customer_id"] for row in rows)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_files_end_with_every_record_once_after_kills(tmp_path: Path, seed: int) -> None:
    root = make_workspace(tmp_path / "ws", FILES)
    out = root / "out"
    run = crash_and_resume(
        root, seed, units=CUSTOMERS // 10_000, check_visible=lambda: _visible_files_are_whole(out)
    )
    ids: list[int] = []
    for part in sorted(out.glob("feed_*.csv.gz")):
        with gzip.open(part, "rt", newline="") as handle:
            ids.extend(int(row["customer_id"]) for row in csv.DictReader(handle))
    assert len(ids) == CUSTOMERS
    assert set(ids) == set(range(CUSTOMERS))
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    manifest = json.loads((out / "feed.manifest.json").read_text())
    assert manifest["rows"] == CUSTOMERS
    assert len(manifest["files"]) == CUSTOMERS // 10_000
    assert (out / "feed.DONE").exists()
    assert run["counts"]["rows"] == CUSTOMERS  # type: ignore[index]
    # At least one kill landed mid-delivery (the window is wide enough for that).
    assert resumed_mid_delivery(root, str(run["run_id"])) >= 1


# -- webhooks --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [4, 5])
def test_a_webhook_receiver_gets_every_record_once_after_kills(
    tmp_path: Path, seed: int, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRASH_HOOK_SECRET", receiver.secret)
    destination = (
        f"type: webhook\nurl: {receiver.url}\nallow_private: true\nbatch_size: 1000\n"
        "credentials: {signing_secret: {env: CRASH_HOOK_SECRET}}\n"
    )
    root = make_workspace(tmp_path / "ws", destination)
    run = crash_and_resume(root, seed, units=CUSTOMERS // 1000)
    records = receiver.records()
    ids = [int(r["customer_id"]) for r in records]
    # The deduplicated view (by webhook-id, as the spec asks receivers to) holds every record
    # exactly once; resent batches were byte-identical under the same id.
    assert len(ids) == CUSTOMERS
    assert set(ids) == set(range(CUSTOMERS))
    assert receiver.bad_signatures == 0
    assert run["counts"]["rows"] == CUSTOMERS  # type: ignore[index]
    # At least one kill landed mid-delivery (the window is wide enough for that).
    assert resumed_mid_delivery(root, str(run["run_id"])) >= 1


# -- PostgreSQL tables -----------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize(("seed", "mode"), [(6, "append"), (7, "replace"), (8, "upsert")])
def test_a_postgres_table_holds_exactly_the_rows_after_kills(
    tmp_path: Path, seed: int, mode: str, postgres_url: str
) -> None:
    import psycopg

    keys = "keys: [customer_id]\n" if mode == "upsert" else ""
    destination = f"type: postgres\nurl: {postgres_url}\ntable: feed\nmode: {mode}\n{keys}"
    if mode != "append":
        # An existing table with other rows: replace swaps it out, upsert merges into it.
        with psycopg.connect(postgres_url, autocommit=True) as con:
            con.execute(
                "CREATE TABLE feed (customer_id bigint PRIMARY KEY, email text, name text, "
                "spend numeric(10, 2))"
            )
            con.execute("INSERT INTO feed VALUES (-1, 'old', 'old', 0), (5, 'old', 'old', 0)")
    root = make_workspace(tmp_path / "ws", destination)
    run = crash_and_resume(root, seed, units=4)
    with psycopg.connect(postgres_url) as con:
        rows = con.execute("SELECT customer_id, email FROM feed ORDER BY customer_id").fetchall()
        leftovers = con.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE '_activator_stage_%'"
        ).fetchone()
    expected = [(i, f"c{i}@example.com") for i in range(CUSTOMERS)]
    if mode == "upsert":
        expected = [(-1, "old"), *expected]
    assert rows == expected
    assert leftovers == (0,)
    assert run["counts"]["rows"] == CUSTOMERS  # type: ignore[index]
    assert resumed_mid_delivery(root, str(run["run_id"])) >= 1

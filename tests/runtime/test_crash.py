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
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from activator.store.store import MetadataStore
from tests.cli.runner import activator, as_json

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


def crash_and_resume(
    root: Path,
    seed: int,
    *,
    kills: int = 3,
    window: tuple[float, float] = (1.0, 6.0),
    check_visible: Callable[[], None] | None = None,
) -> dict[str, object]:
    """Run ``feed``, kill it at random moments ``kills`` times, then let a resume finish.

    ``check_visible`` runs after every kill: what a reader can see must be consistent.
    Returns the finished run's JSON.
    """
    rng = random.Random(seed)
    run_id = None
    killed = 0
    while run_id is None:
        process = _start(root, "run", "feed")
        killed += _kill_at(process, rng.uniform(*window))
        run_id = _only_run(root)
        if check_visible is not None:
            check_visible()
    for _ in range(kills - 1):
        process = _start(root, "runs", "resume", run_id)
        if not _kill_at(process, rng.uniform(*window)):
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
    assert killed >= 1, "no kill landed: widen the window"
    return dict(document)


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
    run = crash_and_resume(root, seed, check_visible=lambda: _visible_files_are_whole(out))
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

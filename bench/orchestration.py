"""Orchestration benchmark: a customer-360 feed to gzip CSV and Parquet parts, against DuckDB's
own COPY of the same query and drt-core's file sync of the same rows.

Usage:
    python bench/orchestration.py [--rows 1000000 10000000] [--part-rows 1000000]
        [--workdir DIR] [--skip-drt] [--memory-limit 1GB]

For each row count it builds a DuckDB file with a ``customer_360`` table of 10 mixed columns
(id, e-mail, first name, country, loyalty tier, opt-in boolean, order count, lifetime value
DECIMAL, churn score DOUBLE, last order TIMESTAMP), then, in the same run and each in its own
process (so peak memory is that process's own, from ``wait4``):

* **activator**: ``activator run`` of an orchestration whose query is a plain
  ``SELECT * FROM customer_360`` (no mapping: the customer-360 kind of feed), destination
  ``type: local`` with ``split: {rows: --part-rows}``, a manifest and ``.DONE``; as gzip CSV,
  then as Parquet. The whole path: the run recorded, the rows snapshotted in the engine with
  their sequence numbers, streamed in batches, encoded, written under temporary names,
  renamed, the ledger written, the manifest and ``.DONE`` published.
* **duckdb**: DuckDB's ``COPY (SELECT * FROM customer_360) TO <folder> (FORMAT ...,
  FILE_SIZE_BYTES <the average size of activator's parts>)``: parts of about the same size,
  in one statement, as DuckDB writes them (``FILE_SIZE_BYTES`` rolls over to a new file once
  a file passes the size). Also timed, for reference: ``PER_THREAD_OUTPUT`` (one file per
  thread, compressed in parallel: no control over the part size).
* **drt-core** (PyPI, in its own venv ``bench/.venv-drt``, created on first use as
  ``bench/webhooks.py`` does; never a dependency of Activator): ``drt run`` of a sync from the
  same table with its ``file`` destination, ``format: csv``: one uncompressed CSV file, which
  is all drt's local file destination writes (no compression, no parts). Its ratio is against
  a DuckDB ``COPY ... (FORMAT csv)`` of the same query to one plain file, timed in the same
  run. drt's ``parquet`` destination is not measured: it rewrites its file with each batch
  (``DataFrame.to_parquet`` per batch), so only a single batch of every row would be correct.

Every side's output is checked: the row count of the parts (read back with DuckDB) equals the
table's. Prints one JSON document: seconds, rows/s and peak RSS (MiB) per case, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

BENCH = Path(__file__).resolve().parent
DRT_VENV = BENCH / ".venv-drt"

QUERY = "SELECT * FROM customer_360"

CONFIG = """\
engine: {type: duckdb, path: data/c360.duckdb@LIMIT@}
timezone: UTC
data_model:
  customers: {table: customer_360, key: customer_id}
"""

FORMATS = {
    "csv_gzip": ("format: {type: csv, compression: gzip}\n", "FORMAT csv, COMPRESSION gzip"),
    "parquet": ("format: {type: parquet}\n", "FORMAT parquet"),
}
"""Name → (the destination's format, DuckDB's COPY options). Both sides at their defaults:
gzip level 6 (zlib's default; DuckDB's miniz ``MZ_DEFAULT_LEVEL``), Parquet with snappy."""


TABLE = """\
CREATE TABLE customer_360 AS
SELECT range AS customer_id,
       'customer' || range || '@example.com' AS email,
       ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Linus'][1 + range % 6]
           AS first_name,
       ['US', 'GB', 'FR', 'DE', 'CA', 'JP'][1 + (range // 7) % 6] AS country,
       CASE WHEN range % 11 = 0 THEN NULL
            ELSE ['bronze', 'silver', 'gold', 'platinum'][1 + range % 4] END
           AS loyalty_tier,
       range % 3 <> 0 AS email_opt_in,
       CAST(range * 7919 % 37 AS INTEGER) AS orders,
       CAST((range * 104729 % 500000) / 100.0 AS DECIMAL(12, 2)) AS lifetime_value,
       (range * 7907 % 10007) / 10007.0 AS churn_score,
       CASE WHEN range % 13 = 0 THEN NULL
            ELSE TIMESTAMP '2026-01-01' + to_seconds(range * 7919 % 31536000) END
           AS last_order_at
FROM range({rows})
"""
"""The customer_360 table: 10 columns of mixed types, a few nulls."""


def make_workspace(root: Path, data: Path, part_rows: int, memory_limit: str | None) -> None:
    (root / "data").mkdir(parents=True)
    os.link(data, root / "data" / "c360.duckdb")
    limit = f", memory_limit: {memory_limit}" if memory_limit else ""
    (root / "activator.yaml").write_text(CONFIG.replace("@LIMIT@", limit))
    (root / "destinations").mkdir()
    (root / "orchestrations").mkdir()
    for name, (fmt, _) in FORMATS.items():
        (root / "destinations" / f"{name}.yml").write_text(
            f"type: local\npath: out/{name}\nfilename: c360\n{fmt}"
            f"split: {{rows: {part_rows}}}\nmanifest: true\ndone_marker: true\n"
        )
        (root / "orchestrations" / f"{name}.yml").write_text(
            f"query: {QUERY}\ndestination: {name}\n"
        )


def timed(
    command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[float, float, float]:
    """Run a command; its wall seconds, CPU seconds (user + system) and peak RSS in MiB."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        out = process.stdout.read().decode() if process.stdout else ""
        err = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"{' '.join(command)} failed:\n{out[-2000:]}\n{err[-2000:]}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def copy(
    data: Path, target: Path, options: str, memory_limit: str | None
) -> tuple[float, float, float]:
    """DuckDB's COPY of the query, in its own process."""
    script = (
        "import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
        + (f"con.execute(\"SET memory_limit = '{memory_limit}'\"); " if memory_limit else "")
        + "con.execute(sys.argv[2])"
    )
    statement = f"COPY ({QUERY}) TO '{target}' ({options})"
    return timed([sys.executable, "-c", script, str(data), statement])


def in_child(code: str, *args: str) -> str:
    """Run Python code in a child process; its standard output.

    The benchmark's own process stays small: a child's peak RSS, as ``wait4`` reports it,
    starts from its parent's at the fork, so reading 10 million rows back here would raise
    the floor of every later measurement.
    """
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    return done.stdout


def make_data(path: Path, rows: int) -> None:
    """The customer_360 table (made in a child process)."""
    in_child(
        "import duckdb, sys; con = duckdb.connect(sys.argv[1]); con.execute(sys.argv[2])",
        str(path),
        TABLE.format(rows=rows),
    )


def count_rows(files: list[Path], parquet: bool) -> int:
    """Rows in the files, read back with DuckDB (CSV with a header), in a child process."""
    reader = "read_parquet(?)" if parquet else "read_csv(?, header = true, all_varchar = true)"
    code = (
        "import duckdb, sys; print(duckdb.connect().execute("
        f"'SELECT count(*) FROM {reader}', [sys.argv[1:]]).fetchone()[0])"
    )
    return int(in_child(code, *(str(f) for f in files)))


def ensure_drt() -> Path:
    """The drt executable in its own venv (created and installed on first use)."""
    drt = DRT_VENV / "bin" / "drt"
    if not drt.exists():
        subprocess.run([sys.executable, "-m", "venv", str(DRT_VENV)], check=True)
        subprocess.run(
            [str(DRT_VENV / "bin" / "pip"), "install", "-q", "drt-core[duckdb]"], check=True
        )
    return drt


def drt_version() -> str:
    done = subprocess.run(
        [
            str(DRT_VENV / "bin" / "python"),
            "-c",
            "import importlib.metadata as m; print(m.version('drt-core'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def run_drt(data: Path, rows: int, workdir: Path, batch: int) -> tuple[float, float, float, Path]:
    """drt's file sync of the query to one CSV file; wall and CPU seconds, peak RSS, the file."""
    drt = ensure_drt()
    project = workdir / "drt-project"
    home = workdir / "drt-home"
    shutil.rmtree(project, ignore_errors=True)
    (project / "syncs").mkdir(parents=True)
    (home / ".drt").mkdir(parents=True, exist_ok=True)
    # drt opens the database itself: a copy, so its DuckDB (another version) never
    # touches the benchmark's file.
    db = workdir / f"drt_{rows}.duckdb"
    shutil.copyfile(data, db)
    (home / ".drt" / "profiles.yml").write_text(f"bench:\n  type: duckdb\n  database: {db}\n")
    (project / "drt_project.yml").write_text('name: bench\nversion: "0.1"\nprofile: bench\n')
    target = workdir / "drt_out" / "c360.csv"
    shutil.rmtree(target.parent, ignore_errors=True)
    (project / "syncs" / "c360.yml").write_text(
        f"""\
name: c360
model: "{QUERY}"
destination:
  type: file
  path: {target}
  format: csv
sync:
  mode: full
  batch_size: {batch}
  on_error: fail
"""
    )
    env = {**os.environ, "HOME": str(home), "DO_NOT_TRACK": "1", "NO_COLOR": "1"}
    try:
        seconds, cpu, rss = timed([str(drt), "run", "--select", "c360"], cwd=project, env=env)
    finally:
        db.unlink(missing_ok=True)
    return seconds, cpu, rss, target


def bench(
    rows: int,
    workdir: Path,
    part_rows: int,
    memory_limit: str | None,
    skip_drt: bool,
    drt_batch: int,
) -> dict[str, Any]:
    data = workdir / f"c360_{rows}.duckdb"
    if not data.exists():
        make_data(data, rows)
    root = workdir / f"ws_{rows}"
    shutil.rmtree(root, ignore_errors=True)
    make_workspace(root, data, part_rows, memory_limit)
    activator = [sys.executable, "-m", "activator", "-w", str(root)]
    subprocess.run([*activator, "apply"], check=True, capture_output=True)
    result: dict[str, Any] = {"rows": rows, "part_rows": part_rows}
    for name, (_, options) in FORMATS.items():
        parquet = name == "parquet"
        ours, our_cpu, our_rss = timed([*activator, "run", name, "--json"])
        out = root / "out" / name
        manifest = json.loads((out / "c360.manifest.json").read_text())
        parts = [out / f["name"] for f in manifest["files"]]
        assert (out / "c360.DONE").exists()
        assert manifest["rows"] == rows
        assert count_rows(parts, parquet) == rows
        part_bytes = sum(f["bytes"] for f in manifest["files"]) // len(parts)
        target = workdir / f"duckdb_{name}"
        shutil.rmtree(target, ignore_errors=True)
        theirs, their_cpu, their_rss = copy(
            data, target, f"{options}, FILE_SIZE_BYTES {part_bytes}", memory_limit
        )
        copied = sorted(target.iterdir())
        assert count_rows(copied, parquet) == rows
        shutil.rmtree(target)
        per_thread, _, per_thread_rss = copy(
            data, target, f"{options}, PER_THREAD_OUTPUT true", memory_limit
        )
        shutil.rmtree(target)
        result[name] = {
            "activator_seconds": round(ours, 2),
            "activator_rows_per_second": round(rows / ours),
            "activator_cpu_seconds": round(our_cpu, 2),
            "activator_peak_rss_mib": round(our_rss),
            "activator_parts": len(parts),
            "activator_bytes": sum(f["bytes"] for f in manifest["files"]),
            "duckdb_seconds": round(theirs, 2),
            "duckdb_cpu_seconds": round(their_cpu, 2),
            "duckdb_peak_rss_mib": round(their_rss),
            "duckdb_parts": len(copied),
            "ratio": round(ours / theirs, 2),
            "duckdb_per_thread_seconds": round(per_thread, 2),
            "duckdb_per_thread_peak_rss_mib": round(per_thread_rss),
        }
        shutil.rmtree(out)
    if not skip_drt:
        target = workdir / "duckdb_plain.csv"
        plain, _, plain_rss = copy(data, target, "FORMAT csv", memory_limit)
        target.unlink()
        seconds, cpu, rss, written = run_drt(data, rows, workdir, drt_batch)
        assert count_rows([written], False) == rows
        shutil.rmtree(written.parent)
        result["drt_csv"] = {
            "drt_version": drt_version(),
            "batch_size": drt_batch,
            "drt_seconds": round(seconds, 2),
            "drt_rows_per_second": round(rows / seconds),
            "drt_cpu_seconds": round(cpu, 2),
            "drt_peak_rss_mib": round(rss),
            "duckdb_plain_csv_seconds": round(plain, 2),
            "duckdb_plain_csv_peak_rss_mib": round(plain_rss),
            "ratio_to_copy": round(seconds / plain, 1),
        }
    shutil.rmtree(root, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--part-rows", type=int, default=1_000_000, help="rows per part")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--skip-drt", action="store_true")
    parser.add_argument("--drt-batch", type=int, default=10_000, help="drt's sync.batch_size")
    parser.add_argument(
        "--memory-limit",
        default=None,
        help="DuckDB's memory_limit for activator and COPY (e.g. 1GB); default: DuckDB's",
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="activator-bench-orch-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = [
        bench(rows, workdir, args.part_rows, args.memory_limit, args.skip_drt, args.drt_batch)
        for rows in args.rows
    ]
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()}, {os.cpu_count()} cpus, "
                f"Python {platform.python_version()}, DuckDB {duckdb.__version__}",
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "memory_limit": args.memory_limit,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""End-to-end delivery benchmark: ``activator run`` against DuckDB's own COPY, same rows.

Usage:
    python bench/delivery.py [--rows 1000000 10000000] [--workdir DIR] [--phone]
        [--memory-limit 1GB]

For each row count it builds a DuckDB file with a ``customers`` table (id, e-mail with case and
spaces, first and last name, city, country, phone, spend DECIMAL, signup timestamp), then, in
the same run and each in its own process (so peak memory is that process's own):

* **activator**: ``activator run`` of an orchestration sending every customer through an
  attribute mapping (e-mail Meta-normalised + SHA-256, names trimmed and lower-cased, country
  upper-cased, signup formatted as a date in a time zone, spend and a run constant; with
  ``--phone`` also the phone in E.164) to a local folder, as gzip CSV, then as Parquet. This is
  the whole path: the run is recorded, the rows are snapshotted in the engine, streamed in
  batches, mapped, written under temporary names, renamed, the ledger written, the manifest and
  ``.DONE`` published.
* **duckdb**: DuckDB's ``COPY (SELECT <the same transforms in SQL>) TO ... (FORMAT csv,
  COMPRESSION gzip)`` and ``(FORMAT parquet)`` of the same rows.

Prints one JSON document: seconds, rows/s and peak RSS (MiB) per case, and the ratios
activator / duckdb. Peak RSS comes from ``wait4`` on each child process.
"""

from __future__ import annotations

import argparse
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

CONFIG = """\
engine: {type: duckdb, path: data/shop.duckdb@LIMIT@}
timezone: Europe/Paris
data_model:
  customers: {table: customers, key: customer_id}
"""

MAPPING = """\
mapping:
  id: customer_id
  email_sha256: {source: email, hash: meta.email, required: true}
  first_name: {source: first_name, transforms: [trim, lowercase]}
  last_name: {source: last_name, transforms: [trim, lowercase]}
  city: city
  country: {source: country, transforms: [uppercase]}
  signup: {source: signup_at, transforms: [{format: {pattern: "%Y-%m-%d", timezone: Europe/Paris}}]}
  spend: spend
  feed: run.orchestration
"""

PHONE = "  phone: {source: phone, transforms: [{e164: {region: US}}]}\n"

# The same transforms in DuckDB SQL, for the bare-engine baseline.
DUCKDB_SELECT = """
SELECT customer_id AS id,
       sha256(lower(trim(email))) AS email_sha256,
       lower(trim(first_name)) AS first_name,
       lower(trim(last_name)) AS last_name,
       city,
       upper(country) AS country,
       strftime(timezone('Europe/Paris', signup_at), '%Y-%m-%d') AS signup,
       spend,
       'feed' AS feed
       {phone}
FROM customers WHERE email IS NOT NULL
"""

DESTINATIONS = {
    "csv_gzip": "format: {type: csv, compression: gzip}\n",
    "parquet": "format: {type: parquet}\n",
}


def make_data(path: Path, rows: int) -> None:
    """The customers table: realistic strings, one customer in 50 without an e-mail."""
    con = duckdb.connect(str(path))
    con.execute(
        f"""
        CREATE TABLE customers AS
        SELECT range AS customer_id,
               CASE WHEN range % 50 = 0 THEN NULL
                    ELSE '  User.' || range || '@Example.COM ' END AS email,
               ' Ann' || (range % 997) || ' ' AS first_name,
               'Smith-' || (range % 4999) AS last_name,
               'city ' || (range % 311) AS city,
               ['us', 'fr', 'gb', 'de'][1 + range % 4] AS country,
               '(' || (200 + range % 700) || ') 555-'
                   || lpad(CAST(range % 10000 AS VARCHAR), 4, '0') AS phone,
               CAST((range % 100000) / 100.0 AS DECIMAL(12, 2)) AS spend,
               TIMESTAMPTZ '2024-01-01 00:00:00+00' + INTERVAL (range % 86400) SECOND
                   AS signup_at
        FROM range({rows})
        """
    )
    con.close()


def make_workspace(root: Path, data: Path, phone: bool, memory_limit: str | None) -> None:
    (root / "data").mkdir(parents=True)
    os.link(data, root / "data" / "shop.duckdb")
    limit = f", memory_limit: {memory_limit}" if memory_limit else ""
    (root / "activator.yaml").write_text(CONFIG.replace("@LIMIT@", limit))
    (root / "destinations").mkdir()
    (root / "orchestrations").mkdir()
    mapping = MAPPING + (PHONE if phone else "")
    for name, fmt in DESTINATIONS.items():
        (root / "destinations" / f"{name}.yml").write_text(
            f"type: local\npath: out/{name}\nfilename: feed\n{fmt}"
        )
        (root / "orchestrations" / f"{name}.yml").write_text(
            f"query: SELECT * FROM customers\ndestination: {name}\n{mapping}"
        )


def timed(command: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """Run a command; its wall seconds and peak RSS in MiB."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        err = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"{' '.join(command)} failed: {err[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def bench(rows: int, workdir: Path, phone: bool, memory_limit: str | None) -> dict[str, Any]:
    data = workdir / f"customers_{rows}.duckdb"
    if not data.exists():
        make_data(data, rows)
    root = workdir / f"ws_{rows}"
    shutil.rmtree(root, ignore_errors=True)
    make_workspace(root, data, phone, memory_limit)
    activator = [sys.executable, "-m", "activator", "-w", str(root)]
    subprocess.run([*activator, "apply"], check=True, capture_output=True)
    result: dict[str, Any] = {"rows": rows}
    phone_sql = ", '+1' || regexp_replace(phone, '[^0-9]', '', 'g') AS phone" if phone else ""
    select = DUCKDB_SELECT.format(phone=phone_sql)
    for name, options in (
        ("csv_gzip", "FORMAT csv, COMPRESSION gzip"),
        ("parquet", "FORMAT parquet"),
    ):
        ours, our_rss = timed([*activator, "run", name, "--json"])
        target = workdir / f"duckdb_{name}"
        script = (
            "import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
            + (f"con.execute(\"SET memory_limit = '{memory_limit}'\"); " if memory_limit else "")
            + "con.execute(sys.argv[2])"
        )
        copy = f"COPY ({select}) TO '{target}' ({options})"
        theirs, their_rss = timed([sys.executable, "-c", script, str(data), copy])
        result[name] = {
            "activator_seconds": round(ours, 2),
            "activator_rows_per_second": round(rows / ours),
            "activator_peak_rss_mib": round(our_rss),
            "duckdb_seconds": round(theirs, 2),
            "duckdb_peak_rss_mib": round(their_rss),
            "ratio": round(ours / theirs, 2),
        }
        target.unlink(missing_ok=True)
    shutil.rmtree(root, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--phone", action="store_true", help="map the phone to E.164 too")
    parser.add_argument(
        "--memory-limit",
        default=None,
        help="DuckDB's memory_limit for both sides (e.g. 1GB); default: DuckDB's (80%% of RAM)",
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="activator-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = [bench(rows, workdir, args.phone, args.memory_limit) for rows in args.rows]
    print(
        json.dumps(
            {"phone": args.phone, "memory_limit": args.memory_limit, "results": results},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

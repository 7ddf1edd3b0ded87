"""Benchmark of demo data generation, against DuckDB writing trivial rows.

Usage:
    python bench/generate_demo.py --customers 1000000 [--seed 42] [--as-of 2026-11-29]
        [--block-size 500000] [--memory-limit 1GB]

Generates the demo tables into a temporary DuckDB file and prints the time and rows of each
table (summed over the blocks of customers), the total time, the peak RSS of the process and the
size of the file. DuckDB keeps the blocks it has written in its buffer cache until it needs the
memory, so with the default memory limit the peak RSS grows with the file; with
``--memory-limit`` the cache is evicted and the peak RSS shows the memory generation works in.
As a baseline (the bare engine doing the same amount of writing) it then times DuckDB creating a
table of trivial rows of the same row count as orders, and of all tables together, in another file
of the same temporary folder, and prints the ratios. Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import duckdb

from activator.demo.data import DEFAULT_BLOCK_SIZE, generate


def _baseline(path: Path, rows: int) -> float:
    """Seconds for DuckDB to write ``rows`` trivial rows to a new file and close it."""
    con = duckdb.connect(str(path))
    start = time.perf_counter()
    con.execute(f"CREATE TABLE x AS SELECT range AS id, range % 97 AS v FROM range({rows})")
    con.close()
    return time.perf_counter() - start


def _file_size(path: Path) -> int:
    wal = path.with_name(path.name + ".wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--as-of", type=datetime.date.fromisoformat, default="2026-11-29")
    parser.add_argument("--block-size", type=int, default=DEFAULT_BLOCK_SIZE)
    parser.add_argument("--memory-limit", help="DuckDB memory_limit, e.g. 1GB (default: DuckDB's)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="activator-bench-") as folder:
        path = Path(folder) / "demo.duckdb"
        con = duckdb.connect(str(path))
        if args.memory_limit:
            con.execute(f"SET memory_limit = '{args.memory_limit}'")
        limit = con.execute("SELECT current_setting('memory_limit')").fetchone()
        threads = con.execute("SELECT current_setting('threads')").fetchone()
        marks: list[tuple[str, float]] = []

        def progress(message: str) -> None:
            # "Generating orders (block 3/10)" counts towards "orders".
            table = message.removeprefix("Generating ").split(" (block ")[0]
            marks.append((table, time.perf_counter()))

        start = time.perf_counter()
        counts = generate(
            con,
            customers=args.customers,
            seed=args.seed,
            as_of=args.as_of,
            progress=progress,
            block_size=args.block_size,
        )
        con.close()  # includes the final checkpoint, so the file is complete
        end = time.perf_counter()
        total = end - start
        size = _file_size(path)
        rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        rows = dataclasses.asdict(counts)
        print(
            f"DuckDB {duckdb.__version__}, Python {platform.python_version()}, "
            f"{os.cpu_count()} CPUs, DuckDB threads {threads[0] if threads else '?'}, "
            f"memory_limit {limit[0] if limit else '?'}"
        )
        blocks = -(-args.customers // args.block_size)
        print(
            f"customers={args.customers:,} seed={args.seed} as_of={args.as_of} "
            f"block_size={args.block_size:,} ({blocks} block{'s' if blocks > 1 else ''})"
        )
        print(f"{'table':<14}{'rows':>14}{'seconds':>10}")
        ends = [t for _, t in marks[1:]] + [end]
        seconds: dict[str, float] = {}
        for (table, began), finished in zip(marks, ends, strict=True):
            seconds[table] = seconds.get(table, 0.0) + finished - began
        for table, spent in seconds.items():
            label = table if table != "email_events" else "email_events*"
            print(f"{label:<14}{rows[table]:>14,}{spent:>10.1f}")
        print("* the last step also includes closing (checkpointing) the file")
        all_rows = sum(rows.values())
        print(f"{'total':<14}{all_rows:>14,}{total:>10.1f}")
        print(f"peak RSS {rss_mib:,.0f} MiB; DuckDB file {size / 2**20:,.0f} MiB")

        orders_step = seconds["orders"]
        base_orders = _baseline(Path(folder) / "baseline_orders.duckdb", counts.orders)
        base_all = _baseline(Path(folder) / "baseline_all.duckdb", all_rows)
        print(
            f"baseline: {counts.orders:,} trivial rows in {base_orders:.1f} s; "
            f"{all_rows:,} trivial rows in {base_all:.1f} s"
        )
        print(
            f"ratio: orders step / same rows trivial = {orders_step / base_orders:.1f}x; "
            f"whole generation / all rows trivial = {total / base_all:.1f}x"
        )


if __name__ == "__main__":
    main()

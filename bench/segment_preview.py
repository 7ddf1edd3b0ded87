"""Benchmark of a segment's preview count, against a hand-written DuckDB query.

Usage:
    python bench/segment_preview.py --customers 1000000 [--seed 42] [--as-of 2026-11-29]
        [--runs 5] [--workdir DIR]

Generates the demo data (``activator.demo.data.generate``, in a child process so its memory
does not count below) into a DuckDB file of a temporary workspace, with a segment of five
conditions, two of them purchase behaviours with windows. In one process it then times, on the
same DuckDB connection and alternating run by run:

- Activator: compiling the segment and counting its members in the engine
  (``segment_members(ctx, name).count()``: the count of ``activator segment preview``);
- the compiled SQL alone, run on the connection (the query's share, without Python);
- hand-written SQL: one scan of orders with filtered aggregates, joined to customers, as an
  engineer would write it for DuckDB (the reference of the ratio);
- plainer hand-written SQL: one aggregate per behaviour, joined.

It asserts the two counts are equal and prints the median and best times, their ratio, the
time of the whole preview (count, insights and a sample of 10) and the peak RSS of the process.
``--workdir`` keeps the generated workspace there and reuses it on the next run. Results are
recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import os
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import ibis

from activator.clock import parse_as_of
from activator.compiler.segment import segment_members
from activator.demo.data import generate
from activator.engines.registry import open_engine
from activator.services.segment import preview, segment_context
from activator.workspace.loader import load_workspace

SEGMENT = "bench-five-conditions"

SEGMENT_YAML = """\
description: Five conditions, two of them purchase behaviours with windows.
rules:
  all:
    - {attribute: customers.loyalty_tier, op: in, value: [silver, gold, platinum]}
    - {attribute: customers.email_opt_in, op: is_true}
    - {attribute: customers.country, op: in, value: [US, GB, CA]}
    - {behavior: has_purchased, table: orders, count: {op: ">=", value: 2}, window: {last: 365d}}
    - {behavior: total_value, table: orders, value: {op: ">=", value: 300}, window: {last: 180d}}
"""

CONFIG_YAML = """\
engine: {type: duckdb, path: data/demo.duckdb}
timezone: UTC
data_model:
  customers: {table: customers, key: customer_id, pii: [email, phone, first_name, last_name]}
  events:
    orders: {table: orders, customer_key: customer_id, timestamp: ordered_at, amount: total,
             returned: is_returned}
"""

# `last: Nd` is (as_of - N days, as_of]; returned orders never count. The timestamps of the
# demo data are naive UTC.
HAND_WRITTEN = """
WITH recent AS (
    SELECT customer_id,
           count(*) AS orders_365d,
           sum(total) FILTER (WHERE ordered_at > TIMESTAMP '{start_180}') AS spent_180d
    FROM orders
    WHERE NOT is_returned
      AND ordered_at > TIMESTAMP '{start_365}' AND ordered_at <= TIMESTAMP '{end}'
    GROUP BY customer_id
)
SELECT count(*)
FROM customers JOIN recent USING (customer_id)
WHERE loyalty_tier IN ('silver', 'gold', 'platinum')
  AND email_opt_in
  AND country IN ('US', 'GB', 'CA')
  AND orders_365d >= 2
  AND spent_180d >= 300
"""


# The same answer written more plainly: one aggregate per behaviour, joined.
HAND_WRITTEN_PLAIN = """
WITH often AS (
    SELECT customer_id FROM orders
    WHERE NOT is_returned
      AND ordered_at > TIMESTAMP '{start_365}' AND ordered_at <= TIMESTAMP '{end}'
    GROUP BY customer_id HAVING count(*) >= 2
), spent AS (
    SELECT customer_id FROM orders
    WHERE NOT is_returned
      AND ordered_at > TIMESTAMP '{start_180}' AND ordered_at <= TIMESTAMP '{end}'
    GROUP BY customer_id HAVING sum(total) >= 300
)
SELECT count(*)
FROM customers JOIN often USING (customer_id) JOIN spent USING (customer_id)
WHERE loyalty_tier IN ('silver', 'gold', 'platinum')
  AND email_opt_in
  AND country IN ('US', 'GB', 'CA')
"""


def _generate(path: str, customers: int, seed: int, as_of: datetime.date) -> None:
    con = duckdb.connect(path)
    con.execute("SET enable_progress_bar = false")
    counts = generate(con, customers=customers, seed=seed, as_of=as_of)
    con.close()
    print(f"generated {counts}", flush=True)


def _workspace(root: Path, customers: int, seed: int, as_of: datetime.date) -> None:
    database = root / "data" / "demo.duckdb"
    (root / "segments").mkdir(parents=True, exist_ok=True)
    (root / "activator.yaml").write_text(CONFIG_YAML)
    (root / "segments" / f"{SEGMENT}.yml").write_text(SEGMENT_YAML)
    marker = root / "data" / "generated.txt"
    wanted = f"{customers} {seed} {as_of}"
    if marker.exists() and marker.read_text() == wanted:
        print(f"reusing {database}")
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    database.unlink(missing_ok=True)
    start = time.perf_counter()
    # A child process: generation's memory must not count in this process's peak RSS.
    child = multiprocessing.get_context("spawn").Process(
        target=_generate, args=(str(database), customers, seed, as_of)
    )
    child.start()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"generation failed with exit code {child.exitcode}")
    marker.write_text(wanted)
    print(f"generation took {time.perf_counter() - start:.1f} s")


def _bench(root: Path, as_of_text: str, runs: int) -> None:
    as_of = parse_as_of(as_of_text)
    ws = load_workspace(root)
    naive = as_of.replace(tzinfo=None)
    bounds = {
        "start_365": naive - datetime.timedelta(days=365),
        "start_180": naive - datetime.timedelta(days=180),
        "end": naive,
    }
    hand = HAND_WRITTEN.format(**bounds)
    plain = HAND_WRITTEN_PLAIN.format(**bounds)

    with open_engine(ws.config.engine, workspace_root=root, read_only=True) as engine:
        con = engine.backend.con
        threads = con.execute("SELECT current_setting('threads')").fetchone()[0]

        def count_expr() -> Any:
            ctx = segment_context(ws, as_of=as_of, tables=engine.table, dialect=engine.DIALECT)
            return segment_members(ctx, SEGMENT).count()

        compiled = str(ibis.to_sql(count_expr(), dialect="duckdb"))

        def sql(query: str) -> Callable[[], int]:
            return lambda: int(con.execute(query).fetchone()[0])

        variants: dict[str, Callable[[], int]] = {
            # What `segment preview` does for the count: compile, then run through Ibis.
            "activator": lambda: int(engine.to_pyarrow(count_expr()).as_py()),
            # The compiled SQL alone: the query plan's share, without Python.
            "activator SQL": sql(compiled),
            "hand-written": sql(hand),
            "hand, plain": sql(plain),
        }
        # Warm-up: the first reads of the file fill DuckDB's buffer pool for every variant.
        expected = variants["hand-written"]()
        for label, run in variants.items():
            got = run()
            assert got == expected, f"{label} counted {got:,}, the hand-written SQL {expected:,}"
        times: dict[str, list[float]] = {label: [] for label in variants}
        for _ in range(runs):
            for label, run in variants.items():
                start = time.perf_counter()
                count = run()
                times[label].append(time.perf_counter() - start)
                assert count == expected
    start = time.perf_counter()
    shown = preview(root, SEGMENT, as_of=as_of, limit=10)
    whole = time.perf_counter() - start
    assert shown.count == expected
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(
        f"DuckDB {duckdb.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, DuckDB threads {threads}; as of {as_of.isoformat()}"
    )
    print(f"members: {expected:,} (every variant)")
    print(f"{'query':<14}{'median s':>10}{'best s':>10}  runs")
    for label, spent in times.items():
        print(
            f"{label:<14}{statistics.median(spent):>10.3f}{min(spent):>10.3f}  "
            + " ".join(f"{t:.3f}" for t in spent)
        )
    for label in ("activator", "activator SQL"):
        for base in ("hand-written", "hand, plain"):
            ratio = statistics.median(times[label]) / statistics.median(times[base])
            best = min(times[label]) / min(times[base])
            print(f"ratio {label} / {base}: median {ratio:.2f}x, best {best:.2f}x")
    insights = shown.insights
    print(
        f"whole preview (validate, open, count + insights, sample of 10): {whole:.2f} s; "
        f"active {insights.active_last_year:,}, revenue {insights.revenue_last_year}, "
        f"reachable {insights.reachable:,}"
    )
    print(f"peak RSS of this process (generation excluded): {rss_mib:,.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--as-of", default="2026-11-29", help="data day and as-of date")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", type=Path, help="keep (and reuse) the workspace here")
    args = parser.parse_args()
    day = datetime.date.fromisoformat(args.as_of)
    print(f"customers={args.customers:,} seed={args.seed} as_of={day}")
    if args.workdir is not None:
        _workspace(args.workdir, args.customers, args.seed, day)
        _bench(args.workdir.resolve(), args.as_of, args.runs)
        return
    with tempfile.TemporaryDirectory(prefix="activator-bench-") as folder:
        root = Path(folder) / "w"
        _workspace(root, args.customers, args.seed, day)
        _bench(root, args.as_of, args.runs)


if __name__ == "__main__":
    main()

"""Benchmark of webhook delivery, side by side with drt-core's REST destination.

Usage:
    python bench/webhooks.py [--records 1000000] [--batch 1000] [--concurrency 4]
        [--drt-rate 1000] [--skip-drt] [--workdir DIR]

Generates ``--records`` rows of 8 columns in a DuckDB file (in a child process, so its memory
does not count), starts a local receiver in a separate process (a small asyncio HTTP/1.1
server with keep-alive that checks the Standard Webhooks signature of every Activator request
with HMAC-SHA256, deduplicates on ``webhook-id`` and parses every body to count the records),
then:

- Activator: ``deliver_task`` with the :class:`WebhookConnector` (JSON envelope, signed,
  ``--batch`` records per request, ``--concurrency`` in flight) reading the rows from DuckDB
  as Arrow batches, with the production ledger (each unit recorded in a SQLite metadata store
  before and after it is sent);
- drt-core (PyPI, in its own venv ``bench/.venv-drt``, created on first use; never a
  dependency of Activator): ``drt run`` of a sync from the same DuckDB table to the same
  receiver with its ``rest_api`` destination in batch mode (``--batch`` records per request,
  body ``{{ rows | tojson_safe }}``). drt paces requests at 10/s unless told otherwise;
  ``--drt-rate`` raises that (default 1000/s) so that the comparison measures the senders,
  not a default. ``--drt-rate 10`` reproduces drt's out-of-the-box pace.

Both deliveries are checked complete at the receiver. Prints JSON: records/s of both, their
ratio, the peak RSS of this process (Activator's side) and the receiver's CPU seconds per
sender. Results are recorded in docs/destinations/webhooks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
DRT_VENV = BENCH / ".venv-drt"


# --- The receiver (separate process) ---------------------------------------------------------


def serve(secret: str) -> None:
    """Run the receiver; prints its port, then serves until killed."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    stats: dict[str, Any] = {
        "activator": {"requests": 0, "records": 0, "duplicates": 0, "bad_signatures": 0},
        "drt": {"requests": 0, "records": 0},
    }
    seen: set[str] = set()

    def handle(path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        if path == "/stats":
            times = os.times()
            return 200, json.dumps({**stats, "cpu_seconds": times.user + times.system}).encode()
        if path == "/activator":
            side = stats["activator"]
            side["requests"] += 1
            msg_id = headers.get("webhook-id", "")
            stamp = headers.get("webhook-timestamp", "")
            mac = hmac.new(key, f"{msg_id}.{stamp}.".encode(), hashlib.sha256)
            mac.update(body)
            expected = "v1," + base64.b64encode(mac.digest()).decode()
            if not any(
                hmac.compare_digest(expected, s)
                for s in headers.get("webhook-signature", "").split()
            ):
                side["bad_signatures"] += 1
                return 401, b"bad signature"
            if msg_id in seen:
                side["duplicates"] += 1
                return 200, b"ok"
            seen.add(msg_id)
            side["records"] += len(json.loads(body)["data"])
            return 200, b"ok"
        if path == "/drt":
            stats["drt"]["requests"] += 1
            stats["drt"]["records"] += len(json.loads(body))
            return 200, b"ok"
        return 404, b"not found"

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1].split("?")[0]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, answer = handle(path, headers, body)
                writer.write(
                    f"HTTP/1.1 {status} X\r\ncontent-length: {len(answer)}\r\n"
                    "content-type: text/plain\r\n\r\n".encode()
                    + answer
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(client, "127.0.0.1", 0, limit=1 << 24)
        print(server.sockets[0].getsockname()[1], flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def receiver_stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats") as answer:
        result: dict[str, Any] = json.loads(answer.read())
        return result


# --- Data ------------------------------------------------------------------------------------


def generate(path: str, records: int) -> None:
    """Eight columns of plausible customer data, made in DuckDB."""
    import duckdb

    con = duckdb.connect(path)
    con.execute(
        f"""
        CREATE OR REPLACE TABLE audience AS
        SELECT
            i::BIGINT AS customer_id,
            'customer' || i || '@example.com' AS email,
            ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara'][(i % 5) + 1] AS first_name,
            ['US', 'GB', 'FR', 'DE', 'CA', 'JP'][(i % 6) + 1] AS country,
            ['bronze', 'silver', 'gold', 'platinum'][(i % 4) + 1] AS loyalty_tier,
            round((i * 7919 % 10000) / 100.0, 2)::DOUBLE AS score,
            (i % 37)::INTEGER AS orders,
            TIMESTAMP '2026-01-01' + to_seconds(i % 86400) AS last_seen
        FROM range({records}) t(i)
        """
    )
    con.close()


# --- Activator -------------------------------------------------------------------------------


def run_activator(
    db: str, port: int, secret: str, batch: int, concurrency: int, records: int, workdir: Path
) -> float:
    import duckdb
    import numpy as np
    import pyarrow as pa

    from activator.definitions.webhook import WebhookDestination
    from activator.destinations.base import SEQ_COLUMN, DeliveryContext
    from activator.destinations.secrets import SecretResolver
    from activator.destinations.webhook import WebhookConnector
    from activator.runtime.delivery import deliver_task
    from activator.runtime.ledger import LEASE_TTL, StoreLedger
    from activator.runtime.runner import owner_id
    from activator.store import MetadataStore

    con = duckdb.connect(db, read_only=True)

    def source(start: int, batch_rows: int) -> Iterator[pa.RecordBatch]:
        reader = con.execute(
            "SELECT * FROM audience WHERE customer_id >= ? ORDER BY customer_id", [start]
        ).to_arrow_reader(batch_rows)
        seq = start
        for chunk in reader:
            yield chunk.append_column(
                SEQ_COLUMN, pa.array(np.arange(seq, seq + chunk.num_rows, dtype=np.int64))
            )
            seq += chunk.num_rows

    definition = WebhookDestination(
        name="bench",
        type="webhook",
        url=f"http://127.0.0.1:{port}/activator",
        allow_private=True,
        batch_size=batch,
        concurrency=concurrency,
        credentials={"signing_secret": {"env": "BENCH_SECRET"}},
    )
    connector = WebhookConnector(
        definition, SecretResolver(Path("."), environ={"BENCH_SECRET": secret})
    )
    # The production ledger: every unit recorded sending, then delivered, in the metadata
    # store (SQLite in the work folder), as `activator run` does.
    store = MetadataStore.open("sqlite:///meta.db", workspace_root=workdir)
    run = store.create_run(
        kind="orchestration",
        name="bench",
        definition_version=1,
        trigger="manual",
        as_of=datetime.now(UTC),
    )
    owner = owner_id()
    store.claim_run(run.run_id, owner, LEASE_TTL)
    ledger = StoreLedger(
        store,
        run.run_id,
        "deliver:bench",
        activation=("orchestration", "bench"),
        destination="bench",
        owner=owner,
    )
    context = DeliveryContext(
        run.run_id, "deliver:bench", run.as_of, "UTC", "orchestration", "bench"
    )
    started = time.perf_counter()
    result = deliver_task(connector, context, ledger, source)
    elapsed = time.perf_counter() - started
    con.close()
    store.close()
    if result.rows != records:
        raise SystemExit(f"Activator delivered {result.rows} rows, expected {records}")
    return elapsed


# --- drt-core --------------------------------------------------------------------------------


def ensure_drt() -> Path:
    """The drt executable in its own venv (created and installed on first use)."""
    drt = DRT_VENV / "bin" / "drt"
    if not drt.exists():
        subprocess.run([sys.executable, "-m", "venv", str(DRT_VENV)], check=True)
        subprocess.run(
            [str(DRT_VENV / "bin" / "pip"), "install", "-q", "drt-core[duckdb]"], check=True
        )
    return drt


def run_drt(db: str, port: int, batch: int, rate: float, workdir: Path) -> float:
    drt = ensure_drt()
    project = workdir / "drt-project"
    home = workdir / "drt-home"
    (project / "syncs").mkdir(parents=True, exist_ok=True)
    (home / ".drt").mkdir(parents=True, exist_ok=True)
    (home / ".drt" / "profiles.yml").write_text(f"bench:\n  type: duckdb\n  database: {db}\n")
    (project / "drt_project.yml").write_text('name: bench\nversion: "0.1"\nprofile: bench\n')
    (project / "syncs" / "bench.yml").write_text(
        f"""\
name: bench
model: "SELECT * FROM audience ORDER BY customer_id"
destination:
  type: rest_api
  url: "http://127.0.0.1:{port}/drt"
  method: POST
  headers:
    Content-Type: "application/json"
  body_mode: batch
  batch_template: "{{{{ rows | tojson_safe }}}}"
  max_records_per_request: {batch}
sync:
  mode: full
  batch_size: {batch}
  rate_limit:
    requests_per_second: {rate}
  on_error: fail
"""
    )
    env = {**os.environ, "HOME": str(home), "DO_NOT_TRACK": "1", "NO_COLOR": "1"}
    started = time.perf_counter()
    done = subprocess.run(
        [str(drt), "run", "--select", "bench"], cwd=project, env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"drt run failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


# --- Main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--drt-rate", type=float, default=1000.0)
    parser.add_argument("--skip-drt", action="store_true")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--serve", metavar="SECRET", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="activator-bench-webhooks-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db = str(workdir / "audience.duckdb")
    child = multiprocessing.get_context("spawn").Process(target=generate, args=(db, args.records))
    child.start()
    child.join()

    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", secret], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        before = receiver_stats(port)["cpu_seconds"]
        activator_s = run_activator(
            db, port, secret, args.batch, args.concurrency, args.records, workdir
        )
        after = receiver_stats(port)
        side = after["activator"]
        if side["records"] != args.records or side["bad_signatures"] or side["duplicates"]:
            raise SystemExit(f"receiver saw {side}")
        report: dict[str, Any] = {
            "records": args.records,
            "batch": args.batch,
            "machine": f"{platform.machine()}, {os.cpu_count()} cpus, "
            f"Python {platform.python_version()}",
            "activator": {
                "seconds": round(activator_s, 2),
                "records_per_s": round(args.records / activator_s),
                "requests": side["requests"],
                "concurrency": args.concurrency,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "receiver_cpu_s": round(after["cpu_seconds"] - before, 2),
            },
        }
        if not args.skip_drt:
            before = after["cpu_seconds"]
            drt_s = run_drt(db, port, args.batch, args.drt_rate, workdir)
            after = receiver_stats(port)
            if after["drt"]["records"] != args.records:
                raise SystemExit(f"receiver saw {after['drt']} from drt")
            report["drt"] = {
                "seconds": round(drt_s, 2),
                "records_per_s": round(args.records / drt_s),
                "requests": after["drt"]["requests"],
                "rate_limit_per_s": args.drt_rate,
                "receiver_cpu_s": round(after["cpu_seconds"] - before, 2),
            }
            report["ratio"] = round(drt_s / activator_s, 1)
        print(json.dumps(report, indent=2))
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()

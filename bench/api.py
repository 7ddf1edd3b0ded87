"""API benchmark: the Activations list under 50 concurrent clients, and a segment preview at
1 million customers, each against the bare work behind it, over real HTTP on 127.0.0.1.

Usage:
    python bench/api.py [--activations 1000] [--runs 100000] [--clients 50] [--requests 40]
        [--pace 0.5] [--customers 1000000] [--skip-list] [--skip-preview] [--store-url URL]
        [--previews 10] [--profile] [--work DIR]

**The Activations list.** A workspace (a DuckDB file of 200 customers, two segments, a local
CSV destination) whose metadata store (SQLite in the workspace, or ``--store-url``: an empty
PostgreSQL database) holds ``--activations`` activations, stored with ``MetadataStore.apply``
(each spec validated as a file would be): 70% orchestrations, 20% campaigns, 10% journeys, by
``i % 10``; labels from a fixed set of six, a description; cron or recurring schedules in six
time zones; statuses mostly active, some paused, draft or archived. ``--runs`` runs are
spread over them (the older activations have more) with one SQLAlchemy core bulk insert into
``runs``: 90 days before now, statuses 91% succeeded, 4% warning, 3% failed, 1% canceled, 1%
test runs; the latest run of every 50th activation still running; counts as the runners write
them (audience, sent, deliveries for campaigns and journeys; rows for orchestrations).

``activator -w WS serve --no-scheduler`` runs as a child process on a free port of 127.0.0.1
(the real command: uvicorn, access log on). ``--clients`` asyncio tasks, each with its own
keep-alive connection, each send ``--requests`` requests one after the other (no pause: a
closed loop, so the latency is about clients / throughput) with a viewer token, and the
latency of each is taken on the client. The client writes the HTTP/1.1 request bytes and
reads the answer by its Content-Length on asyncio streams: httpx's own parsing cost about
10 ms of the 2 shared cores per request here and was the bottleneck (78 requests a second
against the bare server, 2,000 with this client). Variants:

* **list**: ``GET /api/activations`` (the default page of 50);
* **filtered**: ``GET /api/activations?type=campaign&label=crm&q=spring`` (type, label and a
  search in names and descriptions);
* **paced**: as *list*, but each client sends one request every ``--pace`` seconds (0.5:
  100 requests a second in all, from random offsets), as 50 people with the page open
  refreshing it would: the latency without the queue a closed loop builds;
* **health**: ``GET /api/health`` of the same server (no token check, no store): FastAPI's
  floor;
* **bare**: the same number of requests, by the same client, to a bare Starlette endpoint on
  uvicorn (a child process, access log on as well) answering a pre-serialized copy of the
  list's JSON (same bytes): what uvicorn and the client cost; the ratio is the API's own cost.

Reported: p50/p95/p99/max latency, requests per second, the server's CPU time per request
(``/proc/PID/stat``) and its peak RSS (``VmHWM``). For reference, in this process: the bare
SQL behind the list (one SELECT of the current definitions, one of the latest run of each
activation, on a fresh connection), and ``activation_list`` itself (what the server computes
at most once a second).

**Segment preview.** The demo workspace (``activator init DIR --demo --customers N --seed 42
--as-of 2026-11-29``; reused from ``--work`` when it is there), applied, served as above; then
``--previews`` times, in turn: ``GET /api/segments/vip-customers/preview?limit=10`` (as of the
data's date); the same preview in this process
(``activator.services.segment.preview(root, name, as_of=..., limit=10)``); and the bare count
of the segment's compiled SQL (``GET /api/segments/vip-customers/sql``) with the duckdb
module, on a fresh read-only connection. Median and p95 of each and the ratios.

Prints one results table (and with ``--profile``, cProfile of ``activation_list`` on stderr).
Writes nothing outside ``--work`` (default: a temporary folder, removed at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import io
import json
import os
import platform
import pstats
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import duckdb
import httpx
import sqlalchemy
from sqlalchemy import create_engine, insert, text

from activator.services.workspace import activation_list
from activator.store import DefinitionInput, MetadataStore
from activator.store.models import RunRow
from activator.workspace.loader import definition_from_data

SEGMENT = "vip-customers"
DEMO_AS_OF = "2026-11-29"
PREVIEW_AS_OF = dt.datetime(2026, 11, 29, 23, 59, 59, tzinfo=dt.UTC)
"""The end of the demo data's day: the preview's as-of time."""

LABELS = ["nightly", "crm", "emea", "us", "retention", "q4"]
ZONES = [
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Asia/Kolkata",
]
WORDS = ["spring", "winback", "welcome", "loyalty", "feed", "export", "vip", "churn", "summer"]
FILTER = {"type": "campaign", "label": "crm", "q": "spring"}

CONFIG = """\
engine: {{type: duckdb, path: data/shop.duckdb}}
metadata: {{url: "{store}"}}
timezone: UTC
data_model:
  customers: {{table: customers, key: customer_id, pii: [email]}}
"""

SUPPORT: list[tuple[str, str, dict[str, Any]]] = [
    ("segment", "everyone", {"rules": {"attribute": "customers.joined_at", "op": "before",
                                       "value": "now"}}),
    ("segment", "even", {"description": "customers with an even id",
                         "rules": {"attribute": "customers.parity", "op": "=", "value": 0}}),
    ("destination", "drop", {"type": "local", "path": "out", "format": {"type": "csv"}}),
]  # fmt: skip


# -- the Activations list's workspace ------------------------------------------------------------


def _schedule(i: int) -> dict[str, Any]:
    zone = ZONES[i % len(ZONES)]
    match i // 10 % 4:
        case 0:
            return {"type": "cron", "cron": "0 2 * * *", "timezone": zone}
        case 1:
            return {"type": "cron", "cron": "*/15 * * * *", "timezone": zone}
        case 2:
            return {"type": "recurring", "every": "weekly", "at": "07:30", "timezone": zone}
        case _:
            return {"type": "recurring", "every": "daily", "at": "09:00", "timezone": zone}


def _status(i: int, kind: str) -> str:
    mod = i // 10 % 20
    if mod == 17:
        return "paused"
    if mod == 18:
        return "draft"
    if mod == 19:
        return "ended" if kind == "journey" else "archived"
    return "active"


def activation_spec(i: int) -> tuple[str, str, dict[str, Any]]:
    """(kind, name, data) of activation ``i``: 7 in 10 orchestrations, 2 campaigns, 1 journey."""
    mod = i % 10
    word = WORDS[i % len(WORDS)]
    common: dict[str, Any] = {
        "description": f"{word} activation number {i} for the {LABELS[i % 6]} team",
        "labels": [LABELS[i % 6], LABELS[(i // 6) % 6]],
        "schedule": _schedule(i),
    }
    data: dict[str, Any]
    if mod < 7:
        kind = "orchestration"
        data = {"query": "SELECT customer_id, email FROM customers", "destination": "drop"}
    elif mod < 9:
        kind = "campaign"
        data = {
            "audience": {"include": ["even"]},
            "destinations": [
                {"destination": "drop", "mapping": {"customer_id": "customer_id", "email": "email"}}
            ],
            "remaining": {
                "groups": [
                    {"name": "offer", "percent": 90},
                    {"name": "holdout", "percent": 10, "control": True},
                ]
            },
        }
    else:
        kind = "journey"
        data = {
            "start": {"entry": ["even"]},
            "nodes": [
                {
                    "id": "send",
                    "type": "activate",
                    "destinations": [
                        {"destination": "drop", "mapping": {"customer_id": "customer_id"}}
                    ],
                    "next": "done",
                },
                {"id": "done", "type": "exit"},
            ],
        }
    name = f"{word}-{kind[:5]}-{i:04d}"
    return kind, name, {**data, **common, "name": name, "status": _status(i, kind)}


def make_list_workspace(root: Path, store_url: str | None, count: int) -> str:
    """Write the workspace and store its definitions; the store's URL."""
    (root / "data").mkdir(parents=True)
    with duckdb.connect(str(root / "data" / "shop.duckdb")) as con:
        con.execute(
            "CREATE TABLE customers AS SELECT range AS customer_id, "
            "'c' || range || '@example.com' AS email, range % 2 AS parity, "
            "TIMESTAMP '2025-06-01' AS joined_at FROM range(200)"
        )
    url = store_url or "sqlite:///.activator/metadata.db"
    (root / "activator.yaml").write_text(CONFIG.format(store=url))
    items = []
    for kind, name, data in [*SUPPORT, *(activation_spec(i) for i in range(count))]:
        loaded = definition_from_data(kind, {**data, "name": name}, shown_as=f"{kind} {name}")
        items.append(
            DefinitionInput(
                kind=kind,
                name=name,
                spec=loaded.spec(),
                source=f"{kind}s/{name}.yml",
                status=str(getattr(loaded.model, "status", "active")),
                from_files=True,
            )
        )
    with MetadataStore.open(url, workspace_root=root) as store:
        store.apply(items)
    return url


def _counts(kind: str, rng: random.Random, status: str) -> dict[str, Any]:
    if status in ("queued", "running"):
        return {}
    if kind == "orchestration":
        rows = rng.randrange(1_000, 2_000_000)
        return {"rows": rows, "files": 1 + rows // 500_000, "bytes": rows * 61}
    audience = rng.randrange(500, 200_000)
    sent = audience * 9 // 10
    rejected = 0 if status == "succeeded" else rng.randrange(1, 50)
    return {
        "audience": audience,
        "sent": sent,
        "deliveries": {
            "drop:offer": {"destination": "drop", "group": "offer", "customers": sent,
                           "rows": sent, "shrink": 0, "expansion": 0, "rejected": rejected},
        },
    }  # fmt: skip


def insert_runs(store: MetadataStore, total: int, now: dt.datetime, seed: int = 7) -> int:
    """Insert ``total`` runs over the store's activations in one bulk insert; how many."""
    rng = random.Random(seed)
    acts = [d for d in store.current() if d.kind in ("campaign", "journey", "orchestration")]
    # Older activations have run more: weight 1 + (n - i) / n, so counts vary about 2:1.
    weights = [1 + (len(acts) - i) / len(acts) for i in range(len(acts))]
    picks = rng.choices(range(len(acts)), weights=weights, k=total)
    span = 90 * 86_400
    table = RunRow.metadata.tables["runs"]
    rows: list[dict[str, Any]] = []
    latest: dict[int, int] = {}
    for n, a in enumerate(picks):
        stored = acts[a]
        created = now - dt.timedelta(seconds=span * (1 - n / total) + rng.random())
        roll = rng.random()
        status = (
            "succeeded" if roll < 0.91 else "warning" if roll < 0.95
            else "failed" if roll < 0.98 else "canceled"
        )  # fmt: skip
        trigger = "schedule" if roll * 7 % 1 < 0.85 else rng.choice(["manual", "api", "after"])
        started = created + dt.timedelta(seconds=rng.uniform(0.1, 5))
        finished = started + dt.timedelta(seconds=rng.uniform(2, 900))
        rows.append(
            {
                "run_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "kind": stored.kind,
                "name": stored.name,
                "definition_version": stored.version,
                "status": status,
                "trigger": trigger,
                "as_of": created,
                "scheduled_for": created if trigger == "schedule" else None,
                "created_at": created,
                "started_at": started,
                "finished_at": finished,
                "counts": _counts(stored.kind, rng, status),
                "error": "destination drop: connection reset" if status == "failed" else None,
                "error_kind": "platform" if status == "failed" else None,
                "is_test": rng.random() < 0.01,
                "lease_owner": None,
                "lease_expires": None,
                "inputs": {},
                "parent_run_id": None,
                "cancel_requested_at": None,
            }
        )
        latest[a] = n
    for a, n in latest.items():
        if a % 50 == 0:
            lease = now + dt.timedelta(hours=1)
            rows[n].update(status="running", finished_at=None, counts={}, is_test=False,
                           lease_owner="bench:1", lease_expires=lease)  # fmt: skip
    with store.engine.begin() as connection:
        for start in range(0, len(rows), 20_000):
            connection.execute(insert(table), rows[start : start + 20_000])
    return len(rows)


# -- servers and clients -------------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A server in a child process."""

    process: subprocess.Popen[bytes]
    url: str

    def proc(self, field: str) -> int:
        """A ``/proc/PID/status`` figure in KiB (VmHWM, VmRSS)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the server so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def serving(argv: list[str], log: Path, url: str) -> Iterator[Server]:
    """Start ``argv`` (it listens at ``url``), wait until its ``/api/health`` answers, and
    stop it (SIGTERM) at the end."""
    health = f"{url}/api/health"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise SystemExit(f"{argv[:4]} exited: see {log}\n{log.read_text()[-2000:]}")
                try:
                    if httpx.get(health, timeout=2).status_code < 500:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"{argv[:4]} did not start in 60 s: see {log}")
                time.sleep(0.1)
            yield Server(process=process, url=url)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def activator_serve(root: Path, port: int, log: Path) -> Any:
    """``activator -w ROOT serve --no-scheduler`` on ``port``."""
    argv = [sys.executable, "-m", "activator", "-w", str(root), "serve", "--no-scheduler",
            "--port", str(port)]  # fmt: skip
    return serving(argv, log, f"http://127.0.0.1:{port}")


def bare_serve(body: Path, port: int, log: Path) -> Any:
    """This script's bare Starlette server answering ``body`` on ``port``."""
    argv = [sys.executable, __file__, "--bare-server", str(body), "--port", str(port)]
    return serving(argv, log, f"http://127.0.0.1:{port}")


def run_bare_server(body: Path, port: int) -> None:
    """A Starlette app answering ``body`` (pre-serialized JSON) at every ``/api/...`` path."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    payload = body.read_bytes()

    async def answer(_request: Request) -> Response:
        return Response(payload, media_type="application/json")

    app = Starlette(routes=[Route("/api/{path:path}", answer)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="info", server_header=False)


async def _client(
    port: int, request: bytes, count: int, latencies: list[float], pace: float
) -> tuple[int, int]:
    """One keep-alive connection sending ``request`` ``count`` times, each after the answer
    to the one before, and with ``pace`` one every ``pace`` seconds (from a random offset);
    (answers other than 200, bytes of the last body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    errors = size = 0
    first = time.perf_counter() + random.uniform(0, pace)
    try:
        for k in range(count):
            if pace:
                await asyncio.sleep(max(0.0, first + k * pace - time.perf_counter()))
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            errors += not head.startswith(b"HTTP/1.1 200 ")
            size = len(body)
    finally:
        writer.close()
        await writer.wait_closed()
    return errors, size


async def _load(
    port: int, target: str, token: str, clients: int, requests: int, pace: float
) -> tuple[list[float], float, int, int]:
    """``clients`` connections sending ``requests`` GETs each, one after the other;
    (latencies, wall seconds, errors, bytes of the last answer)."""
    request = (
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode()
    latencies: list[float] = []
    start = time.perf_counter()
    done = await asyncio.gather(
        *(_client(port, request, requests, latencies, pace) for _ in range(clients))
    )
    wall = time.perf_counter() - start
    return latencies, wall, sum(e for e, _ in done), done[-1][1]


def load(server: Server, path: str, params: dict[str, str], token: str, clients: int,
         requests: int, pace: float = 0.0) -> dict[str, Any]:  # fmt: skip
    """Run the load against ``server``; its latency percentiles, throughput and CPU."""
    target = path + (f"?{urlencode(params)}" if params else "")
    port = int(server.url.rsplit(":", 1)[1])
    cpu = server.cpu_seconds()
    latencies, wall, errors, size = asyncio.run(_load(port, target, token, clients, requests, pace))
    cpu = server.cpu_seconds() - cpu
    count = len(latencies)
    ordered = sorted(latencies)
    return {
        "requests": count,
        "errors": errors,
        "bytes": size,
        "p50_ms": _ms(_pct(ordered, 50)),
        "p95_ms": _ms(_pct(ordered, 95)),
        "p99_ms": _ms(_pct(ordered, 99)),
        "max_ms": _ms(ordered[-1]),
        "per_second": round(count / wall),
        "server_cpu_ms_per_request": round(cpu * 1000 / count, 2),
    }


def _pct(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def timed(call: Callable[[], object], repeat: int) -> dict[str, Any]:
    """Median and min of ``repeat`` calls, after one warm-up."""
    call()
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return {"median_ms": _ms(statistics.median(seconds)), "min_ms": _ms(min(seconds))}


BARE_DEFINITIONS = text(
    "SELECT d.kind, d.name, d.status, d.current_version, v.spec FROM definitions AS d"
    " JOIN definition_versions AS v"
    " ON v.definition_id = d.id AND v.version = d.current_version"
    " WHERE d.kind IN ('campaign', 'journey', 'orchestration', 'group')"
)
BARE_LATEST = text(
    "SELECT r.* FROM runs AS r WHERE r.run_id IN ("
    " SELECT (SELECT x.run_id FROM runs AS x WHERE x.kind = a.kind AND x.name = a.name"
    "  AND x.is_test = false ORDER BY x.created_at DESC, x.run_id DESC LIMIT 1)"
    " FROM (SELECT DISTINCT kind, name FROM runs"
    "  WHERE kind IN ('campaign', 'journey', 'orchestration', 'group')) AS a)"
)
"""Each activation's newest run: one backward step into ``ix_runs_latest`` per activation."""


def bare_sql(url: sqlalchemy.URL, repeat: int) -> dict[str, Any]:
    """The two SELECTs behind the list on a fresh connection: definitions, latest runs."""
    engine = create_engine(url)
    found: dict[str, int] = {}

    def both() -> None:
        with engine.connect() as connection:
            found["definitions"] = len(connection.execute(BARE_DEFINITIONS).all())
            found["latest_runs"] = len(connection.execute(BARE_LATEST).all())

    try:
        result = timed(both, repeat)
    finally:
        engine.dispose()
    return {**result, **found}


def profile(call: Callable[[], object], top: int = 30) -> str:
    """cProfile of one call: the ``top`` functions by cumulative time."""
    profiler = cProfile.Profile()
    profiler.runcall(call)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# -- the two measurements ------------------------------------------------------------------------


def list_benchmark(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The Activations list under load, the bare endpoint, the bare SQL."""
    root = work / "list_ws"
    shutil.rmtree(root, ignore_errors=True)
    start = time.perf_counter()
    url = make_list_workspace(root, args.store_url, args.activations)
    applied = time.perf_counter() - start
    now = dt.datetime.now(dt.UTC)
    with MetadataStore.open(url, workspace_root=root) as store:
        start = time.perf_counter()
        runs = insert_runs(store, args.runs, now)
        inserted = time.perf_counter() - start
        _, token = store.create_token(name="bench", role="viewer")
        engine_url = store.engine.url
        dialect = store.engine.dialect.name
        sql = bare_sql(engine_url, 10)
        cache: dict[Any, Any] = {}
        computed = timed(
            lambda: activation_list(store, timezone="UTC", as_of=dt.datetime.now(dt.UTC)), 5
        )
        cached = timed(
            lambda: activation_list(
                store, timezone="UTC", as_of=dt.datetime.now(dt.UTC), upcoming=cache
            ),
            5,
        )
        if args.profile:
            print(
                profile(lambda: activation_list(store, timezone="UTC", as_of=now, upcoming=cache)),
                file=sys.stderr,
            )
    result: dict[str, Any] = {
        "store": dialect,
        "activations": args.activations,
        "runs": runs,
        "apply_seconds": round(applied, 1),
        "insert_runs_seconds": round(inserted, 1),
        "bare_sql": sql,
        "activation_list_uncached": computed,
        "activation_list_next_runs_cached": cached,
    }
    port = free_port()
    with activator_serve(root, port, work / "serve-list.log") as server:
        headers = {"Authorization": f"Bearer {token}"}
        first = httpx.get(f"{server.url}/api/activations", headers=headers, timeout=60)
        first.raise_for_status()
        page = first.json()
        body = work / "activations.json"
        body.write_bytes(first.content)
        filtered = httpx.get(
            f"{server.url}/api/activations", params=FILTER, headers=headers, timeout=60
        ).json()
        result["list_total"] = page["total"]
        result["filtered_total"] = filtered["total"]
        # A warm-up round, then the measured ones.
        load(server, "/api/activations", {}, token, args.clients, 4)
        result["list"] = load(server, "/api/activations", {}, token, args.clients, args.requests)
        result["filtered"] = load(
            server, "/api/activations", FILTER, token, args.clients, args.requests
        )
        if args.pace:
            result["paced"] = load(
                server, "/api/activations", {}, token, args.clients, args.requests, args.pace
            )
        result["health"] = load(server, "/api/health", {}, token, args.clients, args.requests)
        result["server_peak_rss_mib"] = round(server.proc("VmHWM") / 1024)
    bare_port = free_port()
    with bare_serve(body, bare_port, work / "serve-bare.log") as bare:
        load(bare, "/api/activations", {}, token, args.clients, 4)
        result["bare"] = load(bare, "/api/activations", {}, token, args.clients, args.requests)
        result["bare_peak_rss_mib"] = round(bare.proc("VmHWM") / 1024)
    for key in ("p50_ms", "p99_ms"):
        result[f"ratio_list_to_bare_{key[:-3]}"] = round(
            result["list"][key] / result["bare"][key], 1
        )
    result["ratio_list_to_bare_cpu"] = round(
        result["list"]["server_cpu_ms_per_request"] / result["bare"]["server_cpu_ms_per_request"],
        1,
    )
    return result


def demo_workspace(work: Path, customers: int) -> Path:
    """The demo workspace of ``customers`` customers under ``work``, made once and applied."""
    root = work / f"demo_{customers}"
    ready = work / f"demo_{customers}.ready"
    if not ready.exists():
        shutil.rmtree(root, ignore_errors=True)
        print(f"generating {customers:,} demo customers in {root}", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "activator", "init", str(root), "--demo", "--customers",
             str(customers), "--seed", "42", "--as-of", DEMO_AS_OF],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        ready.touch()
    subprocess.run(
        [sys.executable, "-m", "activator", "-w", str(root), "apply"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return root


def preview_benchmark(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The segment preview over HTTP, in this process, and the bare DuckDB count."""
    from activator.services.segment import preview

    root = demo_workspace(work, args.customers)
    url = "sqlite:///.activator/metadata.db"
    with MetadataStore.open(url, workspace_root=root) as store:
        _, token = store.create_token(name="bench-preview", role="viewer")
    database = str(root / "data" / "retail.duckdb")
    headers = {"Authorization": f"Bearer {token}"}
    as_of = {"as_of": PREVIEW_AS_OF.isoformat()}
    port = free_port()
    with (
        activator_serve(root, port, work / "serve-preview.log") as server,
        httpx.Client(base_url=server.url, headers=headers, timeout=300) as client,
    ):
        sql = client.get(f"/api/segments/{SEGMENT}/sql", params=as_of)
        sql.raise_for_status()
        count_sql = f"SELECT count(*) FROM ({sql.json()['sql']}) AS members"

        def over_http() -> int:
            response = client.get(f"/api/segments/{SEGMENT}/preview", params={**as_of, "limit": 10})
            response.raise_for_status()
            count: int = response.json()["count"]
            return count

        def in_process() -> int:
            return preview(root, SEGMENT, as_of=PREVIEW_AS_OF, limit=10).count

        def bare() -> int:
            with duckdb.connect(database, read_only=True) as con:
                row = con.execute(count_sql).fetchone()
            assert row is not None
            return int(row[0])

        variants = {"http": over_http, "in_process": in_process, "bare_count": bare}
        counts = {name: fn() for name, fn in variants.items()}  # warm-up
        if len(set(counts.values())) != 1:
            raise SystemExit(f"the counts differ: {counts}")
        seconds: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.previews):
            for name, fn in variants.items():
                start = time.perf_counter()
                fn()
                seconds[name].append(time.perf_counter() - start)
        server_rss = round(server.proc("VmHWM") / 1024)
    result: dict[str, Any] = {"customers": args.customers, "members": counts["http"]}
    for name, values in seconds.items():
        ordered = sorted(values)
        result[name] = {
            "median_ms": _ms(statistics.median(ordered)),
            "p95_ms": _ms(_pct(ordered, 95)),
            "min_ms": _ms(ordered[0]),
        }
    median = {name: result[name]["median_ms"] for name in variants}
    result["ratio_http_to_in_process"] = round(median["http"] / median["in_process"], 2)
    result["ratio_http_to_bare_count"] = round(median["http"] / median["bare_count"], 1)
    result["ratio_in_process_to_bare_count"] = round(median["in_process"] / median["bare_count"], 1)
    result["server_peak_rss_mib"] = server_rss
    return result


def print_table(result: dict[str, Any]) -> None:
    """The results as a table (the JSON document follows it)."""
    lines = [f"machine: {result['cores']} cores, Python {result['python']}, load {result['load']}"]
    listing = result.get("list_bench")
    if listing:
        lines.append(
            f"\nActivations list: {listing['activations']:,} activations, {listing['runs']:,} "
            f"runs ({listing['store']}), {result['clients']} clients x {result['requests']}"
        )
        lines.append(f"{'variant':<10}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}{'req/s':>8}"
                     f"{'cpu/req':>9}{'bytes':>9}{'errors':>8}")  # fmt: skip
        for name in ("list", "filtered", "paced", "health", "bare"):
            if name not in listing:
                continue
            r = listing[name]
            lines.append(
                f"{name:<10}{r['p50_ms']:>8}{r['p95_ms']:>8}{r['p99_ms']:>8}{r['max_ms']:>8}"
                f"{r['per_second']:>8}{r['server_cpu_ms_per_request']:>9}{r['bytes']:>9}"
                f"{r['errors']:>8}"
            )
        lines.append(
            f"ratios list/bare: p50 {listing['ratio_list_to_bare_p50']}x, p99 "
            f"{listing['ratio_list_to_bare_p99']}x, server CPU per request "
            f"{listing['ratio_list_to_bare_cpu']}x; server peak RSS "
            f"{listing['server_peak_rss_mib']} MiB (bare {listing['bare_peak_rss_mib']} MiB)"
        )
        lines.append(
            f"bare SQL (definitions + latest runs): {listing['bare_sql']['median_ms']} ms; "
            f"activation_list: {listing['activation_list_uncached']['median_ms']} ms "
            f"({listing['activation_list_next_runs_cached']['median_ms']} ms with next runs "
            "cached)"
        )
    preview = result.get("preview_bench")
    if preview:
        lines.append(
            f"\nPreview of {SEGMENT} at {preview['customers']:,} customers "
            f"({preview['members']:,} members), {result['previews']} times"
        )
        lines.append(f"{'variant':<12}{'median':>9}{'p95':>9}{'min':>9}")
        for name in ("http", "in_process", "bare_count"):
            r = preview[name]
            lines.append(f"{name:<12}{r['median_ms']:>9}{r['p95_ms']:>9}{r['min_ms']:>9}")
        lines.append(
            f"ratios: http/in-process {preview['ratio_http_to_in_process']}x, http/bare count "
            f"{preview['ratio_http_to_bare_count']}x, in-process/bare count "
            f"{preview['ratio_in_process_to_bare_count']}x; server peak RSS "
            f"{preview['server_peak_rss_mib']} MiB"
        )
    print("\n".join(lines))


def main() -> None:
    """Run the measurements; print the table and the JSON document."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--activations", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=40, help="per client and variant")
    parser.add_argument(
        "--pace", type=float, default=0.5, help="seconds between a client's paced requests"
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--previews", type=int, default=10)
    parser.add_argument("--store-url", default=None, help="an empty metadata store (PostgreSQL)")
    parser.add_argument("--skip-list", action="store_true")
    parser.add_argument("--skip-preview", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile activation_list")
    parser.add_argument("--work", type=Path, default=None, help="kept; the demo is reused")
    parser.add_argument("--bare-server", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server is not None:
        run_bare_server(args.bare_server, args.port)
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="activator-bench-api-"))
    work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlalchemy": sqlalchemy.__version__,
        "duckdb": duckdb.__version__,
        "load": round(os.getloadavg()[0], 2),
        "clients": args.clients,
        "requests": args.requests,
        "previews": args.previews,
    }
    try:
        if not args.skip_list:
            result["list_bench"] = list_benchmark(args, work)
        if not args.skip_preview:
            result["preview_bench"] = preview_benchmark(args, work)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    result["load_after"] = round(os.getloadavg()[0], 2)
    print_table(result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

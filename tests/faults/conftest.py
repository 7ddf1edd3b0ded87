"""Fixtures of the fault suite: workspaces run by the real CLI, a receiver that fails on cue,
and a PostgreSQL server that checks passwords.

* :func:`make_workspace` writes a DuckDB workspace whose orchestration ``feed`` sends every
  customer to the destination ``target``, and applies it.
* :class:`FaultyReceiver` is a Standard Webhooks receiver on 127.0.0.1 whose port is reserved
  (bound) before it listens, so connections are refused until :meth:`FaultyReceiver.listen`;
  a ``rule`` answers each request by its number (500s, 429s with ``Retry-After``, 401s).
* ``password_postgres`` is a PostgreSQL cluster of its own whose TCP connections need a
  password (``scram-sha-256``): the shared ``postgres_server`` trusts everyone, so changed or
  expired passwords could not be refused there.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.fixtures.postgres import _as_server_user, _bindir, _free_port
from tests.fixtures.receiver import new_secret

CONFIG = """\
engine: {type: duckdb, path: data/shop.duckdb}
data_model:
  customers: {table: customers, key: customer_id}
"""


def add_customers(root: Path, first: int, end: int) -> None:
    """Add customers ``first`` to ``end - 1`` (e-mail ``c<id>@example.com``) to the workspace."""
    con = duckdb.connect(str(root / "data" / "shop.duckdb"))
    try:
        con.execute(
            "CREATE TABLE IF NOT EXISTS customers "
            "(customer_id BIGINT, email VARCHAR, name VARCHAR, spend DECIMAL(10, 2))"
        )
        con.execute(
            "INSERT INTO customers SELECT range, 'c' || range || '@example.com', "
            "'name ' || range, CAST(range % 1000 AS DECIMAL(10, 2)) "
            f"FROM range({first}, {end})"
        )
    finally:
        con.close()


def make_workspace(root: Path, destination: str, customers: int) -> Path:
    """A workspace whose orchestration ``feed`` sends every customer to ``target``; applied."""
    (root / "data").mkdir(parents=True)
    add_customers(root, 0, customers)
    (root / "activator.yaml").write_text(CONFIG)
    (root / "destinations").mkdir()
    (root / "destinations" / "target.yml").write_text(destination)
    (root / "orchestrations").mkdir()
    (root / "orchestrations" / "feed.yml").write_text(
        "query: SELECT * FROM customers ORDER BY customer_id\ndestination: target\n"
    )
    applied = cli(root, "apply")
    assert applied.returncode == 0, applied.stderr
    return root


def command(root: Path, *args: str) -> list[str]:
    """The command line of ``activator -w ROOT ARGS --json`` (this venv's interpreter)."""
    return [sys.executable, "-m", "activator", "-w", str(root), *args, "--json"]


def environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without ACTIVATOR_WORKSPACE, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "ACTIVATOR_WORKSPACE"}
    env.update(extra or {})
    return env


def cli(
    root: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``activator -w ROOT ARGS --json`` to the end."""
    return subprocess.run(
        command(root, *args),
        capture_output=True,
        text=True,
        env=environment(env),
        timeout=300,
        check=False,
    )


def document(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The one JSON document a ``--json`` command printed."""
    assert result.stdout.strip(), result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def ledger_states(root: Path, task: str = "deliver:target") -> list[str]:
    """States of the task's units (publish excluded), read straight from the metadata store."""
    path = root / ".activator" / "metadata.db"
    if not path.exists():
        return []
    try:
        with sqlite3.connect(path, timeout=10) as con:
            rows = con.execute(
                "SELECT state FROM ledger_units WHERE task = ? AND idx >= 0 ORDER BY idx", (task,)
            ).fetchall()
    except sqlite3.OperationalError:  # the store's tables are not created yet
        return []
    return [str(state) for (state,) in rows]


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll ``condition`` every 10 ms until it holds; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


# -- a receiver that fails on cue --------------------------------------------------------------

Answer = tuple[int, dict[str, str]]
Rule = Callable[[int], Answer | None]
"""``rule(n)``: the answer to the ``n``-th signed request (0-based), or None to accept it."""


@dataclass
class Seen:
    """One request as the receiver saw it."""

    webhook_id: str
    status: int
    at: float


@dataclass
class FaultyReceiver:
    """A Standard Webhooks receiver whose answers follow ``rule``; fields guarded by ``lock``.

    Accepted batches are kept by ``webhook-id`` (the deduplicated view the spec asks
    receivers to keep); an id accepted again is counted in ``duplicates``, not stored twice.
    """

    secret: str
    server: ThreadingHTTPServer | None = None
    url: str = ""
    rule: Rule = lambda n: None
    bearer: str | None = None
    """When set, a request without ``Authorization: Bearer <bearer>`` gets a 401."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    seen: list[Seen] = field(default_factory=list)
    accepted: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)
    bad_signatures: int = 0
    listening_since: float | None = None
    _thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The reserved port."""
        assert self.server is not None
        return int(self.server.server_address[1])

    def listen(self) -> None:
        """Start accepting connections (until now they were refused)."""
        assert self.server is not None
        self.server.server_activate()
        self.listening_since = time.monotonic()
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def records(self) -> list[dict[str, Any]]:
        """Every accepted record, once per ``webhook-id``."""
        with self.lock:
            return [r for records in self.accepted.values() for r in records]

    def statuses(self) -> list[int]:
        """The status of every request, in order of arrival."""
        with self.lock:
            return [s.status for s in self.seen]

    def requests_of(self, webhook_id: str) -> list[Seen]:
        """The requests carrying ``webhook_id``, in order of arrival."""
        with self.lock:
            return [s for s in self.seen if s.webhook_id == webhook_id]

    def answer(self, headers: dict[str, str], body: bytes) -> Answer:
        """Verify, apply the rule, keep what is accepted; the status and headers to send."""
        msg_id = headers.get("webhook-id", "")
        try:
            Webhook(self.secret).verify(body, headers, json_parse=False)
        except WebhookVerificationError:
            with self.lock:
                self.bad_signatures += 1
                self.seen.append(Seen(msg_id, 400, time.monotonic()))
            return 400, {}
        with self.lock:
            answer = self.rule(len(self.seen))
            token = headers.get("authorization")
            if answer is None and self.bearer is not None and token != f"Bearer {self.bearer}":
                answer = (401, {})
            if answer is None:
                if msg_id in self.accepted:
                    self.duplicates.append(msg_id)
                else:
                    self.accepted[msg_id] = json.loads(body)["data"]
                answer = (200, {})
            self.seen.append(Seen(msg_id, answer[0], time.monotonic()))
        return answer


def _handler(state: FaultyReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: pytest shows failures, not traffic."""

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra = state.answer(headers, body)
            text = b"ok" if status == 200 else f"scripted {status}".encode()
            self.send_response(status)
            for key, value in extra.items():
                self.send_header(key, value)
            self.send_header("content-length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

    return Handler


@pytest.fixture
def faulty_receiver() -> Iterator[FaultyReceiver]:
    """A receiver on 127.0.0.1 with a fresh secret, its port bound but not listening yet:
    connections are refused until ``listen()``."""
    state = FaultyReceiver(secret=new_secret())
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state), bind_and_activate=False)
    server.daemon_threads = True
    server.server_bind()
    state.server = server
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    try:
        yield state
    finally:
        if state._thread is not None:
            server.shutdown()
        server.server_close()


# -- PostgreSQL with passwords -----------------------------------------------------------------


@dataclass(frozen=True)
class PasswordServer:
    """A PostgreSQL cluster: TCP needs a password, the superuser uses the Unix socket.

    Attributes:
        host: 127.0.0.1.
        port: Its port.
        admin: A superuser URL through the socket (no password needed).
    """

    host: str
    port: int
    admin: str


@pytest.fixture(scope="session")
def password_postgres() -> Iterator[PasswordServer]:
    """A throw-away cluster whose TCP connections are checked with ``scram-sha-256``."""
    bindir = _bindir()
    root = Path(tempfile.mkdtemp(prefix="activator-pgpw-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, user="postgres")
    port = _free_port()
    user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", user, "-E", "UTF8"]
    subprocess.run(
        _as_server_user([*initdb, "--auth-local=trust", "--auth-host=scram-sha-256"]),
        check=True,
        capture_output=True,
    )
    ctl = [str(bindir / "pg_ctl"), "-D", str(data)]
    options = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off"
    subprocess.run(
        _as_server_user([*ctl, "-l", str(root / "server.log"), "-w", "-o", options, "start"]),
        check=True,
        capture_output=True,
    )
    try:
        yield PasswordServer(
            "127.0.0.1", port, f"postgresql://{user}@/postgres?host={root}&port={port}"
        )
    finally:
        subprocess.run(
            _as_server_user([*ctl, "-m", "immediate", "stop"]), check=False, capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


def free_port_is_refused(port: int) -> bool:
    """Whether a connection to 127.0.0.1:``port`` is refused (nothing listens there)."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0

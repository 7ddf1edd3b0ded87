"""Destinations that fail, then recover; destinations that are set up wrong.

Each test builds a small workspace, applies it and runs the real CLI in a subprocess
(``activator -w WS run feed --json``), then checks the run's JSON (status, error, attribution)
and the destination's final content exactly. Everything is on loopback: a scripted webhook
receiver, a folder on a tiny tmpfs or a read-only bind mount (in a mount namespace of their
own), and PostgreSQL servers started by the tests.
"""

from __future__ import annotations

import csv
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import (
    FaultyReceiver,
    PasswordServer,
    add_customers,
    cli,
    command,
    document,
    environment,
    free_port_is_refused,
    ledger_states,
    make_workspace,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SECRET_ENV = "FAULT_HOOK_SECRET"


def webhook(url: str, *, attempts: int, initial: float, longest: float, extra: str = "") -> str:
    """A webhook destination definition: batches of 100, two requests in flight."""
    return (
        f"type: webhook\nurl: {url}\nallow_private: true\nbatch_size: 100\nconcurrency: 2\n"
        f"retries: {{max_attempts: {attempts}, initial_backoff: {initial}, "
        f"max_backoff: {longest}}}\n"
        f"credentials: {{signing_secret: {{env: {SECRET_ENV}}}{extra}}}\n"
    )


def unit_ids(run_id: str, units: int) -> set[str]:
    """The ``webhook-id`` of every unit of the run's delivery to ``target``."""
    return {f"{run_id}:deliver:target:{i}" for i in range(units)}


def assert_every_record_once(receiver: FaultyReceiver, run_id: str, customers: int) -> None:
    """Deduplicated on ``webhook-id``, the receiver holds every record exactly once, and
    every accepted id is one of the run's units (resends reused their ids)."""
    assert set(receiver.accepted) == unit_ids(run_id, customers // 100)
    ids = sorted(int(r["customer_id"]) for r in receiver.records())
    assert ids == list(range(customers))
    assert set(receiver.duplicates) <= set(receiver.accepted)
    assert receiver.bad_signatures == 0


# -- 1. down for a while, then back: the run retries and completes ------------------------------


def test_a_receiver_down_then_failing_then_throttling_gets_every_record_once(
    tmp_path: Path, faulty_receiver: FaultyReceiver
) -> None:
    customers = 2000
    receiver = faulty_receiver
    # Once it listens: three 500s, then two 429s asking for one second, then success.
    script = {0: 500, 1: 500, 2: 500, 3: 429, 4: 429}

    def rule(n: int) -> tuple[int, dict[str, str]] | None:
        status = script.get(n)
        if status is None:
            return None
        return status, ({"Retry-After": "1"} if status == 429 else {})

    receiver.rule = rule
    root = make_workspace(
        tmp_path / "ws",
        webhook(receiver.url, attempts=20, initial=0.05, longest=1),
        customers,
    )
    env = environment({SECRET_ENV: receiver.secret})
    run = subprocess.Popen(
        command(root, "run", "feed"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        # The first POST is under way (the unit is recorded sending just before it) and
        # nothing listens: its connections are refused for a second, then the server starts.
        wait_for(lambda: "sending" in ledger_states(root), timeout=60, what="the first POST")
        assert free_port_is_refused(receiver.port)
        time.sleep(1.0)
        assert run.poll() is None, "the run ended while the receiver was down"
        assert receiver.seen == []
        receiver.listen()
        stdout, stderr = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 0, stderr
    result = document(subprocess.CompletedProcess(run.args, run.returncode, stdout, stderr))
    assert result["status"] == "succeeded", result
    assert result["counts"]["rows"] == customers
    assert result["error"] is None

    statuses = receiver.statuses()
    assert statuses[:5] == [500, 500, 500, 429, 429]
    assert statuses[5:] == [200] * (len(statuses) - 5)
    assert_every_record_once(receiver, result["run_id"], customers)
    assert receiver.duplicates == []  # nothing was accepted and then sent again
    # Every unit was accepted once: 20 accepted requests, the 5 refused ones retried.
    assert len(statuses) == 20 + 5
    # A 429's Retry-After (1 s) was honoured: its batch came back no sooner.
    throttled = [s for s in receiver.seen if s.status == 429]
    for refused in throttled:
        later = [s for s in receiver.requests_of(refused.webhook_id) if s.at > refused.at]
        assert later, refused
        assert later[0].at - refused.at >= 0.95, (refused, later[0])


# -- 2. down past the retry budget: the run fails, a resume completes it ------------------------


@pytest.mark.parametrize("cause", ["status", "refused"])
def test_past_the_retry_budget_the_run_fails_and_a_resume_completes_it_once(
    tmp_path: Path, faulty_receiver: FaultyReceiver, cause: str
) -> None:
    customers = 2000
    receiver = faulty_receiver
    down = True
    if cause == "status":
        # Up, takes four batches, then answers 503 until it is fixed.
        receiver.rule = lambda n: (503, {}) if down and n >= 4 else None
        receiver.listen()
    root = make_workspace(
        tmp_path / "ws", webhook(receiver.url, attempts=3, initial=0.05, longest=0.2), customers
    )
    env = {SECRET_ENV: receiver.secret}
    failed = cli(root, "run", "feed", env=env)
    assert failed.returncode == 1, failed.stderr
    run = document(failed)
    assert run["status"] == "failed"
    assert run["error_kind"] == "platform"
    origin = receiver.url.removesuffix("/hooks")
    if cause == "status":
        assert f"POST {origin}/hooks failed after 3 attempts: HTTP 503" in run["error"]
        assert 4 <= len(receiver.accepted) < customers // 100
        assert receiver.statuses().count(503) >= 3
    else:
        assert f"POST {origin}/hooks failed after 3 attempts: ConnectError" in run["error"]
        assert "Connection refused" in run["error"]
        assert receiver.seen == []
    assert run["error"].startswith("target: ")
    states = ledger_states(root)
    delivered_before = {
        f"{run['run_id']}:deliver:target:{i}" for i, s in enumerate(states) if s == "delivered"
    }

    # The receiver is back; the retry command finishes the same run.
    if cause == "status":
        down = False
    else:
        receiver.listen()
    resumed = cli(root, "runs", "retry", run["run_id"], env=env)
    assert resumed.returncode == 0, resumed.stderr
    done = document(resumed)
    assert done["run_id"] == run["run_id"]
    assert done["status"] == "succeeded", done
    assert done["error"] is None
    assert done["counts"]["rows"] == customers
    assert_every_record_once(receiver, run["run_id"], customers)
    # Batches the ledger had marked delivered were not sent again (only those left sending,
    # which the receiver may have taken, come back under their own ids).
    assert not set(receiver.duplicates) & delivered_before
    assert ledger_states(root) == ["delivered"] * (customers // 100)


# -- 3. a full or read-only folder: configuration, nothing half-published -----------------------

FILES = """\
type: local
path: out
filename: feed_{part}
format: {type: csv}
split: {rows: 1000}
"""


def _unshare_works() -> str | None:
    """None when this kernel lets us mount a tmpfs in a new namespace; else the reason."""
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode == 0:
        return None
    return f"unshare -rm cannot mount here: {probe.stderr.strip() or probe.returncode}"


def _run_in_namespace(root: Path, mount: str, saved: Path) -> subprocess.CompletedProcess[str]:
    """``activator run feed`` in a mount namespace prepared by ``mount``; what the process left
    in ``out`` (dot-files included) is copied to ``saved`` before the namespace goes."""
    out = root / "out"
    saved.mkdir()
    line = " ".join(f"'{part}'" for part in command(root, "run", "feed"))
    script = f"{mount} && {{ {line}; rc=$?; cp -a '{out}/.' '{saved}/'; exit $rc; }}"
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", script],
        capture_output=True,
        text=True,
        env=environment(),
        timeout=300,
        check=False,
    )


def _csv_ids(path: Path) -> list[int]:
    with path.open(newline="") as handle:
        return [int(row["customer_id"]) for row in csv.DictReader(handle)]


def test_a_full_folder_fails_as_configuration_and_publishes_nothing_partial(
    tmp_path: Path,
) -> None:
    reason = _unshare_works()
    if reason is not None:
        pytest.skip(reason)
    customers = 5000  # about 190 kB of CSV into 64 kB
    root = make_workspace(tmp_path / "ws", FILES, customers)
    out = root / "out"
    out.mkdir()
    saved = tmp_path / "seen"
    result = _run_in_namespace(root, f"mount -t tmpfs -o size=64k tmpfs '{out}'", saved)
    assert result.returncode == 1, result.stderr
    run = document(result)
    assert run["status"] == "failed"
    assert run["error_kind"] == "configuration"
    assert str(out) in run["error"]
    assert "No space left on device" in run["error"]

    # What a reader of the folder saw: complete parts only (each of 1,000 rows, in order),
    # no manifest, no .DONE, and no temporary file (abort removes the part being written).
    names = sorted(p.name for p in saved.iterdir())
    parts = [n for n in names if n.startswith("feed_")]
    assert names == parts
    assert parts  # the first part fitted
    assert len(parts) < customers // 1000
    for number, name in enumerate(parts, start=1):
        assert name == f"feed_{number:05d}.csv"
        first = (number - 1) * 1000
        assert _csv_ids(saved / name) == list(range(first, first + 1000))
    assert ledger_states(root) == ["delivered"] * len(parts)


def test_a_read_only_folder_fails_as_configuration_and_a_resume_completes_it(
    tmp_path: Path,
) -> None:
    reason = _unshare_works()
    if reason is not None:
        pytest.skip(reason)
    customers = 2500
    root = make_workspace(tmp_path / "ws", FILES, customers)
    out = root / "out"
    out.mkdir()
    saved = tmp_path / "seen"
    # chmod does not stop root: a read-only bind mount of the folder over itself does.
    mount = f"mount --bind '{out}' '{out}' && mount -o remount,ro,bind '{out}' '{out}'"
    result = _run_in_namespace(root, mount, saved)
    assert result.returncode == 1, result.stderr
    run = document(result)
    assert run["status"] == "failed"
    assert run["error_kind"] == "configuration"
    assert str(out) in run["error"]
    assert "Read-only file system" in run["error"]
    assert list(saved.iterdir()) == []
    assert list(out.iterdir()) == []

    # Writable again (outside the namespace): the retry command completes the same run.
    resumed = cli(root, "runs", "retry", run["run_id"])
    assert resumed.returncode == 0, resumed.stderr
    done = document(resumed)
    assert done["status"] == "succeeded", done
    names = sorted(p.name for p in out.iterdir())
    assert names == ["feed.DONE", "feed.manifest.json", *(f"feed_{i:05d}.csv" for i in (1, 2, 3))]
    ids = [i for name in names if name.endswith(".csv") for i in _csv_ids(out / name)]
    assert ids == list(range(customers))


# -- 4. revoked privileges on PostgreSQL --------------------------------------------------------


def _sql(url: str, statement: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        cursor = con.execute(statement)
        return list(cursor.fetchall()) if cursor.description else []


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("revoke", "message"),
    [
        ("REVOKE INSERT ON feed FROM {role}", "permission denied for table feed"),
        ("REVOKE CREATE ON SCHEMA public FROM {role}", "permission denied for schema public"),
    ],
)
def test_revoked_privileges_fail_as_configuration_and_leave_the_table_as_it_was(
    tmp_path: Path, postgres_url: str, revoke: str, message: str
) -> None:
    role = f"feeder_{uuid.uuid4().hex[:8]}"
    _sql(postgres_url, f"CREATE ROLE {role} LOGIN")
    try:
        _sql(postgres_url, f"GRANT USAGE, CREATE ON SCHEMA public TO {role}")
        _sql(postgres_url, "CREATE TABLE feed (customer_id bigint PRIMARY KEY, email text)")
        _sql(postgres_url, f"GRANT SELECT, INSERT, UPDATE ON feed TO {role}")
        url = postgres_url.replace("://postgres@", f"://{role}@", 1)
        assert role in url
        destination = (
            f"type: postgres\nurl: {url}\ntable: feed\nmode: upsert\nkeys: [customer_id]\n"
        )
        root = make_workspace(tmp_path / "ws", destination, 1000)
        (root / "orchestrations" / "feed.yml").write_text(
            "query: SELECT customer_id, email FROM customers ORDER BY customer_id\n"
            "destination: target\n"
        )
        assert cli(root, "apply").returncode == 0
        first = document(cli(root, "run", "feed"))
        assert first["status"] == "succeeded", first
        expected = [(i, f"c{i}@example.com") for i in range(1000)]
        table = "SELECT customer_id, email FROM feed ORDER BY customer_id"
        assert _sql(postgres_url, table) == expected

        add_customers(root, 1000, 1500)
        _sql(postgres_url, revoke.format(role=role))
        failed = cli(root, "run", "feed")
        assert failed.returncode == 1, failed.stderr
        run = document(failed)
        assert run["status"] == "failed"
        assert run["error_kind"] == "configuration"
        assert message in run["error"]
        assert "public.feed" in run["error"]
        assert (
            f"hint: grant {role} the privileges mode upsert needs on public.feed and its "
            "schema; `activator destination test target` names the missing ones"
        ) in run["error"]
        assert _sql(postgres_url, table) == expected  # nothing of the failed run

        # Privileges back: the retry command completes the failed run, each key once.
        _sql(postgres_url, f"GRANT INSERT ON feed TO {role}")
        _sql(postgres_url, f"GRANT CREATE ON SCHEMA public TO {role}")
        done = document(cli(root, "runs", "retry", run["run_id"]))
        assert done["status"] == "succeeded", done
        assert _sql(postgres_url, table) == [(i, f"c{i}@example.com") for i in range(1500)]
    finally:
        _sql(postgres_url, f"DROP OWNED BY {role}")
        _sql(postgres_url, f"DROP ROLE {role}")


# -- 5. expired credentials ---------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("expiry", ["password changed", "valid until past"])
def test_an_expired_postgres_credential_is_configuration_and_never_shown(
    tmp_path: Path, password_postgres: PasswordServer, expiry: str
) -> None:
    server = password_postgres
    role = f"feeder_{uuid.uuid4().hex[:8]}"
    password = "pw-" + uuid.uuid4().hex
    database = f"t_{uuid.uuid4().hex[:12]}"
    _sql(server.admin, f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    _sql(server.admin, f"CREATE DATABASE {database} OWNER {role}")
    admin = server.admin.replace("/postgres?", f"/{database}?", 1)
    try:
        url = f"postgresql://{role}@{server.host}:{server.port}/{database}"
        destination = (
            f"type: postgres\nurl: {url}\ntable: feed\n"
            "credentials: {password: {env: FEED_PG_PASSWORD}}\n"
        )
        root = make_workspace(tmp_path / "ws", destination, 300)
        env = {"FEED_PG_PASSWORD": password}
        first = document(cli(root, "run", "feed", env=env))
        assert first["status"] == "succeeded", first
        if expiry == "password changed":
            _sql(server.admin, f"ALTER ROLE {role} PASSWORD 'rotated-{uuid.uuid4().hex}'")
        else:
            _sql(server.admin, f"ALTER ROLE {role} VALID UNTIL '2001-01-01'")

        failed = cli(root, "run", "feed", env=env)
        assert failed.returncode == 1, failed.stderr
        run = document(failed)
        assert run["status"] == "failed"
        assert run["error_kind"] == "configuration"
        assert (
            f"cannot connect to PostgreSQL at postgresql://{role}@127.0.0.1:{server.port}/"
            f"{database}" in run["error"]
        )
        assert f'password authentication failed for user "{role}"' in run["error"]
        assert (
            "hint: the server refused the password from env:FEED_PG_PASSWORD: it may have "
            "been changed, or have expired (VALID UNTIL)"
        ) in run["error"]
        shown = cli(root, "runs", "show", run["run_id"], env=env)
        for text in (failed.stdout, failed.stderr, shown.stdout, shown.stderr):
            assert password not in text
        assert password.encode() not in (root / ".activator" / "metadata.db").read_bytes()
        assert _sql(admin, "SELECT count(*) FROM feed") == [(300,)]
    finally:
        _sql(server.admin, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        _sql(server.admin, f"DROP ROLE {role}")


def test_a_receiver_refusing_the_token_is_configuration_and_not_retried(
    tmp_path: Path, faulty_receiver: FaultyReceiver
) -> None:
    receiver = faulty_receiver
    receiver.bearer = "current-" + uuid.uuid4().hex
    expired = "expired-" + uuid.uuid4().hex
    receiver.listen()
    destination = webhook(
        receiver.url,
        attempts=5,
        initial=0.05,
        longest=0.2,
        extra=", bearer_token: {env: FAULT_HOOK_TOKEN}",
    )
    root = make_workspace(tmp_path / "ws", destination, 300)
    env = {SECRET_ENV: receiver.secret, "FAULT_HOOK_TOKEN": expired}
    failed = cli(root, "run", "feed", env=env)
    assert failed.returncode == 1, failed.stderr
    run = document(failed)
    assert run["status"] == "failed"
    assert run["error_kind"] == "configuration"
    assert f"POST {receiver.url} answered HTTP 401: scripted 401" in run["error"]
    # A refused credential is not retried: each batch was tried once, none accepted.
    ids = [s.webhook_id for s in receiver.seen]
    assert ids
    assert len(ids) == len(set(ids))
    assert set(receiver.statuses()) == {401}
    assert receiver.accepted == {}
    shown = cli(root, "runs", "show", run["run_id"], env=env)
    for text in (failed.stdout, failed.stderr, shown.stdout, shown.stderr):
        assert expired not in text
        assert receiver.secret not in text

"""Webhook deliveries against a real local receiver that verifies signatures with the
``standardwebhooks`` package and deduplicates on ``webhook-id``."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook

from activator.definitions.webhook import WebhookDestination
from activator.destinations.base import DeliveryContext, Unit
from activator.destinations.http import check_address
from activator.destinations.secrets import SecretResolver
from activator.destinations.webhook import (
    DestinationDisabled,
    Signer,
    WebhookConnector,
    encode_records,
)
from activator.errors import ConfigError, DestinationError
from activator.runtime.delivery import TaskResult, deliver_task
from tests.fixtures.ledger import MemoryLedger, SimulatedCrash, table_source
from tests.fixtures.receiver import Receiver, new_secret

AS_OF = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)


def destination(url: str, **settings: Any) -> WebhookDestination:
    settings.setdefault("allow_private", True)
    settings.setdefault("retries", {"initial_backoff": 0.01, "max_backoff": 2})
    return WebhookDestination(
        name="hooks",
        type="webhook",
        url=url,
        credentials={"signing_secret": {"env": "HOOK_SECRET"}},
        **settings,
    )


def connector(receiver: Receiver, tmp_path: Path, **settings: Any) -> WebhookConnector:
    resolver = SecretResolver(tmp_path, environ={"HOOK_SECRET": receiver.secret})
    return WebhookConnector(destination(settings.pop("url", receiver.url), **settings), resolver)


def context(run_id: str = "run1") -> DeliveryContext:
    return DeliveryContext(
        run_id=run_id,
        task="deliver:hooks",
        as_of=AS_OF,
        timezone="UTC",
        activation_kind="campaign",
        activation="spring",
    )


def audience(n: int) -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array(range(n), pa.int64()),
            "email": [f"c{i}@example.com" for i in range(n)],
            "score": pa.array([i / 4 for i in range(n)], pa.float64()),
        }
    )


def run(
    conn: WebhookConnector,
    table: pa.Table,
    ledger: MemoryLedger | None = None,
    run_id: str = "run1",
) -> TaskResult:
    return deliver_task(conn, context(run_id), ledger or MemoryLedger(), table_source(table))


def parts(ledger: MemoryLedger) -> list[Unit]:
    """The delivered units, without the publish step."""
    return [u for u in ledger.units() if u.index >= 0]


def ids_of(records: list[dict[str, Any]]) -> list[int]:
    return sorted(int(r["customer_id"]) for r in records)


# --- Bodies and signatures -------------------------------------------------------------------


def test_json_batches_are_signed_enveloped_and_complete(receiver: Receiver, tmp_path: Path) -> None:
    result = run(connector(receiver, tmp_path), audience(2500))

    assert result.rows == 2500
    assert result.rejected == 0
    assert sorted(receiver.accepted) == [f"run1:deliver:hooks:{i}" for i in range(3)]
    assert [len(receiver.accepted[f"run1:deliver:hooks:{i}"]) for i in range(3)] == [
        1000,
        1000,
        500,
    ]
    assert ids_of(receiver.records()) == list(range(2500))
    assert receiver.bad_signatures == 0
    assert receiver.duplicates == []
    # Checked again here with the reference implementation, on the exact bytes received.
    msg_id = "run1:deliver:hooks:2"
    envelope = Webhook(receiver.secret).verify(receiver.bodies[msg_id], receiver.headers[msg_id])
    assert envelope["type"] == "activator.records"
    assert envelope["timestamp"] == AS_OF.isoformat()
    assert envelope["data"][0] == {
        "customer_id": 2000,
        "email": "c2000@example.com",
        "score": 500.0,
    }
    assert receiver.headers[msg_id]["content-type"] == "application/json"
    assert receiver.headers[msg_id]["webhook-signature"].startswith("v1,")
    assert result.published["requests"] == 3


def test_ndjson_one_record_per_line_in_batches_of_the_set_size(
    receiver: Receiver, tmp_path: Path
) -> None:
    result = run(connector(receiver, tmp_path, format="ndjson", batch_size=300), audience(1000))

    assert result.rows == 1000
    assert sorted(r.records for r in receiver.requests) == [100, 300, 300, 300]
    assert {r.content_type for r in receiver.requests} == {"application/x-ndjson"}
    body = receiver.bodies["run1:deliver:hooks:3"]
    lines = body.decode().splitlines()
    assert len(lines) == 100
    assert json.loads(lines[0])["customer_id"] == 900
    assert ids_of(receiver.records()) == list(range(1000))


def test_a_wrong_secret_fails_the_receivers_verification(
    receiver: Receiver, tmp_path: Path
) -> None:
    resolver = SecretResolver(tmp_path, environ={"HOOK_SECRET": new_secret()})
    conn = WebhookConnector(destination(receiver.url), resolver)

    with pytest.raises(DestinationError) as caught:
        run(conn, audience(10))

    assert receiver.bad_signatures == 1
    assert receiver.accepted == {}
    assert caught.value.attribution == "configuration"
    assert "HTTP 401" in caught.value.message


def test_signer_matches_the_reference_implementation() -> None:
    secret = new_secret()
    body = b'{"data":[{"a":"\xc3\xa9"}]}'
    mine = Signer.from_secret(secret, name="env:X").headers("m1", body, timestamp=1_767_000_000)
    reference = Webhook(secret).sign(
        "m1", datetime.fromtimestamp(1_767_000_000, UTC), body.decode()
    )

    assert mine["webhook-signature"] == reference
    assert mine["webhook-timestamp"] == "1767000000"
    assert mine["webhook-id"] == "m1"


def test_a_secret_that_is_not_a_whsec_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError) as caught:
        Signer.from_secret("whsec_not base64!", name="env:HOOK_SECRET")

    assert "env:HOOK_SECRET" in caught.value.message
    assert "not base64" not in str(caught.value)


def test_values_serialise_as_iso_times_exact_decimals_and_base64() -> None:
    rows = pa.table(
        {
            "at": pa.array([datetime(2026, 1, 2, 3, 4, 5, 250000)], pa.timestamp("us")),
            "at_tz": pa.array(
                [datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)], pa.timestamp("us", "Europe/Paris")
            ),
            "day": pa.array([date(2026, 1, 2)]),
            "amount": pa.array([Decimal("12.50")], pa.decimal128(10, 2)),
            "blob": pa.array([b"\x00\xff"]),
            "ratio": pa.array([float("nan")]),
            "tags": pa.array([["a", "b"]]),
        }
    )

    line = json.loads(encode_records(rows, "ndjson"))

    assert line == {
        "at": "2026-01-02T03:04:05.250",
        "at_tz": "2026-01-02T03:04:05Z",
        "day": "2026-01-02",
        "amount": "12.50",
        "blob": base64.b64encode(b"\x00\xff").decode(),
        "ratio": None,
        "tags": ["a", "b"],
    }


# --- Retries, timeouts, refusals -------------------------------------------------------------


def test_retries_honour_retry_after_in_seconds_and_as_a_date(
    receiver: Receiver, tmp_path: Path
) -> None:
    receiver.fail_next(1, 503, {"Retry-After": "1"})
    receiver.fail_next(1, 429, {"Retry-After": formatdate(time.time() + 3, usegmt=True)})
    started = time.monotonic()

    result = run(
        connector(receiver, tmp_path, retries={"initial_backoff": 0.01, "max_backoff": 5}),
        audience(10),
    )

    elapsed = time.monotonic() - started
    assert result.rows == 10
    assert receiver.statuses() == [503, 429, 200]
    # 1 s, then until the date (3 s ahead at second resolution: 1-2 s on); jitter is ≤ 20 ms.
    assert 1.9 <= elapsed < 5
    gaps = [b.at - a.at for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    assert gaps[0] >= 0.95


def test_a_retry_after_beyond_max_backoff_stops_at_once(receiver: Receiver, tmp_path: Path) -> None:
    receiver.fail_next(1, 429, {"Retry-After": "600"})

    with pytest.raises(DestinationError) as caught:
        run(connector(receiver, tmp_path), audience(10))

    assert caught.value.attribution == "platform"
    assert "600 s" in caught.value.message
    assert receiver.statuses() == [429]


def test_exhausted_retries_are_a_platform_error_naming_url_and_status(
    receiver: Receiver, tmp_path: Path
) -> None:
    receiver.fail_next(10, 500)
    ledger = MemoryLedger()
    conn = connector(
        receiver,
        tmp_path,
        url=receiver.url + "?token=s3cr3t",
        retries={"max_attempts": 3, "initial_backoff": 0.01},
    )

    with pytest.raises(DestinationError) as caught:
        run(conn, audience(10), ledger)

    error = caught.value
    assert error.attribution == "platform"
    assert receiver.url in error.message
    assert "HTTP 500" in error.message
    assert "3 attempts" in error.message
    assert "s3cr3t" not in str(error)
    assert receiver.statuses() == [500, 500, 500]
    assert ledger.units() == []
    assert [u.index for u in ledger.pending()] == [0]


def test_timeouts_are_retried_then_reported(receiver: Receiver, tmp_path: Path) -> None:
    receiver.delay = 0.5
    conn = connector(
        receiver,
        tmp_path,
        timeout_seconds=0.1,
        retries={"max_attempts": 2, "initial_backoff": 0.01},
    )

    with pytest.raises(DestinationError) as caught:
        run(conn, audience(5))

    assert caught.value.attribution == "platform"
    assert "ReadTimeout" in caught.value.message
    time.sleep(0.6)  # let the receiver finish the requests it was holding
    assert len(receiver.requests) == 2


def test_410_disables_the_destination(receiver: Receiver, tmp_path: Path) -> None:
    receiver.fail_next(1, 410)
    ledger = MemoryLedger()

    with pytest.raises(DestinationDisabled) as caught:
        run(connector(receiver, tmp_path), audience(10), ledger)

    error = caught.value
    assert error.attribution == "configuration"
    assert error.disables_destination
    assert error.destination == "hooks"
    assert "410 Gone" in error.message
    assert "destination disabled" in error.message
    assert [m for m, _ in ledger.events] == ["destination disabled: the receiver answered 410 Gone"]
    assert ledger.events[0][1]["destination"] == "hooks"
    assert receiver.statuses() == [410]


def test_403_is_a_configuration_error_without_bisection(receiver: Receiver, tmp_path: Path) -> None:
    receiver.fail_next(1, 403)

    with pytest.raises(DestinationError) as caught:
        run(connector(receiver, tmp_path), audience(100))

    assert caught.value.attribution == "configuration"
    assert "HTTP 403" in caught.value.message
    assert receiver.statuses() == [403]


def test_400_bisection_isolates_exactly_the_bad_records(receiver: Receiver, tmp_path: Path) -> None:
    bad = {17, 500, 999}
    receiver.refuse = lambda record: record["customer_id"] in bad
    ledger = MemoryLedger()

    result = run(connector(receiver, tmp_path), audience(1000), ledger)

    assert result.rows == 997
    assert result.rejected == 3
    assert ids_of(receiver.records()) == sorted(set(range(1000)) - bad)
    assert receiver.duplicates == []
    (unit,) = parts(ledger)
    assert unit.rows == 997
    assert unit.rejected == 3
    ((unit_id, rows, reasons),) = ledger.rejects
    assert unit_id == "run1:deliver:hooks:0"
    assert sorted(rows.column("customer_id").to_pylist()) == sorted(bad)
    by_id = dict(zip(rows.column("customer_id").to_pylist(), reasons, strict=True))
    assert by_id[500].startswith("HTTP 400: invalid record")
    assert '"customer_id": 500' in by_id[500]
    # Halves carry derived ids; about 2·log2(1000) requests per bad record, not 1000.
    assert all(r.webhook_id.startswith("run1:deliver:hooks:0") for r in receiver.requests)
    assert any(r.webhook_id.count(".") >= 9 for r in receiver.requests)
    assert len(receiver.requests) < 70


def test_a_receiver_refusing_everything_stops_the_bisection(
    receiver: Receiver, tmp_path: Path
) -> None:
    receiver.refuse = lambda record: True

    with pytest.raises(DestinationError) as caught:
        run(connector(receiver, tmp_path), audience(400))

    # A tenth of the batch: 40 records refused one by one, then it stops (about 2 requests
    # per refused record), instead of 2·400 requests.
    assert caught.value.attribution == "configuration"
    assert "refused more than 40 records" in caught.value.message
    assert len(receiver.requests) < 100
    assert receiver.records() == []


def test_expanded_rows_are_split_into_requests_with_derived_ids(
    receiver: Receiver, tmp_path: Path
) -> None:
    def double(batch: pa.RecordBatch) -> pa.RecordBatch:
        table = pa.Table.from_batches([batch, batch])
        return table.combine_chunks().to_batches()[0]

    conn = connector(receiver, tmp_path, batch_size=100)
    result = deliver_task(conn, context(), MemoryLedger(), table_source(audience(150)), double)

    assert result.rows == 300
    assert sorted(receiver.accepted) == [
        "run1:deliver:hooks:0-0",
        "run1:deliver:hooks:0-1",
        "run1:deliver:hooks:1",
    ]


# --- Addresses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hooks",
        "https://10.1.2.3/hooks",
        "https://192.168.0.10/hooks",
        "https://169.254.169.254/latest",
        "https://[::1]/hooks",
        "https://[::ffff:127.0.0.1]/hooks",
        "https://224.0.0.1/hooks",
        "https://localhost/hooks",
    ],
)
def test_private_and_loopback_addresses_are_refused(url: str, tmp_path: Path) -> None:
    resolver = SecretResolver(tmp_path, environ={"HOOK_SECRET": new_secret()})
    conn = WebhookConnector(destination(url, allow_private=False), resolver)

    with pytest.raises(DestinationError) as caught:
        conn.open(context(), MemoryLedger())

    assert caught.value.attribution == "configuration"
    assert "allow_private" in str(caught.value)
    (check, *_) = conn.check()
    assert check.step == "address"
    assert not check.ok


def test_a_host_name_resolving_to_loopback_is_refused_at_run_time(
    receiver: Receiver, tmp_path: Path
) -> None:
    url = receiver.url.replace("127.0.0.1", "localhost")
    resolver = SecretResolver(tmp_path, environ={"HOOK_SECRET": receiver.secret})
    refused = WebhookConnector(
        destination(url.replace("http:", "https:"), allow_private=False), resolver
    )

    with pytest.raises(DestinationError, match="private, loopback"):
        run(refused, audience(3))
    assert receiver.requests == []

    # Allowed, the name is resolved once and the connection pinned to the checked address.
    result = run(WebhookConnector(destination(url), resolver), audience(3))
    assert result.rows == 3
    assert receiver.headers["run1:deliver:hooks:0"]["host"].startswith("localhost:")


def test_public_addresses_pass_the_guard() -> None:
    assert check_address("https://8.8.8.8/hooks", allow_private=False) == ["8.8.8.8"]
    assert check_address(
        "https://hooks.example/x", allow_private=False, resolve=lambda host, port: ["93.184.215.14"]
    ) == ["93.184.215.14"]
    with pytest.raises(DestinationError):
        check_address(
            "https://rebind.example/x",
            allow_private=False,
            resolve=lambda h, p: ["93.184.215.14", "10.0.0.1"],
        )


def test_plain_http_needs_allow_private() -> None:
    with pytest.raises(ValidationError, match="https://"):
        destination("http://hooks.example.com/x", allow_private=False)
    with pytest.raises(ValidationError, match="signing_secret is required"):
        WebhookDestination(name="h", type="webhook", url="https://hooks.example.com/x")
    with pytest.raises(ValidationError, match="credentials"):
        destination("https://hooks.example.com/x", headers={"Authorization": "Bearer x"})


# --- Checks, secrets -------------------------------------------------------------------------


def test_check_sends_a_signed_probe(receiver: Receiver, tmp_path: Path) -> None:
    checks = connector(receiver, tmp_path).check()

    assert [(c.step, c.ok) for c in checks] == [
        ("address", True),
        ("signing secret", True),
        ("signed probe", True),
    ]
    ((probe_id, records),) = receiver.accepted.items()
    assert probe_id.startswith("probe:")
    assert records == []


def test_the_secret_never_shows(receiver: Receiver, tmp_path: Path) -> None:
    ledger = MemoryLedger()
    conn = connector(receiver, tmp_path, headers={"x-team": "crm"})
    receiver.fail_next(1, 410)
    with pytest.raises(DestinationError) as disabled:
        run(conn, audience(5), ledger)
    receiver.fail_next(5, 500)
    conn = connector(receiver, tmp_path, retries={"max_attempts": 2, "initial_backoff": 0.01})
    with pytest.raises(DestinationError) as failed:
        run(conn, audience(5), ledger, run_id="run2")

    key = receiver.secret.removeprefix("whsec_")
    shown = [
        str(disabled.value),
        str(failed.value),
        repr(conn),
        repr(ledger.events),
        repr(ledger.pending()),
    ]
    assert all(key not in text and receiver.secret not in text for text in shown)
    assert receiver.headers == {} or all(
        key not in json.dumps(h) for h in receiver.headers.values()
    )


# --- Concurrency, crashes and resumes --------------------------------------------------------


class OrderLedger(MemoryLedger):
    """Keeps the order of ``delivered`` calls."""

    order: list[int]

    def delivered(self, unit: Unit) -> None:
        self.__dict__.setdefault("order", []).append(unit.index)
        super().delivered(unit)


def test_concurrent_requests_are_reported_in_index_order(
    receiver: Receiver, tmp_path: Path
) -> None:
    receiver.delay = 0.02
    ledger = OrderLedger()

    started = time.monotonic()
    result = run(connector(receiver, tmp_path, batch_size=10, concurrency=8), audience(400), ledger)
    elapsed = time.monotonic() - started

    assert result.rows == 400
    assert ledger.order == [*range(40), -1]
    assert ids_of(receiver.records()) == list(range(400))
    # 40 requests of 20 ms each, 8 at a time: well under the 0.8 s a single lane needs.
    assert elapsed < 0.6


@pytest.mark.parametrize(
    "crash", [(point, n) for point in ("sending", "delivered") for n in range(1, 6)]
)
def test_a_crash_anywhere_then_resume_delivers_every_record_once(
    receiver: Receiver, tmp_path: Path, crash: tuple[str, int]
) -> None:
    ledger = MemoryLedger(crash_at=crash)
    conn = connector(receiver, tmp_path, batch_size=100, concurrency=3)
    table = audience(450)

    with pytest.raises(SimulatedCrash):
        run(conn, table, ledger)
    result = run(conn, table, ledger)

    assert ids_of(receiver.records()) == list(range(450))
    assert sorted(receiver.accepted) == [f"run1:deliver:hooks:{i}" for i in range(5)]
    units = parts(ledger)
    assert [(u.first_row, u.end_row) for u in units] == [
        (i * 100, min(450, i * 100 + 100)) for i in range(5)
    ]
    assert sum(u.rows for u in units) == 450
    assert ledger.pending() == []
    assert result.published["rows"] == 450
    # Only units the crash left in flight were sent twice, and the receiver dropped them.
    assert set(receiver.duplicates) <= {f"run1:deliver:hooks:{i}" for i in range(5)}
    assert len(receiver.duplicates) <= 3

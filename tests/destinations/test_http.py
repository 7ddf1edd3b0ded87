"""The HTTP kit against a real local fake vendor API: a batch limit, 429 with Retry-After and
rate-limit headers, per-record errors inside 2xx answers, and an asynchronous import job."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from activator.definitions.webhook import RetryPolicy
from activator.destinations.base import Check, Connector, DeliveryContext, UnitLog
from activator.destinations.http import (
    OPERATION_COLUMN,
    ApiDelivery,
    AsyncJob,
    HttpClient,
    JobStatus,
    Operation,
    RateLimiter,
    RecordResult,
    backoff_delay,
    parse_retry_after,
    rate_limiter,
    split_results,
    standard_rate_limit_headers,
)
from activator.errors import DestinationError
from activator.runtime.delivery import deliver_task
from tests.fixtures.ledger import MemoryLedger, table_source

LIMIT = 5
"""The fake vendor's records per request."""


@dataclass
class Vendor:
    """The fake vendor's state (guarded by ``lock``)."""

    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    members: set[str] = field(default_factory=set)
    batches: list[tuple[str, int]] = field(default_factory=list)
    throttle: int = 0
    remaining: int = 100
    job_polls: int = 0
    times: list[float] = field(default_factory=list)


def _vendor_handler(state: Vendor) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go in two writes

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            with state.lock:
                left = state.remaining
            self.send_header("RateLimit-Limit", "100")
            self.send_header("RateLimit-Remaining", str(left))
            self.send_header("RateLimit-Reset", "1")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            with state.lock:
                state.times.append(time.monotonic())
                throttled = state.throttle > 0
                state.throttle -= throttled
            if throttled:
                self._json(429, {"error": "slow down"}, {"Retry-After": "1"})
                return
            if self.path == "/v1/imports":
                self._json(202, {"status_url": f"{state.url}/v1/imports/7"})
                return
            members = body["members"]
            if len(members) > LIMIT:
                self._json(413, {"error": f"at most {LIMIT} members per request"})
                return
            errors = []
            with state.lock:
                state.batches.append((body["operation"], len(members)))
                for i, member in enumerate(members):
                    if "@" not in member["email"]:
                        errors.append({"index": i, "code": "INVALID_EMAIL"})
                    elif body["operation"] == "add":
                        state.members.add(member["email"])
                    else:
                        state.members.discard(member["email"])
            self._json(200, {"errors": errors})

        def do_GET(self) -> None:
            with state.lock:
                state.job_polls += 1
                polls = state.job_polls
            if polls < 3:
                self._json(200, {"state": "running"})
            else:
                self._json(200, {"state": "done", "errors": [{"index": 1, "code": "UNKNOWN"}]})

    return Handler


@pytest.fixture
def vendor() -> Iterator[Vendor]:
    state = Vendor()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _vendor_handler(state))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


FAST = RetryPolicy(max_attempts=4, initial_backoff=0.01, max_backoff=3)


def parse_errors(response: httpx.Response, sent: int) -> list[RecordResult]:
    """The fake vendor's per-record errors, as a vendor connector would read them."""
    return [
        RecordResult(e["index"], accepted=False, reason=e["code"])
        for e in response.json()["errors"]
    ]


class ListDelivery(ApiDelivery):
    """A minimal vendor connector built on the kit: add/remove list members."""

    max_batch_records = LIMIT
    batch_rows = 8

    def __init__(self, context: DeliveryContext, log: UnitLog, client: HttpClient, url: str):
        super().__init__(context, log)
        self.client = client
        self.url = url

    def send(self, operation: Operation, rows: pa.Table, request_id: str) -> list[RecordResult]:
        body = {"operation": operation.value, "members": rows.to_pylist()}
        response = self.client.request("POST", f"{self.url}/v1/lists/7/members", json=body)
        if not response.is_success:
            raise DestinationError(f"HTTP {response.status_code}", attribution="configuration")
        return parse_errors(response, rows.num_rows)

    def close(self) -> None:
        self.client.close()


class ListConnector(Connector):
    def __init__(self, url: str) -> None:
        self.url = url

    def check(self) -> list[Check]:
        return []

    def open(self, context: DeliveryContext, log: UnitLog) -> ListDelivery:
        limiter = rate_limiter("fake", f"list-{self.url}", rate=200)
        return ListDelivery(
            context, log, HttpClient(retry=FAST, timeout=5, limiter=limiter), self.url
        )


def context() -> DeliveryContext:
    return DeliveryContext(
        "run1", "deliver:list", datetime(2026, 3, 1, tzinfo=UTC), "UTC", "campaign", "c"
    )


def test_api_delivery_batches_adds_and_removes_under_the_vendor_limit(vendor: Vendor) -> None:
    vendor.members = {"gone1@x.com", "gone2@x.com", "kept@x.com"}
    emails = [f"m{i}@x.com" for i in range(14)] + ["not-an-email", "gone1@x.com", "gone2@x.com"]
    ops = ["add"] * 15 + ["remove"] * 2
    table = pa.table({"email": emails, OPERATION_COLUMN: ops})
    ledger = MemoryLedger()

    result = deliver_task(ListConnector(vendor.url), context(), ledger, table_source(table))

    assert vendor.members == {"kept@x.com", *emails[:14]}
    assert all(size <= LIMIT for _, size in vendor.batches)
    # Units of 8 rows: [8 adds], [7 adds + 1 remove], [1 remove]; removes go first.
    assert vendor.batches == [
        ("add", 5), ("add", 3), ("remove", 1), ("add", 5), ("add", 2), ("remove", 1),
    ]  # fmt: skip
    assert result.rows == 16
    assert result.rejected == 1
    ((unit_id, rows, reasons),) = ledger.rejects
    assert unit_id == "run1:deliver:list:1"
    assert rows.to_pylist() == [{"email": "not-an-email"}]
    assert reasons == ["INVALID_EMAIL"]


def test_429_with_retry_after_is_waited_for_and_slows_the_shared_limiter(vendor: Vendor) -> None:
    limiter = RateLimiter(50)
    client = HttpClient(retry=FAST, timeout=5, limiter=limiter)
    vendor.throttle = 1
    started = time.monotonic()

    response = client.request(
        "POST", f"{vendor.url}/v1/lists/7/members", json={"operation": "add", "members": []}
    )

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.95
    assert vendor.times[1] - vendor.times[0] >= 0.95
    assert limiter.throttled == 1
    # The 429 halved the rate; the next answer's headers (100 left within 1 s) restored it.
    assert limiter.rate == 50
    limiter.observe(429, httpx.Headers())
    assert limiter.rate == 25
    client.close()


def test_rate_limit_headers_with_no_quota_left_pause_the_limiter(vendor: Vendor) -> None:
    limiter = RateLimiter(1000)
    client = HttpClient(retry=FAST, timeout=5, limiter=limiter)
    vendor.remaining = 0
    body = {"operation": "add", "members": []}

    client.request("POST", f"{vendor.url}/v1/lists/7/members", json=body)
    vendor.remaining = 50
    client.request("POST", f"{vendor.url}/v1/lists/7/members", json=body)

    # RateLimit-Remaining: 0 with RateLimit-Reset: 1 held the second request for a second.
    assert vendor.times[1] - vendor.times[0] >= 0.95
    # With 50 left over 1 s, the limiter spreads them: 50 requests/s.
    assert limiter.rate == 50
    client.close()


def test_one_limiter_per_vendor_account_shared_by_threads() -> None:
    shared = rate_limiter("acme", "account-1", rate=20, burst=1)
    assert rate_limiter("acme", "account-1", rate=999) is shared
    assert rate_limiter("acme", "account-2", rate=20) is not shared
    started = time.monotonic()

    def five() -> None:
        for _ in range(5):
            shared.acquire()

    threads = [threading.Thread(target=five) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # 10 requests at 20/s with a burst of 1, across both threads: about 0.45 s.
    assert 0.4 <= time.monotonic() - started < 1.5


def test_rate_limit_header_parsers() -> None:
    ietf = standard_rate_limit_headers(
        httpx.Headers(
            {"RateLimit-Limit": "100", "RateLimit-Remaining": "7", "RateLimit-Reset": "30"}
        )
    )
    assert (ietf.limit, ietf.remaining, ietf.reset) == (100, 7, 30) if ietf else False
    epoch = standard_rate_limit_headers(
        httpx.Headers(
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 60)}
        )
    )
    assert epoch is not None
    assert epoch.remaining == 0
    assert epoch.reset is not None
    assert 58 <= epoch.reset <= 61
    structured = standard_rate_limit_headers(httpx.Headers({"RateLimit": '"default";r=3;t=12'}))
    assert structured is not None
    assert (structured.remaining, structured.reset) == (3, 12)
    assert standard_rate_limit_headers(httpx.Headers({"content-type": "text/plain"})) is None


def test_a_vendor_header_parser_plugs_in() -> None:
    def calls_left(headers: httpx.Headers) -> Any:
        from activator.destinations.http import RateLimitInfo

        left = headers.get("x-vendor-calls-left")
        return None if left is None else RateLimitInfo(remaining=int(left), reset=10)

    limiter = RateLimiter(100, parser=calls_left)
    limiter.observe(200, httpx.Headers({"x-vendor-calls-left": "20"}))

    assert limiter.rate == 2  # 20 calls over 10 s


def test_async_job_is_polled_until_done(vendor: Vendor) -> None:
    client = HttpClient(retry=FAST, timeout=5)
    submitted = client.request("POST", f"{vendor.url}/v1/imports", json={"members": []})

    def interpret(response: httpx.Response) -> JobStatus:
        body = response.json()
        results = [RecordResult(e["index"], False, e["code"]) for e in body.get("errors", [])]
        return JobStatus(body["state"], results)

    job = AsyncJob(client, submitted.json()["status_url"], interpret, interval=0.05)
    status = job.wait()

    assert status.state == "done"
    assert job.polls == 3
    rows = pa.table({"email": ["a@x", "b@x", "c@x"]})
    accepted, rejected, reasons = split_results(rows, status.results)
    assert accepted.column("email").to_pylist() == ["a@x", "c@x"]
    assert rejected.column("email").to_pylist() == ["b@x"]
    assert reasons == ["UNKNOWN"]

    slow = AsyncJob(
        client,
        submitted.json()["status_url"],
        lambda r: JobStatus("running"),
        interval=0.05,
        timeout=0.2,
    )
    with pytest.raises(DestinationError, match="still running"):
        slow.wait()
    client.close()


def test_retry_after_and_backoff() -> None:
    assert parse_retry_after("3") == 3
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    at = parse_retry_after(formatdate(1_000_010, usegmt=True), now=1_000_000)
    assert at == 10
    policy = RetryPolicy(initial_backoff=1, max_backoff=5)
    rng = random.Random(1)
    waits = [backoff_delay(n, policy, rng) for n in (1, 2, 3, 10) for _ in range(200)]
    assert max(waits[:200]) <= 1
    assert max(waits[200:400]) <= 2
    assert max(waits[600:]) <= 5
    assert max(waits[600:]) > 4  # full jitter spans the whole range


def test_connection_errors_are_retried_then_reported(tmp_path: Path) -> None:
    client = HttpClient(retry=RetryPolicy(max_attempts=2, initial_backoff=0.01), timeout=1)
    with pytest.raises(DestinationError) as caught:
        client.request("POST", "http://127.0.0.1:9/x?key=abc", content=b"{}")
    assert caught.value.attribution == "platform"
    assert "ConnectError" in caught.value.message
    assert "key=abc" not in caught.value.message
    client.close()

"""The HTTP kit shared by webhooks and the marketing-API connectors.

* :class:`HttpClient`: httpx with retries (exponential backoff, full jitter, ``Retry-After``
  honoured), an optional :class:`RateLimiter`, and an optional address guard that refuses
  private networks and pins the checked address (so DNS cannot be rebound between the check
  and the connection).
* :func:`rate_limiter`: one token bucket per (vendor, account), shared by every run of the
  process; it slows down on 429 and follows the vendor's rate-limit headers.
* :class:`RecordResult` and :func:`split_results`: per-record outcomes inside 2xx answers.
* :class:`AsyncJob`: submit an import job, then poll it until it is done.
* :class:`Operation` and :class:`ApiDelivery`: add/remove batches under a vendor's limit, the
  base of the vendor connectors.
"""

from __future__ import annotations

__all__ = [
    "OPERATION_COLUMN",
    "RETRY_STATUSES",
    "ApiDelivery",
    "AsyncJob",
    "HeaderParser",
    "HttpClient",
    "JobStatus",
    "Operation",
    "RateLimitInfo",
    "RateLimiter",
    "RecordResult",
    "RequestFailed",
    "ResultParser",
    "backoff_delay",
    "check_address",
    "parse_retry_after",
    "rate_limiter",
    "safe_url",
    "split_results",
    "standard_rate_limit_headers",
]

import ipaddress
import random
import re
import socket
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from activator.definitions.webhook import RetryPolicy
from activator.destinations.base import Delivery, DeliveryContext, Unit, UnitLog
from activator.errors import DestinationError

RETRY_STATUSES = frozenset({408, 425, 429})
"""Statuses retried besides every 5xx: timeout, too early, too many requests."""


def safe_url(url: str | httpx.URL) -> str:
    """``url`` without user info, query or fragment, which may carry secrets: for messages."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


# --- Addresses -------------------------------------------------------------------------------

Resolver = Callable[[str, int], list[str]]
"""``resolve(host, port)``: the host's IP addresses."""


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def check_address(url: str, *, allow_private: bool, resolve: Resolver = _resolve) -> list[str]:
    """Resolve ``url``'s host now and refuse non-public addresses unless ``allow_private``.

    Resolution happens at run time (not only when the definition is read) and every address
    the name resolves to must be public: a name that points at ``127.0.0.1`` is refused like the
    literal. Returns the addresses (for pinning).

    Raises:
        DestinationError: (configuration) the name does not resolve, or an address is private,
            loopback, link-local, multicast or reserved.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            addresses = resolve(host, port)
        except OSError as exc:
            raise DestinationError(
                f"{safe_url(url)}: the host name {host!r} does not resolve ({exc.strerror or exc})",
                attribution="platform",
            ) from exc
    if not allow_private:
        refused = [a for a in addresses if not _is_public(ipaddress.ip_address(a))]
        if refused:
            raise DestinationError(
                f"{safe_url(url)}: {host} is a private, loopback, link-local or reserved "
                f"address ({', '.join(refused)}); deliveries there are refused",
                hint="set allow_private: true on the destination if this receiver is meant to "
                "be on a private network",
                attribution="configuration",
            )
    return addresses


class _PinnedTransport(httpx.HTTPTransport):
    """Connects to a checked address while keeping the host name for Host and TLS (SNI and
    certificate checks): a second DNS answer can no longer send the request elsewhere."""

    def __init__(self, host: str, address: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._host = host
        self._address = address

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == self._host:
            request.url = request.url.copy_with(host=self._address)
            request.extensions = {**request.extensions, "sni_hostname": self._host}
        return super().handle_request(request)


# --- Retries ---------------------------------------------------------------------------------


def backoff_delay(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Full-jitter exponential backoff: a random wait in ``[0, min(max, initial·2^(n-1))]``
    after failed attempt ``attempt`` (1-based), so that many senders do not retry in step."""
    cap = min(policy.max_backoff, policy.initial_backoff * 2 ** (attempt - 1))
    return rng.uniform(0, cap)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class RequestFailed(DestinationError):
    """A request failed after every retry (or could not be retried).

    Attributes:
        status: The last HTTP status, None when no answer came (timeout, connection error).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None,
        hint: str | None = None,
        attribution: Literal["configuration", "platform"] = "platform",
    ) -> None:
        super().__init__(message, hint=hint, attribution=attribution)
        self.status = status


class Cancelled(Exception):
    """The delivery was stopped while a request was waiting to be retried."""


Headers = Mapping[str, str] | Callable[[], Mapping[str, str]]
"""Request headers, or a function making them for each attempt (fresh signatures)."""


class HttpClient:
    """httpx with retries, an optional shared rate limiter and an optional address guard.

    Args:
        retry: Attempts and backoff.
        timeout: Seconds for connecting, and for each read or write.
        headers: Headers sent on every request.
        limiter: A rate limiter acquired before every attempt and told every answer.
        pin: ``(url, allow_private)``: check the url's host (:func:`check_address`) now and
            connect only to the checked address.
        max_connections: Connections kept to the host (the delivery's concurrency).
        cancel: Set to stop waiting between retries (the delivery is aborting).
        rng: The jitter's random source.
        transport: An httpx transport (tests, or a vendor's special needs); excludes ``pin``.
    """

    def __init__(
        self,
        *,
        retry: RetryPolicy,
        timeout: float,
        headers: Mapping[str, str] | None = None,
        limiter: RateLimiter | None = None,
        pin: tuple[str, bool] | None = None,
        max_connections: int = 10,
        cancel: threading.Event | None = None,
        rng: random.Random | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.retry = retry
        self.limiter = limiter
        self._cancel = cancel or threading.Event()
        self._rng = rng or random.Random()
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        if pin is not None and transport is None:
            url, allow_private = pin
            address = check_address(url, allow_private=allow_private)[0]
            # The environment's proxy settings are not used: the guard checked a direct route.
            transport = _PinnedTransport(
                urlsplit(url).hostname or "", address, limits=limits, trust_env=False
            )
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            headers=dict(headers or {}),
            limits=limits,
            transport=transport,
            # A redirect could lead past the address guard; a receiver's address is explicit.
            follow_redirects=False,
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        headers: Headers | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """Send one request, retrying transient failures.

        Timeouts, connection errors, 408, 425, 429 and 5xx are retried within the policy; a
        ``Retry-After`` longer than the jittered wait is honoured, and one longer than
        ``max_backoff`` ends the retries at once (the run is resumable later). Every other
        answer (2xx, 3xx, other 4xx) is returned for the caller to interpret.

        Raises:
            RequestFailed: (platform) the budget is spent; names the url and the last status.
        """
        status: int | None = None
        problem = ""
        for attempt in range(1, self.retry.max_attempts + 1):
            if self.limiter is not None:
                self.limiter.acquire()
            made = headers() if callable(headers) else headers
            try:
                response = self._client.request(
                    method, url, content=content, headers=made, json=json
                )
            except httpx.TransportError as exc:  # timeouts, refused connections, resets
                status = None
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                wait = backoff_delay(attempt, self.retry, self._rng)
            else:
                if self.limiter is not None:
                    self.limiter.observe(response.status_code, response.headers)
                if not _retryable(response.status_code):
                    return response
                status, problem = response.status_code, f"HTTP {response.status_code}"
                wait = backoff_delay(attempt, self.retry, self._rng)
                asked = parse_retry_after(response.headers.get("retry-after"))
                response.close()
                if asked is not None:
                    if asked > self.retry.max_backoff:
                        raise RequestFailed(
                            f"{method} {safe_url(url)} failed: {problem}, and the receiver "
                            f"asked to retry after {asked:.0f} s",
                            status=status,
                            hint="resume the run later",
                        )
                    wait = max(wait, asked)
            if attempt == self.retry.max_attempts:
                break
            if self._cancel.wait(wait):
                raise Cancelled()
        raise RequestFailed(
            f"{method} {safe_url(url)} failed after {self.retry.max_attempts} attempt"
            f"{'s' if self.retry.max_attempts > 1 else ''}: {problem}",
            status=status,
            hint="the receiver failed transiently; resume the run when it is back",
        )

    def cancel(self) -> None:
        """Stop waiting between retries (requests in progress finish)."""
        self._cancel.set()

    def close(self) -> None:
        """Close the connections."""
        self._client.close()


def _retryable(status: int) -> bool:
    return status >= 500 or status in RETRY_STATUSES


# --- Rate limits -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RateLimitInfo:
    """What a vendor's headers say about its quota.

    Attributes:
        limit: Requests allowed per window.
        remaining: Requests left in the current window.
        reset: Seconds until the window resets.
    """

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None


HeaderParser = Callable[[httpx.Headers], RateLimitInfo | None]
"""Reads a vendor's rate-limit headers; None when the answer has none."""

_STRUCTURED = re.compile(r"\b(limit|remaining|reset|r|t)\s*=\s*(\d+(?:\.\d+)?)")


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.split(",")[0].strip())
    except ValueError:
        return None


def standard_rate_limit_headers(headers: httpx.Headers) -> RateLimitInfo | None:
    """The common rate-limit headers: ``RateLimit-Limit/Remaining/Reset`` (IETF draft),
    the structured ``RateLimit: limit=…, remaining=…, reset=…`` (or ``r=…;t=…``) form, and
    ``X-RateLimit-Limit/Remaining/Reset``. A reset larger than a year of seconds is read as an
    epoch time (as GitHub and others send it)."""
    if "ratelimit" in headers and "ratelimit-remaining" not in headers:
        found = {k: float(v) for k, v in _STRUCTURED.findall(headers["ratelimit"])}
        remaining = found.get("remaining", found.get("r"))
        reset = found.get("reset", found.get("t"))
        limit = found.get("limit")
    else:
        prefix = "ratelimit-" if "ratelimit-remaining" in headers else "x-ratelimit-"
        limit = _number(headers.get(prefix + "limit"))
        remaining = _number(headers.get(prefix + "remaining"))
        reset = _number(headers.get(prefix + "reset"))
    if limit is None and remaining is None and reset is None:
        return None
    if reset is not None and reset > 365 * 86400:
        reset = max(0.0, reset - time.time())
    return RateLimitInfo(
        limit=None if limit is None else int(limit),
        remaining=None if remaining is None else int(remaining),
        reset=reset,
    )


class RateLimiter:
    """A thread-safe token bucket that adapts to the vendor's answers.

    ``acquire`` blocks until a request may go. ``observe`` adapts: a 429 halves the rate and
    pauses every caller for ``Retry-After`` (or one interval); headers saying the quota is
    spent pause until it resets; headers with quota left spread it over the time to the reset;
    successes bring the rate back up gradually (additive increase, multiplicative decrease).

    Args:
        rate: Requests per second at most (the vendor's documented limit).
        burst: Requests that may go at once after a quiet period (default: one second's worth).
        parser: Reads the vendor's rate-limit headers.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: int | None = None,
        parser: HeaderParser = standard_rate_limit_headers,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.max_rate = rate
        self.rate = rate
        self.burst = float(burst if burst is not None else max(1, int(rate)))
        self.parser = parser
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._updated = clock()
        self._paused_until = 0.0
        self.throttled = 0
        """429 answers seen (for reports)."""

    def acquire(self) -> None:
        """Wait for a token (reserving it, so concurrent callers queue fairly)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1
            wait = max(0.0, -self._tokens / self.rate, self._paused_until - now)
        if wait > 0:
            self._sleep(wait)

    def observe(self, status: int, headers: httpx.Headers) -> None:
        """Adapt to one answer: its status and rate-limit headers."""
        info = self.parser(headers)
        with self._lock:
            now = self._clock()
            if status == 429:
                self.throttled += 1
                self.rate = max(self.max_rate / 64, self.rate / 2)
                asked = parse_retry_after(headers.get("retry-after"))
                pause = asked if asked is not None else 1 / self.rate
                if info is not None and info.remaining == 0 and info.reset is not None:
                    pause = max(pause, info.reset)
                self._pause(now + pause)
                return
            if info is not None and info.remaining is not None and info.reset is not None:
                if info.remaining <= 0:
                    self._pause(now + info.reset)
                else:
                    # Spend what is left evenly until the reset, never above the set rate.
                    self.rate = min(self.max_rate, max(info.remaining / max(info.reset, 1e-3),
                                                       self.max_rate / 64))  # fmt: skip
                return
            if 200 <= status < 300 and self.rate < self.max_rate:
                self.rate = min(self.max_rate, self.rate + self.max_rate / 16)

    def _pause(self, until: float) -> None:
        self._paused_until = max(self._paused_until, until)
        self._tokens = min(self._tokens, 0.0)


_LIMITERS: dict[tuple[str, str], RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def rate_limiter(
    vendor: str,
    account: str,
    *,
    rate: float,
    burst: int | None = None,
    parser: HeaderParser | None = None,
) -> RateLimiter:
    """The process-wide limiter of one vendor account, created on first use.

    Every run of the process delivering to the same account shares it, since the vendor counts
    their requests together. ``account`` is an account or app id, never a token. The first
    caller's settings make the limiter; later callers get the same one.
    """
    key = (vendor, account)
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(key)
        if limiter is None:
            limiter = RateLimiter(rate, burst=burst, parser=parser or standard_rate_limit_headers)
            _LIMITERS[key] = limiter
        return limiter


# --- Per-record results ----------------------------------------------------------------------


@dataclass(frozen=True)
class RecordResult:
    """The outcome of one record of a request, as the vendor's 2xx answer reports it.

    Attributes:
        index: The record's position in the request (0-based).
        accepted: Whether the vendor took it.
        reason: Why not (the vendor's code and message), empty when accepted.
    """

    index: int
    accepted: bool
    reason: str = ""


ResultParser = Callable[[httpx.Response, int], list[RecordResult]]
"""``parse(response, records_sent)``: per-record results of a 2xx answer. Records not listed
count as accepted, so a parser may list only the failures."""


def split_results(
    rows: pa.Table, results: Iterable[RecordResult]
) -> tuple[pa.Table, pa.Table, list[str]]:
    """Split the rows of a request by their results: (accepted, rejected, reasons)."""
    rejected = {r.index: r.reason for r in results if not r.accepted}
    if not rejected:
        return rows, rows.slice(0, 0), []
    indexes = np.fromiter(sorted(rejected), dtype=np.int64, count=len(rejected))
    mask = np.zeros(rows.num_rows, dtype=bool)
    mask[indexes] = True
    return (
        rows.filter(pa.array(~mask)),
        rows.take(pa.array(indexes)),
        [rejected[int(i)] or "rejected" for i in indexes],
    )


# --- Asynchronous import jobs ----------------------------------------------------------------


@dataclass(frozen=True)
class JobStatus:
    """Where an import job stands.

    Attributes:
        state: ``running``, ``done`` or ``failed``.
        results: Per-record results once done (may list only the failures).
        message: The vendor's words on a failure.
    """

    state: Literal["running", "done", "failed"]
    results: list[RecordResult] = field(default_factory=list)
    message: str = ""


class AsyncJob:
    """An asynchronous import job: polled at growing intervals until it ends.

    The job's status url belongs in the unit's ``detail`` when the unit is recorded *sending*,
    so that :meth:`Delivery.settle` can poll the same job after a crash instead of importing
    again.

    Args:
        client: The HTTP client (its limiter counts the polls too).
        status_url: Where the job's status is read (GET).
        interpret: Turns a status answer into a :class:`JobStatus`.
        interval: First wait between polls, in seconds; doubled up to ``max_interval``.
        timeout: Give up after this many seconds.
    """

    def __init__(
        self,
        client: HttpClient,
        status_url: str,
        interpret: Callable[[httpx.Response], JobStatus],
        *,
        interval: float = 1.0,
        max_interval: float = 30.0,
        timeout: float = 3600.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.status_url = status_url
        self.interpret = interpret
        self.interval = interval
        self.max_interval = max_interval
        self.timeout = timeout
        self._sleep = sleep
        self._clock = clock
        self.polls = 0
        """Status requests made."""

    def wait(self) -> JobStatus:
        """Poll until the job is done or failed.

        Raises:
            RequestFailed: the status url answered with an error (configuration for 4xx).
            DestinationError: (platform) still running after ``timeout``.
        """
        deadline = self._clock() + self.timeout
        interval = self.interval
        while True:
            response = self.client.request("GET", self.status_url)
            self.polls += 1
            if not response.is_success:
                raise RequestFailed(
                    f"GET {safe_url(self.status_url)}: the import job's status answered "
                    f"HTTP {response.status_code}",
                    status=response.status_code,
                    attribution="configuration" if response.is_client_error else "platform",
                )
            status = self.interpret(response)
            if status.state != "running":
                return status
            if self._clock() + interval > deadline:
                raise DestinationError(
                    f"the import job {safe_url(self.status_url)} was still running after "
                    f"{self.timeout:.0f} s",
                    hint="resume the run later: the job is polled again, not resubmitted",
                    attribution="platform",
                )
            self._sleep(interval)
            interval = min(self.max_interval, interval * 2)


# --- Add/remove deliveries -------------------------------------------------------------------


class Operation(StrEnum):
    """What a record asks of the vendor's list or audience."""

    ADD = "add"
    REMOVE = "remove"


OPERATION_COLUMN = "_operation"
"""Optional column of mapped rows saying ``add`` or ``remove``; absent: every row is added."""


class ApiDelivery(Delivery):
    """The base of vendor API deliveries: one unit per runner batch, sent as add and remove
    requests of at most ``max_batch_records`` records each.

    A vendor connector implements :meth:`send` (one request, its per-record results). Removes
    go before adds within a unit, so a record removed and re-added ends up present. Settling
    returns False: the rows are resent, which upserts and set operations make harmless (a
    vendor whose API is not idempotent must override :meth:`settle` and keep a dedupe log).
    """

    batch_rows = 10_000
    max_batch_records: int = 1000
    """The vendor's limit of records per request."""

    def __init__(self, context: DeliveryContext, log: UnitLog) -> None:
        self.context = context
        self.log = log

    @abstractmethod
    def send(self, operation: Operation, rows: pa.Table, request_id: str) -> list[RecordResult]:
        """Send one request of at most ``max_batch_records`` rows (without the operation
        column); ``request_id`` is deterministic, for vendors that take an idempotency key.

        Returns the per-record results (only failures need be listed).

        Raises:
            DestinationError: the request failed as a whole.
        """

    def settle(self, unit: Unit) -> bool:
        """Resend: see the class docstring."""
        return False

    def write(self, batch: pa.RecordBatch, first_row: int, end_row: int) -> None:
        """Send the batch's removes, then its adds, and record the unit."""
        index = first_row // self.batch_rows
        unit = Unit(index, self.context.unit_id(index), first_row, end_row)
        table = pa.Table.from_batches([batch])
        self.log.sending(unit)
        groups: list[tuple[Operation, pa.Table]]
        if OPERATION_COLUMN in table.column_names:
            ops = table.column(OPERATION_COLUMN)
            rows = table.drop_columns([OPERATION_COLUMN])
            groups = [
                (op, rows.filter(pc.equal(ops, op.value)))
                for op in (Operation.REMOVE, Operation.ADD)
            ]
        else:
            groups = [(Operation.ADD, table)]
        rejected: list[pa.Table] = []
        reasons: list[str] = []
        requests = 0
        for op, rows in groups:
            for offset in range(0, rows.num_rows, self.max_batch_records):
                chunk = rows.slice(offset, self.max_batch_records)
                results = self.send(op, chunk, f"{unit.unit_id}:{op.value}:{requests}")
                requests += 1
                accepted, refused, why = split_results(chunk, results)
                unit.rows += accepted.num_rows
                if refused.num_rows:
                    rejected.append(refused)
                    reasons.extend(why)
        if rejected:
            unit.rejected = len(reasons)
            self.log.rejected(unit, pa.concat_tables(rejected), reasons)
        unit.detail = {"requests": requests}
        self.log.delivered(unit)

    def flush(self) -> None:
        """Nothing is buffered between batches."""

    def publish(self, units: list[Unit]) -> dict[str, Any]:
        """Sum up: API deliveries are final unit by unit."""
        return {
            "units": len(units),
            "rows": sum(u.rows for u in units),
            "rejected": sum(u.rejected for u in units),
        }

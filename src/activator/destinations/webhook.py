"""Webhook deliveries: signed JSON or NDJSON batches, per the Standard Webhooks scheme.

One unit is one runner batch of ``batch_size`` source rows, sent as one request whose
``webhook-id`` is the unit id (``run:task:index``). Every attempt is signed afresh
(``webhook-timestamp``, ``webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>``);
the id and the body stay the same, so a receiver that deduplicates on ``webhook-id``, as the
spec asks, takes a resent batch once.

Answers: 2xx delivers; timeouts, connection errors, 408, 425, 429 and 5xx are retried (see
:class:`~activator.destinations.http.HttpClient`); 410 Gone disables the destination
(:class:`DestinationDisabled`); 401, 403, 404, 405, 407, 415 and redirects are configuration
errors; any other 4xx splits the batch in halves (ids ``<id>.0``, ``<id>.1``, recursively)
until the refused records stand alone, and records them as rejected with the receiver's reason.

Requests run ``concurrency`` at a time on a thread pool, but units are reported delivered in
index order only: the ledger's delivered units are always a prefix of the task, so "resume after
the last delivered unit" never skips one. A crash leaves the units in flight *sending*;
:meth:`WebhookDelivery.settle` answers False and the runner resends their rows, which rebuild
the same units under the same ``webhook-id``\\ s: the receiver drops what it already has.
"""

from __future__ import annotations

__all__ = [
    "DestinationDisabled",
    "Signer",
    "WebhookConnector",
    "WebhookDelivery",
    "encode_records",
]

import base64
import binascii
import hashlib
import hmac
import threading
import time
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import polars as pl
import pyarrow as pa

from activator.definitions.webhook import WebhookDestination
from activator.destinations.base import Check, Connector, Delivery, DeliveryContext, Unit, UnitLog
from activator.destinations.http import HttpClient, RequestFailed, check_address, safe_url
from activator.destinations.secrets import SecretResolver
from activator.errors import ActivatorError, ConfigError, DestinationError

CONFIGURATION_STATUSES = frozenset({401, 403, 404, 405, 407, 415})
"""Answers about the destination as a whole, not about some records: no bisection."""

CONTENT_TYPES = {"json": "application/json", "ndjson": "application/x-ndjson"}


class DestinationDisabled(DestinationError):
    """The receiver answered 410 Gone: it wants no more deliveries.

    The destination must be marked disabled (the runner persists it) until someone enables it
    again; the run fails with a configuration error.

    Attributes:
        destination: The destination's name.
    """

    def __init__(self, destination: str, url: str) -> None:
        super().__init__(
            f"destination {destination}: the receiver said 410 Gone at {url}: destination disabled",
            hint="the receiver no longer accepts deliveries; fix the url or enable the "
            "destination again once the receiver is back",
            attribution="configuration",
        )
        self.destination = destination
        self.disables_destination = True


# --- Signing ---------------------------------------------------------------------------------


class Signer:
    """Signs requests per Standard Webhooks with a ``whsec_<base64>`` secret."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def from_secret(cls, value: str, *, name: str) -> Signer:
        """Decode a ``whsec_...`` secret; ``name`` (the reference) is what errors show."""
        encoded = value.removeprefix("whsec_")
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) < 16:
            raise ConfigError(
                f"the webhook signing secret ({name}) is not a whsec_ base64 key of 16 bytes "
                "or more",
                hint='generate one, e.g. python -c "import base64, os; '
                "print('whsec_' + base64.b64encode(os.urandom(32)).decode())\"",
            )
        return cls(key)

    def headers(self, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """The three signature headers for one attempt (now, unless ``timestamp``)."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        mac = hmac.new(self._key, f"{msg_id}.{stamp}.".encode(), hashlib.sha256)
        mac.update(body)
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": stamp,
            "webhook-signature": "v1," + base64.b64encode(mac.digest()).decode(),
        }

    def __repr__(self) -> str:
        return "Signer(***)"


# --- Serialisation ---------------------------------------------------------------------------


def _conversions(schema: pa.Schema) -> list[pl.Expr]:
    """Column rewrites that make polars' JSON what receivers expect: ISO-8601 times (UTC with
    ``Z`` when the column has a time zone) and base64 for binary."""
    exprs: list[pl.Expr] = []
    for column in schema:
        kind = column.type
        if pa.types.is_timestamp(kind):
            col = pl.col(column.name)
            if kind.tz is not None:
                col = col.dt.convert_time_zone("UTC")
                exprs.append(col.dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ"))
            else:
                exprs.append(col.dt.to_string("%Y-%m-%dT%H:%M:%S%.f"))
        elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            exprs.append(pl.col(column.name).bin.encode("base64"))
    return exprs


def encode_records(
    rows: pa.Table, fmt: Literal["json", "ndjson"], envelope: bytes = b'{"data":'
) -> bytes:
    """Serialise rows in one vectorised pass (polars), without Python objects per row.

    ``ndjson``: one JSON object per line. ``json``: ``envelope`` + ``[records]`` + ``}``.
    Dates and times are ISO-8601, decimals strings (exact), NaN null, binary base64.
    """
    frame = pl.from_arrow(rows)
    assert isinstance(frame, pl.DataFrame)
    exprs = _conversions(rows.schema)
    if exprs:
        frame = frame.with_columns(exprs)
    if fmt == "ndjson":
        return frame.write_ndjson().encode()
    return envelope + frame.write_json().encode() + b"}"


# --- Delivery --------------------------------------------------------------------------------


@dataclass
class _Outcome:
    """What one unit's requests achieved (built on a worker thread, logged on the caller's)."""

    rows: int = 0
    requests: int = 0
    bytes: int = 0
    rejected: list[pa.Table] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def _excerpt(response: httpx.Response) -> str:
    try:
        text = " ".join(response.text.split())
    except (UnicodeDecodeError, httpx.ResponseNotRead):
        text = ""
    return text[:200] + ("…" if len(text) > 200 else "")


class WebhookDelivery(Delivery):
    """One task's webhook delivery (see the module docstring for the protocol)."""

    def __init__(
        self,
        definition: WebhookDestination,
        context: DeliveryContext,
        log: UnitLog,
        client: HttpClient,
        signer: Signer,
    ) -> None:
        self.definition = definition
        self.context = context
        self.log = log
        self.batch_rows = definition.batch_size
        self._client = client
        self._signer = signer
        self._url = str(definition.url)
        self._shown_url = safe_url(self._url)
        # The envelope follows Standard Webhooks' payload convention: type, timestamp, data.
        # The timestamp is the run's as-of time, so a resent body is byte-identical.
        as_of = context.as_of.isoformat()
        self._envelope = (
            f'{{"type":"{definition.event_type}","timestamp":"{as_of}","data":'.encode()
        )
        self._pool = ThreadPoolExecutor(
            max_workers=definition.concurrency, thread_name_prefix=f"webhook-{definition.name}"
        )
        self._in_flight: deque[tuple[Unit, Future[_Outcome]]] = deque()
        self._closed = False

    def settle(self, unit: Unit) -> bool:
        """Let the runner resend the unit's rows: they rebuild the same unit under the same
        ``webhook-id`` and the receiver deduplicates (the body is not kept in the ledger)."""
        return False

    def write(self, batch: pa.RecordBatch, first_row: int, end_row: int) -> None:
        """Send one unit in the background; report finished units in index order."""
        if first_row % self.batch_rows:
            raise RuntimeError(
                f"webhook units cover {self.batch_rows} source rows; a batch starts at {first_row}"
            )
        index = first_row // self.batch_rows
        unit = Unit(index, self.context.unit_id(index), first_row, end_row)
        unit.detail = {"webhook_id": unit.unit_id}
        while len(self._in_flight) >= self.definition.concurrency:
            self._finish_oldest()
        self.log.sending(unit)
        self._in_flight.append((unit, self._pool.submit(self._send_unit, unit.unit_id, batch)))
        while self._in_flight and self._in_flight[0][1].done():
            self._finish_oldest()

    def flush(self) -> None:
        """Wait for the units in flight and report them."""
        while self._in_flight:
            self._finish_oldest()

    def publish(self, units: list[Unit]) -> dict[str, Any]:
        """Webhooks are final request by request: sum the task up."""
        return {
            "url": self._shown_url,
            "units": len(units),
            "rows": sum(u.rows for u in units),
            "rejected": sum(u.rejected for u in units),
            "requests": sum(int(u.detail.get("requests", 0)) for u in units),
        }

    def abort(self) -> None:
        """Stop retrying and drop units not started; those started finish or fail."""
        self._client.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Wait for the worker threads and close the connections."""
        if self._closed:
            return
        self._closed = True
        if self._in_flight:  # ended by an error or a crash: nothing more will be reported
            self._client.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    # -- caller's thread: the only one talking to the ledger ------------------------------------

    def _finish_oldest(self) -> None:
        unit, future = self._in_flight[0]
        try:
            outcome = future.result()
        except DestinationDisabled:
            self.log.event(
                "destination disabled: the receiver answered 410 Gone",
                destination=self.definition.name,
                url=self._shown_url,
                unit=unit.unit_id,
            )
            raise
        self._in_flight.popleft()
        if outcome.rejected:
            unit.rejected = len(outcome.reasons)
            self.log.rejected(unit, pa.concat_tables(outcome.rejected), outcome.reasons)
        unit.rows = outcome.rows
        unit.detail = {
            "webhook_id": unit.unit_id,
            "requests": outcome.requests,
            "bytes": outcome.bytes,
        }
        self.log.delivered(unit)

    # -- worker threads: HTTP only --------------------------------------------------------------

    def _send_unit(self, unit_id: str, batch: pa.RecordBatch) -> _Outcome:
        rows = pa.Table.from_batches([batch])
        outcome = _Outcome()
        size = self.batch_rows
        if rows.num_rows <= size:
            self._deliver(rows, unit_id, outcome, rows.num_rows)
        else:  # the mapping expanded the rows: several requests, each with its derived id
            for part, offset in enumerate(range(0, rows.num_rows, size)):
                chunk = rows.slice(offset, size)
                self._deliver(chunk, f"{unit_id}-{part}", outcome, chunk.num_rows)
        return outcome

    def _deliver(self, rows: pa.Table, msg_id: str, outcome: _Outcome, unit_rows: int) -> None:
        if rows.num_rows == 0:
            return
        body = encode_records(rows, self.definition.format, self._envelope)
        response = self._client.request(
            "POST",
            self._url,
            content=body,
            headers=lambda: self._signer.headers(msg_id, body),
        )
        outcome.requests += 1
        outcome.bytes += len(body)
        status = response.status_code
        if response.is_success:
            outcome.rows += rows.num_rows
            return
        if status == 410:
            raise DestinationDisabled(self.definition.name, self._shown_url)
        excerpt = _excerpt(response)
        if status < 400 or status in CONFIGURATION_STATUSES:
            raise RequestFailed(
                f"destination {self.definition.name}: POST {self._shown_url} answered HTTP "
                f"{status}{': ' + excerpt if excerpt else ''}",
                status=status,
                hint="a redirect: set url to the final address"
                if status < 400
                else "check the url, the signing secret and the receiver's access rules",
                attribution="configuration",
            )
        reason = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
        if rows.num_rows == 1:
            outcome.rejected.append(rows)
            outcome.reasons.append(reason)
            # A receiver refusing most records is refusing the format, not some records:
            # stop instead of sending every record on its own.
            if len(outcome.reasons) > max(10, unit_rows // 10):
                raise RequestFailed(
                    f"destination {self.definition.name}: the receiver refused more than "
                    f"{len(outcome.reasons) - 1} records of batch {msg_id.split('.')[0]} "
                    f"one by one ({reason})",
                    status=status,
                    hint="the receiver refuses the payload itself; check the format and mapping",
                    attribution="configuration",
                )
            return
        half = rows.num_rows // 2
        self._deliver(rows.slice(0, half), f"{msg_id}.0", outcome, unit_rows)
        self._deliver(rows.slice(half), f"{msg_id}.1", outcome, unit_rows)


# --- Connector -------------------------------------------------------------------------------


class WebhookConnector(Connector):
    """A webhook destination: address guard, signing secret, and signed deliveries."""

    def __init__(
        self,
        definition: WebhookDestination,
        secrets: SecretResolver,
        workspace_root: Path | None = None,
    ) -> None:
        del workspace_root  # webhooks read no local files
        self.definition = definition
        self._secrets = secrets

    def __repr__(self) -> str:
        return f"WebhookConnector({self.definition.name}, {safe_url(str(self.definition.url))})"

    def _signer(self) -> Signer:
        what = f"destination {self.definition.name}"
        secret = self._secrets.resolve(
            self.definition.credentials["signing_secret"], what=f"{what}.credentials.signing_secret"
        )
        return Signer.from_secret(secret.reveal(), name=secret.name)

    def _client(self) -> HttpClient:
        d = self.definition
        headers = {
            **d.headers,
            "content-type": CONTENT_TYPES[d.format],
            "user-agent": "activator-webhooks",
        }
        bearer = self._secrets.optional(d.credentials, "bearer_token", what=f"destination {d.name}")
        if bearer is not None:
            headers["authorization"] = f"Bearer {bearer.reveal()}"
        return HttpClient(
            retry=d.retries,
            timeout=d.timeout_seconds,
            headers=headers,
            pin=(str(d.url), d.allow_private),
            max_connections=d.concurrency,
            cancel=threading.Event(),
        )

    def check(self) -> list[Check]:
        """Check the address, the signing secret, then POST a signed, empty probe batch."""
        d = self.definition
        url = str(d.url)
        checks: list[Check] = []
        try:
            addresses = check_address(url, allow_private=d.allow_private)
        except DestinationError as exc:
            return [Check("address", False, exc.message)]
        checks.append(Check("address", True, f"{safe_url(url)} → {', '.join(addresses)}"))
        try:
            signer = self._signer()
            client = self._client()
        except ActivatorError as exc:
            return [*checks, Check("signing secret", False, exc.message)]
        checks.append(Check("signing secret", True, "a whsec_ key"))
        now = datetime.now(UTC).isoformat()
        body = (
            b""
            if d.format == "ndjson"
            else f'{{"type":"activator.probe","timestamp":"{now}","data":[]}}'.encode()
        )
        msg_id = f"probe:{uuid.uuid4()}"
        try:
            response = client.request(
                "POST", url, content=body, headers=lambda: signer.headers(msg_id, body)
            )
        except DestinationError as exc:
            return [*checks, Check("signed probe", False, exc.message)]
        finally:
            client.close()
        ok = response.is_success
        detail = f"HTTP {response.status_code}" + ("" if ok else f": {_excerpt(response)}")
        return [*checks, Check("signed probe", ok, detail)]

    def open(self, context: DeliveryContext, log: UnitLog) -> WebhookDelivery:
        """Resolve the secret, check the address now (DNS rebinding) and start delivering."""
        return WebhookDelivery(self.definition, context, log, self._client(), self._signer())

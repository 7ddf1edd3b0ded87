"""A small webhook receiver for the demo: the stand-in for a CRM that campaigns send to.

It listens on 127.0.0.1 only, checks each request's Standard Webhooks signature (HMAC-SHA256
over ``{webhook-id}.{webhook-timestamp}.{body}`` with the ``whsec_`` key, a timestamp at most
five minutes away), accepts each ``webhook-id`` once (a resent batch is answered 200 and
dropped, which is what makes a resumed run exactly-once here), appends the records of every
accepted batch to an NDJSON file, one record a line, and counts them.

Run it as a process until it is stopped (SIGTERM or Ctrl-C print a summary)::

    DEMO_WEBHOOK_SECRET=whsec_... python -m activator.demo.receiver --port 8765 \\
        --secret-env DEMO_WEBHOOK_SECRET --out received.ndjson

or in-process: ``with DemoReceiver(secret, out, port=0) as receiver: ... receiver.url``.

The signature is checked here with the standard library rather than the ``standardwebhooks``
package, a development extra only: the demo runs with the base dependencies.
"""

from __future__ import annotations

__all__ = ["DemoReceiver", "ReceiverCounts", "SignatureError", "main", "verify_signature"]

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from activator.errors import ConfigError

TOLERANCE_SECONDS = 300
"""Standard Webhooks: refuse a timestamp more than five minutes from the receiver's clock."""

HOST = "127.0.0.1"


class SignatureError(Exception):
    """A request whose signature headers do not check out (answered 401)."""


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) < 16:
        raise ConfigError(
            "the demo receiver's secret is not a whsec_ base64 key of 16 bytes or more",
            hint='make one with python -c "import base64, os; '
            "print('whsec_' + base64.b64encode(os.urandom(32)).decode())\"",
        )
    return key


def verify_signature(
    key: bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: int = TOLERANCE_SECONDS,
) -> str:
    """Check a request's Standard Webhooks signature and return its ``webhook-id``.

    Args:
        key: The decoded signing key (the bytes of the ``whsec_`` secret).
        headers: The request's headers, names in lower case.
        body: The raw body, exactly as received.
        now: The receiver's clock (Unix seconds) the timestamp is compared with.
        tolerance: Largest accepted distance between the timestamp and ``now``, in seconds.

    Raises:
        SignatureError: a header is missing, the timestamp is too far from ``now``, or no
            ``v1`` signature of the header matches.
    """
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not (msg_id and stamp and signatures):
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        sent = int(stamp)
    except ValueError:
        raise SignatureError(f"webhook-timestamp {stamp!r} is not a number") from None
    if abs(now - sent) > tolerance:
        raise SignatureError(f"webhook-timestamp {sent} is more than {tolerance} s away")
    mac = hmac.new(key, f"{msg_id}.{stamp}.".encode(), hashlib.sha256)
    mac.update(body)
    expected = base64.b64encode(mac.digest()).decode()
    # The header may hold several space-separated signatures (a key being rotated): one is enough.
    for item in signatures.split():
        version, _, value = item.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return msg_id
    raise SignatureError("no v1 signature matches the body")


def _records(body: bytes, content_type: str) -> list[Any]:
    """The records of a batch: NDJSON lines, or the ``data`` of the JSON envelope."""
    if content_type.startswith("application/x-ndjson"):
        return [json.loads(line) for line in body.splitlines() if line.strip()]
    data = json.loads(body)["data"]
    if not isinstance(data, list):
        raise ValueError("'data' is not a list")
    return data


@dataclass(frozen=True)
class ReceiverCounts:
    """What the receiver has seen so far."""

    records: int
    """Records of the accepted batches (written to the NDJSON file)."""

    batches: int
    """Accepted requests, one per ``webhook-id``."""

    duplicates: int
    """Requests repeating an accepted ``webhook-id`` (answered 200, dropped)."""

    refused: int
    """Requests refused: bad signature (401) or a body that is not a batch (400)."""

    def __str__(self) -> str:
        return (
            f"{self.records:,} records in {self.batches:,} batches "
            f"({self.duplicates:,} duplicates dropped, {self.refused:,} refused)"
        )


class DemoReceiver:
    """An HTTP server on 127.0.0.1 that verifies, deduplicates and stores webhook batches.

    Args:
        secret: The ``whsec_`` signing secret the sender uses.
        out: NDJSON file the records are appended to (created when the receiver starts).
        port: Port to listen on; 0 picks a free one (see :attr:`url`).
        say: Called with a line for each accepted batch (None: silent).
        clock: The receiver's clock for the timestamp check (Unix seconds).
    """

    def __init__(
        self,
        secret: str,
        out: Path,
        *,
        port: int = 0,
        say: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.out = out
        self._key = _key(secret)
        self._port = port
        self._say = say
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._records = self._duplicates = self._refused = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The address to send to (known once started)."""
        if self._server is None:
            raise RuntimeError("the receiver is not started")
        return f"http://{HOST}:{self._server.server_address[1]}/"

    @property
    def counts(self) -> ReceiverCounts:
        """The counts so far."""
        with self._lock:
            return ReceiverCounts(self._records, len(self._seen), self._duplicates, self._refused)

    def start(self) -> DemoReceiver:
        """Listen (the NDJSON file exists from then on) and serve in a background thread.

        Raises:
            ConfigError: the port is taken.
        """
        try:
            server = ThreadingHTTPServer((HOST, self._port), _handler(self))
        except OSError as exc:
            raise ConfigError(
                f"the demo receiver cannot listen on {HOST}:{self._port}: {exc.strerror}",
                hint="stop what uses the port, or pick another one (and the url of the "
                "webhook destination with it)",
            ) from exc
        server.daemon_threads = True
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.touch()
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> DemoReceiver:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def receive(self, headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        """Handle one request: its HTTP status and answer text."""
        try:
            msg_id = verify_signature(self._key, headers, body, now=self._clock())
            records = _records(body, headers.get("content-type", ""))
        except SignatureError as exc:
            return self._refuse(401, f"bad signature: {exc}")
        except (ValueError, KeyError, TypeError) as exc:
            return self._refuse(400, f"not a batch of records: {exc}")
        lines = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
        with self._lock:
            if msg_id in self._seen:
                self._duplicates += 1
                return 200, "duplicate: already received"
            # Written and counted under the lock: the file never holds a batch twice.
            with self.out.open("a", encoding="utf-8") as file:
                file.write(lines)
            self._seen.add(msg_id)
            self._records += len(records)
            total = self._records
        if self._say is not None:
            self._say(f"webhook receiver: +{len(records):,} records, {total:,} in all")
        return 200, "ok"

    def _refuse(self, status: int, reason: str) -> tuple[int, str]:
        with self._lock:
            self._refused += 1
        if self._say is not None:
            self._say(f"webhook receiver: refused a request ({status}): {reason}")
        return status, reason


def _handler(receiver: DemoReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the sender reuses its connections

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, text = receiver.receive(headers, body)
            answer = text.encode()
            self.send_response(status)
            self.send_header("content-type", "text/plain; charset=utf-8")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the receiver reports batches, not HTTP traffic."""

    return Handler


def main(argv: list[str] | None = None) -> int:
    """Run the receiver until SIGTERM or Ctrl-C; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m activator.demo.receiver",
        description="A webhook receiver on 127.0.0.1 for the demo: verifies Standard Webhooks "
        "signatures, drops repeated webhook-ids, appends records to an NDJSON file.",
    )
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument(
        "--secret-env", required=True, help="environment variable holding the whsec_ secret"
    )
    parser.add_argument("--out", type=Path, required=True, help="NDJSON file to append to")
    args = parser.parse_args(argv)
    secret = os.environ.get(args.secret_env)
    if not secret:
        print(
            f"demo receiver: the environment variable {args.secret_env} is not set",
            file=sys.stderr,
        )
        return 2
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        receiver = DemoReceiver(
            secret, args.out, port=args.port, say=lambda line: print(line, flush=True)
        ).start()
    except ConfigError as exc:
        print(f"demo receiver: {exc}", file=sys.stderr)
        return 2
    print(f"webhook receiver: listening on {receiver.url}, writing {args.out}", flush=True)
    stopping.wait()
    receiver.stop()
    print(f"webhook receiver: stopped; received {receiver.counts}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

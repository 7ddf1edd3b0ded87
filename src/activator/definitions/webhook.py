"""Webhook destinations: signed JSON or NDJSON batches (Standard Webhooks)."""

from __future__ import annotations

__all__ = ["RetryPolicy", "WebhookDestination"]

from typing import Literal

from pydantic import Field, HttpUrl, field_validator, model_validator

from activator.definitions.base import Definition, Model
from activator.definitions.common import SecretRef, known_credentials

# Headers the connector writes itself: a static header must not override the signature, the
# idempotency id or the body's type, and a credential must not sit in a committed file.
_RESERVED_HEADERS = frozenset(
    {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "content-type",
        "content-length",
        "host",
        "authorization",
        "proxy-authorization",
        "cookie",
    }
)

CREDENTIAL_KEYS = frozenset({"signing_secret", "bearer_token"})
"""The credentials a webhook destination understands."""


class RetryPolicy(Model):
    """How often and how patiently a request is retried after a transient failure.

    Waits grow exponentially from ``initial_backoff`` to ``max_backoff`` with full jitter (a
    random wait between zero and the cap); a ``Retry-After`` from the receiver wins when it is
    longer.
    """

    max_attempts: int = Field(default=5, ge=1, le=20)
    """Attempts per request, the first one included (1: no retry)."""

    initial_backoff: float = Field(default=0.5, gt=0, le=60)
    """Cap of the first wait, in seconds; doubled after every failed attempt."""

    max_backoff: float = Field(default=30.0, gt=0, le=3600)
    """Longest wait between two attempts, in seconds (also caps ``Retry-After``)."""

    @model_validator(mode="after")
    def _ordered(self) -> RetryPolicy:
        if self.max_backoff < self.initial_backoff:
            raise ValueError("max_backoff must be at least initial_backoff")
        return self


class WebhookDestination(Definition):
    """An HTTP endpoint receiving signed batches of records (Standard Webhooks).

    Every request carries ``webhook-id`` (the batch id, stable across retries and resumed runs,
    so a receiver deduplicates on it), ``webhook-timestamp`` and ``webhook-signature``
    (HMAC-SHA256 with ``credentials.signing_secret``).
    """

    kind: Literal["destination"] = "destination"
    type: Literal["webhook"]
    url: HttpUrl
    """The receiver's address; ``https://`` unless ``allow_private`` is set."""

    format: Literal["json", "ndjson"] = "json"
    """``json``: one object ``{"type", "timestamp", "data": [records]}`` per request;
    ``ndjson``: one record per line."""

    event_type: str = Field(default="activator.records", pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    """The ``type`` of the JSON envelope (dot-separated, per Standard Webhooks)."""

    batch_size: int = Field(default=1000, ge=1, le=10_000)
    """Records per request."""

    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    """Longest wait for the receiver's answer to one request."""

    retries: RetryPolicy = Field(default_factory=RetryPolicy)
    """Retries of timeouts, connection errors, 408, 425, 429 and 5xx answers."""

    concurrency: int = Field(default=4, ge=1, le=64)
    """Requests in flight at the same time."""

    headers: dict[str, str] = {}
    """Static, non-secret headers added to every request (credentials go in ``credentials``)."""

    credentials: dict[str, SecretRef] = {}
    """``signing_secret`` (a ``whsec_...`` base64 key) signs every request; ``bearer_token``,
    when given, is sent as ``Authorization: Bearer ...``."""

    allow_private: bool = False
    """Allow private, loopback and link-local addresses, and plain ``http://`` (refused by
    default, so that a definition cannot aim deliveries at internal services)."""

    @field_validator("headers")
    @classmethod
    def _no_reserved_headers(cls, value: dict[str, str]) -> dict[str, str]:
        reserved = sorted(name for name in value if name.lower() in _RESERVED_HEADERS)
        if reserved:
            raise ValueError(
                f"headers {reserved} are set by Activator or are credentials; "
                "put credentials under 'credentials' (signing_secret, bearer_token)"
            )
        return value

    @field_validator("credentials")
    @classmethod
    def _known_credentials(cls, value: dict[str, SecretRef]) -> dict[str, SecretRef]:
        return known_credentials(value, CREDENTIAL_KEYS, "a webhook")

    @model_validator(mode="after")
    def _signed_and_https(self) -> WebhookDestination:
        if "signing_secret" not in self.credentials:
            raise ValueError(
                "credentials.signing_secret is required: every request is signed "
                "(e.g. signing_secret: {env: WEBHOOK_SECRET})"
            )
        if self.url.scheme != "https" and not self.allow_private:
            raise ValueError(
                "url must use https:// (plain http:// is only allowed with allow_private: true, "
                "for receivers on a private network)"
            )
        return self

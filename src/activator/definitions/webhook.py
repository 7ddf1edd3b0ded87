"""Webhook destinations: signed JSON batches (Standard Webhooks)."""

from __future__ import annotations

__all__ = ["WebhookDestination"]

from typing import Literal

from pydantic import HttpUrl

from activator.definitions.base import Definition
from activator.definitions.common import SecretRef


class WebhookDestination(Definition):
    """An HTTP endpoint receiving signed JSON batches (Standard Webhooks)."""

    kind: Literal["destination"] = "destination"
    type: Literal["webhook"]
    url: HttpUrl
    credentials: dict[str, SecretRef] = {}
    """``signing_secret`` signs every request."""

    allow_private: bool = False
    """Allow private and loopback addresses (refused by default)."""

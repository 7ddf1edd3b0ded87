"""The Activations list as the server keeps it: computed when something changed, each page
rendered to JSON once.

Computing the list (every activation, its latest run, its next run) takes a fraction of a
second at a thousand activations; answering it must take a millisecond under 50 clients. So
the server keeps the computed list and the pages rendered from it, and at most once a second
asks the store for its change marker (a few index look-ups): the list is computed again only
when a definition or a run changed, when a next run shown has passed, or when a change was
made through this server (which drops it at once). One request at a time computes it; the
others meanwhile answer the list it replaces.
"""

from __future__ import annotations

__all__ = ["ActivationsView", "Snapshot"]

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from activator.services.workspace import ActivationStatus, UpcomingCache, activation_list
from activator.store import MetadataStore

CHECK_EVERY = 1.0
"""Seconds between two looks at the store's change marker."""

RECOMPUTE_EVERY = 60.0
"""Seconds after which the list is computed again even if the marker did not change (a
change the marker cannot see, such as a lapsed lease, shows within this)."""

PAGES = 256
"""Rendered pages kept per computed list (distinct filters, limits and offsets)."""


@dataclass
class Snapshot:
    """One computed Activations list and the pages rendered from it."""

    rows: list[ActivationStatus]
    marker: tuple[Any, ...]
    computed: float
    """``time.monotonic()`` when it was computed."""

    checked: float
    """When the marker was last found unchanged."""

    next_due: datetime | None
    """The earliest next run shown: once passed, the list is out of date."""

    pages: dict[tuple[Any, ...], bytes] = field(default_factory=dict)


class ActivationsView:
    """The server's Activations list (see the module doc)."""

    def __init__(self, store: MetadataStore, *, timezone: str, clock: Callable[[], datetime]):
        self.store = store
        self.timezone = timezone
        self.clock = clock
        self.upcoming: UpcomingCache = {}
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()
        self._refresh = threading.Lock()

    def drop(self) -> None:
        """Forget the list: a change made through this server shows at once."""
        with self._lock:
            self._snapshot = None

    def fresh(self) -> Snapshot | None:
        """The current list if it needs no look at the store (checked within a second)."""
        with self._lock:
            found = self._snapshot
        if found is not None and time.monotonic() - found.checked < CHECK_EVERY:
            return found
        return None

    def current(self) -> Snapshot:
        """The list, checked against the store's change marker at most once a second and
        computed again when it changed (blocking I/O: call it from a thread)."""
        found = self.fresh()
        if found is not None:
            return found
        with self._lock:
            old = self._snapshot
        if old is not None and not self._refresh.acquire(blocking=False):
            return old  # another request is looking: answer the list it may replace
        if old is None:
            self._refresh.acquire()
        try:
            with self._lock:
                again = self._snapshot
            if again is not None and again is not old:
                return again  # computed while this request waited
            now_wall, now = self.clock(), time.monotonic()
            marker = self.store.change_marker()
            if (
                old is not None
                and old.marker == marker
                and now - old.computed < RECOMPUTE_EVERY
                and (old.next_due is None or old.next_due > now_wall)
            ):
                old.checked = now
                return old
            rows = activation_list(
                self.store, timezone=self.timezone, as_of=now_wall, upcoming=self.upcoming
            )
            upcoming = [r.next_run for r in rows if r.next_run is not None]
            snapshot = Snapshot(
                rows=rows,
                marker=marker,
                computed=now,
                checked=now,
                next_due=min(upcoming, default=None),
            )
            with self._lock:
                # A change made through the server while computing dropped the old list: keep
                # the new one only if nothing dropped it meanwhile.
                if self._snapshot is old:
                    self._snapshot = snapshot
            return snapshot
        finally:
            self._refresh.release()

    @staticmethod
    def page(snapshot: Snapshot, key: tuple[Any, ...]) -> bytes | None:
        """A page already rendered from ``snapshot``."""
        return snapshot.pages.get(key)

    @staticmethod
    def keep(snapshot: Snapshot, key: tuple[Any, ...], body: bytes) -> None:
        """Keep a rendered page with its list."""
        if len(snapshot.pages) < PAGES:
            snapshot.pages[key] = body

"""The delivery ledger on the metadata store: what connectors report, kept durably.

Each ``sending`` is committed before the side effect (together with the previous unit's
``delivered``, held back until then), so after a ``kill -9`` at any moment the ledger names
every unit the destination may have seen; see :mod:`activator.destinations.base` for how a
resume settles them. Writing the ledger also renews
the run's lease, which tells other processes that this run is alive.
"""

from __future__ import annotations

__all__ = ["StoreLedger"]

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pyarrow as pa

from activator.destinations.base import Unit
from activator.store import LedgerEntry, MetadataStore

LEASE_TTL = timedelta(minutes=2)
"""How long a run's lease lasts without renewal; a crashed owner is presumed dead after it."""

RENEW_EVERY = 20.0
"""Seconds between lease renewals while units are being written."""


class StoreLedger:
    """One deliver task's ledger in the metadata store (implements ``runtime.delivery.Ledger``).

    Args:
        store: The metadata store.
        run_id: The run.
        task: The task name.
        activation: ``(kind, name)`` of the activation, for rejected records.
        destination: The destination's name, for rejected records.
        owner: The lease owner (``host:pid``) renewing the run's lease.
        on_unit: Called with each delivered unit (progress bars, run events).
        checkpoint: Called before each unit is sent; it raises to stop the delivery there
            (a cancel request, SIGTERM), so the unit in flight is the last one sent.
    """

    def __init__(
        self,
        store: MetadataStore,
        run_id: str,
        task: str,
        *,
        activation: tuple[str, str],
        destination: str,
        owner: str,
        on_unit: Callable[[Unit], None] | None = None,
        checkpoint: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._checkpoint = checkpoint
        self._run_id = run_id
        self._task = task
        self._activation = activation
        self._destination = destination
        self._owner = owner
        self._on_unit = on_unit
        self._renewed = time.monotonic()
        # A delivered unit is written with the next unit's "sending" (one transaction for
        # two records). Until then the ledger shows it "sending", which a resume settles with
        # the destination exactly like a unit whose confirmation was lost: the protocol
        # already covers it, and the ledger costs half as many commits.
        self._held: list[LedgerEntry] = []

    def _renew(self) -> None:
        if time.monotonic() - self._renewed >= RENEW_EVERY:
            self._store.renew_lease(self._run_id, self._owner, LEASE_TTL)
            self._renewed = time.monotonic()

    @staticmethod
    def _entry(unit: Unit, state: str) -> LedgerEntry:
        return LedgerEntry(
            idx=unit.index,
            unit_id=unit.unit_id,
            state=state,
            first_row=unit.first_row,
            end_row=unit.end_row,
            rows=unit.rows,
            rejected=unit.rejected,
            detail=dict(unit.detail),
        )

    def flush(self) -> None:
        """Write the delivered units held back."""
        if self._held:
            held, self._held = self._held, []
            self._store.record_units(self._run_id, self._task, held)

    def sending(self, unit: Unit) -> None:
        """Record the unit as about to become visible at the destination (with the
        confirmation of the unit before it, held back until now)."""
        if self._checkpoint is not None:
            try:
                self._checkpoint()
            except BaseException:
                # Stopping here: the confirmations held back are true, keep them; and let the
                # units already in flight be finished and recorded (no second stop).
                self._checkpoint = None
                self.flush()
                raise
        self._renew()
        held, self._held = self._held, []
        self._store.record_units(self._run_id, self._task, [*held, self._entry(unit, "sending")])

    def delivered(self, unit: Unit) -> None:
        """Record the unit as confirmed (written with the next ``sending``, or at once for
        the publish step, the task's last)."""
        self._held.append(self._entry(unit, "delivered"))
        if unit.index < 0:
            self.flush()
        if self._on_unit is not None:
            self._on_unit(unit)

    def rejected(self, unit: Unit, rows: pa.Table, reasons: list[str]) -> None:
        """Keep refused rows with their reasons (rejects are few; they are stored as JSON)."""
        self.flush()
        kind, name = self._activation
        self._store.add_rejected(
            self._run_id,
            self._task,
            unit.unit_id,
            activation_kind=kind,
            activation=name,
            destination=self._destination,
            records=[_jsonable(row) for row in rows.to_pylist()],
            reasons=reasons,
        )

    def event(self, message: str, **fields: Any) -> None:
        """Add a line to the run's event log."""
        self.flush()
        level = str(fields.pop("level", "info"))
        self._store.add_event(
            self._run_id, message, level=level, task=self._task, fields=_jsonable(fields)
        )

    def units(self) -> list[Unit]:
        """Delivered units, in index order."""
        self.flush()
        return [
            _unit(e) for e in self._store.ledger(self._run_id, self._task) if e.state == "delivered"
        ]

    def pending(self) -> list[Unit]:
        """Units an interrupted attempt left *sending*."""
        self.flush()
        return [
            _unit(e) for e in self._store.ledger(self._run_id, self._task) if e.state == "sending"
        ]

    def settled(self, unit: Unit) -> None:
        """Forget a *sending* unit that never arrived (its rows are sent again)."""
        self.flush()
        self._store.forget_unit(self._run_id, self._task, unit.index)


def _unit(entry: LedgerEntry) -> Unit:
    return Unit(
        index=entry.idx,
        unit_id=entry.unit_id,
        first_row=entry.first_row,
        end_row=entry.end_row,
        rows=entry.rows,
        rejected=entry.rejected,
        detail=dict(entry.detail),
    )


def _jsonable(value: Any) -> Any:
    """Make a value JSON-compatible for the store (dates, decimals and bytes as text)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return value.hex()
    return value.isoformat() if hasattr(value, "isoformat") else str(value)

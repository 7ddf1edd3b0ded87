"""The delivery ledger on the metadata store: what connectors report, kept durably.

Each ``sending``/``delivered`` is one short transaction, so a ``kill -9`` at any moment leaves
the ledger describing exactly what the destination may have seen; see
:mod:`activator.destinations.base` for how a resume settles it. Writing the ledger also renews
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
    ) -> None:
        self._store = store
        self._run_id = run_id
        self._task = task
        self._activation = activation
        self._destination = destination
        self._owner = owner
        self._on_unit = on_unit
        self._renewed = time.monotonic()

    def _renew(self) -> None:
        if time.monotonic() - self._renewed >= RENEW_EVERY:
            self._store.renew_lease(self._run_id, self._owner, LEASE_TTL)
            self._renewed = time.monotonic()

    def _write(self, unit: Unit, state: str) -> None:
        self._store.record_unit(
            self._run_id,
            self._task,
            LedgerEntry(
                idx=unit.index,
                unit_id=unit.unit_id,
                state=state,
                first_row=unit.first_row,
                end_row=unit.end_row,
                rows=unit.rows,
                rejected=unit.rejected,
                detail=dict(unit.detail),
            ),
        )

    def sending(self, unit: Unit) -> None:
        """Record the unit as about to become visible at the destination."""
        self._renew()
        self._write(unit, "sending")

    def delivered(self, unit: Unit) -> None:
        """Record the unit as confirmed."""
        self._write(unit, "delivered")
        if self._on_unit is not None:
            self._on_unit(unit)

    def rejected(self, unit: Unit, rows: pa.Table, reasons: list[str]) -> None:
        """Keep refused rows with their reasons (rejects are few; they are stored as JSON)."""
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
        level = str(fields.pop("level", "info"))
        self._store.add_event(
            self._run_id, message, level=level, task=self._task, fields=_jsonable(fields)
        )

    def units(self) -> list[Unit]:
        """Delivered units, in index order."""
        return [
            _unit(e) for e in self._store.ledger(self._run_id, self._task) if e.state == "delivered"
        ]

    def pending(self) -> list[Unit]:
        """Units an interrupted attempt left *sending*."""
        return [
            _unit(e) for e in self._store.ledger(self._run_id, self._task) if e.state == "sending"
        ]

    def settled(self, unit: Unit) -> None:
        """Forget a *sending* unit that never arrived (its rows are sent again)."""
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

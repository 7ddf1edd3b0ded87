"""The contract between the delivery runner and a destination connector.

A run's deliver task streams the rows to send, in a stable order, as Arrow record batches. Each
source row has a sequence number (``_seq``, 0-based, gapless); a batch covers the source rows
``[first_row, end_row)``. The connector groups what it receives into **units**: a file part, a
webhook request, a staged COPY. A unit covers whole batches, so it has a source-row range too,
and its id is a pure function of (run, task, index): a resumed run rebuilds exactly the same
units from the same rows.

The connector tells the ledger (:class:`UnitLog`) about each unit at the right moments:

* ``sending(unit)`` **before** the side effect a reader could see (the rename of a file, the
  POST of a webhook, the COPY's commit), with whatever it needs later to settle the unit;
* ``delivered(unit)`` once the destination confirmed it.

On resume the runner hands every unit left *sending* to :meth:`Delivery.settle`, which asks the
destination whether it arrived (a final file with the recorded checksum, a load marker row in
the target's transaction, a webhook resent under the same ``webhook-id``). Streaming then
restarts at the end of the last delivered unit. That is how no batch is sent twice and none is
skipped, even after ``kill -9``.
"""

from __future__ import annotations

__all__ = [
    "SEQ_COLUMN",
    "Check",
    "Connector",
    "Delivery",
    "DeliveryContext",
    "Unit",
    "UnitLog",
]

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

SEQ_COLUMN = "_seq"
"""The source-row sequence column the runner adds; connectors never send it."""


@dataclass(frozen=True)
class DeliveryContext:
    """What a connector knows about the run it delivers for.

    Attributes:
        run_id: The run's id.
        task: The task's name within the run, e.g. ``deliver:feed`` (stable across resumes).
        as_of: The run's as-of time (the one clock; filename templates use it as ``run_time``).
        timezone: The workspace's time zone, the default for templates.
        activation_kind: ``campaign``, ``journey`` or ``orchestration``.
        activation: The activation's name.
        names: Template names: ``campaign``, ``sub_audience``, ``group``, ``node``,
            ``orchestration`` (whichever apply).
        workspace_root: The workspace folder (local paths are relative to it).
    """

    run_id: str
    task: str
    as_of: datetime
    timezone: str
    activation_kind: str
    activation: str
    names: Mapping[str, str] = field(default_factory=dict)
    workspace_root: Path = Path(".")

    def unit_id(self, index: int) -> str:
        """The deterministic id of the task's unit number ``index``."""
        return f"{self.run_id}:{self.task}:{index}"


@dataclass
class Unit:
    """One unit of delivery and its ledger entry.

    Attributes:
        index: 0-based position within the task; ``-1`` is the task's publish step.
        unit_id: ``run:task:index``; also the idempotency key sent to HTTP destinations.
        first_row: First source row (``_seq``) the unit covers.
        end_row: One past its last source row.
        rows: Rows delivered (after mapping: shrink and expansion change it).
        rejected: Rows the destination rejected (kept with reasons in the ledger).
        detail: Connector-specific, JSON-serialisable facts needed to settle or report the
            unit: file names, temporary names, bytes, checksums, response summaries.
    """

    index: int
    unit_id: str
    first_row: int
    end_row: int
    rows: int = 0
    rejected: int = 0
    detail: dict[str, Any] = field(default_factory=dict)


class UnitLog(Protocol):
    """The ledger as a connector sees it (implemented by the runner on the metadata store)."""

    def sending(self, unit: Unit) -> None:
        """Record ``unit`` as about to become visible at the destination."""

    def delivered(self, unit: Unit) -> None:
        """Record ``unit`` as confirmed by the destination."""

    def rejected(self, unit: Unit, rows: pa.Table, reasons: list[str]) -> None:
        """Keep rows the destination refused, one reason per row, for a later retry."""

    def event(self, message: str, **fields: Any) -> None:
        """Add a line to the run's event log (never with a secret in it)."""

    def units(self) -> list[Unit]:
        """Units of this task already delivered (by this or an earlier attempt), in order."""


@dataclass(frozen=True)
class Check:
    """One step of ``activator destination test``: what was tried and how it went."""

    step: str
    ok: bool
    detail: str = ""


class Delivery(ABC):
    """One task's delivery to one destination: receives batches, emits units."""

    batch_rows: int = 10_000
    """Source rows per batch the runner hands to :meth:`write`."""

    @abstractmethod
    def settle(self, unit: Unit) -> bool:
        """Decide a unit a crashed attempt left *sending*.

        Returns True when it reached the destination (the connector then calls
        ``log.delivered`` with its final facts), False when it did not (the runner resends its
        rows). Must not make anything visible twice.
        """

    @abstractmethod
    def write(self, batch: pa.RecordBatch, first_row: int, end_row: int) -> None:
        """Take the mapped rows made from source rows ``[first_row, end_row)``.

        Batches arrive in order and contiguously. The connector closes units when it likes
        (always at batch boundaries) and reports them to the log.
        """

    @abstractmethod
    def flush(self) -> None:
        """End of the stream: close and deliver the unit still open, if any."""

    @abstractmethod
    def publish(self, units: list[Unit]) -> dict[str, Any]:
        """Make the whole delivery final, once every unit is delivered.

        Files write the manifest and the ``.DONE`` marker; tables swap or merge the staged
        rows in one transaction. Must be idempotent: a crash during publish runs it again.
        Returns a JSON-serialisable summary for the run.
        """

    def abort(self) -> None:  # noqa: B027 - optional hook
        """Clean up after a failure (temporary files, open connections). Units already
        delivered stay, so that a resume continues after them."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; called after publish or abort."""


class Connector(ABC):
    """A configured destination: connection checks and delivery sessions.

    Constructed from the destination's definition and a secret resolver; credentials are
    resolved only when needed and never appear in messages, events or ``repr``.
    """

    @abstractmethod
    def check(self) -> list[Check]:
        """Test the connection for real (``activator destination test``): write and delete a
        probe object, check privileges, or send a signed probe. Each step says what failed."""

    @abstractmethod
    def open(self, context: DeliveryContext, log: UnitLog) -> Delivery:
        """Start (or resume) delivering one task of a run."""

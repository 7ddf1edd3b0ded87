"""Running one deliver task: settle what a crash left open, stream the rest, publish.

The loop is the same for every connector and every ledger (the metadata store's, or a
memory one in tests). See :mod:`activator.destinations.base` for the unit protocol.
"""

from __future__ import annotations

__all__ = ["PUBLISH", "Ledger", "Mapper", "Source", "TaskResult", "deliver_task"]

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import pyarrow as pa

from activator.destinations.base import SEQ_COLUMN, Connector, DeliveryContext, Unit, UnitLog
from activator.errors import EngineError, RunStopped

_T = TypeVar("_T")

Source = Callable[[int, int], Iterator[pa.RecordBatch]]
"""``source(start_row, batch_rows)``: the rows to send from source row ``start_row`` on, in
``_seq`` order, as batches of ``batch_rows`` source rows; each batch carries ``_seq``."""

Mapper = Callable[[pa.RecordBatch], pa.RecordBatch]
"""Turns a source batch (``_seq`` removed) into the destination's rows (the attribute
mapping). Counting shrink and expansion is the mapper's business."""

PUBLISH = -1
"""The unit index of a task's publish step in the ledger."""


class Ledger(UnitLog, Protocol):
    """A :class:`UnitLog` that can also say what an earlier attempt of the task recorded."""

    def pending(self) -> list[Unit]:
        """Units of this task left *sending* by an interrupted attempt."""

    def settled(self, unit: Unit) -> None:
        """Forget a *sending* unit that never reached the destination (it is resent)."""


@dataclass
class TaskResult:
    """What a deliver task did: units delivered, rows, rejects, the publish summary."""

    units: list[Unit] = field(default_factory=list)
    rows: int = 0
    rejected: int = 0
    resumed_from: int = 0
    """The source row this attempt started streaming at (0 unless it resumed)."""
    end_row: int = 0
    """One past the last source row delivered: the caller checks it against the row count,
    so a stream cut short can never pass for a complete delivery."""
    published: dict[str, Any] = field(default_factory=dict)


def deliver_task(
    connector: Connector,
    context: DeliveryContext,
    ledger: Ledger,
    source: Source,
    mapper: Mapper | None = None,
    *,
    expected_rows: int | None = None,
) -> TaskResult:
    """Deliver one task, resuming after whatever an earlier attempt completed.

    1. Units left *sending* are settled by the destination: arrived → delivered; not →
       forgotten and resent.
    2. Streaming restarts at the end of the last delivered unit (units cover whole batches of
       contiguous source rows, so nothing is skipped or repeated).
    3. When every row is delivered, the delivery is published (idempotent). With
       ``expected_rows``, a stream that ends early fails the task *before* publishing: a
       source cut short can never pass for a complete delivery.
    """
    delivery = connector.open(context, ledger)
    try:
        for unit in ledger.pending():
            if unit.index == PUBLISH:
                ledger.settled(unit)  # a publish in flight: publishing again is idempotent
                continue
            if not delivery.settle(unit):
                ledger.settled(unit)
                ledger.event("unit resent after an interruption", unit=unit.unit_id)
        delivered = sorted(ledger.units(), key=lambda u: u.index)
        start = resumed_from = max((u.end_row for u in delivered if u.index >= 0), default=0)
        if start:
            ledger.event("resuming", from_row=start, units_done=len(delivered))
        with _prefetched(_mapped(source(start, delivery.batch_rows), mapper)) as batches:
            for rows, first, end in batches:
                if first != start:
                    raise RuntimeError(f"source rows out of order: expected {start}, got {first}")
                delivery.write(rows, first, end)
                start = end
        if expected_rows is not None and start != expected_rows:
            raise EngineError(
                f"{context.task}: the stream of rows to send ended at row {start:,} of "
                f"{expected_rows:,}; nothing beyond it is marked delivered, nothing was published",
                hint=f"`activator runs resume {context.run_id}` continues from there",
            )
        delivery.flush()
        units = sorted(ledger.units(), key=lambda u: u.index)
        parts = [u for u in units if u.index >= 0]
        done = next((u for u in units if u.index == PUBLISH), None)
        if done is not None:
            published = dict(done.detail)
        else:
            step = Unit(PUBLISH, context.unit_id(PUBLISH), 0, start)
            ledger.sending(step)
            published = delivery.publish(parts)
            step.rows = sum(u.rows for u in parts)
            step.detail = published
            ledger.delivered(step)
    except Exception:
        # Only on errors: a crash (or a simulated one in tests) leaves temporary state as a
        # kill -9 would, and the resume must cope with it.
        delivery.abort()
        raise
    except RunStopped:
        # Stopped between two units (SIGTERM, cancel): finish and record the units already in
        # flight (requests sent concurrently), so that the resume sends none of them again.
        try:
            delivery.flush()
        except Exception:
            delivery.abort()
        raise
    finally:
        delivery.close()
    return TaskResult(
        units=parts,
        rows=sum(u.rows for u in parts),
        rejected=sum(u.rejected for u in parts),
        resumed_from=resumed_from,
        end_row=start,
        published=published,
    )


def _mapped(
    batches: Iterator[pa.RecordBatch], mapper: Mapper | None
) -> Iterator[tuple[pa.RecordBatch, int, int]]:
    """Source batches → (mapped rows, first source row, end source row)."""
    for batch in batches:
        if batch.num_rows == 0:
            continue
        seq = batch.column(SEQ_COLUMN)
        first, end = int(seq[0].as_py()), int(seq[-1].as_py()) + 1
        rows = batch.drop_columns([SEQ_COLUMN])
        yield (mapper(rows) if mapper is not None else rows), first, end


PREFETCH = 2
"""Batches read and mapped ahead of the connector: reading the engine and mapping (Arrow and
DuckDB kernels, which release the GIL) overlap with writing and sending, and memory stays
bounded by a few batches."""

_DONE = object()


@contextmanager
def _prefetched(items: Iterator[_T], depth: int = PREFETCH) -> Iterator[Iterator[_T]]:
    """Iterate ``items`` in a worker thread, at most ``depth`` ahead of the consumer.

    An exception in the worker is raised in the consumer; when the consumer stops early (an
    error, a crash), the worker is told to stop and joined.
    """
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(exc)

    worker = threading.Thread(target=work, name="activator-prefetch", daemon=True)
    worker.start()

    def consume() -> Iterator[_T]:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    try:
        yield consume()
    finally:
        stop.set()
        while worker.is_alive():
            with contextlib.suppress(queue.Empty):
                slots.get(timeout=0.1)
        worker.join()

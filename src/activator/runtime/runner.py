"""Executing a run: evaluate the rows to send once, then deliver them to each destination.

A run is a list of tasks recorded in the metadata store:

* ``evaluate`` computes the rows to send in the engine and freezes them in a data-plane table
  (``run_<id>``) with a gapless sequence number ``_seq``. Every deliver task, and every resume,
  reads that snapshot, so a resumed run rebuilds exactly the same batches.
* ``deliver:<destination>`` streams the snapshot in ``_seq`` order as Arrow record batches,
  through the attribute mapping, into the destination's connector, with the ledger recording
  each unit (:mod:`activator.runtime.delivery`).

The run is claimed with a lease before any work, so two processes never execute it at once; a
run whose owner died (``kill -9``) is resumed by claiming it again: finished tasks are skipped,
and the deliver tasks continue after their last delivered unit.
"""

from __future__ import annotations

__all__ = [
    "DeliveryPlan",
    "RunExecutor",
    "RunPlan",
    "RunStopped",
    "dead_here",
    "engine_failure",
    "heartbeat",
    "owner_id",
    "take_lease",
]

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from activator.destinations.base import SEQ_COLUMN, Connector, DeliveryContext, Unit
from activator.engines.base import Engine
from activator.errors import (
    ActivatorError,
    ConfigError,
    DestinationError,
    EngineError,
    RunStopped,
)
from activator.mapping.mapper import Mapper
from activator.runtime.delivery import deliver_task
from activator.runtime.ledger import LEASE_TTL, RENEW_EVERY, StoreLedger
from activator.store import MetadataStore, RunClaimedError, RunSummary

Progress = Callable[[str, int, int | None], None]
"""``progress(task, rows done, rows in total or None)``."""


SORT_WINDOW = 500_000
"""Rows of the snapshot the engine sorts at a time while streaming it in ``_seq`` order."""

MAX_RETRIED = 100_000
"""At most this many earlier rejected records are resent per destination and run."""


HEARTBEAT = 2.0
"""Seconds between two looks at the run's cancel request by a running executor; its lease is
renewed every :data:`RENEW_EVERY` of them."""


@contextlib.contextmanager
def heartbeat(
    store: MetadataStore, run_id: str, owner: str, canceled: threading.Event
) -> Iterator[None]:
    """While the body runs, a thread renews the run's lease (a long query writes no ledger,
    and a lapsed lease would let another scheduler take the run) and sets ``canceled`` when
    ``runs cancel`` asks for the run to stop."""
    done = threading.Event()

    def beat() -> None:
        beats = 0
        while not done.wait(HEARTBEAT):
            beats += 1
            try:
                if store.cancel_requested(run_id):
                    canceled.set()
                if beats * HEARTBEAT >= RENEW_EVERY:
                    beats = 0
                    store.renew_lease(run_id, owner, LEASE_TTL)
            except ActivatorError:
                continue  # the store is unreachable for now: the run's own writes will say

    thread = threading.Thread(target=beat, name=f"heartbeat-{run_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


_QUERY_PROBLEMS = ("Catalog", "Binder", "Parser", "Syntax", "Programming", "Analysis", "Undefined")


def engine_failure(exc: Exception, doing: str) -> EngineError:
    """An engine's own exception as an :class:`EngineError` with its first line: a query the
    engine refuses (unknown table or column, syntax) is the configuration's to fix; anything
    else (I/O, connection, out of memory) is a platform failure, retried."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    error = EngineError(f"{doing} failed in the engine: {first}")
    error.bad_input = any(word in type(exc).__name__ for word in _QUERY_PROBLEMS)
    return error


def owner_id() -> str:
    """This process as a lease owner: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class DeliveryPlan:
    """One destination of a run.

    Attributes:
        destination: The destination's name (the task is ``deliver:<name>``).
        connector: Its connector.
        mapping: The attribute mapping (None sends the snapshot's columns as they are); its
            ``totals`` count shrink and expansion.
        names: Names for templates and run metadata (campaign, group, node...).
        columns: The snapshot columns this destination reads (None: all).
        part: With a partitioned plan, the partition value whose rows this delivery sends
            (None: every row).
        key: Tells apart deliveries to the same destination (``<sub-audience>/<group>``);
            part of the task's name.
        describe: Added to the delivery's counts in the run (sub-audience, group...).
    """

    destination: str
    connector: Connector
    mapping: Mapper | None = None
    names: dict[str, str] = field(default_factory=dict)
    columns: list[str] | None = None
    part: int | None = None
    key: str | None = None
    describe: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The destination, and the key when there is one (``drop:vip/offer``)."""
        return self.destination if self.key is None else f"{self.destination}:{self.key}"

    @property
    def task(self) -> str:
        """The task's name."""
        return f"deliver:{self.label}"


@dataclass
class RunPlan:
    """What a run does: the rows to send, and where.

    Attributes:
        rows: Builds the expression of the rows to send (evaluated once, in the engine).
        deliveries: The destinations.
        keep_snapshot: Keep the ``run_<id>`` table after success (campaigns diff against it).
        retry_rejected: After each destination's delivery, send again the records it
            rejected in earlier runs of the activation (task ``retry:<destination>``).
        partition: An integer column of the rows splitting them between deliveries
            (``DeliveryPlan.part``); the snapshot is then ordered by it, then ``order_by``,
            so each delivery's rows are one contiguous range of ``_seq``.
        order_by: Columns ordering the rows within a partition (a total order makes the
            batches the same whenever the snapshot is rebuilt).
        finish: Called once the deliveries are done, or have failed, with the ``part`` of
            every delivery that succeeded; returns counts to add to the run's (a campaign
            records its recipients here). It must be idempotent: a resumed run calls it again.
    """

    rows: Callable[[Engine], ir.Table]
    deliveries: list[DeliveryPlan]
    keep_snapshot: bool = False
    retry_rejected: bool = False
    partition: str | None = None
    order_by: list[str] = field(default_factory=list)
    finish: Callable[[Engine, RunSummary, list[int]], dict[str, Any]] | None = None


def snapshot_name(run_id: str) -> str:
    """The data-plane table holding a run's rows."""
    return "run_" + run_id.replace("-", "")


class RunExecutor:
    """Runs (and resumes) runs against one engine and one metadata store.

    Args:
        store: The metadata store.
        engine: The engine, opened for writing.
        workspace_root: The workspace folder.
        timezone: The workspace's time zone (for templates).
        progress: Reports rows delivered per task (the CLI draws bars from it).
        sort_window: Rows of the snapshot sorted at a time while streaming it.
        stop: Set (by a SIGTERM handler) to stop the run at its next checkpoint and put it
            back in the queue.
    """

    def __init__(
        self,
        store: MetadataStore,
        engine: Engine,
        *,
        workspace_root: Path,
        timezone: str,
        progress: Progress | None = None,
        sort_window: int = SORT_WINDOW,
        stop: threading.Event | None = None,
    ) -> None:
        self.store = store
        self.stop = stop or threading.Event()
        self._canceled = threading.Event()
        self.sort_window = sort_window
        self.engine = engine
        self.workspace_root = workspace_root
        self.timezone = timezone
        self.progress = progress
        self.owner = owner_id()

    def execute(self, run: RunSummary, plan: RunPlan) -> RunSummary:
        """Claim the run, do (or finish) its tasks, and record how it ended.

        Raises:
            RunClaimedError: another live process is executing it.
        """
        self._claim(run.run_id)
        with self._heartbeat(run.run_id):
            try:
                return self._execute(run, plan)
            except RunStopped as stopped:
                return self._stopped(run, stopped)

    def checkpoint(self) -> None:
        """Raise :class:`RunStopped` when the run was canceled or the process told to stop."""
        if self._canceled.is_set():
            raise RunStopped("canceled on request", canceled=True)
        if self.stop.is_set():
            raise RunStopped("stopped by SIGTERM", canceled=False)

    def _stopped(self, run: RunSummary, stopped: RunStopped) -> RunSummary:
        if stopped.canceled:
            self.store.add_event(run.run_id, "run canceled on request", level="warning")
            self._drop_snapshot(run.run_id)
            return self.store.finish_run(
                run.run_id, status="canceled", counts=run.counts, error="canceled on request"
            )
        return self.store.requeue_run(
            run.run_id,
            self.owner,
            f"{stopped.reason}: the run goes back to the queue and resumes where it stopped",
        )

    def _heartbeat(self, run_id: str) -> contextlib.AbstractContextManager[None]:
        self._canceled.clear()
        return heartbeat(self.store, run_id, self.owner, self._canceled)

    def _execute(self, run: RunSummary, plan: RunPlan) -> RunSummary:
        counts: dict[str, Any] = {}
        try:
            self.checkpoint()
            total, parts = self._evaluate(run, plan)
            counts["customers"] = total
            deliveries: dict[str, Any] = {}
            failures: list[tuple[str, ActivatorError]] = []
            retried_for: set[str] = set()
            for position, delivery in enumerate(plan.deliveries, start=1):
                self.checkpoint()
                try:
                    span = (0, total) if delivery.part is None else parts.get(delivery.part, (0, 0))
                    deliveries[delivery.label] = self._deliver(run, delivery, position, span)
                    if plan.retry_rejected and delivery.destination not in retried_for:
                        # Rejected records are kept per destination: resend them once.
                        retried_for.add(delivery.destination)
                        retried = self._retry(run, delivery, position)
                        if retried:
                            deliveries[delivery.label]["retried"] = retried
                except ActivatorError as exc:
                    failures.append((delivery.label, exc))
                    # What reached the destination before it failed stays counted.
                    partial = self._task_counts(run.run_id, delivery.task)
                    if partial:
                        deliveries[delivery.label] = {**partial, "failed": True}
            counts["deliveries"] = deliveries
            for key in ("rows", "rejected", "shrink", "expansion"):
                counts[key] = sum(int(d.get(key, 0)) for d in deliveries.values())
            if plan.finish is not None:
                done = [
                    d.part
                    for d in plan.deliveries
                    if d.part is not None
                    and d.label in deliveries
                    and not deliveries[d.label].get("failed")
                ]
                counts.update(plan.finish(self.engine, run, done))
            if failures:
                kind = _attribution(failures[0][1])
                message = "; ".join(f"{dest}: {exc}" for dest, exc in failures)
                return self.store.finish_run(
                    run.run_id, status="failed", counts=counts, error=message, error_kind=kind
                )
            if not plan.keep_snapshot:
                self._drop_snapshot(run.run_id)
            status = "warning" if counts["rejected"] else "succeeded"
            self.store.add_event(run.run_id, f"run {status}", fields={"rows": counts["rows"]})
            return self.store.finish_run(run.run_id, status=status, counts=counts)
        except ActivatorError as exc:
            self.store.add_event(run.run_id, exc.message, level="error")
            return self.store.finish_run(
                run.run_id,
                status="failed",
                counts=counts,
                error=str(exc),
                error_kind=_attribution(exc),
            )

    # -- tasks -------------------------------------------------------------------------------

    def _claim(self, run_id: str) -> None:
        take_lease(self.store, run_id, self.owner)

    def _evaluate(self, run: RunSummary, plan: RunPlan) -> tuple[int, dict[int, tuple[int, int]]]:
        """Freeze the rows to send; return their number and, for a partitioned plan, each
        partition's range of ``_seq`` as (first, count)."""
        task = self.store.ensure_task(run.run_id, "evaluate", position=0)
        name = snapshot_name(run.run_id)
        if task.status == "succeeded" and name in self.engine.list_dataplane_tables():
            spans = task.counts.get("parts", {})
            return int(task.counts.get("rows", 0)), {
                int(part): (int(first), int(count)) for part, (first, count) in spans.items()
            }
        self.store.update_task(run.run_id, "evaluate", status="running")
        self.store.add_event(run.run_id, "evaluating the rows to send", task="evaluate")
        parts: dict[int, tuple[int, int]] = {}
        try:
            try:
                rows = plan.rows(self.engine)
                if plan.partition is None:
                    seq = ibis.row_number()
                else:
                    order = [plan.partition, *plan.order_by]
                    seq = ibis.row_number().over(order_by=[rows[c] for c in order])
                numbered = rows.mutate(**{SEQ_COLUMN: seq})
                table = self.engine.create_dataplane_table(name, numbered, overwrite=True)
                if plan.partition is None:
                    counted = table.count().name("n").as_table()
                    total = int(self.engine.to_pyarrow(counted)["n"][0].as_py())
                else:
                    spans = table.group_by(part=table[plan.partition]).aggregate(
                        first=table[SEQ_COLUMN].min(), n=table.count()
                    )
                    for row in self.engine.to_pyarrow(spans).to_pylist():
                        parts[int(row["part"])] = (int(row["first"]), int(row["n"]))
                    total = sum(n for _, n in parts.values())
            except ActivatorError:
                raise
            except Exception as exc:  # the engine refused the query or failed running it
                raise engine_failure(exc, "evaluating the rows to send") from exc
        except ActivatorError as exc:
            self.store.update_task(
                run.run_id,
                "evaluate",
                status="failed",
                error=str(exc),
                error_kind=_attribution(exc),
            )
            raise
        evaluated: dict[str, Any] = {"rows": total}
        if plan.partition is not None:
            evaluated["parts"] = {str(p): list(span) for p, span in parts.items()}
        self.store.update_task(run.run_id, "evaluate", status="succeeded", counts=evaluated)
        return total, parts

    def _deliver(
        self, run: RunSummary, delivery: DeliveryPlan, position: int, span: tuple[int, int]
    ) -> dict[str, Any]:
        """Deliver rows ``span`` = (first ``_seq``, count) of the snapshot."""
        first, total = span
        task = self.store.ensure_task(
            run.run_id, delivery.task, position=position, destination=delivery.destination
        )
        if task.status in ("succeeded", "warning"):
            return task.counts
        self.store.update_task(run.run_id, delivery.task, status="running")

        def on_unit(unit: Unit) -> None:
            if self.progress is not None:
                self.progress(delivery.task, unit.end_row, total)

        ledger = self._ledger(run, delivery.task, delivery, on_unit=on_unit)
        mapper = delivery.mapping
        try:
            try:
                result = deliver_task(
                    delivery.connector,
                    self._context(run, delivery.task, delivery),
                    ledger,
                    self._source(run.run_id, delivery.columns, first, total),
                    mapper,
                    expected_rows=total,
                )
            finally:
                ledger.flush()
        except ActivatorError as exc:
            done = [u for u in ledger.units() if u.index >= 0]
            self.store.update_task(
                run.run_id,
                delivery.task,
                status="failed",
                error=str(exc),
                error_kind=_attribution(exc),
                counts={
                    **delivery.describe,
                    "destination": delivery.destination,
                    "customers": total,
                    "rows": sum(u.rows for u in done),
                    "rejected": sum(u.rejected for u in done),
                    "units": len(done),
                },
            )
            self.store.add_event(
                run.run_id,
                exc.message,
                level="error",
                task=delivery.task,
                fields={"attribution": _attribution(exc)},
            )
            if isinstance(exc, DestinationError) and exc.disables_destination:
                self.store.set_status("destination", delivery.destination, "disabled")
            raise
        if mapper is not None and result.resumed_from:
            # Rows mapped by an earlier attempt: count their shrink and expansion again,
            # without sending anything, so the run's counts are exact after a resume.
            _recount(
                mapper,
                self._source(run.run_id, delivery.columns, first, total),
                result.resumed_from,
            )
        counts = {
            **delivery.describe,
            "destination": delivery.destination,
            "customers": total,
            "rows": result.rows,
            "rejected": result.rejected,
            "shrink": mapper.totals.shrink if mapper is not None else 0,
            "expansion": mapper.totals.expansion if mapper is not None else 0,
            "units": len(result.units),
        }
        status = "warning" if result.rejected else "succeeded"
        self.store.update_task(
            run.run_id, delivery.task, status=status, counts=counts, detail=result.published
        )
        return counts

    def _task_counts(self, run_id: str, task: str) -> dict[str, Any]:
        found = next((t for t in self.store.tasks(run_id) if t.task == task), None)
        return dict(found.counts) if found is not None else {}

    def _retry(self, run: RunSummary, delivery: DeliveryPlan, position: int) -> dict[str, int]:
        """Send again, as they were mapped, the records this destination rejected in earlier
        runs; mark them retried. Records rejected again are kept with their new reasons."""
        name = f"retry:{delivery.destination}"
        task = self.store.ensure_task(
            run.run_id, name, position=position, destination=delivery.destination
        )
        if task.status in ("succeeded", "warning"):
            return dict(task.counts)
        ids = task.detail.get("ids")
        if ids is None:
            pending = self.store.rejected_records(
                activation=(run.kind, run.name, delivery.destination),
                pending_only=True,
                limit=MAX_RETRIED,
            )
            ids = [r.id for r in pending if r.run_id != run.run_id]
            self.store.update_task(run.run_id, name, status="running", detail={"ids": ids})
        if not ids:
            self.store.update_task(run.run_id, name, status="succeeded", counts={"rows": 0})
            return {}
        records = self.store.rejected_records(ids=ids)
        table = pa.Table.from_pylist([r.record for r in records])
        numbered = table.append_column(SEQ_COLUMN, pa.array(range(table.num_rows), pa.int64()))

        def source(start: int, batch_rows: int) -> Iterator[pa.RecordBatch]:
            yield from rebatch(iter(numbered.slice(start).to_batches()), batch_rows)

        ledger = self._ledger(run, name, delivery)
        try:
            result = deliver_task(
                delivery.connector,
                self._context(run, name, delivery),
                ledger,
                source,
                expected_rows=table.num_rows,
            )
        finally:
            ledger.flush()
        self.store.mark_retried(ids, run.run_id)
        counts = {"rows": result.rows, "rejected": result.rejected}
        self.store.update_task(
            run.run_id,
            name,
            status="warning" if result.rejected else "succeeded",
            counts=counts,
            detail={"ids": ids},
        )
        self.store.add_event(
            run.run_id,
            f"resent {len(ids)} records rejected by earlier runs",
            task=name,
            fields=counts,
        )
        return counts

    def _context(self, run: RunSummary, task: str, delivery: DeliveryPlan) -> DeliveryContext:
        return DeliveryContext(
            run_id=run.run_id,
            task=task,
            as_of=run.as_of,
            timezone=self.timezone,
            activation_kind=run.kind,
            activation=run.name,
            names={run.kind: run.name, **delivery.names},
            workspace_root=self.workspace_root,
        )

    def _ledger(
        self,
        run: RunSummary,
        task: str,
        delivery: DeliveryPlan,
        *,
        on_unit: Callable[[Unit], None] | None = None,
    ) -> StoreLedger:
        return StoreLedger(
            self.store,
            run.run_id,
            task,
            activation=(run.kind, run.name),
            destination=delivery.destination,
            owner=self.owner,
            on_unit=on_unit,
            checkpoint=self.checkpoint,
        )

    def _source(
        self, run_id: str, columns: list[str] | None, first: int, count: int
    ) -> Callable[[int, int], Iterator[pa.RecordBatch]]:
        """The snapshot's rows ``_seq`` ``first`` to ``first + count``, renumbered from 0: a
        delivery of a partitioned plan sees its own rows, numbered as its own."""

        def windows(start: int, batch_rows: int) -> Iterator[pa.RecordBatch]:
            table = self.engine.dataplane_table(snapshot_name(run_id))
            seq = table[SEQ_COLUMN]
            selected = (
                [table[c] for c in columns]
                if columns is not None
                else [table[c] for c in table.columns if c != SEQ_COLUMN]
            )
            # In windows of _seq: one ORDER BY over the whole snapshot would make the engine
            # sort (and hold) every row before the first batch; a window's sort is bounded,
            # and the snapshot, written in _seq order, lets the engine skip to each window
            # (the filter is on the stored _seq, so its min/max statistics apply).
            window = max(self.sort_window, batch_rows)
            end = first + count
            low = first + start
            while low < end:
                high = min(low + window, end)
                expr = (
                    table.filter((seq >= low) & (seq < high))
                    .select(*selected, (seq - first).name(SEQ_COLUMN))
                    .order_by(SEQ_COLUMN)
                )
                got = 0
                for batch in self.engine.stream(expr, rows_per_batch=batch_rows):
                    got += batch.num_rows
                    yield batch
                if got < high - low:
                    return
                low = high

        def source(start: int, batch_rows: int) -> Iterator[pa.RecordBatch]:
            # Re-cut across windows: batches are exactly batch_rows long whatever the window.
            yield from rebatch(windows(start, batch_rows), batch_rows)

        return source

    def _drop_snapshot(self, run_id: str) -> None:
        name = snapshot_name(run_id)
        if name in self.engine.list_dataplane_tables():
            self.engine.backend.drop_table(name, database=self.engine.dataplane_schema)


def _recount(
    mapper: Mapper, source: Callable[[int, int], Iterator[pa.RecordBatch]], end: int
) -> None:
    """Add to the mapper's totals the source rows before ``end``, mapped but not sent."""
    for batch in source(0, 100_000):
        seq = batch.column(SEQ_COLUMN)
        keep = batch.num_rows
        if int(seq[-1].as_py()) >= end:
            keep = end - int(seq[0].as_py())
        if keep <= 0:
            break
        mapper.totals.add(mapper.apply(batch.slice(0, keep).drop_columns([SEQ_COLUMN])))


def rebatch(
    batches: Iterator[pa.RecordBatch] | pa.RecordBatchReader, size: int
) -> Iterator[pa.RecordBatch]:
    """Re-cut a stream of record batches into batches of exactly ``size`` rows (the last one
    may be smaller), slicing without copying where possible."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        while batch.num_rows:
            take = min(size - held, batch.num_rows)
            pending.append(batch.slice(0, take))
            held += take
            batch = batch.slice(take)
            if held == size:
                yield _concat(pending)
                pending, held = [], 0
    if held:
        yield _concat(pending)


def _concat(parts: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(parts) == 1:
        return parts[0]
    return pa.Table.from_batches(parts).combine_chunks().to_batches()[0]


def _attribution(exc: ActivatorError) -> str:
    if isinstance(exc, DestinationError):
        return exc.attribution
    return "configuration" if isinstance(exc, ConfigError) or exc.bad_input else "platform"


def take_lease(store: MetadataStore, run_id: str, owner: str) -> None:
    """Take a run's lease for ``owner`` (marking it running), taking it over from a holder
    that is a vanished process of this host.

    Raises:
        RunClaimedError: a live process holds the lease.
        StoreError: no such run, or it already finished.
    """
    try:
        store.claim_run(run_id, owner, LEASE_TTL)
    except RunClaimedError:
        summary = store.get_run(run_id)
        holder = summary.lease_owner if summary is not None else None
        if holder is None or not dead_here(holder):
            raise
        store.claim_run(run_id, owner, LEASE_TTL, steal_from=holder)


def dead_here(owner: str) -> bool:
    """Whether a lease owner is a process of this host that no longer exists."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False

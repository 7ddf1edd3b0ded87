"""The server's one worker thread: runs launched through the API, and the scheduler's ticks.

One thread executes everything that writes to the engine, one job at a time: the embedded
DuckDB file has one writer, and the server is it. A run launched through the API is recorded
(queued, leased to this process) by the request, which answers at once with its id; the worker
executes it next. With the scheduler on, the worker also ticks every ``interval`` seconds
between jobs. Stopping sets the scheduler's stop event: the run in flight stops after the unit
in flight and goes back to the queue, resumed by the next scheduler.
"""

from __future__ import annotations

__all__ = ["Worker"]

import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from activator.api.errors import ApiError
from activator.clock import wall_clock
from activator.errors import ActivatorError
from activator.services.scheduler import Scheduler

log = logging.getLogger("activator.api")

T = TypeVar("T")

Job = Callable[[threading.Event], None]
"""Work for the worker; it receives the stop event to pass on to the run it executes."""


class Worker:
    """Executes jobs and, optionally, scheduler ticks, in one background thread."""

    def __init__(self, root: Path, *, scheduler: bool, interval: float) -> None:
        self.stop = threading.Event()
        self.interval = interval
        self.scheduler = Scheduler(root, stop=self.stop, say=self._say) if scheduler else None
        self._jobs: queue.Queue[Job] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="activator-worker", daemon=True)
        self._wake = threading.Event()

    @staticmethod
    def _say(message: str) -> None:
        log.info("%s", message)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Queue a job; it runs after the ones before it."""
        self._jobs.put(job)

    def call(self, fn: Callable[[], T], *, timeout: float) -> T:
        """Run ``fn`` on the worker (engine reads: previews, plans, results) and return its
        result; after ``timeout`` seconds in the queue or running, give up (the job is
        skipped if it has not started).

        Raises:
            ApiError: 503 engine_busy when it timed out; whatever ``fn`` raised otherwise.
        """
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def job(_stop: threading.Event) -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        self.submit(job)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise ApiError(
                503,
                "engine_busy",
                f"the engine is busy (a run is executing); gave up after {timeout:g} s",
                hint="try again shortly",
                headers={"Retry-After": "10"},
            ) from None

    def tick_now(self) -> None:
        """Tick at once instead of at the next interval (a run was queued for the scheduler)."""
        self._wake.set()

    def close(self, timeout: float = 60.0) -> None:
        """Stop after the unit in flight and wait for the thread."""
        self.stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        next_tick = time.monotonic()
        while not self.stop.is_set():
            if self.scheduler is not None and (
                time.monotonic() >= next_tick or self._wake.is_set()
            ):
                self._wake.clear()
                self._tick()
                next_tick = time.monotonic() + self.interval
            wait = 0.2 if self.scheduler is None else max(0.0, next_tick - time.monotonic())
            try:
                job = self._jobs.get(timeout=min(wait, 0.2))
            except queue.Empty:
                continue
            try:
                job(self.stop)
            except ActivatorError as exc:
                log.warning("job failed: %s", exc)
            except Exception:
                log.exception("job crashed")

    def _tick(self) -> None:
        assert self.scheduler is not None
        try:
            self.scheduler.tick(wall_clock())
        except ActivatorError as exc:
            log.warning("scheduler tick failed: %s", exc)
        except Exception:
            log.exception("scheduler tick crashed")

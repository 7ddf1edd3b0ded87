"""Output for the CLI: human tables on stdout, progress on stderr, or exactly one JSON document.

Core code never prints; only the CLI layer talks to the terminal, through this module.
"""

from __future__ import annotations

__all__ = ["Output"]

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class Output:
    """Where a command's results and progress go."""

    def __init__(self, *, json_mode: bool) -> None:
        self.json_mode = json_mode
        # Piped output (make demo, CI logs) gets a wide console rather than Rich's 80 columns,
        # so tables are not wrapped cell by cell.
        width = None if sys.stdout.isatty() else 120
        self.out = Console(highlight=False, soft_wrap=True, width=width)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    def emit_json(self, document: Any) -> None:
        """Print the command's one JSON document on stdout."""
        print(json.dumps(document, indent=2, default=str))

    def say(self, message: str) -> None:
        """A line for people: stdout normally, stderr in JSON mode (stdout holds the JSON)."""
        (self.err if self.json_mode else self.out).print(message)

    def error(self, message: str) -> None:
        self.err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)

    @contextmanager
    def progress(self, title: str) -> Iterator[Callable[[str], None]]:
        """A spinner with the current step on stderr; yields the callback that sets the step."""
        with Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            TextColumn("{task.fields[step]}"),
            TimeElapsedColumn(),
            console=self.err,
            transient=True,
        ) as bar:
            task = bar.add_task(title, step="")

            def step(text: str) -> None:
                bar.update(task, step=text)

            yield step

    @contextmanager
    def bars(self) -> Iterator[Callable[[str, int, int | None], None]]:
        """Progress bars on stderr, one per task; yields ``update(task, done, total)``."""
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.err,
            transient=True,
        ) as bar:
            tasks: dict[str, TaskID] = {}

            def update(name: str, done: int, total: int | None) -> None:
                if name not in tasks:
                    tasks[name] = bar.add_task(name, total=total)
                bar.update(tasks[name], completed=done, total=total)

            yield update

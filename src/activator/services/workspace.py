"""Workspace use cases: init, validate, apply, status. The CLI and the API both call these.

Nothing here prints: results come back as dataclasses; progress goes to a callback.
"""

from __future__ import annotations

__all__ = [
    "ActivationStatus",
    "InitResult",
    "UpcomingCache",
    "ValidationReport",
    "activation_list",
    "apply_workspace",
    "cli_actor",
    "init_workspace",
    "status",
    "validate_workspace",
    "workspace_engine",
]

import getpass
import os
import shutil
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import ibis
from pydantic import TypeAdapter

from activator.clock import wall_clock
from activator.compiler import CompileContext, check_segment, segment_members
from activator.definitions.common import Schedule
from activator.definitions.config import DuckDBEngineConfig
from activator.definitions.segment import SegmentDefinition
from activator.engines.base import Engine
from activator.engines.datamodel import check_data_model
from activator.engines.registry import open_engine
from activator.errors import ActivatorError, ConfigError, DefinitionError, Issue
from activator.runtime.schedule import next_run
from activator.store.store import (
    ApplyResult,
    DefinitionInput,
    MetadataStore,
    RunSummary,
    StoredDefinition,
)
from activator.workspace.loader import CONFIG_FILE, Workspace, load_workspace
from activator.workspace.references import check_references
from activator.workspace.yaml import parse_loc

Progress = Callable[[str], None]

ACTIVATION_KINDS = ("campaign", "journey", "orchestration", "group")
"""Kinds listed in the Activations list (segments and destinations are building blocks)."""

_FOLDERS = ("segments", "destinations", "campaigns", "journeys", "orchestrations")

_EMPTY_CONFIG = """\
# Activator workspace. See docs/workspace.md for every key.
engine:
  type: duckdb
  path: data/activator.duckdb       # relative to this folder
metadata:
  url: sqlite:///.activator/metadata.db
timezone: UTC
dataplane_schema: activator         # Activator's own tables live in this schema of the engine
data_model:
  # Point these at your tables; `activator validate` checks them against the engine.
  customers: {table: customers, key: customer_id, pii: [email, phone]}
  events: {}
"""

_GITIGNORE = """\
# Activator's local state: the metadata store and the embedded engine's files.
.activator/
data/*.duckdb
data/*.duckdb.wal
data/*.lock
outbox/
"""


@dataclass(frozen=True)
class InitResult:
    """What ``activator init`` made."""

    path: Path
    demo: bool
    tables: dict[str, int] = field(default_factory=dict)
    """Demo tables and their row counts (empty for an empty workspace)."""

    definitions: int = 0


def init_workspace(
    target: Path,
    *,
    demo: bool,
    customers: int,
    seed: int,
    as_of: date,
    progress: Progress | None = None,
) -> InitResult:
    """Create a workspace at ``target``: empty, or the demo retailer with data.

    Raises:
        ConfigError: ``target`` already holds a workspace or other files.
    """
    if (target / CONFIG_FILE).exists():
        raise ConfigError(
            f"{target / CONFIG_FILE} already exists: {target} is a workspace already",
            hint="choose another folder, or remove it first",
        )
    if target.exists() and any(target.iterdir()):
        raise ConfigError(f"{target} is not empty", hint="choose a new or empty folder")
    if customers < 1:
        raise ConfigError("--customers must be at least 1")
    target.mkdir(parents=True, exist_ok=True)
    (target / ".gitignore").write_text(_GITIGNORE)
    if not demo:
        (target / CONFIG_FILE).write_text(_EMPTY_CONFIG)
        for folder in _FOLDERS:
            (target / folder).mkdir()
            (target / folder / ".gitkeep").touch()
        return InitResult(path=target, demo=False)

    template = resources.files("activator.demo") / "workspace"
    with resources.as_file(template) as source:
        shutil.copytree(source, target, dirs_exist_ok=True)
    ws = load_workspace(target)
    from activator.demo.data import generate

    engine_config = ws.config.engine
    assert isinstance(engine_config, DuckDBEngineConfig)
    with open_engine(
        engine_config, workspace_root=target, dataplane_schema=ws.config.dataplane_schema
    ) as engine:
        counts = generate(
            engine.backend.con, customers=customers, seed=seed, as_of=as_of, progress=progress
        )
        engine.ensure_dataplane()
    tables = {name: int(rows) for name, rows in vars(counts).items()}
    return InitResult(path=target, demo=True, tables=tables, definitions=len(ws.definitions))


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of a successful validation."""

    workspace: Workspace
    counts: dict[str, int]
    """Definitions by kind."""

    warnings: list[Issue]


def validate_workspace(
    root: Path, *, check_engine: bool = True, progress: Progress | None = None
) -> ValidationReport:
    """Check every file, every cross-reference, and the data model against the engine.

    Stores nothing.

    Raises:
        DefinitionError: listing every problem found.
        EngineError: the engine cannot be opened.
    """
    say = progress or (lambda _: None)
    say("reading definitions")
    ws = load_workspace(root)
    issues = check_references(ws)
    warnings: list[Issue] = []
    if not check_engine:
        # Without an engine the segments are still checked against the data model (tables,
        # operators' values, dates, windows, SQL shape); columns need the engine's schemas.
        # The engine types are also SQLGlot dialect names (duckdb, spark, postgres).
        dialect = ws.config.engine.type
        issues.extend(_segment_issues(ws, issues, schemas={}, dialect=dialect, engine=None))
    else:
        say(f"checking the data model against the {ws.config.engine.type} engine")
        with workspace_engine(ws, read_only=True) as engine:
            found = check_data_model(engine, ws.config.data_model, file=CONFIG_FILE)
            say("checking segments against the engine's tables")
            issues.extend(
                _segment_issues(
                    ws,
                    issues,
                    schemas=_data_model_schemas(engine, ws),
                    dialect=engine.DIALECT,
                    engine=engine,
                )
            )
        for issue in found:
            located = Issue(
                issue.file,
                ws.config_doc.locate(parse_loc(issue.path))[1],
                issue.path,
                issue.message,
                severity=issue.severity,
            )
            (warnings if issue.severity == "warning" else issues).append(located)
    if issues:
        raise DefinitionError(issues)
    counts = Counter(d.kind for d in ws.definitions)
    return ValidationReport(workspace=ws, counts=dict(sorted(counts.items())), warnings=warnings)


def _data_model_schemas(engine: Engine, ws: Workspace) -> dict[str, ibis.Schema]:
    """Schemas of the data model's tables that exist (missing ones are reported elsewhere)."""
    model = ws.config.data_model
    present = set(engine.list_tables())
    wanted = [model.customers.table, *(event.table for event in model.events.values())]
    return {table: engine.schema_of(table) for table in wanted if table in present}


def _segment_issues(
    ws: Workspace,
    known: list[Issue],
    *,
    schemas: dict[str, ibis.Schema],
    dialect: str,
    engine: Engine | None,
) -> list[Issue]:
    """Static segment checks, then (with an engine) SQL segments described by the engine."""
    already = {(issue.file, issue.path) for issue in known}
    segments: dict[str, SegmentDefinition] = {
        d.name: d.model for d in ws.of_kind("segment") if isinstance(d.model, SegmentDefinition)
    }
    issues: list[Issue] = []
    for loaded in ws.of_kind("segment"):
        definition = loaded.model
        assert isinstance(definition, SegmentDefinition)
        problems = check_segment(
            definition, data_model=ws.config.data_model, schemas=schemas, dialect=dialect
        )
        # references.py already reports unknown tables at the same paths.
        found = [
            loaded.issue(path, message)
            for path, message in problems
            if (loaded.file, path) not in already
        ]
        issues.extend(found)
        if engine is None or found or definition.sql is None:
            continue
        # Only the engine knows every function and column a SELECT uses: ask it to
        # describe the query (nothing is read).
        ctx = CompileContext(
            tables=engine.table,
            data_model=ws.config.data_model,
            segments=segments,
            as_of=wall_clock(),
            timezone=ws.config.timezone,
            dialect=engine.DIALECT,
        )
        try:
            segment_members(ctx, definition.name)
        except ActivatorError as exc:
            issues.append(loaded.issue("sql", exc.message))
        except Exception as exc:  # each engine's driver raises its own error classes
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            issues.append(loaded.issue("sql", f"the {engine.NAME} engine rejects it: {reason}"))
    return issues


def open_store(ws: Workspace) -> MetadataStore:
    """The workspace's metadata store, migrated to the current schema."""
    return MetadataStore.open(ws.config.metadata.url, workspace_root=ws.root)


def workspace_engine(ws: Workspace, *, read_only: bool = False) -> Engine:
    """The workspace's engine with its data-plane schema; close it (``with``) when done."""
    return open_engine(
        ws.config.engine,
        workspace_root=ws.root,
        dataplane_schema=ws.config.dataplane_schema,
        read_only=read_only,
    )


def apply_workspace(
    root: Path,
    *,
    check_engine: bool = True,
    force: bool = False,
    progress: Progress | None = None,
) -> tuple[ValidationReport, list[ApplyResult]]:
    """Validate, then store each changed definition as a new version (all or nothing).

    An unchanged file makes no new version. A file of a definition changed through the API
    since the files were last applied or exported is refused (``DefinitionConflictError``)
    unless ``force``.
    """
    report = validate_workspace(root, check_engine=check_engine, progress=progress)
    ws = report.workspace
    items = [
        DefinitionInput(
            kind=d.kind,
            name=d.name,
            spec=d.spec(),
            source=d.file,
            # Segments and destinations have no status of their own: they are usable once applied.
            status=str(getattr(d.model, "status", "active")),
            from_files=True,
        )
        for d in ws.definitions
    ]
    if progress:
        progress(f"storing {len(items)} definitions")
    with open_store(ws) as store:
        results = store.apply(items, force=force)
        sources = {(i.kind, i.name): i.source for i in items}
        for result in results:
            if result.change != "unchanged":
                store.audit(
                    actor=cli_actor(),
                    action="create" if result.change == "created" else "update",
                    kind=result.kind,
                    name=result.name,
                    detail={
                        "version": result.version,
                        "source": sources[(result.kind, result.name)],
                    },
                )
    return report, results


def cli_actor() -> str:
    """How the audit log names a change made from the command line: ``cli:USER``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = str(os.getuid())
    return f"cli:{user}"


@dataclass(frozen=True)
class ActivationStatus:
    """One row of the Activations list."""

    type: str
    name: str
    status: str
    version: int
    last_run: RunSummary | None
    next_run: datetime | None
    labels: tuple[str, ...] = ()
    description: str | None = None

    def to_json(self) -> dict[str, Any]:
        last = self.last_run
        return {
            "type": self.type,
            "name": self.name,
            "status": self.status,
            "version": self.version,
            "last_run": None
            if last is None
            else {
                "run_id": last.run_id,
                "status": last.status,
                "started_at": _iso(last.started_at),
                "finished_at": _iso(last.finished_at),
                "counts": last.counts,
            },
            "next_run": _iso(self.next_run),
            "labels": list(self.labels),
            "description": self.description,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


_SCHEDULE: TypeAdapter[Any] = TypeAdapter(Schedule | None)

_SCHEDULED_STATUSES = {"active"}

_SUCCEEDED = ("succeeded", "warning")


def campaign_status(
    definition_status: str, last: RunSummary | None, upcoming: datetime | None
) -> str:
    """What the Activations list shows for a campaign.

    ``archived`` and ``paused`` come from the definition. Otherwise the latest run decides
    while it is ``running`` or ended in ``error`` or ``warning`` (the last send had a problem:
    that stays visible until a run succeeds); then ``scheduled`` when a run is coming, else
    ``delivered`` once it ran, else ``draft``.
    """
    if definition_status in ("archived", "paused"):
        return definition_status
    if last is not None:
        if last.status in ("queued", "running"):
            return "running"
        if last.status == "failed":
            return "error"
        if last.status == "warning":
            return "warning"
    if upcoming is not None:
        return "scheduled"
    if last is not None and last.status == "succeeded":
        return "delivered"
    return "draft"


def change_status(
    root: Path,
    kind: str,
    name: str,
    action: str,
    transitions: Mapping[str, tuple[set[str], str]],
    *,
    final: str | None = None,
    actor: str | None = None,
) -> str:
    """Apply a status action (pause, resume, end, archive...) to an applied activation and
    return its new status; the definition keeps its version. The change is recorded in the
    audit log under ``actor`` (default: :func:`cli_actor`).

    Args:
        root: The workspace.
        kind: ``campaign``, ``journey``...
        name: The activation.
        action: A key of ``transitions``.
        transitions: action → (statuses it applies to, the status it sets).
        final: The hint when the activation is in a status no action leaves.

    Raises:
        ConfigError: no such applied activation, or the action does not apply to its status.
    """
    allowed, target = transitions[action]
    ws = load_workspace(root, definitions=False)
    with open_store(ws) as store:
        stored = store.get(kind, name)
        if stored is None:
            raise ConfigError(
                f"no applied {kind} named {name!r}",
                hint="run `activator apply` after adding or changing definitions",
            )
        if stored.status == target:
            return target
        if stored.status not in allowed:
            leaves = any(stored.status in statuses for statuses, _ in transitions.values())
            raise ConfigError(
                f"{kind} {name!r} is {stored.status}: it cannot {action}",
                hint=None if leaves else final,
            )
        store.set_status(kind, name, target)
        store.audit(
            actor=actor or cli_actor(), action=action, kind=kind, name=name,
            detail={"status": target},
        )  # fmt: skip
        return target


def status(root: Path, *, as_of: datetime) -> list[ActivationStatus]:
    """The Activations list: every applied campaign, journey and orchestration.

    Lists what is in the metadata store (what ``apply`` stored), not the files. A schedule
    that ends after N runs has no next run once N runs succeeded.
    """
    ws = load_workspace(root, definitions=False)
    with open_store(ws) as store:
        return activation_list(store, timezone=ws.config.timezone, as_of=as_of)


UpcomingCache = dict[tuple[str, str, str, str], tuple[datetime, datetime | None]]
"""(kind, name, content hash, time zone) → (computed as of, next run after it)."""


def activation_list(
    store: MetadataStore,
    *,
    timezone: str,
    as_of: datetime,
    upcoming: UpcomingCache | None = None,
) -> list[ActivationStatus]:
    """:func:`status` on an open store, in three queries whatever the number of activations
    (definitions, the latest run of each, and the run counts of schedules with ``max_runs``).

    Args:
        store: the metadata store.
        timezone: the workspace's time zone (schedules without their own).
        as_of: the moment next runs are computed after.
        upcoming: a cache of next runs kept between calls (the API's): an entry computed
            earlier still holds while its next run is after ``as_of``.
    """
    rows: list[ActivationStatus] = []
    current = [d for d in store.current() if d.kind in ACTIVATION_KINDS]
    latest = store.latest_runs(ACTIVATION_KINDS)
    for stored in current:
        next_at = None
        if stored.status in _SCHEDULED_STATUSES:
            next_at = _next_run(stored, timezone, as_of, upcoming)
            schedule = stored.spec.get("schedule")
            limit = schedule.get("max_runs") if isinstance(schedule, dict) else None
            if next_at is not None and limit is not None:
                runs = store.list_runs(stored.kind, stored.name, limit=limit, include_tests=False)
                if sum(r.status in _SUCCEEDED for r in runs) >= limit:
                    next_at = None
        last = latest.get((stored.kind, stored.name))
        shown = stored.status
        if stored.kind == "campaign":
            shown = campaign_status(stored.status, last, next_at)
        rows.append(
            ActivationStatus(
                type=stored.kind,
                name=stored.name,
                status=shown,
                version=stored.version,
                last_run=last,
                next_run=next_at,
                labels=tuple(stored.spec.get("labels") or ()),
                description=stored.spec.get("description"),
            )
        )
    return rows


def _next_run(
    stored: StoredDefinition, timezone: str, as_of: datetime, cache: UpcomingCache | None
) -> datetime | None:
    key = (stored.kind, stored.name, stored.content_hash, timezone)
    known = cache.get(key) if cache is not None else None
    if known is not None and known[0] <= as_of and (known[1] is None or known[1] > as_of):
        return known[1]
    schedule = _SCHEDULE.validate_python(stored.spec.get("schedule"))
    found = next_run(schedule, after=as_of, timezone=timezone)
    if cache is not None:
        cache[key] = (as_of, found)
    return found

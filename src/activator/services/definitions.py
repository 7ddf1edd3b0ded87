"""Definitions edited one at a time (the API's use cases), validated as workspace files are.

``activator apply`` stores a whole workspace folder; the API creates, changes and archives
one definition at a time in the metadata store. Both go through the same models and the same
cross-reference and segment checks, and both store versions: an edit names the version it was
made on, and one made on an older version is refused (see ``DefinitionConflictError``), so
the API and ``apply`` never silently overwrite each other's work.
"""

from __future__ import annotations

__all__ = [
    "KIND_ACTIONS",
    "archive_definition",
    "change_activation_status",
    "save_definition",
    "stored_workspace",
]

from pathlib import Path
from typing import Any

from activator.errors import ConfigError, DefinitionError, Issue
from activator.services.campaign import set_campaign_status
from activator.services.journey import set_journey_status
from activator.services.workspace import _segment_issues, change_status
from activator.store import ApplyResult, DefinitionInput, MetadataStore
from activator.workspace.loader import (
    LoadedDefinition,
    Workspace,
    definition_from_data,
    load_workspace,
)
from activator.workspace.references import check_references

_ORCHESTRATION_TRANSITIONS = {
    "pause": ({"active"}, "paused"),
    "resume": ({"paused"}, "active"),
    # Ended: done for good (a one-off backfill feed); it keeps its history and no longer
    # runs. Archived: also out of the lists.
    "end": ({"draft", "active", "paused"}, "ended"),
    "archive": ({"draft", "active", "paused", "ended"}, "archived"),
}

_JOURNEY_ARCHIVE = {"archive": ({"draft", "paused", "ended"}, "archived")}

KIND_ACTIONS: dict[str, tuple[str, ...]] = {
    "campaign": ("pause", "resume", "archive"),
    "journey": ("pause", "resume", "end", "archive"),
    "orchestration": ("pause", "resume", "end", "archive"),
    "group": ("pause", "resume", "end", "archive"),
}
"""The status actions of each activation kind."""


def _shown(kind: str, name: str, version: int | None = None) -> str:
    return f"{kind} {name}" + (f" v{version}" if version is not None else "")


def stored_workspace(root: Path, store: MetadataStore) -> Workspace:
    """The workspace as the metadata store holds it: ``activator.yaml`` from the folder and
    the current version of every stored definition (archived ones included: a reference to
    one still resolves).

    Raises:
        DefinitionError: ``activator.yaml`` is invalid, or a stored definition no longer
            validates (a model changed since it was stored).
    """
    ws = load_workspace(root, definitions=False)
    ws.definitions = [
        definition_from_data(d.kind, d.spec, shown_as=_shown(d.kind, d.name, d.version))
        for d in store.current()
    ]
    return ws


def _checked(ws: Workspace, loaded: LoadedDefinition) -> None:
    """Cross-references and static segment checks of ``loaded`` within ``ws``; the issues of
    other definitions are theirs, not this edit's."""
    issues = check_references(ws)
    issues.extend(
        _segment_issues(ws, issues, schemas={}, dialect=ws.config.engine.type, engine=None)
    )
    own = [issue for issue in issues if issue.file == loaded.file]
    if own:
        raise DefinitionError(own)


def save_definition(
    root: Path,
    store: MetadataStore,
    kind: str,
    data: Any,
    *,
    expected_version: int,
    name: str | None = None,
    actor: str,
) -> ApplyResult:
    """Create (``expected_version`` 0) or change (the version the edit was made on) one
    definition, validated as a workspace file is, and record it in the audit log.

    Args:
        root: the workspace folder (for ``activator.yaml``).
        store: the metadata store.
        kind: the definition's kind (``group`` for an orchestration group).
        data: the definition as plain data (the request body).
        expected_version: 0 to create; else the current version the edit is based on.
        name: the definition's name when the request names it (the URL); the data's
            ``name`` must agree and defaults to it.
        actor: who makes the change (``token:NAME``), for the audit log.

    Raises:
        DefinitionError: the definition is invalid; each issue names its field.
        DefinitionConflictError: it exists already (create), or it changed since
            ``expected_version`` (nothing is stored).
    """
    if isinstance(data, dict) and name is not None:
        given = data.get("name", name)
        if given != name:
            raise DefinitionError(
                [Issue("api", None, "name", f"is {given!r}, but the request is for {name!r}")]
            )
        data = {**data, "name": name}
    loaded = definition_from_data(kind, data, shown_as="api")
    ws = stored_workspace(root, store)
    ws.definitions = [
        d for d in ws.definitions if (d.kind, d.name) != (loaded.kind, loaded.name)
    ] + [loaded]
    _checked(ws, loaded)
    status = str(getattr(loaded.model, "status", "active"))
    (result,) = store.apply(
        [
            DefinitionInput(
                kind=loaded.kind,
                name=loaded.name,
                spec=loaded.spec(),
                source="api",
                status=status,
                expected_version=expected_version,
            )
        ]
    )
    if result.change != "unchanged":
        store.audit(
            actor=actor,
            action="create" if result.change == "created" else "update",
            kind=loaded.kind,
            name=loaded.name,
            detail={"version": result.version},
        )
    return result


def archive_definition(
    root: Path, store: MetadataStore, kind: str, name: str, *, actor: str
) -> str:
    """Archive a definition (the API's delete): it keeps its versions and its history, stops
    running and leaves the lists. A segment or destination still used by a definition that is
    not archived is refused, naming the users.

    Raises:
        ConfigError: no such definition, or it is still in use.
    """
    stored = store.get(kind, name)
    if stored is None:
        raise ConfigError(f"no {kind} named {name!r}")
    if stored.status == "archived":
        return "archived"
    if kind in ("segment", "destination"):
        ws = stored_workspace(root, store)
        statuses = {(d.kind, d.name): d.status for d in store.current()}
        ws.definitions = [
            d
            for d in ws.definitions
            if (d.kind, d.name) != (kind, name) and statuses.get((d.kind, d.name)) != "archived"
        ]
        issues = check_references(ws)
        users = sorted({issue.file for issue in issues if f"{name!r}" in issue.message})
        if users:
            raise ConfigError(
                f"{kind} {name!r} is used by {', '.join(users)}",
                hint="change or archive those first",
            )
    store.set_status(kind, name, "archived")
    store.audit(actor=actor, action="archive", kind=kind, name=name)
    return "archived"


def change_activation_status(root: Path, kind: str, name: str, action: str, *, actor: str) -> str:
    """Pause, resume, end or archive an activation (see :data:`KIND_ACTIONS`), recorded in the
    audit log under ``actor``; return its new status.

    Raises:
        ConfigError: no such activation, an action its kind does not have, or one that does
            not apply to its status.
    """
    if action not in KIND_ACTIONS.get(kind, ()):
        known = ", ".join(KIND_ACTIONS.get(kind, ())) or "none"
        raise ConfigError(f"a {kind} cannot {action}", hint=f"its actions: {known}")
    if kind == "campaign":
        status = set_campaign_status(root, name, action, actor=actor)
    elif kind == "journey" and action == "archive":
        # An active journey is paused or ended first: its travellers are somewhere.
        status = change_status(
            root, kind, name, action, _JOURNEY_ARCHIVE,
            final="pause or end the journey before archiving it", actor=actor,
        )  # fmt: skip
    elif kind == "journey":
        status = set_journey_status(root, name, action, actor=actor)
    else:
        status = change_status(root, kind, name, action, _ORCHESTRATION_TRANSITIONS, actor=actor)
    return status

"""Loading a workspace folder: ``activator.yaml`` and the definition files.

Every problem in every file is collected before anything is reported, so a user fixes a
workspace in one pass rather than one error at a time.
"""

from __future__ import annotations

__all__ = [
    "CONFIG_FILE",
    "LoadedDefinition",
    "Workspace",
    "definition_from_data",
    "load_workspace",
]

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from activator.definitions import KINDS, AnyDefinition, WorkspaceConfig
from activator.definitions.campaign import CampaignDefinition
from activator.definitions.destination import DestinationDefinition
from activator.definitions.journey import JourneyDefinition
from activator.definitions.orchestration import (
    OrchestrationDefinition,
    OrchestrationGroupDefinition,
)
from activator.definitions.segment import SegmentDefinition
from activator.errors import ConfigError, DefinitionError, Issue
from activator.workspace.yaml import YamlDocument, issues_from_validation, parse_loc, read_yaml

CONFIG_FILE = "activator.yaml"

_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "segment": TypeAdapter(SegmentDefinition),
    "destination": TypeAdapter(DestinationDefinition),
    "campaign": TypeAdapter(CampaignDefinition),
    "journey": TypeAdapter(JourneyDefinition),
    "orchestration": TypeAdapter(OrchestrationDefinition),
    "group": TypeAdapter(OrchestrationGroupDefinition),
}


@dataclass(frozen=True)
class LoadedDefinition:
    """A definition read from a file of the workspace."""

    kind: str
    name: str
    model: AnyDefinition
    doc: YamlDocument

    @property
    def file(self) -> str:
        return self.doc.file

    def spec(self) -> dict[str, Any]:
        """The definition as JSON-compatible data: what the metadata store versions."""
        data: dict[str, Any] = self.model.model_dump(mode="json", by_alias=True)
        return data

    def issue(self, path: str, message: str) -> Issue:
        """An issue at ``path`` (``audience.include[1]``) of this definition's file."""
        return Issue(self.file, self.doc.locate(parse_loc(path))[1], path, message)


@dataclass
class Workspace:
    """A loaded workspace: its folder, configuration and definitions."""

    root: Path
    config: WorkspaceConfig
    config_doc: YamlDocument
    definitions: list[LoadedDefinition] = field(default_factory=list)

    def of_kind(self, *kinds: str) -> list[LoadedDefinition]:
        return [d for d in self.definitions if d.kind in kinds]

    def names(self, *kinds: str) -> set[str]:
        return {d.name for d in self.of_kind(*kinds)}


def _definition_files(folder: Path) -> list[Path]:
    files = [p for p in folder.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file()]
    return sorted(files)


def load_workspace(root: Path, *, definitions: bool = True) -> Workspace:
    """Read and validate every file of the workspace at ``root``.

    Args:
        root: the workspace folder.
        definitions: read the definition files too. Runs and the scheduler work from what
            was applied to the metadata store and read only ``activator.yaml``: a file being
            edited (or broken) never stops them.

    Raises:
        ConfigError: ``root`` is not a workspace (no ``activator.yaml``).
        DefinitionError: one or more files are invalid; every problem is listed.
    """
    root = root.resolve()
    config_path = root / CONFIG_FILE
    if not config_path.is_file():
        raise ConfigError(
            f"{root} is not an Activator workspace: it has no {CONFIG_FILE}",
            hint="create one with 'activator init DIR', or pass -w/--workspace DIR",
        )
    issues: list[Issue] = []
    config_doc = read_yaml(config_path, shown_as=CONFIG_FILE)
    config: WorkspaceConfig | None = None
    if not isinstance(config_doc.data, dict):
        issues.append(Issue(CONFIG_FILE, 1, "", "must be a mapping of keys to values"))
    else:
        try:
            config = WorkspaceConfig.model_validate(config_doc.data)
        except ValidationError as exc:
            issues.extend(issues_from_validation(config_doc, exc))

    loaded_definitions: list[LoadedDefinition] = []
    seen: dict[tuple[str, str], str] = {}
    for folder, kind in KINDS.items() if definitions else ():
        for path in _definition_files(root / folder):
            shown = path.relative_to(root).as_posix()
            try:
                doc = read_yaml(path, shown_as=shown)
            except DefinitionError as exc:
                issues.extend(exc.issues)
                continue
            loaded = _load_definition(doc, kind, path.stem, issues)
            if loaded is None:
                continue
            key = (loaded.kind if loaded.kind != "group" else "orchestration", loaded.name)
            if key in seen:
                issues.append(
                    Issue(shown, doc.locate(["name"])[1], "name",
                          f"{loaded.kind} {loaded.name!r} is also defined in {seen[key]}")
                )  # fmt: skip
                continue
            seen[key] = shown
            loaded_definitions.append(loaded)
    if issues or config is None:
        raise DefinitionError(issues)
    return Workspace(
        root=root, config=config, config_doc=config_doc, definitions=loaded_definitions
    )


def _load_definition(
    doc: YamlDocument, kind: str, stem: str, issues: list[Issue]
) -> LoadedDefinition | None:
    data = doc.data
    if not isinstance(data, dict):
        issues.append(Issue(doc.file, 1, "", f"a {kind} file holds one mapping (key: value)"))
        return None
    data = dict(data)
    # The name defaults to the file's name, so `segments/vip.yml` defines segment 'vip'.
    data.setdefault("name", stem)
    if kind == "orchestration" and data.get("kind") == "group":
        kind = "group"
    data.setdefault("kind", kind)
    if data["kind"] != kind:
        issues.append(
            Issue(doc.file, doc.locate(["kind"])[1], "kind",
                  f"this folder holds {kind} definitions, not {data['kind']!r}")
        )  # fmt: skip
        return None
    try:
        model = _ADAPTERS[kind].validate_python(data)
    except ValidationError as exc:
        issues.extend(issues_from_validation(doc, exc))
        return None
    return LoadedDefinition(kind=kind, name=model.name, model=model, doc=doc)


def definition_from_data(kind: str, data: Any, *, shown_as: str) -> LoadedDefinition:
    """Validate one definition given as data (the API's request body, a stored spec) exactly
    as a file of the workspace is validated.

    Args:
        kind: the definition's kind (``group`` for an orchestration group).
        data: the definition as plain data.
        shown_as: how messages name where it came from (``api``, ``segment vip v3``).

    Raises:
        DefinitionError: every problem, each with the field path it concerns.
    """
    doc = YamlDocument(file=shown_as, data=data, tree=None)
    issues: list[Issue] = []
    name = data.get("name") if isinstance(data, dict) else None
    loaded = _load_definition(doc, kind, str(name or ""), issues)
    if loaded is None:
        raise DefinitionError(issues)
    return loaded

"""``activator export``: write the definitions as the metadata store holds them into the
workspace's files, so changes made through the API can be reviewed, versioned and applied
like any other file change."""

from __future__ import annotations

__all__ = ["ExportedFile", "export_command", "export_definitions"]

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import LiteralScalarString

from activator.cli.common import JsonOpt, fail
from activator.cli.output import Output
from activator.definitions import KINDS
from activator.errors import ActivatorError, ConfigError, DefinitionError, Issue
from activator.store.store import DEFINITION_KINDS, MetadataStore, StoredDefinition

# The loader's own reading of one file and of its YAML tree: an exported file is checked by
# exactly the code `activator apply` reads it with.
from activator.workspace.loader import LoadedDefinition, _load_definition
from activator.workspace.yaml import YamlDocument, _plain, read_yaml

_FOLDERS = {kind: folder for folder, kind in KINDS.items()} | {"group": "orchestrations"}
"""Definition kind → the workspace folder its files live in."""

_STATUS_FREE_KINDS = ("segment", "destination")


@dataclass(frozen=True)
class ExportedFile:
    """What ``export`` did (or would do) with one definition.

    Attributes:
        kind: the definition's kind.
        name: its name.
        version: the stored version exported.
        file: the file, relative to the workspace.
        change: ``written`` (the file was created or replaced) or ``unchanged`` (it already
            held this version).
    """

    kind: str
    name: str
    version: int
    file: str
    change: str

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "version": self.version,
            "file": self.file,
            "change": self.change,
        }


def export_definitions(
    root: Path,
    store: MetadataStore,
    *,
    kind: str | None = None,
    dry_run: bool = False,
    actor: str = "cli",
) -> list[ExportedFile]:
    """Write the current version of each stored definition to its file in the workspace.

    A definition goes to the file that defines it already (found by kind and name), else to
    ``<folder>/<name>.yml``. The YAML is block style with keys in the model's order and keys
    equal to their defaults left out, and is checked to load back to exactly the stored spec
    (so a following ``apply`` finds it unchanged); a file that already loads to it is left
    alone. Each definition is then marked as held by the files (``mark_exported``) and every
    written file is recorded in the audit log.

    Args:
        root: the workspace folder.
        store: its metadata store.
        kind: only definitions of this kind.
        dry_run: report what would be written; write and record nothing.
        actor: who exports, for the audit log.

    Raises:
        ConfigError: an unknown kind, or a definition that cannot be written as a file that
            loads back to it.
    """
    if kind is not None and kind not in DEFINITION_KINDS:
        raise ConfigError(
            f"unknown definition kind {kind!r}", hint=f"one of {', '.join(DEFINITION_KINDS)}"
        )
    root = root.resolve()
    stored = store.current(kind)
    existing = _existing_files(root, {_FOLDERS[d.kind] for d in stored})
    claimed = {path: key for key, path in existing.items()}
    results: list[ExportedFile] = []
    for definition in stored:
        key = _key(definition.kind, definition.name)
        path = existing.get(key)
        if path is None:
            path = root / _FOLDERS[definition.kind] / f"{definition.name}.yml"
            other = claimed.get(path)
            if other is not None and other != key:
                raise ConfigError(
                    f"{path.relative_to(root).as_posix()} defines {other[0]} {other[1]!r}: "
                    f"{definition.kind} {definition.name!r} cannot be exported to it",
                    hint="rename that file after the definition it holds",
                )
        shown = path.relative_to(root).as_posix()
        target = _normalised(definition, shown)
        if _reload(_read(path), definition, path, shown) == target:
            change = "unchanged"
        else:
            change = "written"
            if not dry_run:
                text = _render(definition, target, path, shown)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
        if not dry_run:
            store.mark_exported(definition.kind, definition.name, definition.version)
            if change == "written":
                store.audit(
                    actor=actor,
                    action="export",
                    kind=definition.kind,
                    name=definition.name,
                    detail={"file": shown, "version": definition.version},
                )
        results.append(
            ExportedFile(definition.kind, definition.name, definition.version, shown, change)
        )
    return results


def export_command(
    ctx: typer.Context,
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind",
            help="Only this kind: segment, destination, campaign, journey, orchestration, group.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be written; write nothing.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Write every definition as stored (changes made through the API included) into the
    workspace's files; a following `activator apply` then finds them unchanged."""
    from activator.services.workspace import open_store
    from activator.workspace.loader import load_workspace

    out = Output(json_mode=json_output)
    root: Path = ctx.obj.workspace
    try:
        ws = load_workspace(root, definitions=False)
        with open_store(ws) as store:
            results = export_definitions(ws.root, store, kind=kind, dry_run=dry_run)
    except ActivatorError as exc:
        raise fail(out, exc) from None
    written = sum(r.change == "written" for r in results)
    if json_output:
        out.emit_json({"dry_run": dry_run, "exported": [r.to_json() for r in results]})
        return
    if not results:
        out.say("No definitions in the metadata store: nothing to export.")
        return
    table = Table("kind", "name", "version", "file", "change")
    shown = {"written": "[yellow]would write[/]" if dry_run else "[green]written[/]"}
    for r in results:
        change = shown.get(r.change, "[dim]unchanged[/]")
        table.add_row(r.kind, escape(r.name), str(r.version), escape(r.file), change)
    out.out.print(table)
    verb = "would be written" if dry_run else "written"
    out.say(f"{written} of {len(results)} definition files {verb}")


# -- finding, checking and rendering files ------------------------------------------------------


def _key(kind: str, name: str) -> tuple[str, str]:
    # Groups and orchestrations share the orchestrations/ folder and one namespace.
    return ("orchestration" if kind == "group" else kind, name)


def _definition_files(folder: Path) -> Iterator[Path]:
    if folder.is_dir():
        yield from sorted(
            p for p in folder.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file()
        )


def _existing_files(root: Path, folders: set[str]) -> dict[tuple[str, str], Path]:
    """The file already defining each (kind, name) in these folders, as the loader names
    them (``name`` in the file, else the file's stem); unreadable files are skipped."""
    found: dict[tuple[str, str], Path] = {}
    for folder in sorted(folders):
        for path in _definition_files(root / folder):
            try:
                data = read_yaml(path, shown_as=path.name).data
            except DefinitionError:
                continue
            if not isinstance(data, dict):
                continue
            name = data.get("name", path.stem)
            kind = "group" if data.get("kind") == "group" else KINDS[folder]
            if isinstance(name, str):
                found.setdefault(_key(kind, name), path)
    return found


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _validate(
    definition: StoredDefinition, data: Any, stem: str, doc: YamlDocument | None = None
) -> tuple[LoadedDefinition | None, list[Issue]]:
    """Validate data as the loader validates a file of the definition's folder."""
    folder_kind = "orchestration" if definition.kind == "group" else definition.kind
    issues: list[Issue] = []
    doc = doc or YamlDocument(file=stem, data=data, tree=None)
    return _load_definition(doc, folder_kind, stem, issues), issues


def _reload(
    text: str | None, definition: StoredDefinition, path: Path, shown: str
) -> dict[str, Any] | None:
    """The spec ``activator apply`` would read from this file holding ``text``, or ``None``
    when it would not load (or holds another definition)."""
    if text is None:
        return None
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        tree = yaml.load(text)
    except Exception:  # ruamel raises several unrelated error classes
        return None
    doc = YamlDocument(file=shown, data=_plain(tree), tree=tree)
    loaded, _ = _validate(definition, doc.data, path.stem, doc)
    if loaded is None or _key(loaded.kind, loaded.name) != _key(definition.kind, definition.name):
        return None
    return loaded.spec()


def _normalised(definition: StoredDefinition, shown: str) -> dict[str, Any]:
    """The stored spec as the current models read it: what the exported file must load to.

    It equals the stored spec unless the models changed since it was stored.
    """
    loaded, issues = _validate(definition, dict(definition.spec), definition.name)
    if loaded is None:
        problems = "; ".join(f"{issue.path}: {issue.message}" for issue in issues)
        raise ConfigError(
            f"{definition.kind} {definition.name!r} version {definition.version} no longer "
            f"validates, so it cannot be exported to {shown}: {problems}",
            hint="fix it through the API, or write its file by hand and apply it",
        )
    return loaded.spec()


def _render(definition: StoredDefinition, target: dict[str, Any], path: Path, shown: str) -> str:
    """The file text: the shortest form that loads back to ``target``, tried in order."""
    loaded, _ = _validate(definition, dict(target), definition.name)
    assert loaded is not None  # _normalised validated it
    pruned = loaded.model.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    header = _header(definition)
    stem = path.stem
    candidates: list[Callable[[], str]] = [
        lambda: _dump(_shape(target, pruned, stem, top=True), header, literal=True),
        lambda: _dump(_shape(target, target, stem, top=True), header, literal=True),
        lambda: _dump(_shape(target, target, stem, top=True), header, literal=False),
    ]
    for candidate in candidates:
        text = candidate()
        if _reload(text, definition, path, shown) == target:
            return text
    raise ConfigError(
        f"{definition.kind} {definition.name!r} version {definition.version} cannot be written "
        f"as {shown} so that it loads back unchanged",
        hint="report this as a bug, with the definition",
    )


def _shape(full: Any, pruned: Any, stem: str, *, top: bool = False) -> Any:
    """``full`` without what ``pruned`` (``exclude_defaults``) left out, in ``full``'s key
    order, keeping union tags (``type``, ``kind``): a union cannot be read without its tag.

    At the top, ``name`` is left out when it is the file's stem and ``kind`` unless it is
    ``group`` (the loader fills both in from the file's name and folder).
    """
    if isinstance(full, dict):
        kept = pruned if isinstance(pruned, dict) else {}
        shaped: dict[str, Any] = {}
        for key, value in full.items():
            if top and key == "name" and value == stem:
                continue
            if top and key == "kind":
                if value == "group":
                    shaped[key] = value
                continue
            if key in kept:
                shaped[key] = _shape(value, kept[key], stem)
            elif key in ("type", "kind") and not top:
                shaped[key] = value
        return shaped
    if isinstance(full, list):
        items = pruned if isinstance(pruned, list) and len(pruned) == len(full) else full
        return [_shape(a, b, stem) for a, b in zip(full, items, strict=True)]
    return full


def _header(definition: StoredDefinition) -> str | None:
    """A comment for a status the metadata store holds outside the spec (an archive or a
    pause through the CLI or the API changes no version, so the file cannot carry it)."""
    spec_status = definition.spec.get("status")
    if definition.kind in _STATUS_FREE_KINDS:
        if definition.status in ("archived",):
            return f"{definition.kind} {definition.name!r} is archived in the metadata store"
        return None
    if spec_status is not None and spec_status != definition.status:
        return (
            f"status in the metadata store: {definition.status} "
            "(set without a new version; this file keeps the version's own status)"
        )
    return None


def _dump(data: Any, header: str | None, *, literal: bool) -> str:
    yaml = YAML(typ="rt")
    yaml.default_flow_style = False
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 100
    document = _commented(data, literal=literal)
    if header is not None and isinstance(document, CommentedMap):
        document.yaml_set_start_comment(header)
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    return buffer.getvalue()


def _commented(value: Any, *, literal: bool) -> Any:
    """Plain data as ruamel nodes: maps keep their order, multi-line text is a ``|`` block."""
    if isinstance(value, dict):
        node = CommentedMap()
        for key, item in value.items():
            node[key] = _commented(item, literal=literal)
        return node
    if isinstance(value, list):
        return CommentedSeq(_commented(item, literal=literal) for item in value)
    if literal and isinstance(value, str) and "\n" in value:
        return LiteralScalarString(value)
    return value

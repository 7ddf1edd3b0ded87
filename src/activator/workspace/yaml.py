"""Reading YAML with line numbers, so every error can name its file, line and path."""

from __future__ import annotations

__all__ = ["YamlDocument", "format_loc", "issues_from_validation", "parse_loc", "read_yaml"]

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from activator.errors import Issue


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML file: plain data for validation, plus the node tree for line lookups."""

    file: str
    """Path shown in messages (relative to the workspace)."""

    data: Any
    """The document as plain dicts, lists and scalars."""

    tree: Any
    """The ruamel round-trip tree, which knows where each key and item is."""

    def locate(self, loc: Sequence[str | int]) -> tuple[list[str | int], int | None]:
        """Map a pydantic error location onto the file.

        Returns:
            The location without the union tags pydantic inserts (they are not keys of the
            file), and the 1-based line of the deepest part of it present in the file.
        """
        node = self.tree
        line: int | None = 1 if node is not None else None
        kept: list[str | int] = []
        for i, part in enumerate(loc):
            more = i + 1 < len(loc)
            is_container = isinstance(node, CommentedMap | CommentedSeq)
            if isinstance(node, CommentedMap) and part in node:
                child = node[part]
                if more and not isinstance(child, CommentedMap | CommentedSeq):
                    continue  # a tag equal to a key (e.g. 'behavior'): the value is a scalar
                line = node.lc.key(part)[0] + 1
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
                child = node[part]
                line = node.lc.item(part)[0] + 1
            elif is_container and isinstance(part, str) and more:
                continue  # a union's tag
            else:
                kept.extend(loc[i:])  # a missing key: name it anyway
                break
            kept.append(part)
            node = child
        return kept, line


def _plain(node: Any) -> Any:
    if isinstance(node, CommentedMap):
        return {str(key): _plain(value) for key, value in node.items()}
    if isinstance(node, CommentedSeq):
        return [_plain(item) for item in node]
    if isinstance(node, str):
        return str(node)  # ruamel's scalar string subclasses carry style, not meaning
    return node


def read_yaml(path: Path, *, shown_as: str) -> YamlDocument:
    """Parse one YAML file.

    Raises:
        DefinitionError: the file is not valid YAML (the message names the line and column).
    """
    from activator.errors import DefinitionError

    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DefinitionError([Issue(shown_as, None, "", "is not UTF-8 text")]) from None
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = exc.problem or exc.context or "invalid YAML"
        column = f" (column {mark.column + 1})" if mark is not None else ""
        raise DefinitionError(
            [Issue(shown_as, line, "", f"invalid YAML: {reason}{column}")]
        ) from None
    except Exception as exc:  # ruamel raises a few unmarked errors (duplicate keys, bad tags)
        raise DefinitionError([Issue(shown_as, None, "", f"invalid YAML: {exc}")]) from None
    return YamlDocument(file=shown_as, data=_plain(tree), tree=tree)


def format_loc(loc: Sequence[str | int]) -> str:
    """``('audience', 'include', 1)`` → ``audience.include[1]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def parse_loc(path: str) -> list[str | int]:
    """``audience.include[1]`` → ``['audience', 'include', 1]``: the inverse of format_loc."""
    parts: list[str | int] = []
    for chunk in path.replace("]", "").split("."):
        name, *indexes = chunk.split("[")
        if name:
            parts.append(name)
        parts.extend(int(i) for i in indexes)
    return parts


def issues_from_validation(doc: YamlDocument, error: ValidationError) -> list[Issue]:
    """One :class:`Issue` per pydantic error, with the file's line and a readable path."""
    issues: list[Issue] = []
    for err in error.errors(include_url=False):
        loc, line = doc.locate(err["loc"])
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see docs/workspace.md for the keys)"
        elif err["type"] == "missing":
            message = "required key is missing"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        issues.append(Issue(doc.file, line, format_loc(loc), message))
    return issues

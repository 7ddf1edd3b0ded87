"""Cross-reference checks: every name a definition uses must exist, and segments form no cycle."""

from __future__ import annotations

__all__ = ["check_references"]

from collections.abc import Iterator

from activator.definitions.campaign import CampaignDefinition, DestinationUse, SubAudience
from activator.definitions.common import (
    AttributeCondition,
    BehaviorCondition,
    Rules,
    rule_conditions,
    segment_references,
)
from activator.definitions.journey import (
    ActivateNode,
    ConditionalSplitNode,
    JourneyDefinition,
    PercentSplitNode,
)
from activator.definitions.orchestration import (
    OrchestrationDefinition,
    OrchestrationGroupDefinition,
)
from activator.definitions.segment import SegmentDefinition
from activator.errors import Issue
from activator.workspace.loader import LoadedDefinition, Workspace


def _destination_uses(uses: list[DestinationUse], prefix: str) -> Iterator[tuple[str, str]]:
    for i, use in enumerate(uses):
        yield use.destination, f"{prefix}[{i}].destination"


def _sub_audience_refs(sub: SubAudience, prefix: str) -> Iterator[tuple[str, str, str]]:
    if sub.segment:
        yield "segment", sub.segment, f"{prefix}.segment"
    for name, path in segment_references(sub.rules, f"{prefix}.rules"):
        yield "segment", name, path
    for g, group in enumerate(sub.groups):
        for name, path in _destination_uses(
            group.destinations, f"{prefix}.groups[{g}].destinations"
        ):
            yield "destination", name, path


def _references(loaded: LoadedDefinition) -> Iterator[tuple[str, str, str]]:
    """(kind referred to, name, path) for every reference a definition makes."""
    model = loaded.model
    if isinstance(model, SegmentDefinition):
        for part in ("rules", "exclude"):
            rules: Rules | None = getattr(model, part)
            for name, path in segment_references(rules, part):
                yield "segment", name, path
    elif isinstance(model, CampaignDefinition):
        for part in ("include", "exclude"):
            for i, name in enumerate(getattr(model.audience, part)):
                yield "segment", name, f"audience.{part}[{i}]"
        for s, sub in enumerate(model.sub_audiences):
            yield from _sub_audience_refs(sub, f"sub_audiences[{s}]")
        if model.remaining is not None:
            yield from _sub_audience_refs(model.remaining, "remaining")
        for name, path in _destination_uses(model.destinations, "destinations"):
            yield "destination", name, path
    elif isinstance(model, JourneyDefinition):
        for name, path in model.segment_names():
            yield "segment", name, path
        for n, node in enumerate(model.nodes):
            if isinstance(node, ActivateNode):
                for name, path in _destination_uses(node.destinations, f"nodes[{n}].destinations"):
                    yield "destination", name, path
            if isinstance(node, ConditionalSplitNode | PercentSplitNode):
                for p, split_path in enumerate(node.paths):
                    for name, path in segment_references(
                        split_path.rules, f"nodes[{n}].paths[{p}].rules"
                    ):
                        yield "segment", name, path
    elif isinstance(model, OrchestrationDefinition):
        yield "destination", model.destination, "destination"
        for i, name in enumerate(model.after):
            yield "orchestration", name, f"after[{i}]"
    elif isinstance(model, OrchestrationGroupDefinition):
        for i, name in enumerate(model.orchestrations):
            yield "orchestration", name, f"orchestrations[{i}]"


def _segment_cycles(ws: Workspace) -> list[Issue]:
    edges: dict[str, list[tuple[str, str]]] = {}
    by_name = {d.name: d for d in ws.of_kind("segment")}
    for loaded in by_name.values():
        edges[loaded.name] = [
            (name, path) for kind, name, path in _references(loaded) if kind == "segment"
        ]
    issues: list[Issue] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for target, path in edges.get(name, []):
            if target not in by_name:
                continue
            if state.get(target) == 1:
                cycle = [*trail[trail.index(target) :], target] if target in trail else [name]
                issues.append(
                    by_name[name].issue(
                        path, "segments refer to each other in a cycle: " + " -> ".join(cycle)
                    )
                )
            elif state.get(target) is None:
                visit(target, [*trail, target])
        state[name] = 2

    for name in sorted(by_name):
        if state.get(name) is None:
            visit(name, [name])
    return issues


def check_references(ws: Workspace) -> list[Issue]:
    """Every reference that names a missing definition, and every segment cycle."""
    known = {
        "segment": ws.names("segment"),
        "destination": ws.names("destination"),
        "orchestration": ws.names("orchestration", "group"),
    }
    model = ws.config.data_model
    tables = {model.customers.table, "customers", *model.events}
    events = set(model.events)
    issues: list[Issue] = []
    for loaded in ws.definitions:
        for kind, name, path in _references(loaded):
            if name not in known[kind]:
                choices = ", ".join(sorted(known[kind])) or "none defined"
                issues.append(loaded.issue(path, f"unknown {kind} {name!r} (known: {choices})"))
        if isinstance(loaded.model, SegmentDefinition):
            issues.extend(_table_issues(loaded, tables, events))
    return [*issues, *_segment_cycles(ws)]


def _table_issues(loaded: LoadedDefinition, tables: set[str], events: set[str]) -> list[Issue]:
    """Attribute and behaviour conditions must name tables of the data model."""
    issues: list[Issue] = []
    model = loaded.model
    assert isinstance(model, SegmentDefinition)
    leaves = [*rule_conditions(model.rules, "rules"), *rule_conditions(model.exclude, "exclude")]
    for path, node in leaves:
        if isinstance(node, AttributeCondition):
            table = node.attribute.split(".", 1)[0]
            if table not in tables:
                issues.append(
                    loaded.issue(
                        f"{path}.attribute",
                        f"table {table!r} is not in the data model "
                        f"(known: {', '.join(sorted(tables))})",
                    )
                )
        elif isinstance(node, BehaviorCondition) and node.table not in events:
            issues.append(
                loaded.issue(
                    f"{path}.table",
                    f"event table {node.table!r} is not in the data model "
                    f"(known: {', '.join(sorted(events)) or 'none declared'})",
                )
            )
    return issues

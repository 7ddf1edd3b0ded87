"""Cross-reference checks: every name a definition uses must exist, and segments form no cycle."""

from __future__ import annotations

__all__ = ["check_references"]

from collections.abc import Iterator, Sequence

from activator.definitions.campaign import (
    CampaignDefinition,
    DestinationUse,
    Remaining,
    SubAudience,
)
from activator.definitions.common import (
    AttributeCondition,
    BehaviorCondition,
    Rules,
    campaign_references,
    journey_references,
    rule_conditions,
    segment_references,
)
from activator.definitions.journey import (
    ActivateNode,
    ConditionalSplitNode,
    JourneyDefinition,
)
from activator.definitions.orchestration import (
    OrchestrationDefinition,
    OrchestrationGroupDefinition,
)
from activator.definitions.segment import SegmentDefinition
from activator.errors import Issue
from activator.workspace.loader import LoadedDefinition, Workspace


def _destination_uses(
    uses: Sequence[str | DestinationUse] | None, prefix: str
) -> Iterator[tuple[str, str]]:
    """Destination names with their paths: a bare name, or a use's ``destination``."""
    for i, use in enumerate(uses or []):
        if isinstance(use, str):
            yield use, f"{prefix}[{i}]"
        else:
            yield use.destination, f"{prefix}[{i}].destination"


def _rule_refs(rules: Rules | None, prefix: str) -> Iterator[tuple[str, str, str]]:
    """Segments (membership), campaigns and journeys (activity) a rule tree names."""
    for name, path in segment_references(rules, prefix):
        yield "segment", name, path
    for name, path in campaign_references(rules, prefix):
        yield "campaign", name, path
    for name, path in journey_references(rules, prefix):
        yield "journey", name, path


def _sub_audience_refs(sub: SubAudience | Remaining, prefix: str) -> Iterator[tuple[str, str, str]]:
    if isinstance(sub, SubAudience):
        if sub.segment:
            yield "segment", sub.segment, f"{prefix}.segment"
        yield from _rule_refs(sub.rules, f"{prefix}.rules")
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
            yield from _rule_refs(rules, part)
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
            if isinstance(node, ConditionalSplitNode):
                for p, split_path in enumerate(node.paths):
                    yield from _rule_refs(split_path.rules, f"nodes[{n}].paths[{p}].rules")
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
        "campaign": ws.names("campaign"),
        "journey": ws.names("journey"),
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
        if isinstance(loaded.model, CampaignDefinition):
            issues.extend(_activation_id_issues(ws, loaded, loaded.model))
    return [*issues, *_segment_cycles(ws)]


def _activation_id_issues(
    ws: Workspace, loaded: LoadedDefinition, campaign: CampaignDefinition
) -> list[Issue]:
    """A campaign's segments must all identify customers by the same activation ID: a union
    or difference of sets of different IDs would silently match unrelated customers."""
    default = ws.config.data_model.customers.key
    segments = {
        d.name: d.model for d in ws.of_kind("segment") if isinstance(d.model, SegmentDefinition)
    }
    used = [(f"audience.include[{i}]", n) for i, n in enumerate(campaign.audience.include)]
    used += [(f"audience.exclude[{i}]", n) for i, n in enumerate(campaign.audience.exclude)]
    used += [
        (f"sub_audiences[{i}].segment", sub.segment)
        for i, sub in enumerate(campaign.sub_audiences)
        if sub.segment is not None
    ]
    ids = [
        (path, name, segments[name].activation_id or default)
        for path, name in used
        if name in segments
    ]
    if not ids:
        return []
    first_path, first_name, first_id = ids[0]
    return [
        loaded.issue(
            path,
            f"segment {name!r} identifies customers by {activation_id!r}, but {first_name!r} "
            f"({first_path}) by {first_id!r}: a campaign's segments must share one activation ID",
        )
        for path, name, activation_id in ids[1:]
        if activation_id != first_id
    ]


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

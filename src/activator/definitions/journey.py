"""Journeys: versioned node graphs that move travellers through steps over time.

A journey has a **start** (who enters, who is kept out, who leaves, what counts as a goal, the
re-entry rule) and **nodes**, each with a stable ``id`` (travellers stay at a node across
versions as long as its id exists) and a unique ``name``. Edges are node ids: ``next`` for the
linear nodes, one per path for splits, ``met``/``timed_out`` for *wait until*. An edge left
empty ends the traveller's journey there (they exit once the node is done). See
``docs/journeys.md``.
"""

from __future__ import annotations

__all__ = [
    "ActivateNode",
    "ConditionalPath",
    "ConditionalSplitNode",
    "DelayNode",
    "ExitNode",
    "JourneyDefinition",
    "JourneyNode",
    "JourneyStart",
    "MergeNode",
    "PercentPath",
    "PercentSplitNode",
    "WaitUntilNode",
    "add_wait",
    "edges",
]

import calendar
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, model_validator

from activator.definitions.base import Definition, Model, Name
from activator.definitions.campaign import DestinationUse, Percent, basis_points
from activator.definitions.common import Rules, Schedule

NodeId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
"""A node's stable id: letters, digits, ``_`` and ``-``."""

Wait = Annotated[
    str,
    Field(
        pattern=r"^\d{1,4}[hdwm]$",
        description="A duration: a number and a unit, h(ours), d(ays), w(eeks) or m(onths).",
    ),
]
"""A minimum wait: ``12h``, ``3d``, ``2w``, ``1m``."""

_WAIT = re.compile(r"^(\d+)([hdwm])$")


def add_wait(moment: datetime, wait: str, timezone: str) -> datetime:
    """``moment`` plus a wait, on the calendar of ``timezone``.

    Hours are exact (a 24h wait across a daylight-saving change is 24 elapsed hours). Days,
    weeks and months are calendar steps on the local wall clock: ``1d`` from 09:00 is 09:00 the
    next day, and ``1m`` from 31 January is the last day of February (the day is clamped to the
    month's length, as SQL's ``+ INTERVAL 1 MONTH`` does).

    Args:
        moment: An aware datetime.
        wait: ``<n>h``, ``<n>d``, ``<n>w`` or ``<n>m``.
        timezone: IANA time zone of the calendar.
    """
    found = _WAIT.match(wait)
    if found is None:
        raise ValueError(f"{wait!r} is not a wait such as 12h, 3d, 2w or 1m")
    count, unit = int(found.group(1)), found.group(2)
    if unit == "h":
        # Elapsed hours: aware arithmetic on a zone's datetime would step the wall clock.
        return (moment.astimezone(UTC) + timedelta(hours=count)).astimezone(moment.tzinfo)
    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone).replace(tzinfo=None)
    if unit in "dw":
        local += timedelta(days=count * (7 if unit == "w" else 1))
    else:
        months = local.year * 12 + local.month - 1 + count
        year, month = divmod(months, 12)
        day = min(local.day, calendar.monthrange(year, month + 1)[1])
        local = local.replace(year=year, month=month + 1, day=day)
    return local.replace(tzinfo=zone).astimezone(moment.tzinfo)


class JourneyStart(Model):
    """Who enters, who is kept out, who leaves, and what counts as a goal."""

    entry: list[Name] = Field(min_length=1, max_length=10)
    """Segments whose members enter (their union)."""

    exclude: list[Name] = Field(default=[], max_length=10)
    """Members of these segments never enter."""

    exit: list[Name] = Field(default=[], max_length=10)
    """Travellers matching one of these leave the journey, checked at every run (customers
    matching one do not enter either)."""

    goals: list[Name] = Field(default=[], max_length=10)
    """Tracked: a traveller reaching one is recorded, not removed."""

    reentry: Literal["never", "after_exit"] = "never"
    """``never``: one journey per customer. ``after_exit``: a customer who has left may enter
    again when newly qualified, i.e. after a run at which they did not qualify."""


class _Node(Model):
    id: NodeId
    """Stable id: kept across versions, so travellers stay where they are."""

    name: str = ""
    """Unique display name; default: the id."""

    @model_validator(mode="after")
    def _default_name(self) -> _Node:
        if not self.name:
            self.name = self.id
        return self


class ActivateNode(_Node):
    """Send the travellers who reach it to destinations, then move on."""

    type: Literal["activate"]
    destinations: list[DestinationUse] = Field(min_length=1)
    next: NodeId | None = None

    @model_validator(mode="after")
    def _each_destination_once(self) -> ActivateNode:
        names = [use.destination for use in self.destinations]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"a destination is listed twice: {', '.join(twice)}")
        return self


class DelayNode(_Node):
    """Hold travellers for a minimum wait; they move on at the first run at or after it."""

    type: Literal["delay"]
    wait: Wait
    next: NodeId | None = None


EVERYONE_ELSE = "everyone-else"
"""The path name of a conditional split's ``otherwise`` edge in the travel log."""


def _unique_paths(paths: list[ConditionalPath] | list[PercentPath]) -> None:
    names = [path.name for path in paths]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"path names must be unique in a split: {', '.join(twice)}")


class ConditionalPath(Model):
    """One path of a conditional split: a saved segment or inline rules."""

    name: str = Field(min_length=1)
    segment: Name | None = None
    rules: Rules | None = None
    next: NodeId | None = None

    @model_validator(mode="after")
    def _one_condition(self) -> ConditionalPath:
        if (self.segment is None) == (self.rules is None):
            raise ValueError(f"path {self.name!r} needs exactly one of segment or rules")
        return self


class ConditionalSplitNode(_Node):
    """Ordered paths, the first a traveller matches wins; everyone else takes ``otherwise``."""

    type: Literal["conditional_split"]
    paths: list[ConditionalPath] = Field(min_length=1, max_length=20)
    otherwise: NodeId | None = None
    """Where *everyone else* goes; empty: they leave the journey."""

    @model_validator(mode="after")
    def _path_names(self) -> ConditionalSplitNode:
        _unique_paths(self.paths)
        if any(path.name == EVERYONE_ELSE for path in self.paths):
            raise ValueError(f"the path name {EVERYONE_ELSE!r} is reserved for `otherwise`")
        return self


class PercentPath(Model):
    """One path of a percent split."""

    name: str = Field(min_length=1)
    percent: Percent
    """Share of the travellers, to two decimals."""

    control: bool = False
    """Travellers on this path are a control group: they are recorded at activate nodes for
    the rest of their journey but never sent anything."""

    next: NodeId | None = None


class PercentSplitNode(_Node):
    """Paths by percentage; each traveller's path is a pure function of their ID."""

    type: Literal["percent_split"]
    paths: list[PercentPath] = Field(min_length=2, max_length=20)

    @model_validator(mode="after")
    def _shares(self) -> PercentSplitNode:
        total = sum(basis_points(path.percent) for path in self.paths)
        if total != 10_000:
            raise ValueError(f"path percentages add up to {total / 100:g}, not 100")
        if sum(path.control for path in self.paths) > 1:
            raise ValueError("at most one path can be the control")
        _unique_paths(self.paths)
        return self


class MergeNode(_Node):
    """Joins the paths of a split."""

    type: Literal["merge"]
    next: NodeId | None = None


class WaitUntilNode(_Node):
    """Wait for a segment to match, up to a timeout: *met* or *timed out*."""

    type: Literal["wait_until"]
    segment: Name
    timeout: Wait
    met: NodeId | None = None
    timed_out: NodeId | None = None


class ExitNode(_Node):
    """Ends a path explicitly."""

    type: Literal["exit"]


JourneyNode = Annotated[
    ActivateNode
    | DelayNode
    | ConditionalSplitNode
    | PercentSplitNode
    | MergeNode
    | WaitUntilNode
    | ExitNode,
    Field(discriminator="type"),
]

SPLITS = (ConditionalSplitNode, PercentSplitNode, WaitUntilNode)


def edges(node: JourneyNode) -> list[tuple[str, str | None]]:
    """A node's outgoing edges in order, as (path name, next node id or None)."""
    if isinstance(node, ConditionalSplitNode):
        return [(p.name, p.next) for p in node.paths] + [(EVERYONE_ELSE, node.otherwise)]
    if isinstance(node, PercentSplitNode):
        return [(p.name, p.next) for p in node.paths]
    if isinstance(node, WaitUntilNode):
        return [("met", node.met), ("timed-out", node.timed_out)]
    if isinstance(node, ExitNode):
        return []
    return [("", node.next)]


def _edge_keys(node: JourneyNode) -> list[tuple[str, str | None]]:
    """A node's edges named by their key in the definition (``paths[1].next``, ``met``)."""
    if isinstance(node, ConditionalSplitNode):
        keys = [(f"paths[{p}].next", path.next) for p, path in enumerate(node.paths)]
        return [*keys, ("otherwise", node.otherwise)]
    if isinstance(node, PercentSplitNode):
        return [(f"paths[{p}].next", path.next) for p, path in enumerate(node.paths)]
    if isinstance(node, WaitUntilNode):
        return [("met", node.met), ("timed_out", node.timed_out)]
    if isinstance(node, ExitNode):
        return []
    return [("next", node.next)]


class JourneyDefinition(Definition):
    """A journey: a start and a graph of nodes, run on a recurrence."""

    kind: Literal["journey"] = "journey"
    start: JourneyStart
    first: NodeId | None = None
    """Id of the node travellers enter at; default: the first node listed."""

    nodes: list[JourneyNode] = Field(min_length=1, max_length=200)
    schedule: Schedule
    status: Literal["draft", "active", "paused", "ended"] = "draft"
    salt: str | None = None
    """Salt of the percent splits' assignment (default: the journey's name); each split adds
    its node id. Sharing a salt between journeys shares their assignments."""

    @property
    def entry_node(self) -> str:
        """The id of the node travellers enter at."""
        return self.first or self.nodes[0].id

    def node(self, node_id: str) -> JourneyNode:
        """The node with this id."""
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def split_salt(self, node_id: str) -> str:
        """The salt of one percent split's assignment."""
        return f"{self.salt or self.name}:{node_id}"

    @model_validator(mode="after")
    def _graph(self) -> JourneyDefinition:
        errors: list[str] = []
        ids: dict[str, int] = {}
        names: dict[str, str] = {}
        for n, node in enumerate(self.nodes):
            if node.id in ids:
                errors.append(
                    f"nodes[{n}] ({node.id}): the id is also the id of nodes[{ids[node.id]}]"
                )
            ids.setdefault(node.id, n)
            if node.name in names:
                errors.append(
                    f"nodes[{n}] ({node.id}): name {node.name!r} is also the name of node "
                    f"{names[node.name]!r}"
                )
            names.setdefault(node.name, node.id)
        if self.first is not None and self.first not in ids:
            errors.append(f"first: no node has the id {self.first!r}")
        for n, node in enumerate(self.nodes):
            for key, target in _edge_keys(node):
                if target is not None and target not in ids:
                    errors.append(
                        f"nodes[{n}] ({node.id}): {key} {target!r} is not the id of any node"
                    )
        if errors:
            raise ValueError("; ".join(errors))
        errors = self._shape_errors(ids)
        if errors:
            raise ValueError("; ".join(errors))
        return self

    def _shape_errors(self, ids: dict[str, int]) -> list[str]:
        """No cycles, everything reachable from the start, merges only after splits."""
        errors: list[str] = []
        following = {node.id: [t for _, t in edges(node) if t is not None] for node in self.nodes}
        # Depth-first from the start: a grey node met again closes a cycle.
        state: dict[str, str] = {}
        stack: list[tuple[str, int]] = [(self.entry_node, 0)]
        state[self.entry_node] = "grey"
        while stack:
            current, index = stack.pop()
            targets = following[current]
            if index < len(targets):
                stack.append((current, index + 1))
                target = targets[index]
                if state.get(target) == "grey":
                    errors.append(
                        f"nodes[{ids[current]}] ({current}): its next node {target!r} closes a "
                        "loop: a journey cannot loop"
                    )
                elif target not in state:
                    state[target] = "grey"
                    stack.append((target, 0))
            else:
                state[current] = "black"
        for node in self.nodes:
            if node.id not in state:
                errors.append(
                    f"nodes[{ids[node.id]}] ({node.id}): no path from the start node "
                    f"{self.entry_node!r} reaches it"
                )
        if errors:
            return errors
        # A merge must have a split upstream on every way into it.
        after_split: dict[str, bool] = {}
        for node_id in self._order():
            node = self.node(node_id)
            before = [m for m, targets in following.items() if node_id in targets]
            after_split[node_id] = bool(before) and all(
                after_split[m] or isinstance(self.node(m), SPLITS) for m in before
            )
            if isinstance(node, MergeNode) and not after_split[node_id]:
                errors.append(
                    f"nodes[{ids[node_id]}] ({node_id}): a merge must come after a split "
                    "(conditional split, percent split or wait until)"
                )
        return errors

    def _order(self) -> list[str]:
        """Node ids in topological order (the graph has no cycles)."""
        incoming = {node.id: 0 for node in self.nodes}
        for node in self.nodes:
            for _, target in edges(node):
                if target is not None:
                    incoming[target] += 1
        ready = [node.id for node in self.nodes if incoming[node.id] == 0]
        order: list[str] = []
        while ready:
            current = ready.pop(0)
            order.append(current)
            for _, target in edges(self.node(current)):
                if target is not None:
                    incoming[target] -= 1
                    if incoming[target] == 0:
                        ready.append(target)
        return order

    def depth(self) -> int:
        """The most nodes on one path from the start: a run advances at most this many
        steps."""
        longest: dict[str, int] = {}
        for node_id in reversed(self._order()):
            targets = [t for _, t in edges(self.node(node_id)) if t is not None]
            longest[node_id] = 1 + max((longest[t] for t in targets), default=0)
        return longest.get(self.entry_node, 1)

    def segment_names(self) -> list[tuple[str, str]]:
        """Every segment the journey names, with its path."""
        found: list[tuple[str, str]] = []
        for part in ("entry", "exclude", "exit", "goals"):
            for i, name in enumerate(getattr(self.start, part)):
                found.append((name, f"start.{part}[{i}]"))
        for n, node in enumerate(self.nodes):
            if isinstance(node, WaitUntilNode):
                found.append((node.segment, f"nodes[{n}].segment"))
            if isinstance(node, ConditionalSplitNode):
                for p, path in enumerate(node.paths):
                    if path.segment:
                        found.append((path.segment, f"nodes[{n}].paths[{p}].segment"))
        return found

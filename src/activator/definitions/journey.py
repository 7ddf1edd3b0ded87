"""Journeys: versioned node graphs that move travellers through steps over time."""

from __future__ import annotations

__all__ = ["JourneyDefinition", "JourneyNode", "JourneyStart"]

from typing import Annotated, Literal

from pydantic import Field, model_validator

from activator.definitions.base import Definition, Model, Name
from activator.definitions.campaign import DestinationUse
from activator.definitions.common import Rules, Schedule


class JourneyStart(Model):
    """Who enters, who is kept out, who leaves, and what counts as a goal."""

    entry: list[Name] = Field(min_length=1, max_length=10)
    exclude: list[Name] = []
    exit: list[Name] = []
    goals: list[Name] = []
    reentry: Literal["never", "after_exit"] = "never"


class _Node(Model):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    """Stable id: kept across versions so travellers stay where they are."""

    name: str
    next: str | None = None
    """Id of the following node (absent for exits and splits)."""


class ActivateNode(_Node):
    type: Literal["activate"]
    destinations: list[DestinationUse] = Field(min_length=1)


class DelayNode(_Node):
    type: Literal["delay"]
    wait: str = Field(pattern=r"^\d+[hdwm]$")
    """Minimum wait: ``12h``, ``3d``, ``2w``, ``1m``."""


class SplitPath(Model):
    name: str
    segment: Name | None = None
    rules: Rules | None = None
    percent: float | None = Field(default=None, gt=0, le=100)
    control: bool = False
    next: str | None = None


class ConditionalSplitNode(_Node):
    type: Literal["conditional_split"]
    paths: list[SplitPath] = Field(min_length=1)
    otherwise: str | None = None
    """Node id for *everyone else*."""


class PercentSplitNode(_Node):
    type: Literal["percent_split"]
    paths: list[SplitPath] = Field(min_length=2)

    @model_validator(mode="after")
    def _sum_100(self) -> PercentSplitNode:
        total = sum(path.percent or 0 for path in self.paths)
        if abs(total - 100) > 1e-9:
            raise ValueError(f"path percentages add up to {total:g}, not 100")
        return self


class MergeNode(_Node):
    type: Literal["merge"]


class WaitUntilNode(_Node):
    type: Literal["wait_until"]
    segment: Name
    timeout: str = Field(pattern=r"^\d+[hdwm]$")
    met: str | None = None
    timed_out: str | None = None


class ExitNode(_Node):
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


class JourneyDefinition(Definition):
    """A journey (the journeys work fills in validation of the graph and stepping)."""

    kind: Literal["journey"] = "journey"
    start: JourneyStart
    first: str | None = None
    """Id of the node travellers enter at; default: the first node listed."""

    nodes: list[JourneyNode] = []
    schedule: Schedule
    status: Literal["draft", "active", "paused", "ended"] = "draft"

    def segment_names(self) -> list[tuple[str, str]]:
        """Every segment the journey names, with its path."""
        found: list[tuple[str, str]] = []
        for part in ("entry", "exclude", "exit", "goals"):
            for i, name in enumerate(getattr(self.start, part)):
                found.append((name, f"start.{part}[{i}]"))
        for n, node in enumerate(self.nodes):
            if isinstance(node, WaitUntilNode):
                found.append((node.segment, f"nodes[{n}].segment"))
            if isinstance(node, ConditionalSplitNode | PercentSplitNode):
                for p, path in enumerate(node.paths):
                    if path.segment:
                        found.append((path.segment, f"nodes[{n}].paths[{p}].segment"))
        return found

"""Campaigns: an audience split into sub-audiences and groups, sent to destinations."""

from __future__ import annotations

__all__ = ["Audience", "CampaignDefinition", "DestinationUse", "SubAudience", "TreatmentGroup"]

from typing import Literal

from pydantic import Field, field_validator, model_validator

from activator.definitions.base import Definition, Model, Name
from activator.definitions.common import OnceSchedule, Rules, Schedule
from activator.definitions.mapping import AttributeMapping


class Audience(Model):
    """Union of the include segments minus the union of the exclude segments."""

    include: list[Name] = Field(min_length=1, max_length=10)
    exclude: list[Name] = Field(default=[], max_length=10)


class DestinationUse(Model):
    """A destination a group is sent to, with its attribute mapping."""

    destination: Name
    mapping: AttributeMapping = {}
    """Destination field → its source (``field: column`` shorthand) or a full spec with
    transforms, a platform hash and a required flag; see ``docs/mapping.md``."""


class TreatmentGroup(Model):
    """A share of a sub-audience; one group may be the control (never sent)."""

    name: str = Field(min_length=1, max_length=128)
    percent: float = Field(gt=0, le=100)
    control: bool = False
    destinations: list[DestinationUse] = []

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value.startswith("_"):
            raise ValueError(f"group names starting with '_' are reserved: {value!r}")
        return value


def _default_groups() -> list[TreatmentGroup]:
    return [
        TreatmentGroup(name="treatment", percent=90),
        TreatmentGroup(name="control", percent=10, control=True),
    ]


class SubAudience(Model):
    """An ordered part of the audience: a saved segment or inline rules."""

    name: Name
    segment: Name | None = None
    rules: Rules | None = None
    groups: list[TreatmentGroup] = Field(default_factory=_default_groups)

    @model_validator(mode="after")
    def _segment_or_rules(self) -> SubAudience:
        if (self.segment is None) == (self.rules is None):
            raise ValueError("a sub-audience has either 'segment' or 'rules' (exactly one)")
        total = sum(group.percent for group in self.groups)
        if abs(total - 100) > 1e-9:
            raise ValueError(f"group percentages add up to {total:g}, not 100")
        if sum(group.control for group in self.groups) > 1:
            raise ValueError("at most one group can be the control")
        return self


class CampaignDefinition(Definition):
    """A campaign (the campaigns work fills in delivery, modes and results)."""

    kind: Literal["campaign"] = "campaign"
    audience: Audience
    sub_audiences: list[SubAudience] = Field(default=[], max_length=60)
    first_match_only: bool = True
    """Each customer goes to the first sub-audience they match (else to every match)."""

    remaining: SubAudience | None = None
    """Groups and destinations for *All remaining* (customers matching no sub-audience)."""

    destinations: list[DestinationUse] = []
    """Destinations for every treatment group when no sub-audiences are declared."""

    schedule: Schedule = Field(default_factory=OnceSchedule)
    mode: Literal["incremental", "full", "mirror"] = "incremental"
    status: Literal["draft", "active", "paused", "archived"] = "draft"

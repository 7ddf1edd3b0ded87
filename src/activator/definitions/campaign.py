"""Campaigns: an audience split into sub-audiences and groups, sent to destinations.

```yaml
audience: {include: [lapsing-high-value], exclude: [unsubscribed]}
destinations:                       # each destination's mapping, shared by every group
  - {destination: email-drop, mapping: {email: email, group: run.group}}
sub_audiences:
  - name: platinum
    rules: {attribute: customers.loyalty_tier, op: equals, value: platinum}
    groups:
      - {name: offer, percent: 90, destinations: [email-drop]}
      - {name: holdout, percent: 10, control: true}
remaining: {name: everyone-else}    # customers matching no sub-audience: 90/10 by default
schedule: {type: recurring, every: weekly, at: "06:00"}
mode: incremental
```

See ``docs/campaigns.md`` for how groups are assigned and what each mode sends.
"""

from __future__ import annotations

__all__ = [
    "Audience",
    "CampaignDefinition",
    "CampaignDestination",
    "DestinationUse",
    "GroupDestination",
    "Percent",
    "Remaining",
    "SubAudience",
    "TreatmentGroup",
    "basis_points",
]

from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from activator.definitions.base import Definition, Model, Name
from activator.definitions.common import OnceSchedule, Rules, Schedule
from activator.definitions.mapping import AttributeMapping

BASIS_POINTS = 10_000
"""Percentages are kept to two decimals: 12.5% is 1,250 basis points of 10,000."""


def _two_decimals(value: float) -> float:
    if abs(value * 100 - round(value * 100)) > 1e-6:
        raise ValueError(f"{value:g}% has more than two decimals")
    return value


Percent = Annotated[float, Field(gt=0, le=100), AfterValidator(_two_decimals)]
"""A share in percent, above 0, at most 100, to two decimals (``12.5``)."""


def basis_points(percent: float) -> int:
    """A percentage as an exact number of basis points (``12.5`` → 1,250)."""
    return round(percent * 100)


class Audience(Model):
    """Union of the include segments minus the union of the exclude segments."""

    include: list[Name] = Field(min_length=1, max_length=10)
    exclude: list[Name] = Field(default=[], max_length=10)


class DestinationUse(Model):
    """A destination sent to, with its attribute mapping."""

    destination: Name
    mapping: AttributeMapping = {}
    """Destination field → its source (``field: column`` shorthand) or a full spec with
    transforms, a platform hash and a required flag; see ``docs/mapping.md``."""


class CampaignDestination(DestinationUse):
    """A destination of the campaign: the mapping every group sending to it shares."""

    files: Literal["per_group", "combined"] = "per_group"
    """File destinations: one file (set) per sub-audience and group, or one for every group
    together, whose rows say their ``sub_audience`` and ``treatment_group``."""


class GroupDestination(DestinationUse):
    """A destination of one group; an empty mapping means the campaign's mapping for it."""


class TreatmentGroup(Model):
    """A share of a sub-audience; one group may be the control (never sent)."""

    name: str = Field(min_length=1, max_length=128, pattern=r"^[^/\\:]+$")
    percent: Percent
    """Share of the sub-audience, to two decimals (``12.5``)."""

    control: bool = False
    destinations: list[Name | GroupDestination] | None = None
    """Where this group is sent: destination names (using the campaign's mapping for each)
    or ``{destination, mapping}`` to override it. Absent: every destination of the campaign
    (``destinations`` at the top). ``[]``: the group is not sent."""

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value.startswith("_"):
            raise ValueError(f"group names starting with '_' are reserved: {value!r}")
        return value

    @model_validator(mode="after")
    def _control_is_not_sent(self) -> TreatmentGroup:
        if self.control and self.destinations:
            raise ValueError(
                f"group {self.name!r} is the control: it is never sent, so it takes no destinations"
            )
        return self

    def uses(self) -> Iterator[GroupDestination]:
        """This group's destinations as uses (names become uses without a mapping)."""
        for item in self.destinations or []:
            yield GroupDestination(destination=item) if isinstance(item, str) else item


def _default_groups() -> list[TreatmentGroup]:
    return [
        TreatmentGroup(name="treatment", percent=90),
        TreatmentGroup(name="control", percent=10, control=True),
    ]


class _Groups(Model):
    groups: list[TreatmentGroup] = Field(default_factory=_default_groups, min_length=1)
    """Treatment groups by percentage (summing to 100), one optionally the control.
    Default: ``treatment`` 90% and ``control`` 10%."""

    @model_validator(mode="after")
    def _check_groups(self) -> _Groups:
        total = sum(basis_points(group.percent) for group in self.groups)
        if total != BASIS_POINTS:
            raise ValueError(f"group percentages add up to {total / 100:g}, not 100")
        if sum(group.control for group in self.groups) > 1:
            raise ValueError("at most one group can be the control")
        names = [group.name for group in self.groups]
        if len(set(names)) != len(names):
            raise ValueError(f"group names must be unique, got {names}")
        return self


class SubAudience(_Groups):
    """An ordered part of the audience: a saved segment or inline rules."""

    name: Name
    segment: Name | None = None
    rules: Rules | None = None

    @model_validator(mode="after")
    def _segment_or_rules(self) -> SubAudience:
        if (self.segment is None) == (self.rules is None):
            raise ValueError("a sub-audience has either 'segment' or 'rules' (exactly one)")
        return self


class Remaining(_Groups):
    """*All remaining*: the audience members who match no sub-audience."""

    name: Name = "all-remaining"


class CampaignDefinition(Definition):
    """A campaign: who (audience), how split (sub-audiences, groups), where, when, how often."""

    kind: Literal["campaign"] = "campaign"
    audience: Audience
    sub_audiences: list[SubAudience] = Field(default=[], max_length=60)
    """Ordered; each customer goes to the first one they match (see ``first_match_only``)."""

    first_match_only: bool = True
    """Each customer goes to the first sub-audience they match (else to every match)."""

    remaining: Remaining = Field(default_factory=Remaining)
    """Groups and destinations for *All remaining* (customers matching no sub-audience; the
    whole audience when there are no sub-audiences)."""

    destinations: list[CampaignDestination] = []
    """The campaign's destinations with their mappings, shared by the groups sending to them;
    a group that names no destinations of its own is sent to all of them."""

    salt: str | None = Field(default=None, min_length=1, max_length=128)
    """Seeds group assignment; default: the campaign's name. Campaigns sharing a salt rank
    customers the same way."""

    schedule: Schedule = Field(default_factory=OnceSchedule)
    mode: Literal["incremental", "full", "mirror"] = "incremental"
    """Recurring runs send the newly qualified (incremental), everyone (full), or the newly
    qualified as additions and those who left as removals (mirror)."""

    status: Literal["draft", "active", "paused", "archived"] = "draft"

    @model_validator(mode="after")
    def _check_campaign(self) -> CampaignDefinition:
        names = [sub.name for sub in self.sub_audiences] + [self.remaining.name]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"sub-audience names must be unique (the remaining one included): {duplicates}"
            )
        declared = [use.destination for use in self.destinations]
        if len(set(declared)) != len(declared):
            raise ValueError(f"a destination is listed twice in 'destinations': {declared}")
        return self

    def parts(self) -> list[tuple[str, list[TreatmentGroup]]]:
        """Every sub-audience in order, then *All remaining*, with its groups."""
        return [(s.name, s.groups) for s in self.sub_audiences] + [
            (self.remaining.name, self.remaining.groups)
        ]

    def group_destinations(self, group: TreatmentGroup) -> list[CampaignDestination]:
        """Where a group is sent, each with the mapping it uses (its own, or else the
        campaign's for that destination); none for the control."""
        if group.control:
            return []
        shared = {use.destination: use for use in self.destinations}
        if group.destinations is None:
            return list(self.destinations)
        found: list[CampaignDestination] = []
        for use in group.uses():
            base = shared.get(use.destination)
            found.append(
                CampaignDestination(
                    destination=use.destination,
                    mapping=use.mapping or (base.mapping if base is not None else {}),
                    files=base.files if base is not None else "per_group",
                )
            )
        return found

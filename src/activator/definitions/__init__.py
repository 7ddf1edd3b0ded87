"""The product's language: Pydantic models of every definition. No I/O here."""

from __future__ import annotations

__all__ = [
    "KINDS",
    "AnyDefinition",
    "CampaignDefinition",
    "DestinationDefinition",
    "JourneyDefinition",
    "OrchestrationDefinition",
    "OrchestrationGroupDefinition",
    "SegmentDefinition",
    "WorkspaceConfig",
]

from activator.definitions.campaign import CampaignDefinition
from activator.definitions.config import WorkspaceConfig
from activator.definitions.destination import (
    DestinationDefinition,
    EngineTableDestination,
    FileDestination,
    PostgresDestination,
    WebhookDestination,
)
from activator.definitions.journey import JourneyDefinition
from activator.definitions.orchestration import (
    OrchestrationDefinition,
    OrchestrationGroupDefinition,
)
from activator.definitions.segment import SegmentDefinition

AnyDefinition = (
    SegmentDefinition
    | FileDestination
    | PostgresDestination
    | EngineTableDestination
    | WebhookDestination
    | CampaignDefinition
    | JourneyDefinition
    | OrchestrationDefinition
    | OrchestrationGroupDefinition
)

KINDS: dict[str, str] = {
    "segments": "segment",
    "destinations": "destination",
    "campaigns": "campaign",
    "journeys": "journey",
    "orchestrations": "orchestration",
}
"""Definition folder of a workspace → the kind of the definitions it holds. A file in
``orchestrations/`` with ``kind: group`` is an orchestration group."""

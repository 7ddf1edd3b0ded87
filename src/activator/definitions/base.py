"""The base of every definition model: strict, documented, and the source of the JSON Schema."""

from __future__ import annotations

__all__ = ["Definition", "Model", "Name", "TimeZone"]

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

Name = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"),
]
"""A definition's name: letters, digits, ``_``, ``.``, ``-``; starts with a letter or digit."""


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}: use an IANA name such as Europe/Paris or UTC"
        ) from None
    return value


TimeZone = Annotated[str, AfterValidator(_known_zone)]
"""An IANA time zone name (``Europe/Paris``, ``UTC``), checked against the zone database."""


class Model(BaseModel):
    """Strict Pydantic model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        use_attribute_docstrings=True,
        frozen=False,
    )


class Definition(Model):
    """A named, versioned definition stored in the metadata store (segment, campaign, ...)."""

    name: Name
    """Unique name within its kind; other definitions refer to it by this name."""

    description: str | None = None
    """Free text shown in listings."""

    labels: list[str] = []
    """Labels for filtering the Activations list."""

"""Every journey printed in docs/journeys.md is a valid definition.

Each ```yaml block whose first line is ``# journeys/<name>.yml`` is read as that file would be
(the name comes from the file, so the block has none) and validated by the journey model: the
graph rules, splits, waits and mappings the prose describes. The doc must hold the welcome
series of "Defining a journey" and the five example journeys at its end.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from activator.definitions.journey import JourneyDefinition

DOC = Path(__file__).resolve().parents[2] / "docs" / "journeys.md"

EXAMPLES = ["welcome-onboarding", "churn-prevention", "replenishment", "birthday", "cross-sell"]
"""The example journeys of the doc's last section, in order."""

_BLOCK = re.compile(r"^```yaml\n(.*?)^```$", re.DOTALL | re.MULTILINE)
_FILE = re.compile(r"# journeys/([A-Za-z0-9][A-Za-z0-9_.-]*)\.yml")


def _journey_blocks(text: str) -> list[tuple[str, str]]:
    """(name, YAML text) of every block that starts with a journey file's comment line."""
    found = []
    for block in _BLOCK.findall(text):
        first = block.split("\n", 1)[0].strip()
        named = _FILE.fullmatch(first)
        if named is not None:
            found.append((named.group(1), block))
        else:
            assert not first.startswith("# journeys/"), f"not a journey file name: {first!r}"
    return found


BLOCKS = _journey_blocks(DOC.read_text(encoding="utf-8"))


def test_the_doc_shows_the_welcome_series_and_every_example() -> None:
    names = [name for name, _ in BLOCKS]
    assert len(names) == len(set(names)), f"a journey is printed twice: {names}"
    assert {"welcome-series", *EXAMPLES} <= set(names)
    assert names[0] == "welcome-series"
    # The examples are the doc's last section, in the order it lists them.
    text = DOC.read_text(encoding="utf-8")
    section = text.index("\n## Example journeys\n")
    assert [n for n in names if text.index(f"# journeys/{n}.yml") > section] == EXAMPLES


@pytest.mark.parametrize(("name", "block"), BLOCKS, ids=[name for name, _ in BLOCKS])
def test_a_printed_journey_is_a_valid_definition(name: str, block: str) -> None:
    spec: dict[str, Any] = YAML(typ="safe").load(block)
    assert "name" not in spec, "the file name gives the name"
    journey = JourneyDefinition.model_validate({**spec, "name": name})
    assert journey.name == name

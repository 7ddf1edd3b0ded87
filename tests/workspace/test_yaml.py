from pathlib import Path

import pytest
from pydantic import ValidationError

from activator.definitions.segment import SegmentDefinition
from activator.errors import DefinitionError
from activator.workspace.yaml import issues_from_validation, read_yaml


def _issues(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "s.yml"
    path.write_text(text)
    doc = read_yaml(path, shown_as="segments/s.yml")
    with pytest.raises(ValidationError) as caught:
        SegmentDefinition.model_validate(doc.data)
    return [str(issue) for issue in issues_from_validation(doc, caught.value)]


def test_unknown_key_names_file_line_and_path(tmp_path: Path) -> None:
    issues = _issues(
        tmp_path,
        "name: s\n"
        "rules:\n"
        "  all:\n"
        "    - {attribute: customers.tier, op: in, value: [gold]}\n"
        "    - behavior: has_purchased\n"
        "      table: orders\n"
        "      windw: {last: 90d}\n",
    )
    assert issues == [
        "segments/s.yml:7 rules.all[1].windw: unknown key "
        "(check the spelling; see docs/workspace.md for the keys)"
    ]


def test_wrong_operator_and_unknown_rule_kind(tmp_path: Path) -> None:
    issues = _issues(
        tmp_path,
        "name: s\n"
        "rules:\n"
        "  any:\n"
        "    - {atribute: customers.tier, op: in}\n"
        "    - {attribute: customers.tier, op: inn}\n",
    )
    assert issues[0].startswith("segments/s.yml:4 rules.any[0]: a rule starts with exactly one of")
    assert issues[1].startswith("segments/s.yml:5 rules.any[1].op: Input should be")


def test_missing_key_is_named(tmp_path: Path) -> None:
    issues = _issues(tmp_path, "name: s\nrules:\n  all:\n    - {attribute: customers.tier}\n")
    assert issues == ["segments/s.yml:4 rules.all[0].op: required key is missing"]


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("name: s\nrules: [1\nsql: x\n", 3, "expected ',' or ']'"),
        ("name: s\nname: t\n", 2, "duplicate key"),
        ("name: s\n  bad indent: 1\n", 2, "mapping values are not allowed"),
    ],
)
def test_malformed_yaml_names_the_line(tmp_path: Path, text: str, line: int, reason: str) -> None:
    path = tmp_path / "s.yml"
    path.write_text(text)
    with pytest.raises(DefinitionError) as caught:
        read_yaml(path, shown_as="segments/s.yml")
    (issue,) = caught.value.issues
    assert (issue.file, issue.line) == ("segments/s.yml", line)
    assert reason in issue.message

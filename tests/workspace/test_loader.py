from pathlib import Path

import pytest

from activator.definitions.segment import SegmentDefinition
from activator.errors import ConfigError, DefinitionError
from activator.workspace.loader import load_workspace
from activator.workspace.references import check_references
from tests.workspace.conftest import Writer

VIP = """\
rules:
  all:
    - {attribute: customers.loyalty_tier, op: in, value: [gold]}
"""


def test_loads_definitions_named_after_their_files(workspace: Path, write: Writer) -> None:
    write("segments/vip.yml", VIP)
    write("destinations/drop.yml", "type: local\npath: out\n")
    ws = load_workspace(workspace)
    assert [(d.kind, d.name, d.file) for d in ws.definitions] == [
        ("segment", "vip", "segments/vip.yml"),
        ("destination", "drop", "destinations/drop.yml"),
    ]
    assert isinstance(ws.definitions[0].model, SegmentDefinition)


def test_not_a_workspace(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"has no activator\.yaml"):
        load_workspace(tmp_path)


def test_every_problem_in_every_file_is_reported(workspace: Path, write: Writer) -> None:
    write("segments/a.yml", "rules: {all: [{attribute: customers.x, op: nope}]}\n")
    write("segments/b.yml", "sql: DELETE FROM customers\n")
    write("campaigns/c.yml", "audience: {include: []}\nextra: 1\n")
    with pytest.raises(DefinitionError) as caught:
        load_workspace(workspace)
    where = [(i.file, i.line, i.path) for i in caught.value.issues]
    assert ("segments/a.yml", 1, "rules.all[0].op") in where
    assert ("segments/b.yml", 1, "") in where
    assert ("campaigns/c.yml", 1, "audience.include") in where
    assert ("campaigns/c.yml", 2, "extra") in where
    message = str(caught.value)
    assert "only a SELECT is accepted here, not DELETE" in message


def test_config_errors_name_activator_yaml(workspace: Path) -> None:
    (workspace / "activator.yaml").write_text(
        "engine: {type: duckdb}\ntimezone: Mars/Olympus\ndata_model:\n"
        "  customers: {table: customers}\n"
    )
    with pytest.raises(DefinitionError) as caught:
        load_workspace(workspace)
    shown = [str(i) for i in caught.value.issues]
    assert any(s.startswith("activator.yaml:2 timezone: unknown time zone") for s in shown)
    assert "activator.yaml:4 data_model.customers.key: required key is missing" in shown


def test_duplicate_names_across_files(workspace: Path, write: Writer) -> None:
    write("segments/vip.yml", VIP)
    write("segments/more/other.yml", "name: vip\n" + VIP)
    with pytest.raises(DefinitionError) as caught:
        load_workspace(workspace)
    assert [str(i) for i in caught.value.issues] == [
        "segments/vip.yml:1 name: segment 'vip' is also defined in segments/more/other.yml"
    ]


def test_unknown_reference_names_file_line_and_path(workspace: Path, write: Writer) -> None:
    write("segments/vip.yml", VIP)
    write("destinations/drop.yml", "type: local\npath: out\n")
    write(
        "campaigns/spring.yml",
        """\
        description: Spring campaign
        audience:
          include:
            - vip
            - vipp
        destinations: [{destination: s3-drop}]
        """,
    )
    issues = check_references(load_workspace(workspace))
    assert [str(i) for i in issues] == [
        "campaigns/spring.yml:5 audience.include[1]: unknown segment 'vipp' (known: vip)",
        "campaigns/spring.yml:6 destinations[0].destination: "
        "unknown destination 's3-drop' (known: drop)",
    ]


def test_segment_cycles_are_rejected(workspace: Path, write: Writer) -> None:
    write("segments/a.yml", "rules: {all: [{segment: b}]}\n")
    write("segments/b.yml", "rules: {any: [{segment: c}]}\n")
    write("segments/c.yml", "rules: {not: {segment: a}}\n")
    issues = check_references(load_workspace(workspace))
    assert len(issues) == 1
    assert "segments refer to each other in a cycle: a -> b -> c -> a" in issues[0].message
    assert issues[0].file == "segments/c.yml"


def test_conditions_must_name_data_model_tables(workspace: Path, write: Writer) -> None:
    write(
        "segments/s.yml",
        """\
        rules:
          all:
            - {attribute: clients.tier, op: is_null}
            - {behavior: has_purchased, table: returns}
        """,
    )
    issues = [str(i) for i in check_references(load_workspace(workspace))]
    assert issues == [
        "segments/s.yml:3 rules.all[0].attribute: table 'clients' is not in the data model "
        "(known: customers, orders)",
        "segments/s.yml:4 rules.all[1].table: event table 'returns' is not in the data model "
        "(known: orders)",
    ]


def test_orchestration_group_lives_in_orchestrations(workspace: Path, write: Writer) -> None:
    write("destinations/drop.yml", "type: local\npath: out\n")
    write("orchestrations/feed.yml", "table: customers\ndestination: drop\n")
    write("orchestrations/nightly.yml", "kind: group\norchestrations: [feed, missing]\n")
    ws = load_workspace(workspace)
    assert sorted((d.kind, d.name) for d in ws.definitions) == [
        ("destination", "drop"),
        ("group", "nightly"),
        ("orchestration", "feed"),
    ]
    assert [str(i) for i in check_references(ws)] == [
        "orchestrations/nightly.yml:2 orchestrations[1]: "
        "unknown orchestration 'missing' (known: feed, nightly)"
    ]

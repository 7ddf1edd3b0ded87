"""``activator export`` and ``activator apply --force``: the files and changes made through
the API meet without either silently undoing the other."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from activator.store.store import DefinitionInput, MetadataStore
from tests.cli.runner import activator, as_json

pytestmark = pytest.mark.e2e

STORE_URL = "sqlite:///.activator/metadata.db"
FOLDERS = ("segments", "destinations", "campaigns", "journeys", "orchestrations")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "shop"
    result = activator("init", str(root), "--demo", "--customers", "200")
    assert result.returncode == 0, result.stderr
    return root


@pytest.fixture
def workspace(demo: Path, tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    shutil.copytree(demo, root)
    return root


def _ok(root: Path, *args: str) -> Any:
    result = activator("-w", str(root), *args, "--json")
    assert result.returncode == 0, result.stderr
    return as_json(result)


def _definition_files(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): path.read_text()
        for folder in FOLDERS
        for path in sorted((root / folder).glob("*.yml"))
    }


def _api_edit(root: Path, kind: str, name: str, **changes: Any) -> int:
    """Change a definition as the API does: a new version made on the one read."""
    with MetadataStore.open(STORE_URL, workspace_root=root) as store:
        stored = store.get(kind, name)
        assert stored is not None
        spec = {**stored.spec, **changes}
        result = store.apply(
            [
                DefinitionInput(
                    kind, name, spec, "api", status=stored.status, expected_version=stored.version
                )
            ]
        )
    return result[0].version


def test_demo_round_trip_export_then_apply_is_unchanged(workspace: Path) -> None:
    applied = _ok(workspace, "apply")["applied"]
    assert {a["change"] for a in applied} == {"created"}
    for folder in FOLDERS:
        for path in (workspace / folder).glob("*.yml"):
            path.unlink()

    exported = _ok(workspace, "export")
    assert exported["dry_run"] is False
    assert sorted((e["kind"], e["name"]) for e in exported["exported"]) == sorted(
        (a["kind"], a["name"]) for a in applied
    )
    assert {e["change"] for e in exported["exported"]} == {"written"}
    assert {e["file"] for e in exported["exported"]} == set(_definition_files(workspace))
    files = _definition_files(workspace)
    # Defaults left out, names from the file names, SQL as a literal block.
    assert "name: customer-360\n" not in files["orchestrations/customer-360.yml"]
    assert "query: |\n  SELECT c.customer_id" in files["orchestrations/customer-360.yml"]
    assert "kind:" not in files["segments/vip-customers.yml"]

    again = _ok(workspace, "apply")["applied"]
    assert [(a["kind"], a["name"], a["version"], a["change"]) for a in again] == [
        (a["kind"], a["name"], 1, "unchanged") for a in applied
    ]
    # A second export finds every file up to date and leaves them alone.
    second = _ok(workspace, "export")["exported"]
    assert {e["change"] for e in second} == {"unchanged"}
    assert _definition_files(workspace) == files

    with MetadataStore.open(STORE_URL, workspace_root=workspace) as store:
        assert {d.file_version for d in store.current()} == {1}
        exports = store.audit_log(limit=1000, actor="cli")
    assert len(exports) == len(applied)
    assert {(e.action, e.detail["version"]) for e in exports} == {("export", 1)}


def test_api_edit_conflicts_then_export_resolves_it(workspace: Path) -> None:
    _ok(workspace, "apply")
    original = (workspace / "segments" / "high-value.yml").read_text()
    assert _api_edit(workspace, "segment", "high-value", description="Edited in the web app") == 2

    refused = activator("-w", str(workspace), "apply", "--json")
    assert refused.returncode == 2
    error = as_json(refused)["error"]
    assert error["type"] == "DefinitionConflictError"
    assert error["message"].startswith(
        "segments/high-value.yml: segment 'high-value' was changed through the API (version 2, "
    )
    assert error["message"].endswith(
        "after these files were applied; `activator export` writes it into the files, "
        "`activator apply --force` overwrites it"
    )
    human = activator("-w", str(workspace), "apply")
    assert human.returncode == 2
    assert "segment 'high-value' was changed through the API" in human.stderr

    dry = _ok(workspace, "export", "--dry-run")
    assert dry["dry_run"] is True
    changes = {e["name"]: e["change"] for e in dry["exported"]}
    assert changes.pop("high-value") == "written"
    assert set(changes.values()) == {"unchanged"}
    assert (workspace / "segments" / "high-value.yml").read_text() == original

    only_campaigns = _ok(workspace, "export", "--kind", "campaign")["exported"]
    assert {e["kind"] for e in only_campaigns} == {"campaign"}
    assert {e["change"] for e in only_campaigns} == {"unchanged"}

    exported = _ok(workspace, "export")["exported"]
    written = [e for e in exported if e["change"] == "written"]
    assert written == [
        {
            "kind": "segment",
            "name": "high-value",
            "version": 2,
            "file": "segments/high-value.yml",
            "change": "written",
        }
    ]
    text = (workspace / "segments" / "high-value.yml").read_text()
    assert text.startswith("description: Edited in the web app\n")

    applied = {a["name"]: a for a in _ok(workspace, "apply")["applied"]}
    assert (applied["high-value"]["version"], applied["high-value"]["change"]) == (2, "unchanged")
    assert {a["change"] for a in applied.values()} == {"unchanged"}

    # The exported file, edited by hand, applies as the next version.
    path = workspace / "segments" / "high-value.yml"
    path.write_text(text.replace("Edited in the web app", "Edited in the file"))
    applied = {a["name"]: a for a in _ok(workspace, "apply")["applied"]}
    assert (applied["high-value"]["version"], applied["high-value"]["change"]) == (3, "updated")

    with MetadataStore.open(STORE_URL, workspace_root=workspace) as store:
        stored = store.get("segment", "high-value")
        entries = store.audit_log()
    assert stored is not None
    assert (stored.spec["description"], stored.file_version) == ("Edited in the file", 3)
    assert [(e.action, e.kind, e.name, e.detail) for e in entries if e.name == "high-value"] == [
        ("update", "segment", "high-value", {"version": 3, "source": "segments/high-value.yml"}),
        ("export", "segment", "high-value", {"file": "segments/high-value.yml", "version": 2}),
        ("create", "segment", "high-value", {"version": 1, "source": "segments/high-value.yml"}),
    ]


def test_apply_force_overwrites_the_api_edit(workspace: Path) -> None:
    _ok(workspace, "apply")
    _api_edit(workspace, "campaign", "vip-thank-you", description="From the API")
    forced = _ok(workspace, "apply", "--force")["applied"]
    change = next(a for a in forced if a["name"] == "vip-thank-you")
    assert (change["version"], change["change"]) == (3, "updated")
    assert {a["change"] for a in forced if a["name"] != "vip-thank-you"} == {"unchanged"}
    with MetadataStore.open(STORE_URL, workspace_root=workspace) as store:
        versions = store.versions("campaign", "vip-thank-you")
    assert [v.source for v in versions] == [
        "campaigns/vip-thank-you.yml",
        "api",
        "campaigns/vip-thank-you.yml",
    ]
    assert versions[0].spec == versions[2].spec
    assert versions[2].file_version == 3


def test_archived_definition_is_exported_with_a_note(workspace: Path) -> None:
    _ok(workspace, "apply")
    archived = activator("-w", str(workspace), "campaign", "archive", "winback-spring", "--json")
    assert archived.returncode == 0, archived.stderr
    path = workspace / "campaigns" / "winback-spring.yml"
    path.unlink()
    exported = {e["name"]: e["change"] for e in _ok(workspace, "export")["exported"]}
    assert exported["winback-spring"] == "written"
    text = path.read_text()
    assert text.startswith("# status in the metadata store: archived")
    assert "\nstatus: active\n" in text  # the version's own status
    applied = {a["name"]: a["change"] for a in _ok(workspace, "apply")["applied"]}
    assert applied["winback-spring"] == "unchanged"
    with MetadataStore.open(STORE_URL, workspace_root=workspace) as store:
        stored = store.get("campaign", "winback-spring")
    assert stored is not None
    assert stored.status == "archived"


def test_export_refuses_an_unknown_kind(workspace: Path) -> None:
    result: subprocess.CompletedProcess[str] = activator(
        "-w", str(workspace), "export", "--kind", "segmnt"
    )
    assert result.returncode == 2
    assert "unknown definition kind 'segmnt'" in result.stderr

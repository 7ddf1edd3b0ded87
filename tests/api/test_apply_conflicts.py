"""`activator apply` and the API never silently overwrite each other's edits."""

from __future__ import annotations

import json

from tests.cli.runner import activator
from tests.fixtures.api import ApiServer

RULES = {"attribute": "customers.joined_at", "op": "before", "value": "now"}


def test_apply_refuses_to_overwrite_an_api_edit_until_exported(api_server: ApiServer) -> None:
    root = str(api_server.root)
    editor = api_server.client("editor")
    changed = editor.put(
        "/api/segments/everyone",
        headers={"If-Match": '"1"'},
        json={"name": "everyone", "description": "edited in the UI", "rules": RULES},
    )
    assert changed.status_code == 200, changed.text

    # Someone edits the file meanwhile and applies: refused, naming the file and the way out.
    segment_file = api_server.root / "segments" / "everyone.yml"
    segment_file.write_text(segment_file.read_text() + "description: edited in the file\n")
    refused = activator("-w", root, "apply")
    assert refused.returncode == 2, refused.stdout
    assert "segments/everyone.yml" in refused.stderr
    assert "changed through the API" in refused.stderr
    assert "activator export" in refused.stderr
    kept = editor.get("/api/segments/everyone").json()
    assert (kept["version"], kept["spec"]["description"]) == (2, "edited in the UI")

    # Export brings the API's version into the files; the next apply changes nothing; an
    # edit of the file after that applies as usual.
    exported = activator("-w", root, "export", "--json")
    assert exported.returncode == 0, exported.stderr
    assert "edited in the UI" in segment_file.read_text()
    unchanged = activator("-w", root, "apply", "--json")
    assert unchanged.returncode == 0, unchanged.stderr
    assert all(r["change"] == "unchanged" for r in json.loads(unchanged.stdout)["applied"])
    segment_file.write_text(segment_file.read_text().replace("edited in the UI", "from file"))
    applied = activator("-w", root, "apply")
    assert applied.returncode == 0, applied.stderr
    current = editor.get("/api/segments/everyone")
    assert (current.json()["version"], current.json()["spec"]["description"]) == (3, "from file")

    # The API editing from the old version is refused in turn.
    stale = editor.put(
        "/api/segments/everyone",
        headers={"If-Match": '"2"'},
        json={"name": "everyone", "description": "late", "rules": RULES},
    )
    assert stale.status_code == 409
    assert "is at version 3, not 2" in stale.json()["error"]["message"]

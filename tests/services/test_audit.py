"""Changes made from the command line are in the audit log too, named ``cli:USER``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from activator.services.campaign import set_campaign_status
from activator.services.run import run_activation
from activator.services.workspace import apply_workspace, cli_actor
from activator.store import MetadataStore
from tests.fixtures.api import make_workspace

STORE = "sqlite:///.activator/metadata.db"


def test_apply_status_changes_and_runs_are_audited(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    make_workspace(root, STORE)  # applies the workspace: five definitions created
    (root / "segments" / "even.yml").write_text(
        "rules: {attribute: customers.parity, op: '=', value: 1}\n"
    )
    apply_workspace(root)
    apply_workspace(root)  # unchanged: nothing recorded
    assert set_campaign_status(root, "promo", "pause") == "paused"
    run = run_activation(root, "feed", as_of=datetime(2026, 3, 2, 9, tzinfo=UTC))
    with MetadataStore.open(STORE, workspace_root=root) as store:
        entries = store.audit_log(limit=100)
    actor = cli_actor()
    assert actor.startswith("cli:")
    assert {e.actor for e in entries} == {actor}
    assert [(e.action, e.kind, e.name) for e in entries[:3]] == [
        ("launch", "orchestration", "feed"),
        ("pause", "campaign", "promo"),
        ("update", "segment", "even"),
    ]
    assert entries[0].detail == {"run_id": run.run_id}
    assert entries[1].detail == {"status": "paused"}
    assert entries[2].detail == {"version": 2, "source": "segments/even.yml"}
    created = sorted((e.kind, e.name) for e in entries if e.action == "create")
    assert created == [
        ("campaign", "promo"), ("destination", "drop"), ("orchestration", "feed"),
        ("segment", "even"), ("segment", "everyone"),
    ]  # fmt: skip

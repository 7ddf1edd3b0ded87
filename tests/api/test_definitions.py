"""Definitions over HTTP: create, read, change with versions, archive, list, validate."""

from __future__ import annotations

import threading

from tests.fixtures.api import ApiServer, error_of

EVERYONE_RULES = {"attribute": "customers.joined_at", "op": "before", "value": "now"}


def test_create_read_change_and_version_a_segment(api_server: ApiServer) -> None:
    client = api_server.client("editor")
    created = client.post(
        "/api/segments",
        json={"name": "recent", "description": "joined", "rules": EVERYONE_RULES},
    )
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/api/segments/recent"
    assert created.headers["etag"] == '"1"'
    body = created.json()
    assert (body["kind"], body["name"], body["version"], body["source"]) == (
        "segment", "recent", 1, "api",
    )  # fmt: skip
    assert body["spec"]["rules"]["attribute"] == "customers.joined_at"

    again = client.post("/api/segments", json={"name": "recent", "rules": EVERYONE_RULES})
    assert again.status_code == 409
    assert "version" in error_of(again)["message"]

    read = client.get("/api/segments/recent")
    assert read.status_code == 200
    assert read.headers["etag"] == '"1"'

    changed = client.put(
        "/api/segments/recent",
        headers={"If-Match": read.headers["etag"]},
        json={"name": "recent", "description": "changed", "rules": EVERYONE_RULES},
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["version"], changed.headers["etag"]) == (2, '"2"')

    # The same change made on version 1 by someone else is refused: nothing is stored.
    stale = client.put(
        "/api/segments/recent",
        headers={"If-Match": '"1"'},
        json={"name": "recent", "description": "stale", "rules": EVERYONE_RULES},
    )
    assert stale.status_code == 409
    error = error_of(stale)
    assert error["type"] == "conflict"
    assert "is at version 2, not 1" in error["message"]
    assert client.get("/api/segments/recent").json()["spec"]["description"] == "changed"

    missing = client.put("/api/segments/recent", json={"name": "recent", "rules": EVERYONE_RULES})
    assert missing.status_code == 428
    assert error_of(missing)["field"] == "header:if-match"

    versions = client.get("/api/segments/recent/versions").json()
    assert [(v["version"], v["spec"]["description"]) for v in versions] == [
        (1, "joined"), (2, "changed"),
    ]  # fmt: skip

    audit = api_server.client("admin").get("/api/audit", params={"name": "recent"}).json()
    assert [(a["actor"], a["action"], a["name"], a["detail"]) for a in audit] == [
        ("token:editor-token", "update", "recent", {"version": 2}),
        ("token:editor-token", "create", "recent", {"version": 1}),
    ]


def test_invalid_definitions_name_the_field(api_server: ApiServer) -> None:
    client = api_server.client("editor")
    unknown_key = client.post(
        "/api/segments", json={"name": "x", "rules": EVERYONE_RULES, "colour": "red"}
    )
    assert unknown_key.status_code == 422
    error = error_of(unknown_key)
    assert error["type"] == "validation"
    assert error["field"] == "colour"
    assert "unknown key" in error["message"]

    # Cross-references are checked as `activator validate` checks files.
    dangling = client.post(
        "/api/campaigns",
        json={
            "name": "bad",
            "audience": {"include": ["nobody"]},
            "destinations": [{"destination": "drop", "mapping": {"customer_id": "customer_id"}}],
        },
    )
    assert dangling.status_code == 422, dangling.text
    error = error_of(dangling)
    assert error["field"] == "audience.include[0]"
    assert "unknown segment 'nobody'" in error["message"]

    wrong_name = client.put(
        "/api/segments/everyone",
        headers={"If-Match": '"1"'},
        json={"name": "someone", "rules": EVERYONE_RULES},
    )
    assert wrong_name.status_code == 422
    assert error_of(wrong_name)["field"] == "name"

    assert client.get("/api/segments/nope").status_code == 404
    assert error_of(client.get("/api/segments/nope"))["type"] == "not_found"
    assert client.get("/api/campaigns/bad").status_code == 404


def test_archive_refuses_a_segment_in_use_then_archives_when_free(api_server: ApiServer) -> None:
    client = api_server.client("editor")
    used = client.delete("/api/segments/even")
    assert used.status_code == 400, used.text
    assert "used by campaign promo" in error_of(used)["message"]

    archived = client.delete("/api/campaigns/promo", headers={"If-Match": '"1"'})
    assert archived.json() == {"kind": "campaign", "name": "promo", "status": "archived"}
    assert client.delete("/api/segments/even").json()["status"] == "archived"
    listed = [d["name"] for d in client.get("/api/segments").json()]
    assert listed == ["everyone"]
    with_archived = client.get("/api/segments", params={"include_archived": True}).json()
    assert [d["name"] for d in with_archived] == ["even", "everyone"]
    assert [d["name"] for d in client.get("/api/segments", params={"label": "test",
            "include_archived": True}).json()] == ["even"]  # fmt: skip


def test_concurrent_edits_of_one_version_store_exactly_one(api_server: ApiServer) -> None:
    """Eight editors change version 1 at once: one wins (version 2), seven get 409."""
    results: list[int] = []

    def edit(i: int) -> None:
        client = api_server.client("editor")
        response = client.put(
            "/api/segments/everyone",
            headers={"If-Match": '"1"'},
            json={"name": "everyone", "description": f"edit {i}", "rules": EVERYONE_RULES},
        )
        results.append(response.status_code)

    threads = [threading.Thread(target=edit, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] + [409] * 7
    versions = api_server.client("viewer").get("/api/segments/everyone/versions").json()
    assert [v["version"] for v in versions] == [1, 2]


def test_activations_list_filters_and_searches(api_server: ApiServer) -> None:
    client = api_server.client("viewer")
    page = client.get("/api/activations").json()
    assert page["total"] == 2
    rows = {(r["type"], r["name"]): r for r in page["items"]}
    assert set(rows) == {("campaign", "promo"), ("orchestration", "feed")}
    feed = rows[("orchestration", "feed")]
    assert (feed["status"], feed["labels"], feed["last_run"]) == ("active", ["nightly"], None)
    assert feed["next_run"].endswith("T02:00:00Z")
    assert rows[("campaign", "promo")]["status"] == "draft"
    assert [r["name"] for r in client.get(
        "/api/activations", params={"type": "campaign"}).json()["items"]] == ["promo"]  # fmt: skip
    assert [r["name"] for r in client.get(
        "/api/activations", params={"label": "nightly"}).json()["items"]] == ["feed"]  # fmt: skip
    assert client.get("/api/activations", params={"q": "FEE"}).json()["total"] == 1
    assert client.get("/api/activations", params={"status": "paused"}).json()["total"] == 0
    paged = client.get("/api/activations", params={"limit": 1, "offset": 1}).json()
    assert (paged["total"], len(paged["items"])) == (2, 1)

    paused = api_server.client("editor").post("/api/orchestrations/feed/pause")
    assert paused.json() == {"kind": "orchestration", "name": "feed", "status": "paused"}
    # A change through this server shows at once (the list's cache is dropped).
    (row,) = client.get("/api/activations", params={"status": "paused"}).json()["items"]
    assert (row["name"], row["next_run"]) == ("feed", None)
    resumed = api_server.client("editor").post("/api/orchestrations/feed/resume")
    assert resumed.json()["status"] == "active"
    # A campaign has no `end` (it is archived): there is no such operation.
    assert api_server.client("editor").post("/api/campaigns/promo/end").status_code == 404

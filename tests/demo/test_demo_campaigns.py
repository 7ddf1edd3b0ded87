"""The campaigns of ``make demo``, and the demo's webhook receiver.

The slow test builds the demo workspace, starts the receiver in-process, and runs what the
Makefile runs: the one-time ``vip-thank-you`` into the local folder, then the recurring
``first-order-follow-up`` into the receiver twice, a week apart, then the results. The other
tests check the receiver on its own: signatures against the reference implementation and
Activator's sender, deduplication, and the process ``make demo`` starts.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow.csv as pacsv
import pytest
from standardwebhooks import Webhook

from activator.clock import parse_as_of
from activator.compiler.campaign import CONTROL, GROUP, SUB
from activator.demo.receiver import DemoReceiver, SignatureError, main, verify_signature
from activator.destinations.webhook import Signer
from activator.errors import ConfigError
from activator.runtime.campaign import audience_table
from activator.runtime.results import CampaignResults
from activator.services.campaign import CampaignPlan, campaign_results, plan_campaign
from activator.services.run import run_activation
from activator.services.workspace import apply_workspace, init_workspace
from activator.store import RunSummary

SECRET = "whsec_" + base64.b64encode(b"the demo test's signing key, 32B").decode()
KEY = base64.b64decode(SECRET.removeprefix("whsec_"))
NOW = 1_767_254_400  # the receiver's clock in the unit tests (2026-01-01T08:00:00Z)

DATA_DAY = date(2026, 3, 1)
MAPPED = ["customer_id", "email", "first_name", "tier", "campaign", "group"]
"""The fields of vip-thank-you's mapping, in its order."""
# As in the Makefile: the sends two weeks and one week before the data's day, results on it.
WEEK1, WEEK2, RESULTS = "2026-02-15", "2026-02-22", "2026-03-01"


def _body(records: list[dict[str, Any]]) -> bytes:
    return json.dumps({"type": "activator.records", "timestamp": "t", "data": records}).encode()


def _signed(msg_id: str, body: bytes, stamp: int = NOW) -> dict[str, str]:
    headers = Signer(KEY).headers(msg_id, body, timestamp=stamp)
    return {**headers, "content-type": "application/json"}


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- the receiver -----------------------------------------------------------------------------


def test_signatures_of_the_reference_implementation_verify() -> None:
    body = _body([{"customer_id": 1}])
    signed_at = datetime.fromtimestamp(NOW).astimezone()
    reference = Webhook(SECRET).sign("msg_1", signed_at, body.decode())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(NOW), "webhook-signature": reference}
    assert verify_signature(KEY, headers, body, now=NOW) == "msg_1"
    # One valid signature among several (a key being rotated) is enough.
    rotated = {**headers, "webhook-signature": f"v1,{'A' * 44} {reference}"}
    assert verify_signature(KEY, rotated, body, now=NOW) == "msg_1"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"body": b'{"data": []}'}, "no v1 signature matches"),
        ({"key": b"another key of 16+ bytes"}, "no v1 signature matches"),
        ({"now": NOW + 301}, "more than 300 s away"),
        ({"now": NOW - 301}, "more than 300 s away"),
        ({"drop": "webhook-signature"}, "missing"),
        ({"header": ("webhook-signature", "v2,abc")}, "no v1 signature matches"),
        ({"header": ("webhook-timestamp", "soon")}, "is not a number"),
    ],
)
def test_a_bad_signature_is_refused_with_its_reason(change: dict[str, Any], reason: str) -> None:
    body = _body([{"customer_id": 1}])
    headers = _signed("msg_1", body)
    if "drop" in change:
        del headers[change["drop"]]
    if "header" in change:
        name, value = change["header"]
        headers[name] = value
    with pytest.raises(SignatureError, match=reason):
        verify_signature(
            change.get("key", KEY), headers, change.get("body", body), now=change.get("now", NOW)
        )


def test_exactly_five_minutes_away_is_accepted() -> None:
    body = _body([])
    for now in (NOW - 300, NOW + 300):
        assert verify_signature(KEY, _signed("m", body), body, now=now) == "m"


def test_each_webhook_id_is_stored_once(tmp_path: Path) -> None:
    out = tmp_path / "received.ndjson"
    receiver = DemoReceiver(SECRET, out, clock=lambda: NOW)
    first = _body([{"customer_id": 1}, {"customer_id": 2}])
    assert receiver.receive(_signed("run:task:0", first), first) == (200, "ok")
    # The resend of a batch (a retry, a resumed run) is acknowledged and dropped.
    resent = _signed("run:task:0", first, stamp=NOW + 5)
    assert receiver.receive(resent, first) == (200, "duplicate: already received")
    ndjson = b'{"customer_id": 3}\n\n{"customer_id": 4}\n'
    headers = {**_signed("run:task:1", ndjson), "content-type": "application/x-ndjson"}
    assert receiver.receive(headers, ndjson) == (200, "ok")
    tampered = _body([{"customer_id": 666}])
    assert receiver.receive(_signed("run:task:2", first), tampered)[0] == 401
    not_a_batch = b'{"records": []}'
    assert receiver.receive(_signed("run:task:3", not_a_batch), not_a_batch)[0] == 400

    assert [r["customer_id"] for r in _lines(out)] == [1, 2, 3, 4]
    counts = receiver.counts
    assert (counts.records, counts.batches, counts.duplicates, counts.refused) == (4, 2, 1, 2)
    assert str(counts) == "4 records in 2 batches (1 duplicates dropped, 2 refused)"


def test_a_secret_that_is_not_a_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a whsec_ base64 key of 16 bytes"):
        DemoReceiver("whsec_c2hvcnQ=", tmp_path / "r.ndjson")


def test_serves_http_on_loopback_and_refuses_a_taken_port(tmp_path: Path) -> None:
    out = tmp_path / "received.ndjson"
    with DemoReceiver(SECRET, out) as receiver:
        assert receiver.url.startswith("http://127.0.0.1:")
        assert out.read_text() == ""  # the file exists once the receiver listens
        body = _body([{"customer_id": 7}])
        headers = Signer(KEY).headers("msg_7", body)  # signed now: the receiver's own clock
        answer = httpx.post(receiver.url, content=body, headers=headers)
        assert (answer.status_code, answer.text) == (200, "ok")
        unsigned = httpx.post(receiver.url, content=body, headers={"webhook-id": "msg_8"})
        assert unsigned.status_code == 401
        port = int(receiver.url.rsplit(":", 1)[1].rstrip("/"))
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            DemoReceiver(SECRET, tmp_path / "other.ndjson", port=port).start()
    assert _lines(out) == [{"customer_id": 7}]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.e2e
def test_runs_as_a_process_until_terminated(tmp_path: Path) -> None:
    out = tmp_path / "received.ndjson"
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "activator.demo.receiver", "--port", str(port),
         "--secret-env", "DEMO_TEST_SECRET", "--out", str(out)],
        env={**os.environ, "DEMO_TEST_SECRET": SECRET},
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        listening = process.stdout.readline()
        assert (
            listening == f"webhook receiver: listening on http://127.0.0.1:{port}/, writing {out}\n"
        )
        body = _body([{"customer_id": 1}, {"customer_id": 2}])
        answer = httpx.post(
            f"http://127.0.0.1:{port}/", content=body, headers=Signer(KEY).headers("m", body)
        )
        assert answer.status_code == 200
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0
    assert rest.splitlines() == [
        "webhook receiver: +2 records, 2 in all",
        "webhook receiver: stopped; received 2 records in 1 batches "
        "(0 duplicates dropped, 0 refused)",
    ]
    assert len(_lines(out)) == 2


def test_the_process_needs_its_secret_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DEMO_UNSET_SECRET", raising=False)
    argv = ["--port", "0", "--secret-env", "DEMO_UNSET_SECRET", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    assert "the environment variable DEMO_UNSET_SECRET is not set" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


# -- the demo's campaigns ---------------------------------------------------------------------


@dataclass(frozen=True)
class Demo:
    """What running the demo's campaigns left behind."""

    root: Path
    thank_you: RunSummary
    runs: tuple[RunSummary, RunSummary]
    received: tuple[list[dict[str, Any]], list[dict[str, Any]]]
    """The receiver's records after the first run, then those the second run added."""
    receiver: DemoReceiver
    plan: CampaignPlan
    """The plan of the second run, made just before it."""
    results: CampaignResults
    audiences: dict[str, dict[int, bool]]
    """Each run's audience (customer → control), read right after the run: a run's audience
    table is dropped once a later run of its campaign succeeds."""

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return _query(self.root, sql)

    def audience(self, run: RunSummary, *, control: bool | None = None) -> set[int]:
        members = self.audiences[run.run_id]
        return {c for c, is_control in members.items() if control in (None, is_control)}


def _query(root: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(root / "data" / "retail.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def _audience(root: Path, run: RunSummary) -> dict[int, bool]:
    table = f"activator.{audience_table(run.run_id)}"
    return dict(_query(root, f"SELECT customer_id, {CONTROL} FROM {table}"))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    root = tmp_path_factory.mktemp("demo") / "shop"
    init_workspace(root, demo=True, customers=5000, seed=42, as_of=DATA_DAY)
    received = root / "webhook" / "received.ndjson"
    with pytest.MonkeyPatch.context() as env, DemoReceiver(SECRET, received) as receiver:
        # The receiver listens on a free port, not the demo's 8765 (which `make demo` may hold).
        hook = root / "destinations" / "demo-webhook.yml"
        port = receiver.url.rsplit(":", 1)[1].rstrip("/")
        hook.write_text(hook.read_text().replace("127.0.0.1:8765", f"127.0.0.1:{port}"))
        env.setenv("DEMO_WEBHOOK_SECRET", SECRET)
        apply_workspace(root)

        audiences: dict[str, dict[int, bool]] = {}

        def run(name: str, day: str) -> RunSummary:
            summary = run_activation(root, name, as_of=parse_as_of(day))
            audiences[summary.run_id] = _audience(root, summary)
            return summary

        thank_you = run("vip-thank-you", WEEK1)
        first = run("first-order-follow-up", WEEK1)
        after_first = _lines(received)
        plan = plan_campaign(root, "first-order-follow-up", as_of=parse_as_of(WEEK2))
        second = run("first-order-follow-up", WEEK2)
        after_second = _lines(received)
    results = campaign_results(
        root, "first-order-follow-up", conversion="orders", days=7, as_of=parse_as_of(RESULTS)
    )
    return Demo(
        root=root,
        thank_you=thank_you,
        runs=(first, second),
        received=(after_first, after_second[len(after_first) :]),
        receiver=receiver,
        plan=plan,
        results=results,
        audiences=audiences,
    )


def _rows(run: RunSummary) -> dict[str, dict[str, Any]]:
    deliveries: dict[str, dict[str, Any]] = run.counts["deliveries"]
    return deliveries


@pytest.mark.slow
def test_the_one_time_campaign_writes_a_file_per_tier_and_group(demo: Demo) -> None:
    run = demo.thank_you
    assert run.status == "succeeded"
    day = WEEK1.replace("-", "")
    subs = ("gold", "other-vips", "platinum")
    outbox = demo.root / "outbox"
    assert sorted(p.name for p in outbox.iterdir()) == sorted(
        f"local-drop_{day}_{sub}_thanks{ext}"
        for sub in subs
        for ext in (".csv.gz", ".manifest.json", ".DONE")
    )
    table = audience_table(run.run_id)
    sent_total = 0
    for sub in subs:
        with gzip.open(outbox / f"local-drop_{day}_{sub}_thanks.csv.gz") as file:
            rows = pacsv.read_csv(file).to_pylist()
        assert sorted(rows[0]) == sorted(MAPPED)
        expected = demo.query(
            f"SELECT customer_id FROM activator.{table} "
            f"WHERE {SUB} = '{sub}' AND {GROUP} = 'thanks' ORDER BY 1"
        )
        assert sorted(r["customer_id"] for r in rows) == [r[0] for r in expected]
        assert {(r["campaign"], r["group"]) for r in rows} == {("vip-thank-you", "thanks")}
        tiers = {r["tier"] for r in rows}
        if sub == "other-vips":  # VIPs by spend, of every other tier
            assert tiers
            assert not tiers & {"platinum", "gold"}
        else:
            assert tiers == {sub}
        sent_total += len(rows)
    # The exclusion holds: every customer sent accepts email and has an address.
    unreachable = demo.query(
        f"SELECT count(*) FROM activator.{table} a JOIN customers c USING (customer_id) "
        "WHERE NOT c.email_opt_in OR coalesce(c.email, '') = ''"
    )
    assert unreachable == [(0,)]
    # The control groups are recorded, never sent.
    controls = demo.audience(run, control=True)
    assert controls
    assert sent_total == len(demo.audience(run)) - len(controls)
    assert run.counts["sent"] == sent_total


@pytest.mark.slow
def test_files_have_the_mapping_columns_in_its_order(demo: Demo) -> None:
    day = WEEK1.replace("-", "")
    with gzip.open(demo.root / "outbox" / f"local-drop_{day}_gold_thanks.csv.gz") as file:
        assert pacsv.read_csv(file).column_names == MAPPED


@pytest.mark.slow
def test_the_receiver_got_exactly_the_records_each_run_sent(demo: Demo) -> None:
    for run, records in zip(demo.runs, demo.received, strict=True):
        assert run.status == "succeeded"
        (delivery,) = _rows(run).values()
        assert (delivery["rows"], delivery["shrink"], delivery["rejected"]) == (len(records), 0, 0)
        ids = [r["customer_id"] for r in records]
        assert len(set(ids)) == len(ids) == run.counts["sent"]
        assert {r["group"] for r in records} == {"offer"}
    # The first run sends the whole treatment group (the second: see the next test).
    first = {r["customer_id"] for r in demo.received[0]}
    assert first == demo.audience(demo.runs[0], control=False)
    all_ids = [r["customer_id"] for records in demo.received for r in records]
    assert len(set(all_ids)) == len(all_ids)
    counts = demo.receiver.counts
    assert (counts.records, counts.duplicates, counts.refused) == (len(all_ids), 0, 0)


@pytest.mark.slow
def test_the_second_run_sends_only_the_newly_qualified(demo: Demo) -> None:
    first, second = demo.runs
    before, now = demo.audience(first), demo.audience(second)
    newcomers = now - before
    sent = {r["customer_id"] for r in demo.received[1]}
    assert 0 < len(sent) < len(demo.received[0])
    assert sent == demo.audience(second, control=False) & newcomers
    # Customers still qualifying were sent in the first run and not again.
    assert not sent & before
    assert len(now & before) > len(newcomers)  # most of the audience stays from week to week
    # The plan made before the run said so.
    assert demo.plan.previous_run == first.run_id
    assert [(g.group, g.new, g.staying) for g in demo.plan.groups] == [
        (
            g,
            len(demo.audience(second, control=g == "holdout") & newcomers),
            len(demo.audience(second, control=g == "holdout") & before),
        )
        for g in ("offer", "holdout")
    ]
    assert [(d.destination, d.rows) for d in demo.plan.deliveries] == [("demo-webhook", len(sent))]


@pytest.mark.slow
def test_results_count_each_recipient_once_with_their_orders_of_the_week(demo: Demo) -> None:
    sent = [r["customer_id"] for records in demo.received for r in records]
    first, second = demo.runs
    controls = demo.audience(first, control=True) | demo.audience(second, control=True)
    offer = demo.results.group("new-buyers", "offer")
    holdout = demo.results.group("new-buyers", "holdout")
    assert (offer.recipients, holdout.recipients) == (len(sent), len(controls))
    assert holdout.control
    assert not offer.control
    # Purchasers, by hand: an order in the seven days after the customer's first send.
    purchasers = demo.query(
        f"""
        WITH sends AS (
            SELECT customer_id, {GROUP} AS grp, timezone('UTC', min(sent_at)) AS at
            FROM activator.recipients
            WHERE campaign = 'first-order-follow-up' AND action = 'add'
            GROUP BY customer_id, {GROUP}
        )
        SELECT grp, count(DISTINCT s.customer_id) FROM sends s JOIN orders o USING (customer_id)
        WHERE o.ordered_at > s.at AND o.ordered_at <= s.at + INTERVAL 7 DAY AND NOT o.is_returned
        GROUP BY grp
        """
    )
    by_group = dict(purchasers)
    assert (by_group.get("offer", 0), by_group.get("holdout", 0)) == (
        offer.purchasers,
        holdout.purchasers,
    )
    assert offer.purchasers > 0
    assert offer.conversion_lift is not None

"""Alerts: webhooks told when a run fails, succeeds, or runs longer than a threshold.

Alerts are configured in ``activator.yaml`` (``alerts:``), each for every activation or for
the ones it names. They are sent by whichever process finishes the run (``activator run``,
the scheduler, ``runs retry``); ``long_running`` alerts by the scheduler, once per run. An
alert that cannot be delivered never changes the run: it is recorded as a warning in the
run's events (naming the alert, never its URL, which may hold a token).
"""

from __future__ import annotations

__all__ = ["alert_long_running", "alert_payload", "send_alerts"]

import time
from datetime import datetime
from typing import Any

import httpx

from activator.definitions.config import AlertConfig, AlertEvent
from activator.destinations.http import check_address
from activator.destinations.secrets import SecretResolver
from activator.errors import ActivatorError
from activator.store import MetadataStore, RunSummary
from activator.workspace.loader import Workspace

_ATTEMPTS = 3
_SENT = "alert sent"


def _event_of(run: RunSummary) -> AlertEvent | None:
    if run.status == "failed":
        return "failure"
    if run.status in ("succeeded", "warning"):
        return "success"
    return None


def _covers(alert: AlertConfig, run: RunSummary, event: AlertEvent) -> bool:
    if event not in alert.on or run.is_test:
        return False
    return not alert.activations or run.name in alert.activations


def alert_payload(run: RunSummary, event: AlertEvent, *, fmt: str, now: datetime) -> dict[str, Any]:
    """The alert's JSON body: Activator's document, or a Slack-compatible message."""
    end = run.finished_at or now
    seconds = (end - run.started_at).total_seconds() if run.started_at else None
    title = {
        "failure": f"{run.kind} {run.name}: run failed",
        "success": f"{run.kind} {run.name}: run {run.status}",
        "long_running": f"{run.kind} {run.name}: run still running after {_minutes(seconds)}",
    }[event]
    lines = [
        f"run {run.run_id} ({run.trigger}, as of {run.as_of.isoformat()})",
        *([f"error ({run.error_kind}): {run.error}"] if run.error else []),
        *([f"rows: {run.counts['rows']}"] if "rows" in run.counts else []),
    ]
    if fmt == "slack":
        return {
            "text": f"{title}\n" + "\n".join(lines),
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
            ],
        }
    return {
        "type": f"activator.run.{event}",
        "text": title,
        "activation": {"kind": run.kind, "name": run.name},
        "run": {
            "id": run.run_id,
            "status": run.status,
            "trigger": run.trigger,
            "as_of": run.as_of.isoformat(),
            "started_at": run.started_at.isoformat() if run.started_at else None,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "duration_seconds": seconds,
        },
        "error": run.error,
        "attribution": run.error_kind,
        "counts": {k: run.counts[k] for k in ("rows", "rejected", "customers") if k in run.counts},
    }


def _minutes(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds / 60:.0f} min"


def send_alerts(
    ws: Workspace,
    store: MetadataStore,
    run: RunSummary,
    *,
    now: datetime,
    event: AlertEvent | None = None,
) -> list[str]:
    """Send the alerts that cover ``run`` for ``event`` (default: from its final status);
    return the names of those delivered. Failures become warnings in the run's events."""
    event = event or _event_of(run)
    if event is None:
        return []
    resolver = SecretResolver(ws.root)
    return [
        alert.name
        for alert in ws.config.alerts
        if _covers(alert, run, event) and _send(store, run, alert, event, resolver, now)
    ]


def alert_long_running(ws: Workspace, store: MetadataStore, *, now: datetime) -> list[str]:
    """Alert once about each run running longer than an alert's threshold; return the ids."""
    watching = [a for a in ws.config.alerts if a.longer_than_minutes is not None]
    if not watching:
        return []
    alerted: list[str] = []
    resolver = SecretResolver(ws.root)
    for run in store.unfinished_runs():
        if run.started_at is None:
            continue
        minutes = (now - run.started_at).total_seconds() / 60
        due = [
            a
            for a in watching
            if a.longer_than_minutes is not None and minutes >= a.longer_than_minutes
        ]
        if not due:
            continue
        told = {
            e.fields.get("alert")
            for e in store.events(run.run_id)
            if e.message.startswith(_SENT) or e.fields.get("event") == "long_running"
        }
        for alert in due:
            if alert.name in told or not _covers(alert, run, "long_running"):
                continue
            if _send(store, run, alert, "long_running", resolver, now):
                alerted.append(run.run_id)
    return alerted


def _send(
    store: MetadataStore,
    run: RunSummary,
    alert: AlertConfig,
    event: AlertEvent,
    resolver: SecretResolver,
    now: datetime,
) -> bool:
    """Post one alert about ``run`` and record the outcome in the run's events (an alert
    that cannot be sent is a warning naming the alert, never its URL); True when it was sent."""
    fields = {"alert": alert.name, "event": event}
    try:
        _post(alert, alert_payload(run, event, fmt=alert.format, now=now), resolver)
    except ActivatorError as exc:
        store.add_event(
            run.run_id,
            f"alert {alert.name} ({event}) could not be sent: {exc.message}",
            level="warning",
            fields=fields,
        )
        return False
    store.add_event(run.run_id, f"{_SENT}: {alert.name} ({event})", fields=fields)
    return True


def _post(alert: AlertConfig, body: dict[str, Any], resolver: SecretResolver) -> None:
    what = f"alert {alert.name}"
    url = (
        alert.url if isinstance(alert.url, str) else resolver.resolve(alert.url, what=what).reveal()
    )
    if not url.startswith("https://") and not (url.startswith("http://") and alert.allow_private):
        raise ActivatorError(f"{what}: the url must use https:// (or set allow_private: true)")
    try:
        check_address(url, allow_private=alert.allow_private)
    except ActivatorError as exc:
        # The check names the URL's host and path; the path of a chat webhook is its secret.
        raise ActivatorError(f"{what}: the receiver's address is refused or unknown") from exc
    problem = ""
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            response = httpx.post(url, json=body, timeout=alert.timeout_seconds)
        except httpx.HTTPError as exc:
            problem = type(exc).__name__
        else:
            if response.status_code < 300:
                return
            problem = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code != 429:
                break
        if attempt < _ATTEMPTS:
            time.sleep(0.5 * attempt)
    raise ActivatorError(f"{what}: the receiver answered {problem}")

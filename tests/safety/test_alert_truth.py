"""Alerts that tell the truth: one alert per budget, alerts judged against the current config, distinct names
for "no fresh sample" and "old billing or prices", and idempotent webhook delivery."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from gpuspend import alerts, notify
from gpuspend.alert_kinds import COLLECTOR, OUTDATED, parse_fail_on
from gpuspend.errors import UsageError
from gpuspend.store import connect
from tests.alerts.snapshots import HOUR_MS, config, month, snapshot

T0 = 1794744000000           # 2026-11-15 12:00 UTC
HOOK = "/hooks/budget"


@pytest.fixture
def conn(db_path):
    c = connect(db_path)
    yield c
    c.close()


def _outbox(conn) -> list[tuple[str, str]]:
    return [tuple(r) for r in conn.execute("SELECT target, event FROM notifications ORDER BY id")]


def test_crossing_50_80_100_at_once_is_one_message_carrying_100(conn, tmp_path):
    cfg = config(tmp_path, [{"name": "team", "kind": "webhook", "url": "http://127.0.0.1:9/x"}],
                 budget={"monthly": 1000, "thresholds": [50, 80, 100], "basis": ["actual"]})
    # $1,050 spent of $1,000: every threshold is crossed in the same evaluation
    changes = alerts.evaluate(conn, cfg, snapshot(T0, months=[month(actual_pct=105.0, budget=1000)]), T0)
    assert [(c.kind, c.event) for c in changes] == [("budget", "open")]
    assert "Budget 100% reached" in changes[0].title and "$1,050.00 of $1,000.00" in changes[0].title
    assert _outbox(conn) == [("team", "open")]
    assert [a.kind for a in alerts.alert_views(conn)] == ["budget"]       # one line in the panel, not five


def test_a_higher_threshold_crossed_later_is_sent_once_more(conn, tmp_path):
    cfg = config(tmp_path, [{"name": "team", "kind": "webhook", "url": "http://127.0.0.1:9/x"}],
                 budget={"monthly": 1000, "thresholds": [50, 80, 100], "basis": ["actual"]})
    events = []
    for i, pct in enumerate([55.0, 60.0, 85.0, 86.0, 101.0, 120.0]):
        t = T0 + i * 5 * HOUR_MS            # longer than alerts.repeat: budgets never send reminders
        events += [c.event for c in alerts.evaluate(conn, cfg, snapshot(t, months=[month(actual_pct=pct,
                                                                                          budget=1000)]), t)]
    assert events == ["open", "raised:80:actual", "raised:100:actual"]
    assert len(_outbox(conn)) == 3


def test_a_removed_budget_no_longer_fails_the_report(conn, tmp_path):
    with_budget = config(tmp_path, budget={"monthly": 1000, "thresholds": [80], "basis": ["actual"]})
    snap = snapshot(T0, months=[month(actual_pct=90.0, budget=1000)])
    alerts.evaluate(conn, with_budget, snap, T0)
    assert [a.kind for a in alerts.current_alerts(conn, with_budget, snap, T0)] == ["budget"]
    # the user deletes the budget from the config: the month has no budget any more
    without = config(tmp_path)
    no_budget = snapshot(T0 + 60_000, months=[replace(month(actual_pct=90.0, budget=1000), budget=None,
                                                      budget_pct_actual=None)])
    assert alerts.current_alerts(conn, without, no_budget, T0 + 60_000) == ()
    # and the next evaluation (daemon or --notify) resolves the stored alert, silently
    alerts.evaluate(conn, without, no_budget, T0 + 60_000)
    assert conn.execute("SELECT state FROM alerts").fetchall() == [("resolved",)]


def test_current_alerts_sees_a_crossing_no_daemon_recorded_and_writes_nothing(conn, tmp_path):
    cfg = config(tmp_path, budget={"monthly": 1000, "thresholds": [80], "basis": ["actual"]})
    views = alerts.current_alerts(conn, cfg, snapshot(T0, months=[month(actual_pct=90.0, budget=1000)]), T0)
    assert [(v.kind, v.state) for v in views] == [("budget", "open")]
    assert conn.execute("SELECT COUNT(*) FROM alerts").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM notifications").fetchone()[0] == 0


def test_old_billing_is_outdated_not_stale(conn, tmp_path):
    cfg = config(tmp_path, alerts={"stale_billing": "3d"})
    coverage = T0 - 5 * 86_400_000                                       # exports end 5 days ago
    changes = alerts.evaluate(conn, cfg, snapshot(T0, coverage_end_ms=coverage), T0)
    assert [(c.kind, c.subject) for c in changes] == [(OUTDATED, "billing")]
    assert changes[0].title.startswith("Billing data is outdated: exports end 2026-11-10 12:00 UTC")


def test_fail_on_names_each_meaning_and_stale_means_both():
    assert parse_fail_on("outdated") == {OUTDATED}
    assert parse_fail_on("collector") == {COLLECTOR}
    assert parse_fail_on("idle,stale") == {"idle", COLLECTOR, OUTDATED}
    with pytest.raises(UsageError):
        parse_fail_on("stalled")


def _payload(event: str = "open") -> dict:
    return {"alert_id": 7, "kind": "idle", "subject": "GPU-1", "event": event, "alertname": "GpuIdle",
            "title": "GPU 0 idle for 1h", "text": "", "dollars": 2.0, "currency": "USD", "fields": [],
            "labels": {}, "started_ms": T0, "ended_ms": None}


def test_webhook_carries_the_same_idempotency_key_in_header_and_body_on_every_attempt():
    target = notify.Target("ops", "webhook", "http://127.0.0.1:9/hook", None, None, (), 0.0, 1.0, 0)
    _, headers, body = notify.build_request(target, _payload())
    _, again_headers, again = notify.build_request(target, json.loads(json.dumps(_payload())))
    assert headers["Idempotency-Key"] == body["idempotency_key"] == again_headers["Idempotency-Key"]
    _, _, resolved = notify.build_request(target, _payload("resolved"))
    assert resolved["idempotency_key"] != body["idempotency_key"]     # another message, another key


def test_a_slow_webhook_gets_one_copy_per_run_not_four(conn, tmp_path, httpserver):
    def slow(request):
        time.sleep(0.5)          # longer than the target's timeout: the request arrives, the answer does not
        from werkzeug import Response

        return Response("ok")

    httpserver.expect_request(HOOK, method="POST").respond_with_handler(slow)
    cfg = config(tmp_path, [{"name": "ops", "kind": "webhook", "url": httpserver.url_for(HOOK), "timeout": 0.2,
                             "retries": 3}], budget={"monthly": 1000, "thresholds": [80], "basis": ["actual"]})
    alerts.evaluate(conn, cfg, snapshot(T0, months=[month(actual_pct=90.0, budget=1000)]), T0)
    result = notify.deliver_pending(conn, cfg, T0, backoff_s=0.0)
    assert result.sent == 0 and result.retrying == 1       # left in the outbox for a later run
    deadline = time.monotonic() + 10
    while not httpserver.log and time.monotonic() < deadline:   # the server logs a request once it answered
        time.sleep(0.05)
    time.sleep(1.0)                                          # let any further copy finish arriving
    assert len(httpserver.log) == 1                          # the old code retried 3 more times at once
    (row,) = conn.execute("SELECT status, attempts FROM notifications").fetchall()
    assert row == ("pending", 1)

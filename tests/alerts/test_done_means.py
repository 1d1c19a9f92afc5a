"""The issue's "done means", end to end through a real Slack-shaped server on 127.0.0.1 with a simulated clock.

Snapshots are built by hand (tests/alerts/snapshots.py) following the costing contract: a GPU goes idle,
costing reports episode_open once it has been idle for idle.after (15 min) and the waste so far.
"""

from __future__ import annotations

import json

from gpuspend import alerts, notify
from gpuspend.store import connect
from tests.alerts.snapshots import MIN_MS, config, gpu, month, proc, snapshot

T0 = 1794744000000
HOOK = "/services/T1/B1/done"


def test_idle_episode_gives_one_message_one_reminder_and_one_resolved(db_path, tmp_path, httpserver):
    httpserver.expect_request(HOOK, method="POST").respond_with_data("ok")
    cfg = config(tmp_path, [{"name": "team", "kind": "slack", "url": httpserver.url_for(HOOK)}],
                 alerts={"repeat": "4h"}, idle={"after": "15m"})
    conn = connect(db_path)
    sent_at: list[int] = []
    for minute in range(0, 6 * 60):                    # idle for 5 h, then busy again
        t = T0 + minute * MIN_MS
        if minute < 300:
            g = gpu(idle_for_s=minute * 60, episode_open=minute >= 15, waste=minute * 2.0 / 60)
        else:
            g = gpu(state="busy")
        alerts.evaluate(conn, cfg, snapshot(t, gpus=[g], processes=[proc()] if minute < 300 else []), t)
        before = len(httpserver.log)
        notify.deliver_pending(conn, cfg, t)
        sent_at += [minute] * (len(httpserver.log) - before)
    messages = [json.loads(req.data) for req, _ in httpserver.log]
    assert sent_at == [15, 15 + 240, 300]
    assert [m["text"].split(":")[0] for m in messages] == ["Alert", "Still open", "Resolved"]
    assert "held idle for 15m" in messages[0]["text"]
    assert "held idle for 4h15m" in messages[1]["text"]
    conn.close()


def test_budget_forecast_crossing_gives_one_message_per_threshold(db_path, tmp_path, httpserver):
    httpserver.expect_request(HOOK, method="POST").respond_with_data("ok")
    cfg = config(tmp_path, [{"name": "team", "kind": "slack", "url": httpserver.url_for(HOOK)}],
                 budget={"monthly": 10000, "thresholds": [50, 80, 100], "basis": ["forecast"]})
    conn = connect(db_path)
    # the forecast climbs from 40% to 115% over two days, wobbling around each threshold
    for step in range(0, 48 * 6):
        t = T0 + step * 10 * MIN_MS
        pct = 40 + step * 75 / (48 * 6) + (1.5 if step % 2 else -1.5)
        alerts.evaluate(conn, cfg, snapshot(t, months=[month(forecast_pct=pct)]), t)
        notify.deliver_pending(conn, cfg, t)
    texts = [json.loads(req.data)["text"] for req, _ in httpserver.log]
    assert [t.split(" for ")[0] for t in texts] == ["Alert: Budget 50% forecast", "Alert: Budget 80% forecast",
                                                    "Alert: Budget 100% forecast"]
    conn.close()

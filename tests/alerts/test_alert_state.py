"""Alert state machine against a real SQLite file: one alert per episode, repeats, resolution, hysteresis."""

from __future__ import annotations

import json

import pytest

from gpuspend import alerts
from gpuspend.store import connect, transaction
from tests.alerts.snapshots import HOUR_MS, MIN_MS, config, gpu, month, proc, snapshot

T0 = 1794744000000
SLACK = {"name": "team", "kind": "slack", "url": "http://127.0.0.1:9/hook"}


@pytest.fixture
def conn(db_path):
    c = connect(db_path)
    yield c
    c.close()


def outbox(conn) -> list[tuple[str, str]]:
    return conn.execute("SELECT target, event FROM notifications ORDER BY id").fetchall()


def idle(minutes: float, waste: float | None = None):
    return gpu(idle_for_s=minutes * 60, episode_open=minutes >= 15, waste=waste if waste is not None else minutes / 30)


def test_idle_episode_opens_once_repeats_after_interval_and_resolves_once(conn, tmp_path):
    cfg = config(tmp_path, [SLACK])
    ev = lambda t, g: alerts.evaluate(conn, cfg, snapshot(t, gpus=[g], processes=[proc()]), t)  # noqa: E731
    assert ev(T0, idle(10)) == []                                   # idle, but not for 15 min yet
    opened = ev(T0 + 5 * MIN_MS, idle(15))
    assert [c.event for c in opened] == ["open"]
    for k in range(1, 24):                                          # every 10 min for ~4 h: nothing new
        assert ev(T0 + 5 * MIN_MS + k * 10 * MIN_MS, idle(15 + k * 10)) == []
    assert [c.event for c in ev(T0 + 5 * MIN_MS + 4 * HOUR_MS, idle(255))] == ["repeat:1"]
    assert ev(T0 + 5 * MIN_MS + 4 * HOUR_MS + MIN_MS, idle(256)) == []
    resolved = ev(T0 + 5 * HOUR_MS, gpu(state="busy"))
    assert [c.event for c in resolved] == ["resolved"]
    assert ev(T0 + 5 * HOUR_MS + MIN_MS, gpu(state="busy")) == []
    assert outbox(conn) == [("team", "open"), ("team", "repeat:1"), ("team", "resolved")]
    # the resolved message carries the episode's final numbers, not the busy GPU's zeros
    payload = json.loads(conn.execute("SELECT payload FROM notifications WHERE event = 'resolved'").fetchone()[0])
    assert payload["dollars"] == pytest.approx(256 / 30, abs=0.01)
    assert dict(map(tuple, payload["fields"]))["Idle for"] == "4h16m"
    assert payload["ended_ms"] == T0 + 5 * HOUR_MS


def test_a_new_idle_episode_is_a_new_alert(conn, tmp_path):
    cfg = config(tmp_path, [SLACK])
    alerts.evaluate(conn, cfg, snapshot(T0, gpus=[idle(20)]), T0)
    alerts.evaluate(conn, cfg, snapshot(T0 + HOUR_MS, gpus=[gpu(state="busy")]), T0 + HOUR_MS)
    alerts.evaluate(conn, cfg, snapshot(T0 + 2 * HOUR_MS, gpus=[idle(20)]), T0 + 2 * HOUR_MS)
    rows = conn.execute("SELECT state FROM alerts WHERE kind = 'idle' ORDER BY id").fetchall()
    assert rows == [("resolved",), ("open",)]
    assert [e for _, e in outbox(conn)] == ["open", "resolved", "open"]


def test_lost_gpu_keeps_the_alert_and_a_vanished_gpu_resolves_it(conn, tmp_path):
    cfg = config(tmp_path, [SLACK])
    alerts.evaluate(conn, cfg, snapshot(T0, gpus=[idle(20)]), T0)
    assert alerts.evaluate(conn, cfg, snapshot(T0 + MIN_MS, gpus=[gpu(state="lost")]), T0 + MIN_MS) == []
    # no data for 5 h: no reminder sent on a guess
    assert alerts.evaluate(conn, cfg, snapshot(T0 + 5 * HOUR_MS, gpus=[gpu(state="stale")]), T0 + 5 * HOUR_MS) == []
    gone = alerts.evaluate(conn, cfg, snapshot(T0 + 6 * HOUR_MS, gpus=[]), T0 + 6 * HOUR_MS)
    assert [c.event for c in gone] == ["resolved"]


def test_min_dollars_defers_the_open_message_until_the_waste_is_worth_it(conn, tmp_path):
    cfg = config(tmp_path, [SLACK | {"min_dollars": 5}, {"name": "all", "kind": "webhook", "url": "http://x/y"}])
    alerts.evaluate(conn, cfg, snapshot(T0, gpus=[idle(15, waste=0.5)]), T0)
    assert outbox(conn) == [("all", "open")]
    alerts.evaluate(conn, cfg, snapshot(T0 + HOUR_MS, gpus=[idle(75, waste=6.0)]), T0 + HOUR_MS)
    assert outbox(conn) == [("all", "open"), ("team", "open")]


def test_kinds_filter_routes_alerts_per_target(conn, tmp_path):
    cfg = config(tmp_path, [SLACK | {"kinds": ["budget"]}, {"name": "ops", "kind": "webhook", "url": "http://x/y",
                                                              "kinds": ["idle"]}],
                 budget={"monthly": 10000, "thresholds": [80], "basis": ["forecast"]})
    alerts.evaluate(conn, cfg, snapshot(T0, gpus=[idle(20)], months=[month(forecast_pct=90)]), T0)
    assert sorted(outbox(conn)) == [("ops", "open"), ("team", "open")]
    kinds = dict(conn.execute("SELECT n.target, a.kind FROM notifications n JOIN alerts a ON a.id = n.alert_id"))
    assert kinds == {"ops": "idle", "team": "budget"}


def test_budget_forecast_crossings_give_one_message_per_threshold(conn, tmp_path):
    cfg = config(tmp_path, [SLACK], budget={"monthly": 10000, "thresholds": [50, 80, 100], "basis": ["forecast"]})
    events = []
    for i, pct in enumerate([40, 55, 60, 85, 78, 82, 77, 70, 86, 120, 130]):
        t = T0 + i * HOUR_MS * 5                                     # beyond alerts.repeat: still no repeats
        events += [c.event for c in alerts.evaluate(conn, cfg, snapshot(t, months=[month(forecast_pct=pct)]), t)]
    # One alert for the budget: opened at 50%, raised once at 80% and once at 100%; 80% clearing at 70 (50% is
    # still crossed) and crossing again at 86 says nothing new.
    assert events == ["open", "raised:80:forecast", "raised:100:forecast"]
    assert [e for _, e in outbox(conn)] == ["open", "raised:80:forecast", "raised:100:forecast"]
    assert conn.execute("SELECT COUNT(*) FROM alerts WHERE kind = 'budget'").fetchone()[0] == 1


def test_budget_alerts_of_an_ended_month_close_silently(conn, tmp_path):
    cfg = config(tmp_path, [SLACK], budget={"monthly": 10000, "thresholds": [100], "basis": ["actual"]})
    alerts.evaluate(conn, cfg, snapshot(T0, months=[month(actual_pct=101)]), T0)
    t = T0 + 20 * 24 * HOUR_MS
    assert alerts.evaluate(conn, cfg, snapshot(t, months=[month(actual_pct=3, name="2026-12")]), t) == []
    assert conn.execute("SELECT state FROM alerts").fetchall() == [("resolved",)]
    assert outbox(conn) == [("team", "open")]


def test_spend_spike_against_the_seven_day_baseline(conn, tmp_path):
    cfg = config(tmp_path, [SLACK], alerts={"spike_pct": 50})
    start = T0 - 48 * HOUR_MS
    for h in range(48):                                              # two days at $10/h
        assert alerts.evaluate(conn, cfg, snapshot(start + h * HOUR_MS, cost_per_hour=10.0),
                               start + h * HOUR_MS) == []
    assert alerts.evaluate(conn, cfg, snapshot(T0, cost_per_hour=14.0), T0) == []          # +40%: no
    opened = alerts.evaluate(conn, cfg, snapshot(T0 + MIN_MS, cost_per_hour=16.0), T0 + MIN_MS)
    assert [(c.kind, c.event) for c in opened] == [("spike", "open")]
    assert alerts.evaluate(conn, cfg, snapshot(T0 + 2 * MIN_MS, cost_per_hour=13.0), T0 + 2 * MIN_MS) == []  # band
    closed = alerts.evaluate(conn, cfg, snapshot(T0 + 3 * MIN_MS, cost_per_hour=11.0), T0 + 3 * MIN_MS)
    assert [(c.kind, c.event) for c in closed] == [("spike", "resolved")]


def test_no_spike_without_a_day_of_history(conn, tmp_path):
    cfg = config(tmp_path, [SLACK])
    for h in range(5):
        alerts.evaluate(conn, cfg, snapshot(T0 + h * HOUR_MS, cost_per_hour=1.0), T0 + h * HOUR_MS)
    assert alerts.evaluate(conn, cfg, snapshot(T0 + 6 * HOUR_MS, cost_per_hour=100.0), T0 + 6 * HOUR_MS) == []


def test_collector_stopped_when_the_lease_heartbeat_is_old(conn, tmp_path):
    cfg = config(tmp_path, [SLACK], alerts={"collector_stopped": "5m"})
    with transaction(conn):
        conn.execute("INSERT INTO collector_lease VALUES (1, 4321, 'node-1', 'daemon', ?, ?, 2.0)", (T0, T0))
    assert alerts.evaluate(conn, cfg, snapshot(T0 + 4 * MIN_MS), T0 + 4 * MIN_MS) == []
    opened = alerts.evaluate(conn, cfg, snapshot(T0 + 6 * MIN_MS), T0 + 6 * MIN_MS)
    assert [(c.kind, c.event) for c in opened] == [("collector", "open")]
    assert "daemon pid 4321 on node-1" in opened[0].title
    with transaction(conn):
        conn.execute("UPDATE collector_lease SET heartbeat = ?", (T0 + 7 * MIN_MS,))
    closed = alerts.evaluate(conn, cfg, snapshot(T0 + 7 * MIN_MS), T0 + 7 * MIN_MS)
    assert [(c.kind, c.event) for c in closed] == [("collector", "resolved")]


def test_stale_billing_and_stale_catalog(conn, tmp_path):
    cfg = config(tmp_path, [SLACK], alerts={"stale_billing": "3d", "stale_catalog": "90d"})
    fresh = alerts.evaluate(conn, cfg, snapshot(T0, coverage_end_ms=T0 - 2 * 24 * HOUR_MS,
                                                catalog_as_of="2026-10-01"), T0)
    assert fresh == []
    old = alerts.evaluate(conn, cfg, snapshot(T0, coverage_end_ms=T0 - 4 * 24 * HOUR_MS,
                                              catalog_as_of="2026-01-21"), T0)
    assert sorted(c.subject for c in old) == ["billing", "catalog"]
    assert any("298 days old" in c.title for c in old)


def test_outside_text_is_cleaned_of_terminal_escapes(conn, tmp_path):
    cfg = config(tmp_path, [SLACK])
    evil = proc(user="mallory\x1b[31m", command="python \x1b]0;owned\x07x.py\n[bold]hi[/bold]")
    alerts.evaluate(conn, cfg, snapshot(T0, gpus=[idle(20)], processes=[evil]), T0)
    payload = conn.execute("SELECT payload FROM notifications").fetchone()[0]
    held_by = json.loads(payload)["fields"][1][1]
    assert held_by == "mallory (python x.py [bold]hi[/bold], pid 4242)"   # markup kept as plain data
    assert "\x1b" not in payload and "\x07" not in payload


def test_alert_views_for_the_tui_and_report(conn, tmp_path):
    cfg = config(tmp_path, [])
    alerts.evaluate(conn, cfg, snapshot(T0, gpus=[idle(20)]), T0)
    views = alerts.open_alerts(conn)
    assert [(v.kind, v.subject, v.state) for v in views] == [("idle", "GPU-aaaa", "open")]
    assert conn.execute("SELECT COUNT(*) FROM notifications").fetchone()[0] == 0   # no targets: state only

"""A collection gap is unknown time, not "busy": an idle episode spans it while the GPU is idle on both sides
(the gap itself is not waste) and is resolved only when work is seen.

Before: any gap longer than about a minute ended idle episodes, so restarting the dashboard sent
"Resolved: GPU 5 idle for 6d 2h" while GPU 5 was still idle."""

from __future__ import annotations

import pytest

from gpuspend import alerts, costing
from gpuspend.store import connect
from tests.fake_pynvml import FakeGpu, FakeNvml
from tests.idle.timeline import MIN, NOW_MS, cfg_file, collect

STEP = 10_000
CFG = "interval: 10\nrates:\n  per_gpu:\n    GPU-gap-0: 2.0\nidle:\n  after: 15m\n  busy_for: 30s\n"


def _box() -> FakeNvml:
    return FakeNvml([FakeGpu(index=0, uuid="GPU-gap-0", util=0, memory_used=0)])


def _idle_events(conn, cfg, t: int) -> list[str]:
    snap = costing.build_snapshot(conn, cfg, t)
    return [c.event for c in alerts.evaluate(conn, cfg, snap, t) if c.kind == "idle"]


def _idle_alerts(conn) -> list[tuple[str, str]]:
    return conn.execute("SELECT subject, state FROM alerts WHERE kind = 'idle' ORDER BY id").fetchall()


def test_an_idle_gpu_stays_one_open_episode_across_a_collector_restart(db_path, tmp_path):
    cfg = cfg_file(tmp_path, CFG)
    fake = _box()
    t0 = NOW_MS - 60 * MIN
    collect(db_path, cfg, fake, t0, t0 + 20 * MIN, STEP)                 # idle 20 min, then the collector stops
    conn = connect(db_path)
    try:
        assert _idle_alerts(conn) == [("GPU-gap-0", "open")]           # opened by the collector's alert task
        assert _idle_events(conn, cfg, t0 + 35 * MIN) == []              # nothing seen: nothing resolved
    finally:
        conn.close()
    collect(db_path, cfg, fake, NOW_MS - 10 * MIN, NOW_MS + 1, STEP)     # restarted 30 min later, still idle
    conn = connect(db_path)
    try:
        assert "resolved" not in _idle_events(conn, cfg, NOW_MS)
        assert _idle_alerts(conn) == [("GPU-gap-0", "open")]           # one alert, never resolved, never reopened
        snap = costing.build_snapshot(conn, cfg, NOW_MS)
        episodes, _ = costing.idle_episodes(conn, cfg, t0, NOW_MS + 1, NOW_MS)
    finally:
        conn.close()
    (g,) = snap.gpus
    (ep,) = episodes
    assert ep.open and ep.start_ms == t0 and g.episode_open
    # 20 min + 10 min observed idle at $2/h = $1.00; the 30-min gap is unknown, not waste ($2.00 if it were)
    assert ep.idle_s == pytest.approx(1800, abs=0.5)
    assert ep.waste == pytest.approx(1.00, abs=0.001)


def test_work_seen_after_a_gap_resolves_the_episode_where_the_work_began(db_path, tmp_path):
    cfg = cfg_file(tmp_path, CFG)
    fake = _box()
    t0 = NOW_MS - 60 * MIN
    collect(db_path, cfg, fake, t0, t0 + 20 * MIN, STEP)
    back = NOW_MS - 10 * MIN

    def busy_after_restart(t: int) -> None:
        fake.gpus[0].util = 90

    collect(db_path, cfg, fake, back, NOW_MS + 1, STEP, busy_after_restart)
    conn = connect(db_path)
    try:
        episodes, _ = costing.idle_episodes(conn, cfg, t0, NOW_MS + 1, NOW_MS)
        snap = costing.build_snapshot(conn, cfg, NOW_MS)
    finally:
        conn.close()
    (ep,) = episodes
    assert not ep.open and ep.end_ms == back                    # resolved when work was seen, not at the gap
    assert ep.waste == pytest.approx(2.0 * 1200 / 3600, abs=0.001)
    assert snap.gpus[0].state == "busy" and not snap.gpus[0].episode_open


def test_busy_on_both_sides_of_a_short_gap_is_not_continuous_busy(db_path, tmp_path):
    """idle 20 min, busy 20 s, a 2-min hole, busy 20 s, idle: neither busy stretch reaches busy_for (30 s)."""
    cfg = cfg_file(tmp_path, CFG)
    fake = _box()
    t0 = NOW_MS - 40 * MIN
    first, second = t0 + 20 * MIN, t0 + 22 * MIN + 20_000

    def script(t: int) -> None:
        fake.gpus[0].util = 90 if first <= t < first + 20_000 or second <= t < second + 20_000 else 0

    collect(db_path, cfg, fake, t0, first + 20_000, STEP, script)
    collect(db_path, cfg, fake, second, NOW_MS + 1, STEP, script)
    conn = connect(db_path)
    try:
        episodes, _ = costing.idle_episodes(conn, cfg, t0, NOW_MS + 1, NOW_MS)
    finally:
        conn.close()
    (ep,) = episodes
    assert ep.open and ep.start_ms == t0

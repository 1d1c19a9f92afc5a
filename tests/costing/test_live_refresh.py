"""Between full builds the dashboard refreshes only what the newest samples say (costing.refresh_live): every
live field must be what a full snapshot built at that moment shows, the money must stay exactly the last full
build's, and any change the money depends on (a GPU changing state, a process starting or ending, an alert)
must hand back None, so the caller builds everything again."""

from __future__ import annotations

from dataclasses import replace

from gpuspend import costing
from gpuspend.store import connect, transaction
from tests.costing.builders import DAY0_MS
from tests.costing.test_incremental_snapshot import MIN, STEP, store  # noqa: F401 - the shared fixture

LIVE_GPU = ("util", "mem_used", "power", "temperature", "last_sample_ms", "state")
MONEY = ("today_cost", "idle_waste_today", "months", "hourly", "cost_per_hour", "cost_per_hour_by_state")


def test_live_fields_match_a_full_build_and_money_stays_put(store):  # noqa: F811
    db, cfg, collector, ts = store
    conn = connect(db)
    refreshed = rebuilt = 0
    full = None
    stop = DAY0_MS + 10 * MIN
    while ts < stop:
        collector.tick(ts)
        now = ts + 700
        ts += STEP
        if full is None or now - full.now_ms >= 5000:
            full = costing.build_snapshot(conn, cfg, now)
            continue
        live = costing.refresh_live(conn, cfg, full, now)
        ref = costing.build_snapshot(conn, cfg, now)
        if live is None:
            # something the money depends on moved since the full build: a state or a process
            before = [(g.uuid, g.state) for g in full.gpus], {(p.gpu_uuid, p.pid) for p in full.processes}
            after = [(g.uuid, g.state) for g in ref.gpus], {(p.gpu_uuid, p.pid) for p in ref.processes}
            assert before != after or full.alerts != ref.alerts
            rebuilt += 1
            full = ref
            continue
        refreshed += 1
        assert live.live_ms == now and live.now_ms == full.now_ms
        for g, r in zip(live.gpus, ref.gpus, strict=True):
            for f in LIVE_GPU:
                assert getattr(g, f) == getattr(r, f), f"{g.uuid} {f} at {now}"
        assert [(p.pid, p.used_memory, p.sm_util) for p in sorted(live.processes, key=lambda p: p.pid)] == \
            [(p.pid, p.used_memory, p.sm_util) for p in sorted(ref.processes, key=lambda p: p.pid)]
        assert live.last_sample_ms == ref.last_sample_ms
        for f in MONEY:
            assert getattr(live, f) == getattr(full, f), f
        assert [(g.idle_for_s, g.episode_waste) for g in live.gpus] == \
            [(g.idle_for_s, g.episode_waste) for g in full.gpus]
    # GPU 1 flips between idle and busy every few minutes: both paths were taken
    assert refreshed > 50 and rebuilt >= 2
    conn.close()


def test_a_new_process_or_an_alert_asks_for_a_full_build(store):  # noqa: F811
    db, cfg, collector, ts = store
    conn = connect(db)
    collector.tick(ts)
    full = costing.build_snapshot(conn, cfg, ts + 700)
    assert costing.refresh_live(conn, cfg, full, ts + 900) is not None
    gone = replace(full, processes=full.processes[1:])       # the shown list lacks a process the store has
    assert costing.refresh_live(conn, cfg, gone, ts + 900) is None
    with transaction(conn):
        conn.execute("INSERT INTO alerts (kind, subject, state, started, updated, title) "
                     "VALUES ('spike', 'GPU-inc-0', 'open', ?, ?, 'spike')", (ts, ts))
    assert costing.refresh_live(conn, cfg, full, ts + 900) is None
    conn.close()

"""The cost engine on hand-built days: every expected dollar below is worked out in the comments.

Clock: 2026-11-15 12:00 UTC. Rate: config per_model H100 = $2.00/GPU-h, so one GPU-minute = $1/30.
"""

from __future__ import annotations

import pytest

from gpuspend import costing
from gpuspend.store import ROLLUP_GENERATION, bump_generation
from tests.costing.builders import (
    DAY0_MS,
    HOUR,
    MIN,
    NOW_MS,
    add_gpus,
    add_minutes,
    add_process,
    add_samples,
    cfg_from,
    new_store,
    set_watermark,
)

CFG = "rates: {per_model: {H100: 2.0}}\ninterval: 2\n"


@pytest.fixture
def day(db_path, tmp_path):
    """An 8-GPU morning (00:00-12:00) from rollups, busy except:
    GPU 0 free-idle 02:00-04:00 (2 h)           -> one episode, $4.00
    GPU 1 held-idle 05:00-05:10 (10 min)        -> shorter than idle.after (15 min): no episode
    GPU 2 held-idle 06:00-07:00 with a 20 s busy blip in the 06:30 minute
                                                -> one episode (blip < busy_for 30 s), 3580 s idle, $1.98889
    GPU 3 free-idle 11:00-12:00 (up to now)     -> open episode, $2.00
    GPU 4 no data 08:00-09:00                   -> a gap: not money, not idle
    """
    conn = new_store(db_path)
    ids = add_gpus(conn, 8)
    for i, gid in enumerate(ids):
        if i == 0:
            add_minutes(conn, gid, DAY0_MS, 120)
            add_minutes(conn, gid, DAY0_MS + 2 * HOUR, 120, busy=0, free=60, util=0)
            add_minutes(conn, gid, DAY0_MS + 4 * HOUR, 480)
        elif i == 1:
            add_minutes(conn, gid, DAY0_MS, 720)
            add_minutes(conn, gid, DAY0_MS + 5 * HOUR, 10, busy=0, held=60, util=1)
        elif i == 2:
            add_minutes(conn, gid, DAY0_MS, 720)
            add_minutes(conn, gid, DAY0_MS + 6 * HOUR, 60, busy=0, held=60, util=1)
            add_minutes(conn, gid, DAY0_MS + 6 * HOUR + 30 * MIN, 1, busy=20, held=40, util=4)
        elif i == 3:
            add_minutes(conn, gid, DAY0_MS, 660)
            add_minutes(conn, gid, DAY0_MS + 11 * HOUR, 60, busy=0, free=60, util=0)
        elif i == 4:
            add_minutes(conn, gid, DAY0_MS, 480)
            add_minutes(conn, gid, DAY0_MS + 9 * HOUR, 180)
        else:
            add_minutes(conn, gid, DAY0_MS, 720)
    set_watermark(conn, NOW_MS)
    yield conn, ids, cfg_from(tmp_path, CFG)
    conn.close()


def test_idle_episodes_and_waste_on_an_8_gpu_day(day):
    conn, ids, cfg = day
    episodes, timelines = costing.idle_episodes(conn, cfg, DAY0_MS, NOW_MS, NOW_MS)
    by_gpu = {e.gpu_id: e for e in episodes}
    assert sorted(by_gpu) == [ids[0], ids[2], ids[3]]
    e0 = by_gpu[ids[0]]
    assert (e0.start_ms, e0.end_ms) == (DAY0_MS + 2 * HOUR, DAY0_MS + 4 * HOUR)
    assert e0.waste == pytest.approx(4.0) and not e0.open
    e2 = by_gpu[ids[2]]
    assert e2.idle_s == pytest.approx(3580) and e2.waste == pytest.approx(3580 / 3600 * 2)
    assert e2.held_s == pytest.approx(3580) and e2.end_ms == DAY0_MS + 7 * HOUR
    e3 = by_gpu[ids[3]]
    assert e3.open and e3.waste == pytest.approx(2.0)
    assert timelines[ids[3]].idle_for_s == pytest.approx(3600)
    assert timelines[ids[1]].idle_for_s == 0
    assert costing.waste_in(episodes, "2026-11-15") == pytest.approx(4 + 3580 / 1800 + 2)
    # from 03:00 on: GPU 0's last idle hour ($2) + GPU 2 ($1.98889) + GPU 3 ($2)
    assert costing.waste_since(episodes, DAY0_MS + 3 * HOUR) == {"USD": pytest.approx(2 + 3580 / 1800 + 2)}


def test_metered_cost_counts_gaps_as_nothing(day):
    conn, ids, cfg = day
    rates = costing.resolve_rates(conn, cfg, costing.load_gpus(conn))
    # 8 GPUs x 12 h x $2 = $192, minus GPU 4's one-hour gap = $190
    assert costing.metered_total(conn, cfg, rates, DAY0_MS, NOW_MS, NOW_MS) == {"USD": pytest.approx(190.0)}
    daily = costing.metered_daily(conn, cfg, rates, DAY0_MS, NOW_MS, NOW_MS)
    assert daily == {"USD": {"2026-11-15": pytest.approx(190.0)}}
    hourly = dict((h, (u, i)) for h, u, i in costing.hourly(conn, cfg, rates, NOW_MS))
    # 02:00-03:00: GPU 0 idle (8 - 1 busy GPUs -> $14 useful, $2 idle)
    assert hourly[DAY0_MS + 2 * HOUR] == (pytest.approx(14.0), pytest.approx(2.0))
    # 08:00-09:00: GPU 4 has no data: $14 useful, nothing idle
    assert hourly[DAY0_MS + 8 * HOUR] == (pytest.approx(14.0), pytest.approx(0.0))


def test_a_gpu_without_rate_costs_nothing_and_is_noted(db_path, tmp_path):
    conn = new_store(db_path)
    ids = add_gpus(conn, 2, model="H100")
    conn.execute("UPDATE gpus SET model = 'MYSTERY' WHERE id = ?", (ids[1],))
    for gid in ids:
        add_minutes(conn, gid, DAY0_MS, 720)
    set_watermark(conn, NOW_MS)
    cfg = cfg_from(tmp_path, CFG)
    snap = costing.build_snapshot(conn, cfg, NOW_MS)
    assert snap.today_cost == pytest.approx(24.0)
    assert [g.cost_per_hour for g in snap.gpus] == [2.0, None]
    assert any("no rate" in n for n in snap.notes)


def test_live_state_from_raw_samples(db_path, tmp_path):
    """Raw samples (2 s) after the watermark: GPU 0 busy, GPU 1 held-idle for 20 min by bob's notebook,
    GPU 2 free-idle for 10 min, GPU 3 last sampled 5 min ago (stale)."""
    conn = new_store(db_path)
    ids = add_gpus(conn, 4)
    bob = add_process(conn, 4242, "bob", "jupyter-lab")
    wm = NOW_MS - 30 * MIN
    set_watermark(conn, wm)
    add_samples(conn, ids[0], wm, NOW_MS + 1, 2000, 90.0)
    add_samples(conn, ids[1], wm, NOW_MS - 20 * MIN, 2000, 80.0, [(bob, 2**30, None)])
    add_samples(conn, ids[1], NOW_MS - 20 * MIN, NOW_MS + 1, 2000, 0.0, [(bob, 2**30, None)])
    add_samples(conn, ids[2], wm, NOW_MS - 10 * MIN, 2000, 70.0)
    add_samples(conn, ids[2], NOW_MS - 10 * MIN, NOW_MS + 1, 2000, 0.0)
    add_samples(conn, ids[3], wm, NOW_MS - 5 * MIN, 2000, 70.0)
    cfg = cfg_from(tmp_path, CFG)
    snap = costing.build_snapshot(conn, cfg, NOW_MS)
    g = {x.index: x for x in snap.gpus}
    assert [g[i].state for i in range(4)] == ["busy", "held-idle", "free-idle", "stale"]
    # GPU 1: idle since 11:40 -> 20 min (the last sample covers up to now) -> an open episode worth 20 min
    assert g[1].idle_for_s == pytest.approx(1200, abs=2)
    assert g[1].episode_open and g[1].episode_waste == pytest.approx(2.0 / 3, abs=0.01)
    assert g[2].idle_for_s == pytest.approx(600, abs=2) and not g[2].episode_open
    assert dict(snap.cost_per_hour_by_state) == {"busy": 2.0, "held-idle": 2.0, "free-idle": 2.0, "unknown": 0.0,
                                                 "lost": 0.0, "stale": 2.0}
    assert snap.cost_per_hour == 8.0
    (proc,) = snap.processes
    # bob held GPU 1 for all 30 minutes: $1.00 today, attributed to his notebook
    assert proc.user == "bob" and proc.cost_today == pytest.approx(1.0, abs=0.01)


def test_raw_gap_longer_than_three_intervals_is_not_money(db_path, tmp_path):
    conn = new_store(db_path)
    (gid,) = add_gpus(conn, 1)
    set_watermark(conn, NOW_MS - HOUR)
    # one sample, then nothing for 20 minutes, then samples again: only one interval (2 s) of the gap counts
    add_samples(conn, gid, NOW_MS - 30 * MIN, NOW_MS - 30 * MIN + 1, 2000, 90.0)
    add_samples(conn, gid, NOW_MS - 10 * MIN, NOW_MS, 2000, 90.0)
    cfg = cfg_from(tmp_path, CFG)
    rates = costing.resolve_rates(conn, cfg, costing.load_gpus(conn))
    total = costing.metered_total(conn, cfg, rates, NOW_MS - HOUR, NOW_MS, NOW_MS)["USD"]
    assert total == pytest.approx((2 + 600) / 3600 * 2.0)


def test_attribution_by_sm_share_then_memory_share(db_path, tmp_path):
    conn = new_store(db_path)
    ids = add_gpus(conn, 2)
    a = add_process(conn, 100, "alice", "train.py")
    b = add_process(conn, 200, "bob", "eval.py")
    c = add_process(conn, 300, "carol", "notebook")
    wm = NOW_MS - HOUR
    set_watermark(conn, wm)
    # Rollup hour before the watermark on GPU 0: alice 40 s/min, bob 20 s/min -> $1.3333 and $0.6667
    with conn:
        conn.executemany("INSERT INTO process_minutes (gpu_id, minute, proc_id, share_s, idle_share_s) "
                         "VALUES (?,?,?,?,?)",
                         [(ids[0], wm - HOUR + m * MIN, p, s, 0.0) for m in range(60) for p, s in ((a, 40), (b, 20))])
    add_minutes(conn, ids[0], wm - HOUR, 60)
    # Raw hour on GPU 0: SM shares 30 % / 10 % -> alice 3/4, bob 1/4 of $2.00
    add_samples(conn, ids[0], wm, NOW_MS, 2000, 40.0, [(a, 2**30, 30.0), (b, 2**30, 10.0)])
    # Raw hour on GPU 1: held idle by carol (no SM figure) -> memory share, all of it idle: $2.00
    add_samples(conn, ids[1], wm, NOW_MS, 2000, 0.0, [(c, 2**30, None)])
    cfg = cfg_from(tmp_path, CFG)
    rates = costing.resolve_rates(conn, cfg, costing.load_gpus(conn))
    spends = {s.user: s for s in costing.attribution(conn, cfg, rates, wm - HOUR, NOW_MS, NOW_MS)}
    assert spends["alice"].cost == pytest.approx(4 / 3 + 1.5, abs=1e-3)
    assert spends["bob"].cost == pytest.approx(2 / 3 + 0.5, abs=1e-3)
    assert spends["carol"].cost == pytest.approx(2.0, abs=1e-3)
    assert spends["carol"].idle_cost == pytest.approx(2.0, abs=1e-3) and spends["alice"].idle_cost == 0
    users = costing.by_user(list(spends.values()))
    assert [u[0] for u in users] == ["alice", "carol", "bob"]


def test_underutilised_over_24h(day):
    conn, ids, cfg = day
    # All rows say util 90 except GPU 0's 2 idle hours (util 0): avg 90*10/12 = 75 -> not underutilised
    assert costing.underutilised(conn, cfg, NOW_MS) == []
    # Minutes behind the watermark are rewritten only by a rebuild, which moves the rollup generation with them
    # (the hours already summed are read again)
    conn.execute("UPDATE gpu_minutes SET util_avg = 10 WHERE gpu_id = ?", (ids[5],))
    bump_generation(conn, ROLLUP_GENERATION)
    cfg2 = cfg_from(cfg.path.parent, CFG + "idle: {low_util_pct: 15}\n")
    assert costing.underutilised(conn, cfg2, NOW_MS + MIN) == [("GPU-box1-5", 10.0)]


def test_underutilised_reads_the_partial_hours_at_both_ends_of_its_24h(db_path, tmp_path):
    """The 24 h average adds whole hours kept from before to the partial hour at either end of the window and
    the minutes after the watermark (rewritten by the next rollup): all three count, and a minute later the
    window has moved at both ends."""
    conn = new_store(db_path)
    gid = add_gpus(conn, 1)[0]
    add_minutes(conn, gid, DAY0_MS - 12 * HOUR - 30 * MIN, 60, busy=0, free=60, util=0)    # yesterday 11:30-12:30
    add_minutes(conn, gid, DAY0_MS + 9 * HOUR, 170, util=30)                              # today 09:00-11:50
    set_watermark(conn, DAY0_MS + 11 * HOUR + 40 * MIN)               # 11:40-11:49 not rolled up for good yet
    cfg = cfg_from(tmp_path, CFG + "idle: {low_util_pct: 25}\n")
    now = NOW_MS - 10 * MIN                                            # 11:50: the window opens yesterday 11:50
    # 40 min at 0% (yesterday 11:50-12:30) + 170 min at 30%: 5100 / 210 = 24.2857%
    assert [(u, round(a, 4)) for u, a in costing.underutilised(conn, cfg, now)] == [("GPU-box1-0", 24.2857)]
    add_minutes(conn, gid, DAY0_MS + 11 * HOUR + 50 * MIN, 1, util=30)
    set_watermark(conn, DAY0_MS + 11 * HOUR + 50 * MIN)
    # a minute later: 39 min at 0% + 171 min at 30%: 5130 / 210 = 24.4286%
    warm = costing.underutilised(conn, cfg, now + MIN)
    assert [(u, round(a, 4)) for u, a in warm] == [("GPU-box1-0", 24.4286)]
    costing.reset_caches()
    assert costing.underutilised(conn, cfg, now + MIN) == warm


def test_mig_slices_are_not_counted_twice_and_lost_gpus_show(db_path, tmp_path):
    conn = new_store(db_path)
    (parent, lost) = add_gpus(conn, 2)
    with conn:
        conn.execute("INSERT INTO gpus (uuid, host, idx, name, model, parent_id, mig_gi, source, first_seen, "
                     "last_seen) VALUES ('MIG-1', 'box1', NULL, 'MIG 3g.40gb', 'H100', ?, 1, 'nvml', 0, 0)", (parent,))
        conn.execute("UPDATE gpus SET lost_at = ? WHERE id = ?", (NOW_MS - MIN, lost))
    mig = conn.execute("SELECT id FROM gpus WHERE uuid = 'MIG-1'").fetchone()[0]
    for gid in (parent, mig):
        add_minutes(conn, gid, DAY0_MS, 720)
    set_watermark(conn, NOW_MS)
    snap = costing.build_snapshot(conn, cfg_from(tmp_path, CFG), NOW_MS)
    # only the physical GPU's 12 h at $2 are money; the slice is shown without a price of its own
    assert snap.today_cost == pytest.approx(24.0)
    g = {x.uuid: x for x in snap.gpus}
    assert g["MIG-1"].cost_per_hour is None and g["MIG-1"].parent_uuid == "GPU-box1-0"
    assert g["GPU-box1-1"].state == "lost"
    assert not any("no rate" in n for n in snap.notes)


def test_underutilised_gpus_come_in_index_order(db_path, tmp_path):
    """GPU 2 and GPU 10 of a 12-GPU box are underutilised: the report lists "GPU 2, 10", as every GPU list is
    shown, not in the order of their UUIDs ("GPU-box1-10" sorts before "GPU-box1-2")."""
    conn = new_store(db_path)
    ids = add_gpus(conn, 12)
    for i, gid in enumerate(ids):
        add_minutes(conn, gid, NOW_MS - 2 * HOUR, 120, util=3.0 if i in (2, 10) else 90.0)
    set_watermark(conn, NOW_MS)
    cfg = cfg_from(tmp_path, CFG)
    assert [u for u, _a in costing.underutilised(conn, cfg, NOW_MS)] == ["GPU-box1-2", "GPU-box1-10"]

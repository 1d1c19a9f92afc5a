"""Sums of final rollup minutes are kept per hour and per day across commits (store_read.final_buckets). The
only writers behind the watermark move the rollup generation, so a dashboard left open never shows what the
store no longer says: `gpuspend rollup --rebuild` after changing idle.util_pct, the demo's month backfilled
behind a dashboard that is already showing it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuspend import demo
from gpuspend.collectors.reading import GpuReading, ProcReading, Reading
from gpuspend.collectors.sampler import Sampler
from gpuspend.costing import (
    attribution,
    build_snapshot,
    covered_by_day,
    load_gpus,
    reset_caches,
    resolve_rates,
)
from gpuspend.demo import backfill_demo_db, build_demo_db
from gpuspend.rollup import rebuild, roll_up
from gpuspend.store import connect
from tests.idle.timeline import MIN, NOW_MS, cfg_file

DAY = 86_400_000
CFG = "interval: 10\nrates:\n  per_gpu:\n    GPU-sum-0: 2.0\nidle:\n  util_pct: {pct}\n  after: 15m\n"


@pytest.fixture(autouse=True)
def cold() -> None:
    reset_caches()


def test_a_rebuild_with_a_new_threshold_reaches_a_dashboard_already_open(db_path: Path, tmp_path: Path) -> None:
    # 3 h at 8% utilisation, rolled with the default 5%: busy. $2/h.
    conn = connect(db_path)
    t0 = NOW_MS - 180 * MIN
    Sampler(conn).write_many(
        Reading(ts_ms=t, host="node-1", source="nvml",
                gpus=[GpuReading(uuid="GPU-sum-0", index=0, name="NVIDIA H100 80GB HBM3", util=8.0)])
        for t in range(t0, NOW_MS + 1, 10_000))
    roll_up(conn, interval_s=10, idle_util_pct=5.0, now_ms=NOW_MS)
    before = build_snapshot(conn, cfg_file(tmp_path, CFG.format(pct=5)), NOW_MS)
    # 09:00-10:00, 10:00-11:00 and 11:00-12:00: useful money, no idle money
    assert [(round(u, 2), round(i, 2)) for _h, u, i in before.hourly[-4:-1]] == [(2.0, 0.0)] * 3

    cfg = cfg_file(tmp_path, CFG.format(pct=10))
    other = connect(db_path)                      # `gpuspend rollup --rebuild`, while the dashboard stays open
    rebuild(other, interval_s=10, idle_util_pct=10.0, now_ms=NOW_MS)
    other.close()
    warm = build_snapshot(conn, cfg, NOW_MS)
    assert [(round(u, 2), round(i, 2)) for _h, u, i in warm.hourly[-4:-1]] == [(0.0, 2.0)] * 3
    reset_caches()
    assert build_snapshot(conn, cfg, NOW_MS).hourly == warm.hourly     # what a fresh start shows
    conn.close()


def test_the_demo_month_backfilled_behind_an_open_dashboard_is_counted(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "HISTORY_DAYS", 4)
    now = NOW_MS + 37_000
    path = build_demo_db(tmp_path / "demo.db", now, recent_only=True)   # today and yesterday first
    cfg = cfg_file(tmp_path, "interval: 2\n")
    conn = connect(path)
    lo = now // DAY * DAY - 3 * DAY
    first = covered_by_day(conn, cfg, lo, now + 1, now)
    assert {day for _g, day in first} == {"2026-11-14", "2026-11-15"}
    assert backfill_demo_db(path) is True
    warm = covered_by_day(conn, cfg, lo, now + 1, now)
    assert {day for _g, day in warm} == {"2026-11-12", "2026-11-13", "2026-11-14", "2026-11-15"}
    for key in first:                                 # the days shown before keep their numbers
        assert warm[key] == pytest.approx(first[key])
    reset_caches()
    assert covered_by_day(conn, cfg, lo, now + 1, now) == pytest.approx(warm)
    # a whole backfilled day: 8 GPUs x 24 h covered
    assert sum(v[0] for (_g, day), v in warm.items() if day == "2026-11-13") == pytest.approx(8 * 86_400, rel=1e-3)
    conn.close()


def _train(conn, t_from: int, t_to: int) -> None:
    """One H100 at 80% from `t_from` to `t_to` (a sample every 10 s) held by alice (SM 30%) and bob (SM 10%)."""
    procs = [ProcReading(pid=100, used_memory=2**30, sm_util=30.0, user="alice", command="train.py", started=1),
             ProcReading(pid=200, used_memory=2**30, sm_util=10.0, user="bob", command="eval.py", started=1)]
    Sampler(conn, 10).write_many(
        Reading(ts_ms=t, host="node-1", source="nvml",
                gpus=[GpuReading(uuid="GPU-att-0", index=0, name="NVIDIA H100 80GB HBM3", util=80.0,
                                 processes=procs)])
        for t in range(t_from, t_to + 1, 10_000))


def test_process_costs_of_an_open_dashboard_keep_up_across_hours_and_match_a_fresh_start(
        db_path: Path, tmp_path: Path) -> None:
    """Today's per-process money sums whole hours once and reads the partial hours again: as the minutes roll
    up across an hour boundary, a dashboard left open shows what a fresh start computes, to the cent."""
    cfg = cfg_file(tmp_path, "interval: 10\nrates:\n  per_gpu:\n    GPU-att-0: 2.0\n")
    conn = connect(db_path)
    day0 = NOW_MS // DAY * DAY
    t0, t1, t2 = NOW_MS - 150 * MIN, NOW_MS - 80 * MIN, NOW_MS - 5 * MIN      # 09:30, 10:40, 11:55

    def spends(now: int) -> dict[str, tuple[float, float]]:
        rates = resolve_rates(conn, cfg, load_gpus(conn))
        return {s.user: (round(s.cost, 4), round(s.idle_cost, 4))
                for s in attribution(conn, cfg, rates, day0, now + 1, now)}

    _train(conn, t0, t1)
    roll_up(conn, interval_s=10, idle_util_pct=5.0, now_ms=t1)
    # 70 min at $2/h = $2.3333, split by SM share 3:1
    assert spends(t1) == {"alice": (1.75, 0.0), "bob": (0.5833, 0.0)}
    _train(conn, t1 + 10_000, t2)
    roll_up(conn, interval_s=10, idle_util_pct=5.0, now_ms=t2)
    # 145 min: $4.8333
    warm = spends(t2)
    assert warm == {"alice": (3.625, 0.0), "bob": (1.2083, 0.0)}
    reset_caches()
    assert spends(t2) == warm
    conn.close()

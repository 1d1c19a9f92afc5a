"""Sums of final rollup minutes are kept per hour and per day across commits (store_read._final_bucket_sums). The
only writers behind the watermark move the rollup generation, so a dashboard left open never shows what the
store no longer says: `gpuspend rollup --rebuild` after changing idle.util_pct, the demo's month backfilled
behind a dashboard that is already showing it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuspend import demo
from gpuspend.collectors.reading import GpuReading, Reading
from gpuspend.collectors.sampler import Sampler
from gpuspend.costing import build_snapshot, covered_by_day, reset_caches
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

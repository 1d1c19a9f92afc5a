"""The seconds between the last rolled-up sample and the rollup watermark are counted once: metered, observed
and attributed alike (before, up to one sample interval was lost at every watermark)."""

from __future__ import annotations

import pytest

from gpuspend import costing
from gpuspend.costing.observed import observed
from gpuspend.store import connect
from tests.fake_pynvml import GIB, PID_BASE, FakeGpu, FakeNvml, FakeProc
from tests.idle.timeline import MIN, NOW_MS, cfg_file, collect

CFG = "interval: 7\nrates:\n  per_gpu:\n    GPU-wm-0: 3.0\n"


def test_a_busy_gpu_costs_rate_times_time_across_the_watermark(db_path, tmp_path):
    cfg = cfg_file(tmp_path, CFG)
    gpu = FakeGpu(index=0, uuid="GPU-wm-0", util=90, memory_used=8 * GIB,
                  processes=[FakeProc(PID_BASE + 1, 8 * GIB, 90)])
    start = NOW_MS - 21 * MIN                        # 7 s samples: the watermark falls inside a sample's interval
    stop = NOW_MS - 30_000                           # the last periodic rollup ran at 11:59:00
    collect(db_path, cfg, FakeNvml([gpu]), start, stop, 7000)
    conn = connect(db_path)
    try:
        wm = costing.watermark(conn)
        assert start < wm < NOW_MS and (wm - start) % 7000      # rolled up, mid-interval
        snap = costing.build_snapshot(conn, cfg, NOW_MS)
        seen = observed(conn, cfg, start, NOW_MS, NOW_MS)
    finally:
        conn.close()
    last = start + (stop - 1 - start) // 7000 * 7000            # the newest sample covers one interval
    seconds = (last - start) / 1000 + 7
    assert seen.seconds == pytest.approx(seconds, abs=0.01)
    assert snap.today_cost == pytest.approx(3.0 * seconds / 3600, abs=1e-4)
    (proc,) = snap.processes
    assert proc.cost_today == pytest.approx(snap.today_cost, abs=1e-4)     # all of it is this process's

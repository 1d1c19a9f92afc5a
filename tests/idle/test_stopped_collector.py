"""A collector that sampled every 10 s and then stopped: what it left after the rollup watermark is still raw,
and the report read afterwards (default config: 2 s) counts each of those samples as the 10 s it stood for.

Before: with the lease gone, the raw tail was judged at the configured 2 s, so every 10 s step was a gap and
counted 2 s: the last minute of the run came out as 12 s instead of 60 s (20 minutes at $3.60/h: $1.152, not
$1.20), and how much was lost depended on when in the minute the last rollup had run.
"""

from __future__ import annotations

import pytest

from gpuspend import costing
from gpuspend.costing.store_read import watermark
from gpuspend.store import connect
from tests.fake_pynvml import GIB, PID_BASE, FakeGpu, FakeNvml, FakeProc
from tests.idle.timeline import MIN, NOW_MS, cfg_file, collect

STEP = 10_000
CFG = "rates:\n  per_gpu:\n    GPU-ten: 3.60\n"          # no `interval:`: the default 2 s


@pytest.mark.parametrize("stop_s", [10, 25, 45])
def test_a_stopped_10_s_collector_leaves_samples_that_count_10_s_each(db_path, tmp_path, stop_s):
    cfg = cfg_file(tmp_path, CFG)
    assert cfg.interval == 2
    box = FakeNvml([FakeGpu(index=0, uuid="GPU-ten", util=80, memory_used=20 * GIB,
                            processes=[FakeProc(PID_BASE + 1, 20 * GIB)])])
    end = NOW_MS - stop_s * 1000              # the last tick stop_s before the report; 20 min of samples
    collect(db_path, cfg, box, end - 20 * MIN + STEP, end + 1, STEP)
    conn = connect(db_path)
    try:
        assert 0 < end - watermark(conn) < MIN             # the run's last samples are still raw
        snap = costing.build_snapshot(conn, cfg, NOW_MS)
    finally:
        conn.close()
    # 120 samples: 119 steps of 10 s, the last one covering its own 10 s: 20 min at $3.60/h
    assert snap.today_cost == pytest.approx(1.20, abs=1e-9)
    assert [round(p.cost_today, 9) for p in snap.processes] == [1.2]
    # stale after three of *its* intervals without a sample (30 s), not three of the configured 2 s
    assert snap.gpus[0].state == ("stale" if stop_s > 30 else "busy")

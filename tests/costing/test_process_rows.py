"""A process row is one process on one GPU, carrying that GPU's share of its cost: a job on two GPUs is two rows
that add up to what it cost, on the dashboard, in its detail view and on /metrics (never its total twice)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuspend import costing, metrics
from gpuspend.collectors.reading import ProcReading
from gpuspend.config import load_config
from gpuspend.store import connect
from gpuspend.tui.screens.process import detail_text
from tests.tui.factory import GIB, ScriptedSource, write_samples

NOW_MS = 1_764_000_000_000 // 3_600_000 * 3_600_000 + 12 * 3_600_000   # noon UTC, well inside a day


def test_a_process_on_two_gpus_is_two_rows_adding_up_to_its_cost(tmp_path: Path) -> None:
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text("interval: 2\nrates:\n  per_gpu:\n    GPU-test-0000: 4.0\n    GPU-test-0001: 2.0\n")
    cfg = load_config(str(cfg_path), explicit=True)
    db = tmp_path / "g.db"
    job = ProcReading(pid=4242, used_memory=30 * GIB, user="ana", command="train.py --ddp", started=1)
    # 1,800 samples every 2 s: one hour, the job alone on both GPUs (all of each GPU's cost is its own)
    last = write_samples(db, cfg, ScriptedSource(gpus=2, procs={0: [job], 1: [job]}), NOW_MS - 3_600_000, 1800)
    conn = connect(db)
    try:
        snap = costing.build_snapshot(conn, cfg, last + 1)
    finally:
        conn.close()
    rows = sorted((p.gpu_index, p.cost_today) for p in snap.processes if p.pid == 4242)
    # by hand: $4/h x 1 h on GPU 0, $2/h x 1 h on GPU 1
    assert rows == [(0, pytest.approx(4.0, abs=0.01)), (1, pytest.approx(2.0, abs=0.01))]
    assert sum(c for _g, c in rows) == pytest.approx(snap.today_cost, abs=0.01)
    detail = detail_text(next(p for p in snap.processes if p.pid == 4242), snap).plain
    assert "cost today    $6.00" in detail
    assert "GPU 0: 30.0G held, busy, $4.00 today" in detail and "GPU 1: 30.0G held, busy, $2.00 today" in detail
    exporter = metrics.serve("127.0.0.1", 0)                # the /metrics endpoint, fed this snapshot
    try:
        exporter.update(snap)
        users = [s for fam in exporter.registry.collect() for s in fam.samples
                 if s.name == "gpuspend_user_cost_total"]
    finally:
        exporter.close()
    assert [(s.labels["user"], round(s.value, 2)) for s in users] == [("ana", 6.0)]     # $6, never $12

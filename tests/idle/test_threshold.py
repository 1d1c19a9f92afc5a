"""`idle.util_pct` applies from the time it is set (rollups keep the threshold they were made with); the report
says so, and `gpuspend rollup --rebuild` re-derives idle from the raw samples still retained.

Before: changing the threshold changed the state column but not past waste, silently."""

from __future__ import annotations

import json

import pytest

from gpuspend.collectors.reading import GpuReading, Reading
from gpuspend.collectors.sampler import Sampler
from gpuspend.rollup import roll_up
from gpuspend.store import connect
from tests.conftest import run_cli
from tests.idle.timeline import MIN, NOW_MS

CFG = "interval: 10\nrates:\n  per_gpu:\n    GPU-thr-0: 2.0\nidle:\n  util_pct: {pct}\n  after: 15m\n"


def _store(db_path) -> None:
    """30 min at 8% utilisation, rolled up with the default threshold (5%): busy."""
    conn = connect(db_path)
    try:
        t0 = NOW_MS - 30 * MIN
        Sampler(conn).write_many(Reading(ts_ms=t, host="node-1", source="nvml",
                                         gpus=[GpuReading(uuid="GPU-thr-0", index=0, name="NVIDIA H100 80GB HBM3",
                                                          util=8.0)])
                                 for t in range(t0, NOW_MS + 1, 10_000))
        roll_up(conn, interval_s=10, idle_util_pct=5.0, now_ms=NOW_MS)
    finally:
        conn.close()


def _cli(tmp_path, db_path, *args: str):
    return run_cli(*args, "--db", str(db_path), "--config", str(tmp_path / "config.yaml"))


def test_a_new_threshold_is_said_to_apply_from_when_it_was_set_and_rebuild_re_derives_idle(db_path, tmp_path):
    _store(db_path)
    (tmp_path / "config.yaml").write_text(CFG.format(pct=10), encoding="utf-8")
    doc = json.loads(_cli(tmp_path, db_path, "--report", "--no-sample", "--format", "json").stdout)
    assert doc["idle"]["episodes"] == []                          # past minutes were decided at 5%
    assert any("decided at 5%" in n and "idle.util_pct is now 10%" in n and "gpuspend rollup --rebuild" in n
               for n in doc["notes"]), doc["notes"]
    listed = _cli(tmp_path, db_path, "rollup")
    assert listed.returncode == 0 and "thresholds in the rollups: 5%" in listed.stdout
    rebuilt = _cli(tmp_path, db_path, "rollup", "--rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "with idle.util_pct 10%" in rebuilt.stdout
    doc = json.loads(_cli(tmp_path, db_path, "--report", "--no-sample", "--format", "json").stdout)
    (ep,) = doc["idle"]["episodes"]
    # 30 min at 8% is idle at 10%: $2/h x 0.5 h = $1.00, from the first sample
    assert ep["open"] and ep["start"] == "2026-11-15T11:30:00Z"
    assert ep["waste"] == pytest.approx(1.00, abs=0.001)
    assert not any("decided at" in n for n in doc["notes"])


def test_rollup_on_a_missing_database_is_one_line_exit_2(tmp_path):
    (tmp_path / "config.yaml").write_text(CFG.format(pct=5), encoding="utf-8")
    r = _cli(tmp_path, tmp_path / "nope.db", "rollup", "--rebuild")
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "nope.db").exists()

"""`gpuspend idle` on a 7-day database (8 GPUs, raw samples every 2 s kept 7 days, rollups behind them):
the verdict in-process, and the whole command as a scheduler runs it against `gpuspend --version` (Python and
CLI start-up alone) measured in the same run. Prints figures; asserts nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, median_ms

from gpuspend.config import load_config
from gpuspend.rollup import WATERMARK_KEY
from gpuspend.store import connect, set_meta, transaction

DAY = 86_400_000
NOW = 1_794_744_000_000


def build(path: Path) -> None:
    conn = connect(path)
    lo = NOW - 7 * DAY
    with transaction(conn):
        for i in range(8):
            conn.execute("INSERT INTO gpus (uuid, host, idx, name, model, source, first_seen, last_seen) "
                         "VALUES (?, 'bench', ?, 'NVIDIA H100 80GB HBM3', 'H100', 'nvml', ?, ?)",
                         (f"GPU-bench-{i}", i, lo, NOW - 2000))
    for day in range(7):
        a = lo + day * DAY
        with transaction(conn):
            conn.executemany("INSERT INTO gpu_samples (gpu_id, ts, util, mem_used, power) VALUES (?,?,?,?,?)",
                             ((g, ts, 0.0 if g % 2 else 90.0, 0, 100.0)
                              for ts in range(a, a + DAY, 2000) for g in range(1, 9)))
            conn.executemany("INSERT INTO gpu_minutes (gpu_id, minute, samples, covered_s, util_avg, busy_s, "
                             "held_idle_s, free_idle_s) VALUES (?,?,30,60,?,?,0,?)",
                             ((g, m, 0.0 if g % 2 else 90.0, 0.0 if g % 2 else 60.0, 60.0 if g % 2 else 0.0)
                              for m in range(a, min(a + DAY, NOW - 60_000), 60_000) for g in range(1, 9)))
    with transaction(conn):
        set_meta(conn, WATERMARK_KEY, str(NOW - 60_000))
    conn.close()


def main() -> None:
    from gpuspend.commands.idle import verdict

    tmp = Path(tempfile.mkdtemp())
    db = tmp / "week.db"
    t = time.perf_counter()
    build(db)
    print(f"built 7-day database in {time.perf_counter() - t:.1f} s ({db.stat().st_size / 2**20:.0f} MB)")
    cfg = load_config(None)
    runs = []
    for _ in range(7):
        t = time.perf_counter()
        doc = verdict(db, cfg, NOW, 1800, [])
        runs.append(time.perf_counter() - t)
    print(f"verdict in-process: median {median_ms(runs):.1f} ms ({doc['verdict']}: {doc['reason']})")
    env = {**os.environ, "GPUSPEND_NOW": "2026-11-15T12:00:00+00:00", "GPUSPEND_DB": str(db)}
    cmd, base = [], []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gpuspend", "--version"], env=env, capture_output=True, cwd=ROOT)
        base.append(time.perf_counter() - t)
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "gpuspend", "idle", "--gpu", "1", "--for", "30m"], env=env,
                           capture_output=True, cwd=ROOT)
        cmd.append(time.perf_counter() - t)
    print(f"`gpuspend idle --gpu 1`: median {median_ms(cmd):.0f} ms wall, exit {r.returncode}; "
          f"`gpuspend --version` (start-up alone): {median_ms(base):.0f} ms")


if __name__ == "__main__":
    main()

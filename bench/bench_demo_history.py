"""Time to generate 30 days of 8-GPU demo history (per-minute rollups + the last hour raw), vs a baseline
of inserting the same number of gpu_minutes rows with plain sqlite3 executemany. Target: under 20 s.
    python bench/bench_demo_history.py [days]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT  # noqa: F401  (puts the repository on sys.path)

from gpuspend.collectors.simulated import generate_history
from gpuspend.store import connect

NOW = 1_794_744_000_000


def main() -> None:
    days = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    with tempfile.TemporaryDirectory() as d:
        conn = connect(Path(d) / "demo.db")
        t0 = time.perf_counter()
        out = generate_history(conn, NOW - days * 86_400_000, NOW, seed=42)
        gen = time.perf_counter() - t0
        conn.close()
        size = (Path(d) / "demo.db").stat().st_size     # WAL checkpointed on close
        base = connect(Path(d) / "base.db")
        rows = [(i % 8, i // 8 * 60_000, 30, 60.0, 50.0, 60.0, 27.0, 1e9, 300.0, 18000.0, 60.0, 0.0, 0.0)
                for i in range(out["gpu_minutes"])]
        t0 = time.perf_counter()
        base.execute("BEGIN")
        base.executemany("INSERT INTO gpu_minutes VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        base.execute("COMMIT")
        ins = time.perf_counter() - t0
        base.close()
    print(f"{days} days x 8 GPUs: {out['gpu_minutes']} gpu_minutes, {out['process_minutes']} process_minutes, "
          f"{out['raw_samples']} raw ticks; database {size / 1e6:.1f} MB")
    print(f"baseline, bare executemany of the gpu_minutes rows: {ins:.2f} s")
    print(f"generate_history: {gen:.2f} s ({gen / ins:.1f}x the bare inserts); target < 20 s: "
          f"{'PASS' if gen < 20 else 'FAIL'}")


if __name__ == "__main__":
    main()

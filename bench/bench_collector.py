"""Collector cost per 8-GPU sample with the fake NVML: NVML adapter + sampler, Python time (process CPU).

Baseline in the same run: a bare loop doing the same inserts (8 gpu_samples + 4 process_samples + 8 gpus
updates) with plain sqlite3 in one transaction per tick. Target: median < 2 ms per sample.
    python bench/bench_collector.py [ticks]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from _common import median_ms

from gpuspend.collectors.nvml import NvmlSource
from gpuspend.collectors.sampler import Sampler
from gpuspend.store import connect
from tests.fake_pynvml import FakeNvml

T0 = 1_794_744_000_000


def run_collector(db: Path, ticks: int) -> tuple[list[float], list[float]]:
    conn = connect(db)
    fake = FakeNvml.h100_box()
    src = NvmlSource("bench-node", nvml=fake.module).open()
    sampler = Sampler(conn)
    read_t, total_t = [], []
    for k in range(ticks):
        fake.gpus[0].util_ts_us += 1000   # a fresh per-process sample now and then
        c0 = time.process_time()
        r = src.read(T0 + k * 2000)
        c1 = time.process_time()
        sampler.write(r)
        c2 = time.process_time()
        read_t.append(c1 - c0)
        total_t.append(c2 - c0)
    conn.close()
    return read_t, total_t


def run_baseline(db: Path, ticks: int) -> list[float]:
    conn = connect(db)
    conn.executemany("INSERT INTO gpus (id, uuid, host, first_seen, last_seen) VALUES (?, ?, 'b', 0, 0)",
                     [(i + 1, f"GPU-{i}") for i in range(8)])
    conn.executemany("INSERT INTO processes (id, host, pid, started) VALUES (?, 'b', ?, 0)",
                     [(i + 1, 1000 + i) for i in range(4)])
    out = []
    for k in range(ticks):
        ts = T0 + k * 2000
        c0 = time.process_time()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT OR REPLACE INTO gpu_samples VALUES (?,?,?,?,?,?,?,?,?)",
                         [(i + 1, ts, 93.0, 50.0, 68719476736, 640.0, 10_000_000 + k, 33.0, 1980) for i in range(8)])
        conn.executemany("INSERT OR REPLACE INTO process_samples VALUES (?,?,?,?,?)",
                         [(i + 1, ts, i + 1, 68719476736, 90.0) for i in range(4)])
        conn.executemany("UPDATE gpus SET last_seen = ? WHERE id = ?", [(ts, i + 1) for i in range(8)])
        conn.execute("COMMIT")
        out.append(time.process_time() - c0)
    conn.close()
    return out


def main() -> None:
    ticks = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    with tempfile.TemporaryDirectory() as d:
        base = run_baseline(Path(d) / "base.db", ticks)
        read_t, total_t = run_collector(Path(d) / "col.db", ticks)
    b, r, t = median_ms(base), median_ms(read_t), median_ms(total_t)
    print(f"ticks: {ticks} (8 fake H100s, 4 processes)")
    print(f"baseline, bare sqlite3 inserts per tick : median {b:.3f} ms")
    print(f"NVML adapter read (fake NVML)           : median {r:.3f} ms")
    print(f"collector read + sampler write          : median {t:.3f} ms  ({t / b:.1f}x the bare inserts)")
    print(f"target < 2 ms per 8-GPU sample          : {'PASS' if t < 2.0 else 'FAIL'}")


if __name__ == "__main__":
    main()

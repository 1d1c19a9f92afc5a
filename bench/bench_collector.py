"""Collector cost per 8-GPU sample with the fake NVML: NVML adapter + sampler, Python time (process CPU).

Baselines in the same run: a bare loop doing the same inserts (8 gpu_samples + 4 process_samples + 8 gpus
updates) with plain sqlite3 in one transaction per tick, and the sampler writing one row per sample (the layout
before schema v11: no run is ever extended) against the sampler writing runs (gpuspend.samples).
Target: median < 2 ms per sample.
    python bench/bench_collector.py [ticks]
"""

from __future__ import annotations

import random
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


class RowPerSample(Sampler):
    """The sampler as before runs: every sample a new row."""

    def write_rows(self, r):  # noqa: ANN001, ANN201
        self._runs.clear()
        return super().write_rows(r)


def run_collector(db: Path, ticks: int, rows_per_sample: bool = False, noisy: bool = False
                  ) -> tuple[list[float], list[float]]:
    conn = connect(db)
    fake = FakeNvml.h100_box()
    rng = random.Random(5)
    src = NvmlSource("bench-node", nvml=fake.module).open()
    sampler = (RowPerSample if rows_per_sample else Sampler)(conn, 2.0)
    read_t, total_t = [], []
    for k in range(ticks):
        fake.gpus[0].util_ts_us += 1000   # a fresh per-process sample now and then
        if noisy:                         # every value moves at every sample
            for g in fake.gpus:
                g.util, g.mem_util, g.temperature = rng.randint(40, 100), rng.randint(10, 60), rng.randint(45, 80)
                g.power_mw, g.sm_clock = rng.randint(250_000, 690_000), rng.randint(1400, 1980)
                g.memory_used += rng.randint(-64, 64) << 20
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
        conn.executemany("INSERT OR REPLACE INTO gpu_samples (gpu_id, ts, util, mem_util, mem_used, power, "
                         "energy_mj, temperature, sm_clock) VALUES (?,?,?,?,?,?,?,?,?)",
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
        _r, old_t = run_collector(Path(d) / "old.db", ticks, rows_per_sample=True)
        read_t, total_t = run_collector(Path(d) / "col.db", ticks)
        _r, old_n = run_collector(Path(d) / "old-noisy.db", ticks, rows_per_sample=True, noisy=True)
        _r, new_n = run_collector(Path(d) / "noisy.db", ticks, noisy=True)
    b, r, o, t = median_ms(base), median_ms(read_t), median_ms(old_t), median_ms(total_t)
    on, nn = median_ms(old_n), median_ms(new_n)
    print(f"ticks: {ticks} (8 fake H100s, 4 processes)")
    print(f"baseline, bare sqlite3 inserts per tick : median {b:.3f} ms")
    print(f"NVML adapter read (fake NVML)           : median {r:.3f} ms")
    print(f"read + write, one row per sample (v10)  : median {o:.3f} ms  ({o / b:.1f}x the bare inserts)")
    print(f"read + write, runs (v11)                : median {t:.3f} ms  ({t / b:.1f}x the bare inserts)")
    print(f"noisy box (every value moves each tick) : one row per sample {on:.3f} ms, runs {nn:.3f} ms")
    print(f"target < 2 ms per 8-GPU sample          : {'PASS' if max(t, nn) < 2.0 else 'FAIL'}")


if __name__ == "__main__":
    main()

"""Database growth: bytes per GPU-day at 1 s and 2 s sampling, with the default retention (raw 7 d).

Scaled run: the simulated 8-GPU box is sampled for HOURS of simulated time (default 2 h) through the real
sampler, rolled up every 60 s as the collector does, then table sizes are read from SQLite's dbstat and
extrapolated linearly to a day (raw tables and indices grow linearly with samples). Target: raw < 3 MB
per GPU-day.
    python bench/bench_dbsize.py [hours]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from _common import fmt_bytes

from gpuspend import rollup
from gpuspend.collectors.sampler import Sampler
from gpuspend.collectors.simulated import SimulatedSource
from gpuspend.store import connect

T0 = 1_794_744_000_000 - 3 * 86_400_000 - 6 * 3600_000     # Thursday 06:00 UTC: a mix of states
RAW = ("gpu_samples", "process_samples")
ROLLED = ("gpu_minutes", "gpu_minutes_minute", "process_minutes", "process_minutes_minute")


def measure(interval_s: float, hours: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        conn = connect(Path(d) / "size.db")
        src = SimulatedSource(42)
        sampler = Sampler(conn)
        step = int(interval_s * 1000)
        end = T0 + int(hours * 3600_000)
        batch = []
        next_roll = T0 + 60_000
        for ts in range(T0, end, step):
            batch.append(src.read(ts))
            if ts >= next_roll:
                sampler.write_many(batch)
                batch = []
                rollup.roll_up(conn, interval_s=interval_s, now_ms=ts)
                next_roll += 60_000
        sampler.write_many(batch)
        rollup.roll_up(conn, interval_s=interval_s, now_ms=end)
        # Pages as the collector leaves them (no VACUUM): page fill depends on the insert order.
        sizes = dict(conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall())
        if "-v" in sys.argv:
            print({k: fmt_bytes(v / (src.count * hours / 24.0)) for k, v in sizes.items()})
        conn.close()
    gpu_days = src.count * hours / 24.0
    return {"raw": sum(sizes.get(n, 0) for n in RAW) / gpu_days,
            "rolled": sum(sizes.get(n, 0) for n in ROLLED) / gpu_days,
            "gpu": sizes.get("gpu_samples", 0) / gpu_days, "proc": sizes.get("process_samples", 0) / gpu_days}


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "-v"]
    hours = float(args[0]) if args else 2.0
    print(f"scaled run: {hours:g} h of 8 simulated GPUs per interval, extrapolated linearly to one GPU-day")
    for interval in (1.0, 2.0):
        m = measure(interval, hours)
        steady = 7 * m["raw"] + 30 * m["rolled"]
        print(f"interval {interval:g} s: raw {fmt_bytes(m['raw'])}/GPU-day (gpu_samples {fmt_bytes(m['gpu'])}, "
              f"process_samples {fmt_bytes(m['proc'])}), rollups {fmt_bytes(m['rolled'])}/GPU-day; "
              f"steady state per GPU with raw 7 d + 30 d rollups: {fmt_bytes(steady)}; "
              f"target raw < 3 MB: {'PASS' if m['raw'] < 3 * 1024 * 1024 else 'FAIL'}")


if __name__ == "__main__":
    main()

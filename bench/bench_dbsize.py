"""Database growth: bytes per GPU-day at 1 s and 2 s sampling, with the default retention (raw 7 d).

Scaled run: an 8-GPU box is sampled for HOURS of simulated time (default 2 h) through the real sampler, rolled
up every 60 s as the collector does, then table sizes are read from SQLite's dbstat and extrapolated linearly to
a day (raw tables grow linearly with samples). Two boxes: the demo box (SimulatedSource) and a noisy busy box
(every value of every GPU and process changes at every sample, at NVML's resolution). Same-run baseline: the
same readings written one row per sample in the schema before v11 (the layout up to gpuspend 0.1's v10).
Target: raw < 1.5 MB per GPU-day at 1 s.
    python bench/bench_dbsize.py [-v] [hours]
"""

from __future__ import annotations

import random
import sqlite3
import sys
import tempfile
from pathlib import Path

from _common import fmt_bytes

from gpuspend import rollup
from gpuspend.collectors.reading import Reading
from gpuspend.collectors.sampler import Sampler
from gpuspend.collectors.simulated import SimulatedSource
from gpuspend.store import MIGRATIONS, _statements, connect

T0 = 1_794_744_000_000 - 3 * 86_400_000 - 6 * 3600_000     # Thursday 06:00 UTC: a mix of states
RAW = ("gpu_samples", "process_samples")
ROLLED = ("gpu_minutes", "gpu_minutes_minute", "process_minutes", "process_minutes_minute")
TARGET = 1.5 * 1024 * 1024


class NoisySource(SimulatedSource):
    """The demo box made noisy: every GPU busy, and each value moves at every sample by more than NVML's
    resolution (util, memory-util, power, temperature, clock, memory bytes, each process's memory and SM)."""

    def __init__(self, seed: int = 7) -> None:
        super().__init__(seed)
        self._rng = random.Random(seed)

    def read(self, now_ms: int | None = None) -> Reading:
        r = super().read(now_ms)
        rng = self._rng
        for g in r.gpus:
            g.util = float(rng.randint(40, 100))
            g.mem_util = float(rng.randint(10, 60))
            g.power = rng.uniform(250.0, 690.0)
            g.temperature = float(rng.randint(45, 80))
            g.sm_clock = rng.randint(1400, 1980)
            g.mem_used = (g.mem_used or 0) + rng.randint(-64, 64) * 1024 * 1024
            for p in g.processes:
                p.used_memory = (p.used_memory or 0) + rng.randint(-64, 64) * 1024 * 1024
                p.sm_util = float(rng.randint(20, 100))
        return r


class RowPerSample:
    """The layout before schema v11, for the same-run baseline: one gpu_samples row per GPU per sample and
    one process_samples row per process per sample, written as the v10 sampler wrote them."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.gpus: dict[str, int] = {}
        self.procs: dict[tuple[int, int | None], int] = {}

    def write_many(self, readings: list[Reading]) -> None:
        c = self.conn
        c.execute("BEGIN")
        for r in readings:
            rows, prows = [], []
            for g in r.gpus:
                gid = self.gpus.get(g.uuid)
                if gid is None:
                    gid = self.gpus[g.uuid] = c.execute(
                        "INSERT INTO gpus (uuid, host, first_seen, last_seen) VALUES (?, ?, ?, ?)",
                        (g.uuid, r.host, r.ts_ms, r.ts_ms)).lastrowid
                rows.append((gid, r.ts_ms, _r(g.util), _r(g.mem_util), g.mem_used, _r(g.power), g.energy_mj,
                             _r(g.temperature), g.sm_clock))
                for p in g.processes:
                    pid = self.procs.get((p.pid, p.started))
                    if pid is None:
                        pid = self.procs[(p.pid, p.started)] = c.execute(
                            "INSERT INTO processes (host, pid, started) VALUES (?, ?, ?)",
                            (r.host, p.pid, p.started)).lastrowid
                    prows.append((gid, r.ts_ms, pid, p.used_memory, _r(p.sm_util)))
            c.executemany("INSERT OR REPLACE INTO gpu_samples VALUES (?,?,?,?,?,?,?,?,?)", rows)
            c.executemany("INSERT OR REPLACE INTO process_samples VALUES (?,?,?,?,?)", prows)
            c.executemany("UPDATE gpus SET last_seen = ? WHERE id = ?", [(r.ts_ms, row[0]) for row in rows])
        c.execute("COMMIT")


def _r(v: float | None) -> float | None:
    return None if v is None else float(round(v))


def v10_db(path: Path) -> sqlite3.Connection:
    """A database with the schema as it was before v11 (row per sample)."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN")
    for script in MIGRATIONS[:10]:
        for stmt in _statements(script):
            conn.execute(stmt)
    conn.execute("PRAGMA user_version = 10")
    conn.execute("COMMIT")
    return conn


def measure(box: str, interval_s: float, hours: float, baseline: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        src = NoisySource() if box == "noisy" else SimulatedSource(42)
        if baseline:
            conn = v10_db(Path(d) / "v10.db")
            writer = RowPerSample(conn)
        else:
            conn = connect(Path(d) / "size.db")
            writer = Sampler(conn, interval_s)
        step = int(interval_s * 1000)
        end = T0 + int(hours * 3600_000)
        batch = []
        next_roll = T0 + 60_000
        for ts in range(T0, end, step):
            batch.append(src.read(ts))
            if ts >= next_roll:
                writer.write_many(batch)
                batch = []
                if not baseline:
                    rollup.roll_up(conn, interval_s=interval_s, now_ms=ts)
                next_roll += 60_000
        writer.write_many(batch)
        if not baseline:
            rollup.roll_up(conn, interval_s=interval_s, now_ms=end)
        # Pages as the collector leaves them (no VACUUM): page fill depends on the insert order.
        sizes = dict(conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall())
        conn.close()
    gpu_days = src.count * hours / 24.0
    if "-v" in sys.argv:
        print("   ", box, interval_s, "baseline" if baseline else "runs",
              {k: fmt_bytes(sizes.get(k, 0) / gpu_days) for k in (*RAW, *ROLLED)})
    return {"raw": sum(sizes.get(n, 0) for n in RAW) / gpu_days,
            "rolled": sum(sizes.get(n, 0) for n in ROLLED) / gpu_days,
            "gpu": sizes.get("gpu_samples", 0) / gpu_days, "proc": sizes.get("process_samples", 0) / gpu_days}


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "-v"]
    hours = float(args[0]) if args else 2.0
    print(f"scaled run: {hours:g} h of 8 GPUs per box and interval, extrapolated linearly to one GPU-day")
    print("box    interval  row per sample (v10)               runs (v11)                          ratio  target")
    for box in ("demo", "noisy"):
        for interval in (1.0, 2.0):
            old = measure(box, interval, hours, baseline=True)
            new = measure(box, interval, hours, baseline=False)
            ok = "PASS" if new["raw"] < TARGET or interval != 1.0 else "FAIL"
            print(f"{box:<6} {interval:>4g} s    raw {fmt_bytes(old['raw']):>9} (gpu {fmt_bytes(old['gpu'])}, "
                  f"proc {fmt_bytes(old['proc'])})  raw {fmt_bytes(new['raw']):>9} (gpu {fmt_bytes(new['gpu'])}, "
                  f"proc {fmt_bytes(new['proc'])})  {old['raw'] / new['raw']:4.1f}x  "
                  f"{ok if interval == 1.0 else '-'}")
    print(f"rollups (unchanged by the layout): {fmt_bytes(new['rolled'])}/GPU-day; steady state per GPU with "
          f"raw 7 d + 30 d rollups (noisy, 2 s): {fmt_bytes(7 * new['raw'] + 30 * new['rolled'])}")


if __name__ == "__main__":
    main()

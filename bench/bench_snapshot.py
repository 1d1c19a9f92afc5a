"""`costing.build_snapshot` on the demo database (what the TUI and the metrics exporter call every second).

Two cases, each on one long-lived connection as the dashboard holds it:
  - static: nothing new between calls, a new second each call;
  - live: the demo collector writes a sample (and runs its rollup/alert tasks when due) every 2 s before each
    call, as while the dashboard is open: this is what the dashboard pays per refresh.
Baseline in the same run: reading today's per-minute rows and the newest sample per GPU with plain sqlite3
(the least any "cost today + live state" view must read). Target: live median < 10 ms per snapshot.
    python bench/bench_snapshot.py [calls]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import median_ms

from gpuspend.config import load_config
from gpuspend.costing import build_snapshot
from gpuspend.daemon import Collector
from gpuspend.demo import ensure_demo_db
from gpuspend.store import connect

NOW_MS = 1794744000000 + 3 * 3600_000 + 17 * 60_000     # mid-afternoon: most of a day of rollups behind


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    tmp = Path(tempfile.gettempdir())
    template = ensure_demo_db(tmp / "gpuspend-bench-demo-1517.db", NOW_MS)
    db = tmp / "gpuspend-bench-demo-live.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copy(template, db)                    # the live case writes to it
    empty = tmp / "gpuspend-bench-empty-config.yaml"
    empty.write_text("")                           # defaults, whatever the user's own config says
    cfg = load_config(empty)
    conn = connect(db)
    t = time.perf_counter()
    build_snapshot(conn, cfg, NOW_MS)
    cold = time.perf_counter() - t
    base, static = [], []
    day0 = NOW_MS // 86_400_000 * 86_400_000
    for i in range(calls):
        now = NOW_MS + i * 1000                     # a new second each call, as the TUI does
        t = time.perf_counter()
        conn.execute("SELECT * FROM gpu_minutes WHERE minute >= ? AND minute < ?", (day0, now)).fetchall()
        for (gid,) in conn.execute("SELECT id FROM gpus").fetchall():
            conn.execute("SELECT * FROM gpu_samples WHERE gpu_id = ? ORDER BY ts DESC LIMIT 1", (gid,)).fetchone()
        base.append(time.perf_counter() - t)
        t = time.perf_counter()
        build_snapshot(conn, cfg, now)
        static.append(time.perf_counter() - t)
    live, ticks = [], []
    collector = Collector(db, cfg, demo=True, owner="bench", interval_s=2.0).open()
    try:
        for i in range(calls * 2):              # 2 s apart: crosses rollup (60 s) and alert (30 s) tasks
            now = NOW_MS + 2000 * (i + 1)
            t = time.perf_counter()
            collector.tick(now)
            ticks.append(time.perf_counter() - t)
            t = time.perf_counter()
            build_snapshot(conn, cfg, now + 500)
            live.append(time.perf_counter() - t)
    finally:
        collector.close()
    b, s, lv = median_ms(base), median_ms(static), median_ms(live)
    print(f"first snapshot (cold)                       {cold * 1000:7.1f} ms")
    print(f"baseline: today's rows + last sample median {b:7.1f} ms ({calls} calls)")
    print(f"build_snapshot, nothing new        median   {s:7.1f} ms ({s / b:.2f}x the baseline)")
    print(f"build_snapshot, a sample every 2 s median   {lv:7.1f} ms ({lv / b:.2f}x the baseline), "
          f"max {max(live) * 1000:.1f} ms, mean {sum(live) / len(live) * 1000:.1f} ms ({len(live)} calls)")
    print(f"  (collector tick incl. its periodic tasks: median {median_ms(ticks):.1f} ms, "
          f"mean {sum(ticks) / len(ticks) * 1000:.1f} ms)")
    print(f"target: live < 10 ms per snapshot -> {'OK' if lv < 10 else 'MISSED'}")


if __name__ == "__main__":
    main()

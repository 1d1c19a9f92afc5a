"""`costing.build_snapshot` on the demo database (what the TUI and the metrics exporter call every second).

Baseline in the same run: reading today's per-minute rows and the newest sample per GPU with plain sqlite3
(the least any "cost today + live state" view must read). Target: warm median < 100 ms per snapshot.
    python bench/bench_snapshot.py [calls]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from _common import median_ms

from gpuspend.config import load_config
from gpuspend.costing import build_snapshot
from gpuspend.demo import ensure_demo_db
from gpuspend.store import connect

NOW_MS = 1794744000000


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    db = ensure_demo_db(Path(tempfile.gettempdir()) / "gpuspend-bench-demo.db", NOW_MS)
    empty = Path(tempfile.gettempdir()) / "gpuspend-bench-empty-config.yaml"
    empty.write_text("")                           # defaults, whatever the user's own config says
    cfg = load_config(empty)
    conn = connect(db)
    t = time.perf_counter()
    build_snapshot(conn, cfg, NOW_MS)
    cold = time.perf_counter() - t
    base, snap = [], []
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
        snap.append(time.perf_counter() - t)
    b, s = median_ms(base), median_ms(snap)
    print(f"first snapshot (cold caches)        {cold * 1000:7.1f} ms")
    print(f"baseline: today's rows + last sample median {b:6.1f} ms ({calls} calls)")
    print(f"build_snapshot warm                 median {s:6.1f} ms ({s / b:.1f}x the baseline)")
    print(f"target: < 100 ms per snapshot -> {'OK' if s < 100 else 'MISSED'}")


if __name__ == "__main__":
    main()

"""`gpuspend --report --format json` on a big store: 12 months of 8-GPU minute rollups (4.1 M rows) and
1 M billing rows, the last hour as raw samples.

Baseline in the same run: the same month aggregates (metered GPU-seconds by day from gpu_minutes, billed cost
by day and by service from charges) done directly with sqlite3 in a fresh `python -c` (interpreter start
included, like the report). Target: report wall median < 1 s.
    python bench/bench_report.py [runs]
The store is built once into the temp dir (about a minute) and reused by later runs.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _common import ROOT, median_ms

from gpuspend.rollup import WATERMARK_KEY
from gpuspend.store import connect, set_meta, transaction

NOW_S = 1794744000                    # 2026-11-15 12:00 UTC (the tests' fixed clock)
NOW_MS = NOW_S * 1000
DAYS = 365
GPUS = 8
BILLING_ROWS = 1_000_000
DB = Path(tempfile.gettempdir()) / "gpuspend-bench-report-v5.db"

BASELINE = f"""
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
lo = {1793491200000}
c.execute("SELECT gpu_id, minute / 86400000, SUM(covered_s), SUM(busy_s), SUM(held_idle_s + free_idle_s) "
          "FROM gpu_minutes WHERE minute >= ? AND minute < ? GROUP BY gpu_id, minute / 86400000",
          (lo, {NOW_MS})).fetchall()
period = "import_id IN (SELECT id FROM imports WHERE billing_period_start >= ? AND billing_period_start < ?)"
c.execute("SELECT currency, charge_period_start / 86400, SUM(billed_cost) FROM charges WHERE " + period +
          " GROUP BY 1, 2", (lo // 1000, {NOW_S})).fetchall()
c.execute("SELECT service, SUM(billed_cost) FROM charges WHERE " + period + " GROUP BY service",
          (lo // 1000, {NOW_S})).fetchall()
"""


def build(path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    conn = connect(tmp)
    rnd = random.Random(7)
    start_ms = NOW_MS - DAYS * 86_400_000
    with transaction(conn):
        for i in range(GPUS):
            conn.execute("INSERT INTO gpus (uuid, host, idx, name, model, source, first_seen, last_seen) "
                         "VALUES (?,?,?,?,?,?,?,?)", (f"GPU-bench-{i}", "bench-node", i, "NVIDIA H100 80GB HBM3",
                                                      "H100", "nvml", start_ms, NOW_MS))
    raw_from = NOW_MS - 3_600_000
    for day in range(DAYS):
        rows = []
        d0 = start_ms + day * 86_400_000
        for m in range(1440):
            minute = d0 + m * 60_000
            if minute >= raw_from:
                break
            for g in range(1, GPUS + 1):
                busy = 60.0 if (g + m // 90) % 4 else 0.0
                rows.append((g, minute, 30, 60.0, 80.0 if busy else 1.0, 90.0, 500.0 if busy else 80.0,
                             busy, 0.0 if busy else (60.0 if g % 2 else 0.0), 0.0 if busy or g % 2 else 60.0))
        with transaction(conn):
            conn.executemany("INSERT INTO gpu_minutes (gpu_id, minute, samples, covered_s, util_avg, util_max, "
                             "power_avg, busy_s, held_idle_s, free_idle_s) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    with transaction(conn):
        for g in range(1, GPUS + 1):
            conn.executemany("INSERT INTO gpu_samples (gpu_id, ts, util, mem_used, power) VALUES (?,?,?,?,?)",
                             [(g, ts, 85.0, 2**34, 500.0) for ts in range(raw_from, NOW_MS + 1, 2000)])
        set_meta(conn, WATERMARK_KEY, str(raw_from))
    services = ["Amazon Elastic Compute Cloud", "Amazon Simple Storage Service", "AWS Data Transfer",
                "Amazon CloudWatch", "Amazon Elastic Block Store"]
    per_month = BILLING_ROWS // 12
    texts: dict[str, int] = {}

    def text_id(text: str | None) -> int | None:
        if text is None:
            return None
        if text not in texts:
            texts[text] = conn.execute("INSERT INTO charge_texts (text) VALUES (?)", (text,)).lastrowid
        return texts[text]

    for k in range(12):
        y, mo = 2025 + (11 + k) // 12, (11 + k) % 12 + 1       # 2025-12 .. 2026-11 (this month)
        p0 = int(datetime(y, mo, 1, tzinfo=UTC).timestamp())
        with transaction(conn):
            imp = conn.execute("INSERT INTO imports (path, sha256, format, source, account, billing_period_start, "
                               "billing_period_end, rows, coverage_end, imported_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                               (f"/exports/{k}.parquet", f"{k:064d}", "aws-cur2", "aws", "111122223333", p0,
                                p0 + 28 * 86400, per_month, min(p0 + 27 * 86400, NOW_S - 86400), NOW_S)).lastrowid
            rows = []
            for n in range(per_month):
                s = p0 + rnd.randrange(0, min(27 * 86400, NOW_S - 86400 - p0)) // 3600 * 3600
                svc = services[n % len(services)]
                gpu = svc.endswith("Cloud") and n % 3 == 0
                rows.append((imp, n, p0, p0 + 28 * 86400, s, s + 3600, round(rnd.uniform(0.01, 60), 4), "USD",
                             svc, "p5.48xlarge" if gpu else None, f"i-{n % 50:017x}", int(gpu)))
            # as an import stores them (store v18): each distinct line item once, its service, instance type and
            # resource id as charge_texts ids; each row its hour, its cost and its item
            items: dict[tuple, int] = {}
            for r in rows:
                key = (r[2], r[3], r[7], r[8], r[9], r[10], r[11])
                if key not in items:
                    items[key] = conn.execute(
                        "INSERT INTO charge_items (import_id, billing_period_start, billing_period_end, currency, "
                        "service_tid, instance_type_tid, resource_id_tid, is_gpu) VALUES (?,?,?,?,?,?,?,?)",
                        (imp, *key[:3], text_id(key[3]), text_id(key[4]), text_id(key[5]), key[6])).lastrowid
            conn.executemany("INSERT INTO charge_lines (import_id, line, item_id, charge_period_start, "
                             "charge_period_end, billed_cost) VALUES (?,?,?,?,?,?)",
                             [(imp, r[1], items[(r[2], r[3], r[7], r[8], r[9], r[10], r[11])], *r[4:7])
                              for r in rows])
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    os.replace(tmp, path)


def wall(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if r.returncode not in (0, 1):
        raise SystemExit(f"command failed ({r.returncode}): {r.stderr.strip()}")
    return time.perf_counter() - t


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    if not DB.exists():
        t = time.perf_counter()
        build(DB)
        print(f"built {DB} in {time.perf_counter() - t:.0f} s")
    conn = connect(DB)
    n_min = conn.execute("SELECT COUNT(*) FROM gpu_minutes").fetchone()[0]
    n_chg = conn.execute("SELECT COUNT(*) FROM charges").fetchone()[0]
    conn.close()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, XDG_CONFIG_HOME=f"{tmp}/c", XDG_DATA_HOME=f"{tmp}/d", NO_COLOR="1",
                   GPUSPEND_NOW=str(NOW_S), GPUSPEND_CONFIG="")
        env.pop("GPUSPEND_CONFIG")
        cfg = Path(tmp) / "c.yaml"
        cfg.write_text("provider: aws\n")
        report = [sys.executable, "-m", "gpuspend", "--db", str(DB), "--config", str(cfg), "--report",
                  "--format", "json", "--no-sample"]
        base = [sys.executable, "-c", BASELINE, str(DB)]
        wall(report, env)                         # warm the page cache for both
        b, r = [], []
        for _ in range(runs):
            b.append(wall(base, env))
            r.append(wall(report, env))
    bm, rm = median_ms(b), median_ms(r)
    print(f"store: {n_min:,} gpu_minutes rows, {n_chg:,} charges rows")
    print(f"baseline sqlite3 month aggregates  median {bm:7.1f} ms ({runs} runs)")
    print(f"gpuspend --report --format json    median {rm:7.1f} ms  ({rm / bm:.1f}x the baseline)")
    print(f"target: report < 1000 ms wall -> {'OK' if rm < 1000 else 'MISSED'}")


if __name__ == "__main__":
    main()

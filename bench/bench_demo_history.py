"""First start of the demo: how long until there is data, and until the whole month is there.

Data side (in this process, fixed clock, 30 days x 8 GPUs):
  baseline  the month built in one go before it is published (what `--report --demo` waits for; the
            dashboard's first start waited for all of it before this change), and a bare sqlite3
            executemany of the same number of gpu_minutes rows
  recent    the recent window published (today and yesterday per-minute, the last hour raw, demo billing):
            what the dashboard waits for now
  backfill  the rest of the month, a day per transaction, into the published file (in a thread, behind the
            dashboard)
Dashboard side (when tmux is installed): `gpuspend --demo` on a database that does not exist yet, time from
launch until the GPU rows are on screen, next to the same command on an already built demo database.
Target: first frame with data under 3 s on a first start.

    python bench/bench_demo_history.py [--days 30] [--no-tui]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT

from gpuspend import demo
from gpuspend.store import connect

NOW = 1_794_744_000_000 + 37_000
TARGET_S = 3.0
SOCKET = "gpuspend-bench-demo"


def data_side(tmp: Path, days: int) -> dict[str, float]:
    demo.HISTORY_DAYS = days
    t0 = time.perf_counter()
    demo.build_demo_db(tmp / "one-go.db", NOW)
    one_go = time.perf_counter() - t0
    conn = connect(tmp / "one-go.db")
    rows = conn.execute("SELECT COUNT(*) FROM gpu_minutes").fetchone()[0]
    conn.close()
    t0 = time.perf_counter()
    demo.build_demo_db(tmp / "recent.db", NOW, recent_only=True)
    recent = time.perf_counter() - t0
    t0 = time.perf_counter()
    demo.backfill_demo_db(tmp / "recent.db")
    backfill = time.perf_counter() - t0
    base = connect(tmp / "base.db")
    data = [(1 + i % 8, i // 8 * 60_000, 30, 60.0, 50.0, 60.0, 27.0, 1e9, 300.0, 18000.0, 60.0, 0.0, 0.0)
            for i in range(rows)]
    base.execute("INSERT INTO gpus (id, uuid, host, source, first_seen, last_seen) SELECT value, 'GPU-' || value, "
                 "'h', 'demo', 0, 0 FROM json_each('[1,2,3,4,5,6,7,8]')")
    t0 = time.perf_counter()
    base.execute("BEGIN")
    base.executemany("INSERT INTO gpu_minutes (gpu_id, minute, samples, covered_s, util_avg, util_max, "
                     "mem_util_avg, mem_used_avg, power_avg, energy_j, busy_s, held_idle_s, free_idle_s) "
                     "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", data)
    base.execute("COMMIT")
    bare = time.perf_counter() - t0
    base.close()
    return {"rows": rows, "one_go": one_go, "recent": recent, "backfill": backfill, "bare": bare}


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", SOCKET, *args], check=True, capture_output=True, text=True).stdout


def _complete(db: Path) -> bool:
    """The demo's month of history is all there (the backfill reached its start)."""
    try:
        conn = connect(db)
        try:
            return demo.history_progress(conn) in {(n, n) for n in range(1, 400)}
        finally:
            conn.close()
    except Exception:  # noqa: BLE001 - not there yet
        return False


def first_frame(name: str, db: Path | None, tmp: Path, data: Path | None = None) -> tuple[float | None, float | None]:
    """(seconds from launch until the dashboard shows the demo GPUs' rows, until the month is complete while
    it runs); None: not within 60 s. `db` None: the default path under `data` (a fresh machine's XDG data
    folder, which does not exist yet)."""
    data = data or tmp / "data"
    env = {"XDG_CONFIG_HOME": str(tmp / "config"), "XDG_DATA_HOME": str(data), "PYTHONPATH": str(ROOT)}
    exports = " ".join(f"{k}={v!r}" for k, v in env.items())
    where = f"--db {str(db)!r}" if db is not None else ""
    path = db if db is not None else data / "gpuspend" / "demo.db"
    t0 = time.monotonic()
    tmux("new-session", "-d", "-s", name, "-x", "120", "-y", "40",
         f"cd {str(ROOT)!r} && exec env TERM=xterm-256color {exports} {sys.executable} -m gpuspend --demo {where}")
    frame = month = None
    try:
        while time.monotonic() - t0 < 60 and (frame is None or month is None):
            if frame is None and "H100" in tmux("capture-pane", "-p", "-t", name):
                frame = time.monotonic() - t0
            if frame is not None and month is None and _complete(path):
                month = time.monotonic() - t0
            time.sleep(0.02 if frame is None else 0.2)
        return frame, month
    finally:
        tmux("kill-session", "-t", name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--no-tui", action="store_true", help="only the data side")
    args = ap.parse_args()
    os.environ.pop("GPUSPEND_NOW", None)
    with tempfile.TemporaryDirectory(prefix="gpuspend-bench-demo-") as d:
        tmp = Path(d)
        r = data_side(tmp, args.days)
        print(f"{args.days} days x 8 GPUs, {r['rows']} gpu_minutes rows")
        print(f"  baseline: bare executemany of those rows       {r['bare']:6.2f} s")
        print(f"  baseline: the month in one go, then published  {r['one_go']:6.2f} s")
        print(f"  recent window published (data to show)         {r['recent']:6.2f} s "
              f"({r['one_go'] / r['recent']:.1f}x sooner)")
        print(f"  backfill of the rest, a day per transaction    {r['backfill']:6.2f} s (behind the dashboard)")
        ok = r["recent"] < TARGET_S
        if not args.no_tui and shutil.which("tmux") is not None:
            tmux("new-session", "-d", "-s", "keep", "sleep 3600")
            try:
                demo_db = tmp / "tui-demo.db"
                cold, cold_month = first_frame("cold", demo_db, tmp)     # no database: a first start
                # the README's first command on a fresh machine: not even the data folder exists
                fresh, fresh_month = first_frame("fresh", None, tmp, tmp / "fresh-data")
                demo.ensure_demo_db(demo_db)                   # complete (and fresh) for the warm start
                warm, _ = first_frame("warm", demo_db, tmp)
            finally:
                subprocess.run(["tmux", "-L", SOCKET, "kill-server"], capture_output=True)

            def show(v: float | None) -> str:
                return f"{v:6.2f} s" if v is not None else "  none in 60 s"

            print(f"  dashboard first frame, first start (no db)     {show(cold)}, whole month at {show(cold_month)}")
            print(f"  the same on a fresh machine (no data folder)   {show(fresh)}, whole month at {show(fresh_month)}")
            print(f"  baseline: first frame, demo db already built   {show(warm)}")
            ok = ok and all(v is not None and v < TARGET_S for v in (cold, fresh))
            ok = ok and cold_month is not None and fresh_month is not None
            print(f"  target first start < {TARGET_S:g} s to a frame with data: {'PASS' if ok else 'FAIL'}")
        else:
            print(f"  target recent window < {TARGET_S:g} s: {'PASS' if ok else 'FAIL'} (tmux absent or --no-tui: "
                  "dashboard not measured)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""The collector daemon in steady state: `gpuspend collect` as shipped, on a fake 8x H100 NVML box.

    python bench/bench_daemon.py [--seconds 60] [--interval 1] [--gpus 8] [--demo]

Runs the real daemon (`gpuspend --db box.db collect --interval I`, with its periodic tasks: rollups, alerts,
retention) in a child process whose `pynvml` answers as a GPU box (bench/peer_box/sitecustomize.py, as for
bench_peers.py: the real module, its functions answered by tests/fake_pynvml.py). Baseline in the same window: a
bare Python loop that wakes every interval and inserts one row per GPU into SQLite in one transaction (WAL,
synchronous=NORMAL, as the store), the least any collector that keeps samples pays. Both start, settle for a
few seconds (migrations, the first rollups), then are measured over ONE common window:
  (--demo: `gpuspend collect --demo` on the demo's database instead, a month of history behind it: what a
  daemon that has run for weeks pays, its periodic tasks reading today's and the month's rollups)
  - CPU % of one core (time on a CPU of all the process's threads, from schedstat) and CPU ms per sample (samples = window/interval:
    both sleep to a fixed schedule);
  - resident memory at the end of the window and its peak (VmRSS, VmHWM).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT

BOX = Path(__file__).resolve().parent / "peer_box"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SETTLE_S = 5.0

BARE = """
import sqlite3, sys, time
n, interval = int(sys.argv[2]), float(sys.argv[3])
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode = WAL")
conn.execute("PRAGMA synchronous = NORMAL")
conn.execute("CREATE TABLE IF NOT EXISTS s (ts INTEGER, gpu INTEGER, util REAL, mem INTEGER, power REAL, temp REAL)")
nxt = time.monotonic()
while True:
    ts = int(time.time() * 1000)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO s VALUES (?, ?, ?, ?, ?, ?)",
                     [(ts, i, 50.0 + i, 40 << 30, 300.0 + i, 60.0) for i in range(n)])
    conn.execute("COMMIT")
    nxt += interval
    time.sleep(max(0.0, nxt - time.monotonic()))
"""


def cpu_s(pid: int) -> float:
    """CPU seconds of every thread of the process: schedstat counts nanoseconds (utime+stime in /proc/PID/stat
    counts 10 ms ticks, too coarse for a process using ~1 ms a second); that where the kernel has no schedstat."""
    try:
        return sum(int((task / "schedstat").read_text().split()[0])
                   for task in Path(f"/proc/{pid}/task").iterdir()) / 1e9
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--demo", action="store_true", help="the demo box on a month of history (8 GPUs)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gpuspend-bench-daemon-") as t:
        tmp = Path(t)
        env = {**os.environ, "PYTHONPATH": f"{BOX}:{ROOT}", "GPUSPEND_PEER_ROOT": str(ROOT),
               "GPUSPEND_PEER_GPUS": str(args.gpus), "XDG_CONFIG_HOME": str(tmp / "config"),
               "XDG_DATA_HOME": str(tmp / "data"), "XDG_CACHE_HOME": str(tmp / "cache")}
        env.pop("GPUSPEND_NOW", None)
        collect = [sys.executable, "-m", "gpuspend", "--db", str(tmp / "box.db"), "collect", "--interval",
                   f"{args.interval:g}"]
        if args.demo:
            from gpuspend.demo import ensure_demo_db

            os.environ.pop("GPUSPEND_NOW", None)
            ensure_demo_db(tmp / "box.db")          # the month behind it, built before anything is measured
            collect.append("--demo")
        procs = {
            "gpuspend collect": subprocess.Popen(collect, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                                 stderr=subprocess.PIPE),
            "bare sqlite3 loop": subprocess.Popen(
                [sys.executable, "-c", BARE, str(tmp / "bare.db"), str(args.gpus), f"{args.interval:g}"],
                env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE),
        }
        try:
            time.sleep(SETTLE_S)
            for name, p in procs.items():
                if p.poll() is not None:
                    err = p.stderr.read().decode(errors="replace").strip() if p.stderr else ""
                    print(f"bench: {name} exited ({p.returncode}): {err}", file=sys.stderr)
                    return 1
            start = {name: cpu_s(p.pid) for name, p in procs.items()}
            t0 = time.monotonic()
            time.sleep(args.seconds)
            window = time.monotonic() - t0
            used = {name: cpu_s(p.pid) - start[name] for name, p in procs.items()}
            mem = {name: memory_mb(p.pid) for name, p in procs.items()}
        finally:
            for p in procs.values():
                p.terminate()
                p.wait(10)
    samples = window / args.interval
    box = "the demo's 8 GPUs on a month of history" if args.demo else f"{args.gpus} fake H100s"
    print(f"{box}, a sample every {args.interval:g} s, window {window:.0f} s (after {SETTLE_S:g} s "
          f"settling), both over the same window")
    print(f"{'':<20}{'CPU % core':>12}{'CPU ms/sample':>15}{'RSS':>9}{'peak RSS':>10}")
    for name in procs:
        rss, hwm = mem[name]
        print(f"{name:<20}{100 * used[name] / window:>11.3f}%{1000 * used[name] / samples:>15.2f}"
              f"{rss:>6.0f} MB{hwm:>7.0f} MB")
    bare = used["bare sqlite3 loop"]
    if bare > 0:
        print(f"gpuspend collect vs the bare loop: {used['gpuspend collect'] / bare:.1f}x the CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Dashboard cost in a real terminal (tmux), against the framework's floor measured in the same run.

    python bench/bench_tui.py [--seconds 60] [--interval 1] [--size 120x40]

For each app, in a detached tmux session of the given size with TERM=xterm-256color:
  - time to first full frame: from launch until the pane shows the GPU rows read from SQLite (or the
    floor's last row); also "first live", until a GPU shows a state from a fresh sample;
  - CPU % of one core over the window (utime+stime of the process, all threads);
  - bytes written to the terminal per second (tmux pipe-pane, counted over the same window);
  - peak RSS (VmHWM).
Floor: a minimal Textual app updating an 8-row DataTable every `interval` seconds. The dashboard runs the
8-GPU demo with its in-app collector, as a user would (`gpuspend --demo --interval 1`).
Targets: CPU <= 1.5x floor and < 2% of a core, < 10 KB/s, first frame < 0.8 s, peak RSS < 120 MB.
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

from _common import ROOT, fmt_bytes

SOCKET = f"gpuspend-bench-{os.getpid()}"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def floor_app(interval: float) -> None:
    """The floor: what any Textual app pays to update 8 DataTable rows in place every interval."""
    import random

    from textual.app import App
    from textual.widgets import DataTable

    class Floor(App):
        def compose(self):
            yield DataTable()

        def on_mount(self) -> None:
            t = self.query_one(DataTable)
            for col in ("gpu", "util", "power", "cost"):
                t.add_column(col, key=col)
            for i in range(8):
                t.add_row(f"row {i}", "0", "0", "0", key=str(i))
            self.set_interval(interval, self.tick)

        def tick(self) -> None:
            t = self.query_one(DataTable)
            for i in range(8):
                t.update_cell(str(i), "util", f"{random.randint(0, 100)}%")

    Floor().run()


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", SOCKET, *args], check=True, capture_output=True, text=True).stdout


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK      # utime, stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(name: str, command: str, ready: str, live: str, size: tuple[int, int], seconds: float, tmp: Path,
            env: dict[str, str]) -> dict[str, float]:
    log = tmp / f"{name}.bytes"
    log.touch()
    exports = " ".join(f"{k}={v!r}" for k, v in env.items())
    t0 = time.monotonic()
    tmux("new-session", "-d", "-s", name, "-x", str(size[0]), "-y", str(size[1]),
         f"cd {str(ROOT)!r} && exec env TERM=xterm-256color {exports} {command}")
    tmux("pipe-pane", "-o", "-t", name, f"cat >> {str(log)!r}")
    pid = int(tmux("list-panes", "-t", name, "-F", "#{pane_pid}").split()[0])
    first = first_live = None
    while time.monotonic() - t0 < 60:
        pane = tmux("capture-pane", "-p", "-t", name)
        if first is None and ready in pane:
            first = time.monotonic() - t0
        if live in pane:
            first_live = time.monotonic() - t0
            first = first or first_live
            break
        time.sleep(0.01)
    if first is None or first_live is None:
        tmux("kill-session", "-t", name)
        raise SystemExit(f"bench: {name} never showed {ready!r}")
    time.sleep(2.0)                       # settle: startup work is not steady state
    cpu0, bytes0, w0 = proc_cpu_s(pid), log.stat().st_size, time.monotonic()
    time.sleep(seconds)
    cpu1, bytes1, w1 = proc_cpu_s(pid), log.stat().st_size, time.monotonic()
    rss = peak_rss_mb(pid)
    tmux("kill-session", "-t", name)
    window = w1 - w0
    return {"first_frame_s": first, "first_live_s": first_live, "cpu_pct": 100 * (cpu1 - cpu0) / window,
            "bytes_per_s": (bytes1 - bytes0) / window, "rss_mb": rss}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--size", default="120x40")
    ap.add_argument("--floor-app", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.floor_app:
        floor_app(args.interval)
        return 0
    if shutil.which("tmux") is None:
        print("bench: tmux is not installed (apt-get install tmux)", file=sys.stderr)
        return 2
    w, h = (int(x) for x in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="gpuspend-bench-tui-") as t:
        tmp = Path(t)
        env = {"XDG_CONFIG_HOME": str(tmp / "config"), "XDG_DATA_HOME": str(tmp / "data"),
               "PYTHONPATH": str(ROOT)}
        os.environ.pop("GPUSPEND_NOW", None)
        from gpuspend.demo import ensure_demo_db

        db = tmp / "demo.db"
        t_build = time.monotonic()
        ensure_demo_db(db)                 # built before timing: first frame is about the dashboard
        print(f"demo database built in {time.monotonic() - t_build:.1f} s")
        py = sys.executable
        # a placeholder session keeps one tmux server up between measurements (no start/stop races)
        tmux("new-session", "-d", "-s", "keep", "sleep 3600")
        try:
            floor = measure("floor", f"{py} {str(Path(__file__).resolve())!r} --floor-app --interval {args.interval}",
                            "row 7", "row 7", (w, h), args.seconds, tmp, env)
            dash = measure("dashboard", f"{py} -m gpuspend --demo --db {str(db)!r} --interval {args.interval}",
                           "H100", "busy", (w, h), args.seconds, tmp, env)
            # The same dashboard reading while a `gpuspend collect --demo` daemon writes (its CPU not counted):
            # the TUI's own cost, without the in-app collector.
            daemon = subprocess.Popen([py, "-m", "gpuspend", "collect", "--demo", "--db", str(db)], cwd=ROOT,
                                      env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                time.sleep(2.0)
                reader = measure("reader", f"{py} -m gpuspend --demo --db {str(db)!r} --interval {args.interval}",
                                 "H100", "busy", (w, h), args.seconds, tmp, env)
            finally:
                daemon.terminate()
                daemon.wait(10)
        finally:
            subprocess.run(["tmux", "-L", SOCKET, "kill-server"], capture_output=True)
    print(f"\n{args.size}, refresh {args.interval:g} s, window {args.seconds:g} s, TERM=xterm-256color in tmux")
    print(f"{'':<12}{'first frame':>12}{'first live':>12}{'CPU % core':>12}{'tty bytes/s':>14}{'peak RSS':>11}")
    for name, r in (("floor", floor), ("dashboard", dash), ("with daemon", reader)):
        print(f"{name:<12}{r['first_frame_s']:>11.2f}s{r['first_live_s']:>11.2f}s{r['cpu_pct']:>11.2f}%"
              f"{fmt_bytes(r['bytes_per_s']):>13}/s{r['rss_mb']:>8.0f} MB")
    print("(first frame: GPU rows from the database; first live: a fresh sample from the in-app collector;\n"
          " with daemon: `gpuspend collect --demo` writes, the dashboard only reads, daemon CPU not counted)")
    ratio = dash["cpu_pct"] / floor["cpu_pct"] if floor["cpu_pct"] > 0 else float("inf")
    checks = [
        (f"CPU vs floor {ratio:.2f}x (<= 1.5x)", ratio <= 1.5),
        (f"CPU {dash['cpu_pct']:.2f}% of a core (< 2%)", dash["cpu_pct"] < 2.0),
        (f"terminal {fmt_bytes(dash['bytes_per_s'])}/s (< 10 KB/s)", dash["bytes_per_s"] < 10 * 1024),
        (f"first frame {dash['first_frame_s']:.2f} s (< 0.8 s)", dash["first_frame_s"] < 0.8),
        (f"peak RSS {dash['rss_mb']:.0f} MB (< 120 MB)", dash["rss_mb"] < 120),
    ]
    for text, ok in checks:
        print(f"  {'PASS' if ok else 'MISS'}  {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Dashboard cost in a real terminal (tmux), against the framework's floor measured in the same window.

    python bench/bench_tui.py [--seconds 60] [--interval 1] [--size 120x40,80x24] [--one-at-a-time]
                              [--before CHECKOUT]   # another checkout's dashboard (its own .venv), same window

For each size, three apps, each in a detached tmux session of that size with TERM=xterm-256color:
  - floor: a minimal Textual app updating 8 DataTable rows every `interval` seconds (what any Textual app pays);
  - dashboard: the 8-GPU demo with its in-app collector, as a user starts it (`gpuspend --demo --interval 1`);
  - with daemon: the same dashboard on a database a `gpuspend collect --demo` daemon writes (the daemon's CPU is
    not counted): the dashboard's own cost, without the in-app collector.
Like with like: the collector samples every `interval` too (config `interval:`), so every app shows new
data every `interval` (with the default 2 s sampling the dashboard would redraw half as often as the floor).
The apps start one after another (each first frame is timed with no other start-up running), then all are
measured over ONE common window, so machine load from other work hits every app alike (--one-at-a-time
measures each over its own window instead). Reported per app:
  - time to first full frame: from launch until the pane shows the GPU rows read from SQLite (or the
    floor's last row); also "first live", until a GPU shows a state from a fresh sample;
  - CPU % of one core over the window (utime+stime of the process, all threads);
  - bytes written to the terminal per second (tmux pipe-pane, counted over the same window);
  - peak RSS (VmHWM).
Targets: CPU <= 1.0x floor (issue 16) and < 2% of a core, < 10 KB/s, first frame < 0.8 s, peak RSS < 120 MB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import ROOT, as_installed, fmt_bytes

SOCKET = f"gpuspend-bench-{os.getpid()}"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SETTLE_S = 2.0                          # start-up work is not steady state


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


def collector_config(tmp: Path, interval: float) -> dict[str, str]:
    """XDG dirs under `tmp` with a config whose collector samples every `interval` (as the refresh)."""
    cfg = tmp / "config" / "gpuspend" / "config.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(f"interval: {interval:g}\n")
    return {"XDG_CONFIG_HOME": str(tmp / "config"), "XDG_DATA_HOME": str(tmp / "data"),
            "XDG_CACHE_HOME": str(tmp / "cache")}


@dataclass
class Session:
    """One app in its own tmux session: started (first frame timed), then measured over a window."""

    name: str
    pid: int
    log: Path
    first_frame_s: float
    first_live_s: float
    start: tuple[float, int, float] = (0.0, 0, 0.0)        # cpu s, tty bytes, monotonic
    result: dict[str, float] = field(default_factory=dict)

    def begin(self) -> None:
        self.start = (proc_cpu_s(self.pid), self.log.stat().st_size, time.monotonic())

    def end(self) -> dict[str, float]:
        cpu1, bytes1, w1 = proc_cpu_s(self.pid), self.log.stat().st_size, time.monotonic()
        cpu0, bytes0, w0 = self.start
        window = w1 - w0
        self.result = {"first_frame_s": self.first_frame_s, "first_live_s": self.first_live_s,
                       "cpu_pct": 100 * (cpu1 - cpu0) / window, "bytes_per_s": (bytes1 - bytes0) / window,
                       "rss_mb": peak_rss_mb(self.pid), "window_s": window}
        return self.result

    def stop(self) -> None:
        subprocess.run(["tmux", "-L", SOCKET, "kill-session", "-t", self.name], capture_output=True)


def start(name: str, command: str, ready: str, live: str, size: tuple[int, int], tmp: Path,
          env: dict[str, str]) -> Session:
    """Launch `command` in a tmux session and wait until its pane shows `ready`, then `live`."""
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
    return Session(name, pid, log, first, first_live)


def measure_together(sessions: list[Session], seconds: float) -> None:
    """One window for every session: the same machine load for all of them."""
    time.sleep(SETTLE_S)
    for s in sessions:
        s.begin()
    time.sleep(seconds)
    for s in sessions:
        s.end()


def measure(name: str, command: str, ready: str, live: str, size: tuple[int, int], seconds: float, tmp: Path,
            env: dict[str, str]) -> dict[str, float]:
    """One app over its own window (start, settle, measure, stop)."""
    s = start(name, command, ready, live, size, tmp, env)
    try:
        measure_together([s], seconds)
    finally:
        s.stop()
    return s.result


def run_sessions(specs: list[tuple[str, str, str, str, tuple[int, int], dict[str, str]]], seconds: float,
                 tmp: Path, *, together: bool = True) -> dict[str, dict[str, float]]:
    """Start each (name, command, ready, live, size, env) one after another, then measure them over one window
    (`together`) or each over its own window."""
    if not together:
        return {name: measure(name, cmd, ready, live, size, seconds, tmp, env)
                for name, cmd, ready, live, size, env in specs}
    sessions: list[Session] = []
    try:
        for name, cmd, ready, live, size, env in specs:
            sessions.append(start(name, cmd, ready, live, size, tmp, env))
        measure_together(sessions, seconds)
    finally:
        for s in sessions:
            s.stop()
    return {s.name: s.result for s in sessions}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--size", default="120x40,80x24", help="one or more WxH, comma-separated")
    ap.add_argument("--sample-every", type=float, default=None,
                    help="collector interval in seconds (default: --interval, like with like)")
    ap.add_argument("--one-at-a-time", action="store_true", help="measure each app over its own window")
    ap.add_argument("--before", default=None, metavar="CHECKOUT",
                    help="also run the dashboard (in-app collector) of another checkout, with its own .venv, in the "
                         "same window: a same-run baseline for a change")
    ap.add_argument("--floor-app", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.floor_app:
        floor_app(args.interval)
        return 0
    if shutil.which("tmux") is None:
        print("bench: tmux is not installed (apt-get install tmux)", file=sys.stderr)
        return 2
    sizes = [tuple(int(x) for x in s.split("x")) for s in args.size.split(",")]
    with tempfile.TemporaryDirectory(prefix="gpuspend-bench-tui-") as t:
        tmp = Path(t)
        sample = args.sample_every or args.interval
        env = {**collector_config(tmp, sample), "PYTHONPATH": str(ROOT)}
        os.environ.pop("GPUSPEND_NOW", None)
        from gpuspend.demo import ensure_demo_db

        template = tmp / "template.db"
        t_build = time.monotonic()
        ensure_demo_db(template)           # built before timing: first frame is about the dashboard
        print(f"demo database built in {time.monotonic() - t_build:.1f} s")
        py = sys.executable
        specs = []
        daemons = []
        for w, h in sizes:
            tag = f"{w}x{h}"
            own, shared, old = tmp / f"own-{tag}.db", tmp / f"daemon-{tag}.db", tmp / f"before-{tag}.db"
            for db in (own, shared, old):  # each in-app collector and each daemon has a database of its own
                shutil.copy(template, db)
            dash = f"{py} -m gpuspend --demo --interval {args.interval:g}"
            specs += [
                (f"floor-{tag}", f"{py} {str(Path(__file__).resolve())!r} --floor-app --interval {args.interval}",
                 "row 7", "row 7", (w, h), env),
                (f"dashboard-{tag}", f"{dash} --db {str(own)!r}", "H100", "busy", (w, h), env),
                (f"reader-{tag}", f"{dash} --db {str(shared)!r}", "H100", "busy", (w, h), env),
            ]
            if args.before:
                before = Path(args.before).resolve()
                as_installed(before)
                specs.append((f"before-{tag}", f"{str(before / '.venv' / 'bin' / 'python')!r} -m gpuspend --demo "
                              f"--interval {args.interval:g} --db {str(old)!r}", "H100", "busy", (w, h),
                              {**env, "PYTHONPATH": str(before)}))
            daemons.append(shared)
        # a placeholder session keeps one tmux server up between measurements (no start/stop races)
        tmux("new-session", "-d", "-s", "keep", "sleep 3600")
        procs = []
        try:
            # `gpuspend collect --demo` writes the readers' databases (its CPU is not counted)
            for db in daemons:
                procs.append(subprocess.Popen([py, "-m", "gpuspend", "collect", "--demo", "--db", str(db)], cwd=ROOT,
                                              env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL))
            time.sleep(2.0)
            results = run_sessions(specs, args.seconds, tmp, together=not args.one_at_a_time)
        finally:
            for p in procs:
                p.terminate()
                p.wait(10)
            subprocess.run(["tmux", "-L", SOCKET, "kill-server"], capture_output=True)
    how = "each over its own window" if args.one_at_a_time else "all over one common window"
    print(f"\nrefresh {args.interval:g} s, collector samples every {sample:g} s, window "
          f"{args.seconds:g} s, {how}, TERM=xterm-256color in tmux")
    print(f"{'':<20}{'first frame':>12}{'first live':>12}{'CPU % core':>12}{'tty bytes/s':>14}{'peak RSS':>11}")
    for name, r in results.items():
        label = name.replace("reader-", "with daemon-")
        print(f"{label:<20}{r['first_frame_s']:>11.2f}s{r['first_live_s']:>11.2f}s{r['cpu_pct']:>11.2f}%"
              f"{fmt_bytes(r['bytes_per_s']):>13}/s{r['rss_mb']:>8.0f} MB")
    print("(first frame: GPU rows from the database; first live: a fresh sample from the in-app collector;\n"
          " with daemon: `gpuspend collect --demo` writes, the dashboard only reads, daemon CPU not counted)")
    for w, h in sizes:
        tag = f"{w}x{h}"
        dash, floor, reader = results[f"dashboard-{tag}"], results[f"floor-{tag}"], results[f"reader-{tag}"]
        ratio = dash["cpu_pct"] / floor["cpu_pct"] if floor["cpu_pct"] > 0 else float("inf")
        own = reader["cpu_pct"] / floor["cpu_pct"] if floor["cpu_pct"] > 0 else float("inf")
        print(f"{tag}: dashboard {ratio:.2f}x the floor (with daemon: {own:.2f}x)")
        old = results.get(f"before-{tag}")
        if old is not None and old["cpu_pct"] > 0:
            print(f"{tag}: dashboard {dash['cpu_pct'] / old['cpu_pct']:.2f}x the --before checkout's "
                  f"({old['cpu_pct'] / floor['cpu_pct']:.2f}x the floor)")
        checks = [
            (f"CPU vs floor {ratio:.2f}x (<= 1.0x)", ratio <= 1.0),
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

"""The dashboard next to the tools people would use instead: nvitop and gpustat, on the same fake GPU box.

    python bench/bench_peers.py [--seconds 60] [--interval 1] [--size 120x40] [--gpus 4] [--python PY]
                                [--before CHECKOUT]     # another checkout with its own .venv, same window

Installs nothing. Runs whichever of nvitop and gpustat the interpreter `--python` (default: this one) can
import (e.g. a separate venv: `python3 -m venv /tmp/peers && /tmp/peers/bin/pip install nvitop gpustat`, then
`--python /tmp/peers/bin/python`), plus gpuspend's dashboard and the Textual floor (bench_tui.py's minimal
8-row DataTable app), each in its own detached tmux session of the same size, TERM=xterm-256color, at the same
refresh interval. All the tools read the same box: bench/peer_box/sitecustomize.py makes the real `pynvml`
answer from tests/fake_pynvml.py's H100 box (queries it does not fake answer NotSupported), so each tool does
its real work per tick (NVML calls, process lookups, drawing). gpuspend runs as a user starts it on a box with
no collector daemon: its in-app collector samples and writes SQLite every `interval` (config `interval:`, as
the peers sample NVML every `interval`), and the screen reads SQLite.
They start one after another, then are measured over ONE common window (the same machine load for each).
Prints CPU % of one core (utime+stime, all threads, over the window after a 2 s settle), bytes written to the
terminal per second and peak RSS, and gpuspend's ratio to the floor and to the lower of the peers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import ROOT, as_installed, fmt_bytes
from bench_tui import SOCKET, collector_config, run_sessions

BOX = Path(__file__).resolve().parent / "peer_box"
PEERS = {  # name -> (module, arguments, text that shows the GPU rows)
    "nvitop": ("nvitop", "--interval {interval}", "H100"),
    "gpustat": ("gpustat", "-i {interval}", "H100"),
}


def importable(python: str, module: str) -> bool:
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--size", default="120x40")
    ap.add_argument("--gpus", type=int, default=4)
    ap.add_argument("--python", default=sys.executable, help="interpreter that has nvitop/gpustat installed")
    ap.add_argument("--sample-every", type=float, default=None,
                    help="gpuspend's collector interval in seconds (default: --interval, like with like)")
    ap.add_argument("--before", default=None, metavar="CHECKOUT",
                    help="also run the dashboard of another checkout (its own .venv) in the same window: a same-run "
                         "baseline for a change")
    ap.add_argument("--one-at-a-time", action="store_true", help="measure each tool over its own window")
    args = ap.parse_args()
    if shutil.which("tmux") is None:
        print("bench: tmux is not installed (apt-get install tmux)", file=sys.stderr)
        return 2
    w, h = (int(x) for x in args.size.split("x"))
    peers = {n: p for n, p in PEERS.items() if importable(args.python, p[0])}
    for name in sorted(set(PEERS) - set(peers)):
        print(f"{name}: not importable by {args.python} (pip install {name} to compare), skipped")
    sample = args.sample_every or args.interval
    with tempfile.TemporaryDirectory(prefix="gpuspend-bench-peers-") as t:
        tmp = Path(t)
        env = {**collector_config(tmp, sample), "PYTHONPATH": f"{BOX}:{ROOT}",
               "GPUSPEND_PEER_ROOT": str(ROOT), "GPUSPEND_PEER_GPUS": str(args.gpus)}
        os.environ.pop("GPUSPEND_NOW", None)
        py = sys.executable
        specs = [
            ("floor", f"{py} {str(ROOT / 'bench' / 'bench_tui.py')!r} --floor-app --interval {args.interval}",
             "row 7", "row 7", (w, h), env),
            ("gpuspend", f"{py} -m gpuspend --db {str(tmp / 'box.db')!r} --interval {args.interval}",
             "H100", "busy", (w, h), env),
        ]
        if args.before:
            before = Path(args.before).resolve()
            as_installed(before)
            specs.append(("before", f"{str(before / '.venv' / 'bin' / 'python')!r} -m gpuspend "
                          f"--db {str(tmp / 'before.db')!r} --interval {args.interval}", "H100", "busy", (w, h),
                          {**env, "PYTHONPATH": f"{BOX}:{before}", "GPUSPEND_PEER_ROOT": str(before)}))
        for name, (module, argv, ready) in peers.items():
            specs.append((name, f"{args.python} -m {module} {argv.format(interval=args.interval)}",
                          ready, ready, (w, h), env))
        tmux_keep = ["tmux", "-L", SOCKET, "new-session", "-d", "-s", "keep", "sleep 3600"]
        subprocess.run(tmux_keep, check=True)
        try:
            results = run_sessions(specs, args.seconds, tmp, together=not args.one_at_a_time)
        finally:
            subprocess.run(["tmux", "-L", SOCKET, "kill-server"], capture_output=True)
    how = "each over its own window" if args.one_at_a_time else "all over one common window"
    print(f"\n{args.size}, refresh {args.interval:g} s (gpuspend samples every {sample:g} s), window "
          f"{args.seconds:g} s, {how}, {args.gpus} fake H100s, TERM=xterm-256color in tmux")
    print(f"{'':<10}{'CPU % core':>12}{'tty bytes/s':>14}{'peak RSS':>11}")
    for name, r in results.items():
        print(f"{name:<10}{r['cpu_pct']:>11.2f}%{fmt_bytes(r['bytes_per_s']):>13}/s{r['rss_mb']:>8.0f} MB")
    ours = results["gpuspend"]["cpu_pct"]
    floor = results["floor"]["cpu_pct"]
    print(f"gpuspend vs floor: {ours / floor:.2f}x" if floor > 0 else "gpuspend vs floor: floor used no CPU")
    if "before" in results and results["before"]["cpu_pct"] > 0:
        print(f"gpuspend vs the --before checkout: {ours / results['before']['cpu_pct']:.2f}x")
    peer_cpu = [results[n]["cpu_pct"] for n in peers]
    if peer_cpu and min(peer_cpu) > 0:
        print(f"gpuspend vs the lower of the peers: {ours / min(peer_cpu):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

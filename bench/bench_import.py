"""Billing import speed and memory: gpuspend's importer vs the sqlite3 CLI's C `.import` of the same CSV.

Builds a FOCUS CSV of ROWS rows (the public FOCUS sample repeated; the project's fixture if ../shared is
absent), then in the same run, each RUNS times on a fresh database:
  - `sqlite3 db ".mode csv" ".import big.csv t"` (C CSV import of text, no normalisation), wall time;
  - `python -m gpuspend --db db import big.csv` (detection, normalisation, GPU marking, replacement), wall time
    (Python start-up included, as for the CLI), and the importer call alone measured inside the process.
Prints medians, rows/s and the ratio. Peak RSS of the import process is measured (resource.getrusage in a
child) for 200k and 1M rows to show that memory does not grow with the file.
    python bench/bench_import.py [rows] [runs]          # defaults: 200000 3
    python bench/bench_import.py --rss                  # peak RSS at 200k and 1M rows
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, fmt_bytes

SAMPLE = ROOT.parent / "shared" / "billing-samples" / "focus" / "focus_sample.csv"
FALLBACK = ROOT / "tests" / "fixtures" / "billing" / "focus_gpu.csv"

CHILD = """
import resource, sys, time
from gpuspend.collectors.billing.importer import import_paths
from gpuspend.store import connect
conn = connect(sys.argv[1])
t = time.perf_counter()
[r] = import_paths(conn, [sys.argv[2]])
el = time.perf_counter() - t
conn.close()
ru = resource.getrusage(resource.RUSAGE_SELF)
print(el, r.rows, ru.ru_maxrss * 1024, ru.ru_utime + ru.ru_stime)
"""


def build(path: Path, rows: int) -> Path:
    src = SAMPLE if SAMPLE.exists() else FALLBACK
    lines = src.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(header)
        n = 0
        while n < rows:
            chunk = body[: rows - n]
            fh.writelines(chunk)
            n += len(chunk)
    return path


def _child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_sqlite_cli(csv_path: Path, d: Path) -> tuple[float, float]:
    """(wall s, CPU s) of the sqlite3 CLI import."""
    db = d / "cli.db"
    db.unlink(missing_ok=True)
    cpu = _child_cpu()
    t = time.perf_counter()
    subprocess.run(["sqlite3", str(db), ".mode csv", f".import {csv_path} t"], check=True)
    return time.perf_counter() - t, _child_cpu() - cpu


def run_gpuspend(csv_path: Path, d: Path) -> tuple[float, float, int, int, float]:
    """(wall s of the whole CLI process, importer-only s, rows, peak RSS bytes, CPU s of the importer process
    including Python start-up)."""
    db = d / "gs.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gpuspend", "--db", str(db), "import", str(csv_path)], check=True,
                   env=env, stdout=subprocess.DEVNULL, cwd=ROOT)
    wall = time.perf_counter() - t
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    out = subprocess.run([sys.executable, "-c", CHILD, str(db), str(csv_path)], check=True, env=env,
                         capture_output=True, text=True, cwd=ROOT).stdout.split()
    return wall, float(out[0]), int(out[1]), int(out[2]), float(out[3])


def speed(rows: int, runs: int) -> None:
    if shutil.which("sqlite3") is None:
        sys.exit("bench_import: the sqlite3 CLI is needed for the baseline (apt-get install sqlite3)")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        big = build(d / "big.csv", rows)
        print(f"FOCUS CSV: {rows} rows, {fmt_bytes(big.stat().st_size)} ({'public sample' if SAMPLE.exists() else 'fixture'} repeated)")
        cli, cli_cpu, wall, inproc, rss, cpu = [], [], [], [], [], []
        for _ in range(runs):
            cw, cc = run_sqlite_cli(big, d)
            cli.append(cw)
            cli_cpu.append(cc)
            w, i, n, r, u = run_gpuspend(big, d)
            assert n == rows, n
            wall.append(w)
            inproc.append(i)
            rss.append(r)
            cpu.append(u)
        c, w, i = statistics.median(cli), statistics.median(wall), statistics.median(inproc)
        cc, u = statistics.median(cli_cpu), statistics.median(cpu)
        print(f"sqlite3 CLI .import        median {c:6.2f} s  {rows / c:10,.0f} rows/s")
        print(f"gpuspend import (CLI wall) median {w:6.2f} s  {rows / w:10,.0f} rows/s  ratio {c / w:4.2f}x")
        print(f"gpuspend importer only     median {i:6.2f} s  {rows / i:10,.0f} rows/s  ratio {c / i:4.2f}x")
        # CPU seconds are steadier than wall time on a shared machine (the importer uses two threads).
        print(f"CPU: sqlite3 CLI median {cc:6.2f} s, gpuspend importer process median {u:6.2f} s "
              f"(Python start-up included)")
        print(f"peak RSS of the import process: {fmt_bytes(max(rss))}")


def rss() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for rows in (200_000, 1_000_000):
            big = build(d / f"big{rows}.csv", rows)
            _w, secs, n, peak, _cpu = run_gpuspend(big, d)
            print(f"{n:>9,} rows ({fmt_bytes(big.stat().st_size)}): importer {secs:6.2f} s, peak RSS {fmt_bytes(peak)}")
            big.unlink()


if __name__ == "__main__":
    if "--rss" in sys.argv:
        rss()
    else:
        args = [int(a) for a in sys.argv[1:]]
        speed(args[0] if args else 200_000, args[1] if len(args) > 1 else 3)

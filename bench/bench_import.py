"""Billing import speed and memory: gpuspend's importer vs the sqlite3 CLI's C `.import` of the same CSV.

Builds a FOCUS CSV of ROWS rows (the public FOCUS sample repeated; the project's fixture if ../shared is
absent), then in the same run, each RUNS times on a fresh database:
  - `sqlite3 db ".mode csv" ".import big.csv t"` (C CSV import of text, no normalisation), wall time;
  - `python -m gpuspend --db db import big.csv` (detection, normalisation, GPU marking, replacement), wall time
    (Python start-up included, as for the CLI), and the importer call alone measured inside the process.
Prints medians, rows/s and the ratio. Peak RSS of the import process is measured (resource.getrusage in a
child) for 200k and 1M rows to show that memory does not grow with the file.
The same for AWS CUR 2.0 as Parquet (the sqlite3 baseline imports the same rows as CSV: it cannot read Parquet),
and the collector daemon's own peak RSS while its `billing.sources` task re-imports a 1M-row export folder
(the shipped unit has MemoryMax=256M; the import runs in a child process whose peak is printed too).
    python bench/bench_import.py [rows] [runs]          # defaults: 200000 3
    python bench/bench_import.py --parquet [rows] [runs]
    ... [--before CHECKOUT]                             # also another checkout (its own .venv), interleaved
    python bench/bench_import.py --rss                  # peak RSS at 200k and 1M rows, CSV and Parquet
    python bench/bench_import.py --daemon [rows]        # collector RSS during a billing.sources re-import
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
READER_RSS: list[int] = []      # peak RSS of the reader child of each measured import (0: read in a thread)
CUR2 = ROOT / "tests" / "fixtures" / "billing" / "aws_cur2.csv"

CHILD = """
import resource, sys, time
from gpuspend.collectors.billing.importer import import_paths
from gpuspend.store import connect
conn = connect(sys.argv[1])
t = time.perf_counter()
[r] = import_paths(conn, [sys.argv[2]])
el = time.perf_counter() - t
conn.close()
ru, kid = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
# the reader process (large files) is a child: its CPU counts, and its peak RSS is reported beside ours
print(el, r.rows, ru.ru_maxrss * 1024, ru.ru_utime + ru.ru_stime + kid.ru_utime + kid.ru_stime, kid.ru_maxrss * 1024)
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


def _db_bytes(db: Path) -> int:
    return sum(Path(f"{db}{suffix}").stat().st_size for suffix in ("", "-wal") if Path(f"{db}{suffix}").exists())


def run_gpuspend(csv_path: Path, d: Path, root: Path = ROOT) -> tuple[float, float, int, int, float]:
    """(wall s of the whole CLI process, importer-only s, rows, peak RSS bytes, CPU s of the importer process
    and its reader child, Python start-up included). `root`: the checkout to run (another one: its .venv)."""
    db = d / "gs.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=str(root))
    python = sys.executable if root == ROOT else str(root / ".venv" / "bin" / "python")
    t = time.perf_counter()
    subprocess.run([python, "-m", "gpuspend", "--db", str(db), "import", str(csv_path)], check=True,
                   env=env, stdout=subprocess.DEVNULL, cwd=root)
    wall = time.perf_counter() - t
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    out = subprocess.run([python, "-c", CHILD, str(db), str(csv_path)], check=True, env=env,
                         capture_output=True, text=True, cwd=root).stdout.split()
    if root == ROOT:
        READER_RSS.append(int(out[4]))
    return wall, float(out[0]), int(out[1]), int(out[2]), float(out[3])


def before_checkout() -> Path | None:
    """--before CHECKOUT: another checkout (with its own .venv) measured in the same run, interleaved."""
    if "--before" not in sys.argv:
        return None
    root = Path(sys.argv[sys.argv.index("--before") + 1]).resolve()
    if not (root / ".venv" / "bin" / "python").exists():
        sys.exit(f"bench_import: {root} has no .venv (python -m venv .venv && .venv/bin/pip install -e .)")
    # Compiled once, as an installed package is: PYTHONDONTWRITEBYTECODE would make it compile every run.
    subprocess.run([str(root / ".venv" / "bin" / "python"), "-m", "compileall", "-q", str(root / "gpuspend"),
                    str(root / "collectors")], check=True, stdout=subprocess.DEVNULL)
    return root


def speed(rows: int, runs: int) -> None:
    if shutil.which("sqlite3") is None:
        sys.exit("bench_import: the sqlite3 CLI is needed for the baseline (apt-get install sqlite3)")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        big = build(d / "big.csv", rows)
        print(f"FOCUS CSV: {rows} rows, {fmt_bytes(big.stat().st_size)} ({'public sample' if SAMPLE.exists() else 'fixture'} repeated)")
        before = before_checkout()
        cli, cli_cpu, wall, inproc, rss, cpu, old, old_in = [], [], [], [], [], [], [], []
        for _ in range(runs):
            cw, cc = run_sqlite_cli(big, d)
            cli.append(cw)
            cli_cpu.append(cc)
            w, i, n, r, u = run_gpuspend(big, d)
            assert n == rows, n
            store = _db_bytes(d / "gs.db")
            wall.append(w)
            inproc.append(i)
            rss.append(r)
            cpu.append(u)
            if before is not None:
                w, i, *_rest = run_gpuspend(big, d, before)
                old.append(w)
                old_in.append(i)
        c, w, i = statistics.median(cli), statistics.median(wall), statistics.median(inproc)
        cc, u = statistics.median(cli_cpu), statistics.median(cpu)
        print(f"sqlite3 CLI .import        median {c:6.2f} s  {rows / c:10,.0f} rows/s")
        print(f"gpuspend import (CLI wall) median {w:6.2f} s  {rows / w:10,.0f} rows/s  ratio {c / w:4.2f}x")
        print(f"gpuspend importer only     median {i:6.2f} s  {rows / i:10,.0f} rows/s  ratio {c / i:4.2f}x")
        if old:
            print(f"--before (whole command)   median {statistics.median(old):6.2f} s  ratio {c / statistics.median(old):4.2f}x"
                  f"; importer only {statistics.median(old_in):6.2f} s  ratio {c / statistics.median(old_in):4.2f}x")
        print(f"store after the import: gpuspend {fmt_bytes(store)}, "
              f"sqlite3 CLI (every column as text) {fmt_bytes(_db_bytes(d / 'cli.db'))}")
        # CPU seconds are steadier than wall time on a shared machine (the importer uses two threads).
        print(f"CPU: sqlite3 CLI median {cc:6.2f} s, gpuspend importer process median {u:6.2f} s "
              f"(Python start-up included)")
        print(f"peak RSS of the import process: {fmt_bytes(max(rss))}")


def build_cur2(d: Path, rows: int) -> tuple[Path, Path]:
    """build_cur2_here in a child: Linux carries a process's peak RSS over fork and exec, so building the
    tables here would inflate every measured child's ru_maxrss."""
    subprocess.run([sys.executable, __file__, "--build-cur2", str(d), str(rows)], check=True)
    return d / f"cur2-{rows}.csv", d / f"cur2-{rows}.snappy.parquet"


def build_cur2_here(d: Path, rows: int) -> tuple[Path, Path]:
    """(CSV, Parquet) of the same CUR 2.0 rows: the fixture's line items over distinct hours and resources,
    written as AWS does (typed columns, tags as a map, snappy, row groups of 128k rows)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    base = pacsv.read_csv(CUR2, convert_options=pacsv.ConvertOptions(
        column_types={"line_item_usage_start_date": pa.string(), "line_item_usage_end_date": pa.string()}))
    base = base.drop_columns(["line_item_usage_start_date", "line_item_usage_end_date", "line_item_resource_id"])
    k = base.num_rows
    start = 1793491200                               # 2026-11-01T00:00:00Z, inside the fixture's period
    csv_path, pq_path = d / f"cur2-{rows}.csv", d / f"cur2-{rows}.snappy.parquet"
    writer = None
    with open(csv_path, "wb") as out:
        for lo in range(0, rows, 128_000):
            n = min(128_000, rows - lo)
            idx = pa.array([(lo + i) % k for i in range(n)])
            t = base.take(idx)
            hours = [(lo + i) // k % 720 for i in range(n)]
            t = t.append_column("line_item_usage_start_date",
                                pa.array([(start + h * 3600) * 1000 for h in hours], pa.timestamp("ms", tz="UTC")))
            t = t.append_column("line_item_usage_end_date",
                                pa.array([(start + h * 3600 + 3600) * 1000 for h in hours], pa.timestamp("ms", tz="UTC")))
            t = t.append_column("line_item_resource_id", pa.array([f"i-{(lo + i) // (k * 720):08x}-{(lo + i) % k}"
                                                                   for i in range(n)]))
            pacsv.write_csv(t, out, pacsv.WriteOptions(include_header=lo == 0))
            t = _tags_as_map(t)
            if writer is None:
                writer = pq.ParquetWriter(pq_path, t.schema, compression="snappy")
            writer.write_table(t)
    assert writer is not None
    writer.close()
    return csv_path, pq_path


def _tags_as_map(t):
    """resource_tags as AWS writes it in CUR 2.0 Parquet: a map<string, string> (the CSV keeps the JSON text)."""
    import json

    import pyarrow as pa

    i = t.schema.get_field_index("resource_tags")
    if i < 0:
        return t
    texts = t.column(i).to_pylist()
    maps = [list(json.loads(v).items()) if v else None for v in texts]
    return t.set_column(i, "resource_tags", pa.array(maps, pa.map_(pa.string(), pa.string())))


def parquet_speed(rows: int, runs: int) -> None:
    if shutil.which("sqlite3") is None:
        sys.exit("bench_import: the sqlite3 CLI is needed for the baseline (apt-get install sqlite3)")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        csv_path, pq_path = build_cur2(d, rows)
        print(f"CUR 2.0: {rows} rows, Parquet {fmt_bytes(pq_path.stat().st_size)}, "
              f"same rows as CSV {fmt_bytes(csv_path.stat().st_size)}")
        before = before_checkout()
        cli, wall, inproc, rss, old, old_in = [], [], [], [], [], []
        for _ in range(runs):
            cli.append(run_sqlite_cli(csv_path, d)[0])
            w, i, n, r, _u = run_gpuspend(pq_path, d)
            assert n == rows, n
            store = _db_bytes(d / "gs.db")
            wall.append(w)
            inproc.append(i)
            rss.append(r)
            if before is not None:
                w, i, *_rest = run_gpuspend(pq_path, d, before)
                old.append(w)
                old_in.append(i)
        c, w, i = statistics.median(cli), statistics.median(wall), statistics.median(inproc)
        print(f"sqlite3 CLI .import (CSV)            median {c:6.2f} s  {rows / c:10,.0f} rows/s")
        print(f"gpuspend import Parquet (CLI wall)   median {w:6.2f} s  {rows / w:10,.0f} rows/s  ratio {c / w:4.2f}x")
        print(f"gpuspend importer only (Parquet)     median {i:6.2f} s  {rows / i:10,.0f} rows/s  ratio {c / i:4.2f}x")
        if old:
            print(f"--before (whole command)             median {statistics.median(old):6.2f} s  ratio "
                  f"{c / statistics.median(old):4.2f}x; importer only {statistics.median(old_in):6.2f} s  ratio "
                  f"{c / statistics.median(old_in):4.2f}x")
        print(f"store after the import: gpuspend {fmt_bytes(store)}, "
              f"sqlite3 CLI (every column as text) {fmt_bytes(_db_bytes(d / 'cli.db'))}")
        print(f"peak RSS of the import process: {fmt_bytes(max(rss))}")


def rss() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for rows in (200_000, 1_000_000):
            big = build(d / f"big{rows}.csv", rows)
            _w, secs, n, peak, _cpu = run_gpuspend(big, d)
            print(f"FOCUS CSV {n:>9,} rows ({fmt_bytes(big.stat().st_size)}): importer {secs:6.2f} s, "
                  f"peak RSS {fmt_bytes(peak)}, reader process {fmt_bytes(READER_RSS[-1])} (pages shared at fork included)")
            big.unlink()
        for rows in (200_000, 1_000_000):
            csv_path, pq_path = build_cur2(d, rows)
            csv_path.unlink()
            _w, secs, n, peak, _cpu = run_gpuspend(pq_path, d)
            print(f"CUR 2.0 Parquet {n:>9,} rows ({fmt_bytes(pq_path.stat().st_size)}): importer {secs:6.2f} s, "
                  f"peak RSS {fmt_bytes(peak)}, reader process {fmt_bytes(READER_RSS[-1])} (pages shared at fork included)")
            pq_path.unlink()


DAEMON = """
import resource, sys, time
from types import SimpleNamespace
from gpuspend.collectors.billing import sources
from gpuspend.store import connect
conn = connect(sys.argv[1])
cfg = SimpleNamespace(billing=SimpleNamespace(sources=[sys.argv[2]]), currency=None)
task = sources.reimport_task if sys.argv[3] == "task" else sources.reimport_changed
t = time.perf_counter()
task(conn, cfg, 1794744000000)
el = time.perf_counter() - t
n = conn.execute("SELECT COUNT(*) FROM charges").fetchone()[0]
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(el, n, me.ru_maxrss * 1024, kids.ru_maxrss * 1024)
"""


def daemon(rows: int) -> None:
    """The collector's billing task on a 1M-row folder: in a child process (shipped) and in-process (before)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        folder = d / "exports"
        folder.mkdir()
        build(folder / "focus.csv", rows)
        print(f"billing.sources folder: {rows:,} FOCUS rows ({fmt_bytes((folder / 'focus.csv').stat().st_size)})")
        for mode, label in (("task", "daemon task (import in a child)"), ("inproc", "in-process import (no child)")):
            db = d / f"{mode}.db"
            out = subprocess.run([sys.executable, "-c", DAEMON, str(db), str(folder), mode], check=True, env=env,
                                 capture_output=True, text=True, cwd=ROOT).stdout.split()
            secs, n, me, kids = float(out[0]), int(out[1]), int(out[2]), int(out[3])
            assert n == rows, n
            extra = f", import child peak {fmt_bytes(kids)}" if mode == "task" else ""
            print(f"{label:34} {secs:6.2f} s  collector peak RSS {fmt_bytes(me)}{extra}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--build-cur2"]:
        build_cur2_here(Path(sys.argv[2]), int(sys.argv[3]))
        sys.exit(0)
    args = sys.argv[1:]
    if "--before" in args:                       # its value is a path, not a count
        del args[args.index("--before") + 1]
    nums = [int(a) for a in args if not a.startswith("--")]
    if "--rss" in sys.argv:
        rss()
    elif "--daemon" in sys.argv:
        daemon(nums[0] if nums else 1_000_000)
    elif "--parquet" in sys.argv:
        parquet_speed(nums[0] if nums else 200_000, nums[1] if len(nums) > 1 else 3)
    else:
        speed(nums[0] if nums else 200_000, nums[1] if len(nums) > 1 else 3)

"""kill -9 of a collector that resolves workloads leaves a sound database: integrity ok, one row per workload
and per allocation (a restart continues the allocation rather than opening a second one), money counted once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from gpuspend import costing, rollup
from gpuspend.config import load_config
from gpuspend.costing.workloads import workload_attribution
from gpuspend.store import connect
from tests.conftest import ROOT
from tests.workloads import fakes
from tests.workloads.conftest import BUSY_PIDS, HOST, build_tree

CHILD = """
import sys
from gpuspend.collectors.nvml import NvmlSource
from gpuspend.config import load_config
from gpuspend.daemon import Collector
from tests.workloads.conftest import gpus

cfg = load_config(sys.argv[2])
fake = gpus()
sys.modules["pynvml"] = fake.module
src = NvmlSource("node-1", nvml=fake.module, workloads=cfg.workloads)
with Collector(sys.argv[1], cfg, demo=False, source=src, interval_s=0.05) as col:
    col.run()
"""


def _count(db: Path, sql: str) -> int:
    try:
        c = sqlite3.connect(db, timeout=5)
        try:
            return c.execute(sql).fetchone()[0]
        finally:
            c.close()
    except sqlite3.Error:
        return 0


def test_kill_9_leaves_workloads_sound_and_counted_once(tmp_path: Path) -> None:
    root, runtime = tmp_path / "proc", tmp_path / "runtime"
    runtime.mkdir()
    build_tree(root, runtime)
    bin_dir = tmp_path / "bin"
    fakes.install_scontrol(bin_dir, {777: fakes.slurm_job(777, "reserved-idle", "bob", 2202, "vision", HOST, "6")})
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(f"host: {HOST}\nrates:\n  per_host: {{{HOST}: 3.6}}\nworkloads:\n  names: false\n"
                        f"  docker_socket: {tmp_path / 'no.sock'}\n  pods_log_dir: {tmp_path / 'nopods'}\n")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    db = tmp_path / "g.db"
    env = {k: v for k, v in os.environ.items() if k != "GPUSPEND_NOW"}     # the child runs on the real clock
    env.update(PYTHONPATH=str(ROOT), GPUSPEND_PROC_ROOT=str(root),
               PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    for round_ in range(2):
        child = subprocess.Popen([sys.executable, str(script), str(db), str(cfg_path)], env=env, cwd=ROOT,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            want = 8 * 20 * (round_ + 1)
            deadline = time.monotonic() + 60
            while _count(db, "SELECT COALESCE(SUM(n), 0) FROM gpu_samples") < want and time.monotonic() < deadline:
                assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
                time.sleep(0.05)
            time.sleep(0.013 * (round_ + 1))                 # land somewhere inside a tick
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            if child.stderr:
                child.stderr.close()
        assert _count(db, "SELECT COALESCE(SUM(n), 0) FROM gpu_samples") >= want
        c = sqlite3.connect(db)
        assert c.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        c.close()

    conn = connect(db)
    try:
        kinds = dict(conn.execute("SELECT p.pid, w.kind FROM processes p LEFT JOIN workloads w "
                                  "ON w.id = p.workload_id").fetchall())
        assert kinds == {101: "docker", 102: "k8s-pod", 103: "slurm-job", 104: "jupyter-kernel", 105: None}
        assert conn.execute("SELECT COUNT(*) FROM workloads WHERE kind = 'slurm-job'").fetchone()[0] == 2
        held = conn.execute("SELECT COUNT(*) FROM workload_gpus a JOIN workloads w ON w.id = a.workload_id "
                            "WHERE w.wid = '777'").fetchone()[0]
        assert held == 1                                      # the restart continued the allocation
        cfg = load_config(cfg_path)
        rollup.roll_up(conn, interval_s=0.05)
        now = conn.execute("SELECT MAX(ts) FROM gpu_samples").fetchone()[0] + 50
        rates = costing.resolve_rates(conn, cfg, costing.load_gpus(conn), now)
        split = workload_attribution(conn, cfg, rates, 0, now + 1, now)
        total = split.totals["USD"][0]
        assert total > 0 and round(sum(r.cost for r in split.rows), 4) == total
        by = {(r.kind, r.id): r.cost for r in split.rows}
        assert by[("slurm-job", "777")] > 0                 # the idle GPU it holds is charged to it
        assert set(BUSY_PIDS.values()) == set(kinds)
    finally:
        conn.close()

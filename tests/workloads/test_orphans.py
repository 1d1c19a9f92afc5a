"""Memory held with no live process: after ORPHAN_AFTER (5 min) its cost goes to the last process seen on the
GPU, or to an `orphaned-memory` line when none was; the dashboard notes say so. A collector that cannot see the
host's processes says that instead of calling every process gone."""

from __future__ import annotations

from pathlib import Path

from gpuspend import costing
from gpuspend.collectors.nvml import NvmlSource
from gpuspend.collectors.sampler import Sampler
from gpuspend.config import load_config
from gpuspend.costing.workloads import workload_attribution
from gpuspend.store import connect
from tests.conftest import FIXED_NOW_S
from tests.fake_pynvml import GIB, FakeProc
from tests.workloads import fakes
from tests.workloads.conftest import HOST, Node
from tests.workloads.fakes import CGROUPS

NOW = FIXED_NOW_S * 1000


def _run(node: Node, tmp_path: Path, db: Path, change_at: int | None, before: list[FakeProc]):
    p = tmp_path / "c.yaml"
    p.write_text(node.config_text)
    cfg = load_config(p)
    g7 = node.fake.gpus[7]
    g7.memory_used, g7.processes = 12 * GIB, list(before)
    src = NvmlSource(HOST, nvml=node.fake.module, workloads=cfg.workloads).open()
    conn = connect(db)
    s = Sampler(conn)
    for i in range(300):
        if i == change_at:
            g7.processes = []                  # the process exits; its memory stays (a wedged context)
        s.write(src.read(NOW - (300 - i) * 2000))
    return conn, cfg


def test_left_memory_is_charged_to_the_last_process(node: Node, tmp_path: Path, db_path: Path) -> None:
    fakes.add_proc(node.root, 106, cgroup=CGROUPS["plain"], cmdline=["python", "leaky.py"], uid=1000)
    conn, cfg = _run(node, tmp_path, db_path, 100, [FakeProc(106, 12 * GIB, 0)])
    rates = costing.resolve_rates(conn, cfg, costing.load_gpus(conn), NOW)
    got = {(r.kind, r.id): r for r in workload_attribution(conn, cfg, rates, NOW - 3600_000, NOW + 1, NOW).rows}
    leaky = got[("process", "106")]
    # 200 s holding it idle + 400 s of memory left behind after it exited, at $0.001/s
    assert (leaky.cost, leaky.idle_waste, leaky.allocated_idle) == (0.6, 0.6, 0.4)
    assert got[("unattributed", "-")].cost == 0.0
    notes = costing.build_snapshot(conn, cfg, NOW).notes
    assert any(n.startswith("GPU 7: 12.0G held with no live process for 6m") and "pid 106" in n for n in notes)
    conn.close()


def test_memory_with_no_process_ever_seen_has_its_own_line(node: Node, tmp_path: Path, db_path: Path) -> None:
    conn, cfg = _run(node, tmp_path, db_path, None, [])
    rates = costing.resolve_rates(conn, cfg, costing.load_gpus(conn), NOW)
    split = workload_attribution(conn, cfg, rates, NOW - 3600_000, NOW + 1, NOW)
    got = {(r.kind, r.id): r.cost for r in split.rows}
    assert got[("orphaned-memory", "never-seen")] == 0.6 and got[("unattributed", "-")] == 0.0
    assert round(sum(r.cost for r in split.rows), 4) == split.totals["USD"][0] == 4.8
    conn.close()


def test_foreign_pid_namespace_is_said_not_called_orphaned(node: Node, tmp_path: Path, db_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GPUSPEND_PROC_ROOT", str(tmp_path / "empty-proc"))      # sees none of NVML's pids
    (tmp_path / "empty-proc").mkdir()
    conn, cfg = _run(node, tmp_path, db_path, None, [])
    assert conn.execute("SELECT COUNT(*) FROM gpu_orphans").fetchone()[0] == 0   # nothing called orphaned
    notes = costing.build_snapshot(conn, cfg, NOW).notes
    assert any("cannot see the GPU processes (another PID namespace)" in n for n in notes)
    conn.close()

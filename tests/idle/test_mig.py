"""MIG: a GPU's state comes from its slices; unknown utilisation is `unknown`, never idle, never waste.

The fake answers as a real MIG driver does: NotSupported utilisation on the MIG-enabled parent and on every MIG
device, processes listed on the MIG devices, GPM only on Hopper (nvmlGpmMigSampleGet + nvmlGpmMetricsGet).
Before: a MIG A100 whose two slices both ran jobs was `free-idle`, with an open episode booking all its cost as
waste and no cost for the slice users.
"""

from __future__ import annotations

import pytest

from gpuspend import costing
from gpuspend.store import connect
from tests.fake_pynvml import GIB, PID_BASE, FakeGpu, FakeNvml, FakeProc
from tests.idle.timeline import MIN, NOW_MS, cfg_file, collect

RATE = 3.60                              # $/GPU-hour of the physical GPU, from the config
START = NOW_MS - 20 * MIN
STEP = 10_000
CFG = "rates:\n  per_gpu:\n    GPU-mig-parent: 3.60\nidle:\n  after: 15m\n  busy_for: 30s\n"


def mig_box(name: str, *, gpm: bool, procs: bool, sm_active: float | None = None) -> FakeNvml:
    parent = FakeGpu(index=0, uuid="GPU-mig-parent", name=name, gpm=gpm, memory_total=80 * GIB)
    parent.mig = [FakeGpu(index=None, uuid=f"MIG-slice-{i}", name=f"{name} MIG 3g.40gb", gi=i + 1, ci=0,
                          memory_total=40 * GIB, memory_used=20 * GIB if procs else 0, sm_active=sm_active,
                          processes=[FakeProc(PID_BASE + 10 + i, 20 * GIB)] if procs else [])
                  for i in range(2)]
    return FakeNvml([parent])


def _run(db_path, tmp_path, fake):
    cfg = cfg_file(tmp_path, CFG)
    collect(db_path, cfg, fake, START, NOW_MS + 1, STEP)
    conn = connect(db_path)
    try:
        snap = costing.build_snapshot(conn, cfg, NOW_MS)
        episodes, _ = costing.idle_episodes(conn, cfg, START, NOW_MS + 1, NOW_MS)
    finally:
        conn.close()
    return snap, episodes


def test_a_mig_gpu_whose_slices_all_run_jobs_is_in_use_and_its_users_pay_for_it(db_path, tmp_path):
    snap, episodes = _run(db_path, tmp_path, mig_box("NVIDIA A100-SXM4-80GB", gpm=False, procs=True))
    g = {x.uuid: x for x in snap.gpus}
    assert g["GPU-mig-parent"].util is None                  # NVML said NotSupported: nothing is made up
    assert g["GPU-mig-parent"].state == "busy"
    assert [g[f"MIG-slice-{i}"].state for i in range(2)] == ["busy", "busy"]
    assert episodes == [] and not g["GPU-mig-parent"].episode_open
    assert snap.idle_waste_today == 0.0
    # 20 min of the $3.60/h GPU = $1.20, half to each slice's process (each slice is 40 of its 80 GB)
    assert snap.today_cost == pytest.approx(1.20, abs=0.001)
    costs = sorted((p.pid, round(p.cost_today, 4)) for p in snap.processes)
    assert costs == [(PID_BASE + 10, 0.60), (PID_BASE + 11, 0.60)]


def test_a_mig_gpu_with_no_utilisation_and_no_process_is_unknown_not_idle(db_path, tmp_path):
    snap, episodes = _run(db_path, tmp_path, mig_box("NVIDIA A100-SXM4-80GB", gpm=False, procs=False))
    g = {x.uuid: x for x in snap.gpus}
    assert g["GPU-mig-parent"].state == "unknown"
    assert episodes == [] and snap.idle_waste_today == 0.0   # unknown time is not waste
    assert snap.today_cost == pytest.approx(1.20, abs=0.001)  # the GPU is still paid for
    assert dict(snap.cost_per_hour_by_state)["unknown"] == pytest.approx(RATE)


def test_hopper_slices_use_gpm_sm_activity_idle_slices_make_an_episode(db_path, tmp_path):
    fake = mig_box("NVIDIA H100 80GB HBM3", gpm=True, procs=True, sm_active=1.0)
    snap, episodes = _run(db_path, tmp_path, fake)
    g = {x.uuid: x for x in snap.gpus}
    assert g["MIG-slice-0"].util == 1.0                      # SM activity from GPM, not a guess
    assert g["GPU-mig-parent"].state == "held-idle"
    (ep,) = [e for e in episodes if e.uuid == "GPU-mig-parent"]   # the money is on the physical GPU
    assert all(e.waste is None for e in episodes if e.uuid != "GPU-mig-parent")   # never counted twice
    # The first GPM sample has no predecessor (no metric yet: in use, its process holds memory); idle from
    # the second sample on: 1190 s x $3.60/h = $1.19
    assert ep.open and ep.start_ms == START + STEP
    assert ep.waste == pytest.approx(RATE * 1190 / 3600, abs=0.001)
    assert fake.calls["nvmlGpmMetricsGet"] > 0
    conn = connect(db_path)
    try:   # the collector's alert task: one idle alert, on the GPU that is paid for (not one per slice too)
        assert conn.execute("SELECT subject, state FROM alerts WHERE kind = 'idle'").fetchall() == [
            ("GPU-mig-parent", "open")]
    finally:
        conn.close()


def test_hopper_slices_busy_by_gpm_are_not_idle(db_path, tmp_path):
    snap, episodes = _run(db_path, tmp_path, mig_box("NVIDIA H100 80GB HBM3", gpm=True, procs=True,
                                                       sm_active=64.0))
    g = {x.uuid: x for x in snap.gpus}
    assert g["GPU-mig-parent"].state == "busy" and episodes == []


def test_gpm_samples_are_freed_when_the_collector_closes(db_path, tmp_path):
    fake = mig_box("NVIDIA H100 80GB HBM3", gpm=True, procs=True, sm_active=10.0)
    collect(db_path, cfg_file(tmp_path, CFG), fake, START, START + 5 * STEP, STEP, periodic=False)
    assert fake.calls["nvmlGpmSampleAlloc"] == 4             # two buffers per slice, reused every tick
    assert fake.calls["nvmlGpmSampleFree"] == 4

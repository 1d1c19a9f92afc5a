"""The NVML adapter against a fake pynvml that raises the real pynvml error classes."""

from __future__ import annotations

import os
import sys

import psutil
import pynvml
import pytest

from gpuspend.collectors.nvml import NvmlSource, nvml_available
from gpuspend.collectors.sampler import Sampler
from gpuspend.errors import NvmlUnavailable
from tests.fake_pynvml import GIB, PID_BASE, FakeGpu, FakeNvml, FakeProc

T0 = 1_794_744_000_000


def _read(fake: FakeNvml, ts: int = T0):
    src = NvmlSource("node-1", nvml=fake.module).open()
    return src, src.read(ts)


def test_eight_gpus_in_one_pass(fake_nvml: FakeNvml) -> None:
    src = NvmlSource("node-1").open()      # picks the fake from sys.modules
    r = src.read(T0)
    assert src.driver_version() == "570.86.15"
    assert [g.index for g in r.gpus] == list(range(8))
    g0 = r.gpus[0]
    assert (g0.util, g0.mem_util, g0.power, g0.power_limit, g0.temperature, g0.sm_clock) == (
        93.0, 50.0, 640.0, 700.0, 33.0, 1980)
    assert g0.mem_used == 64 * GIB and g0.memory_total == 81559 * 1024 * 1024
    assert [(p.pid, p.used_memory, p.sm_util) for p in g0.processes] == [(PID_BASE, 64 * GIB, 90.0)]
    assert r.gpus[5].processes == [] and r.gpus[5].power == 75.0
    assert r.host == "node-1" and r.source == "nvml"


def test_not_supported_and_no_permission_fields_become_null(fake_nvml: FakeNvml, conn) -> None:
    g = fake_nvml.gpus[2]
    g.fail["nvmlDeviceGetPowerUsage"] = pynvml.NVMLError_NotSupported
    g.fail["nvmlDeviceGetTotalEnergyConsumption"] = pynvml.NVMLError_NotSupported
    g.fail["nvmlDeviceGetTemperature"] = pynvml.NVMLError_NoPermission
    fake_nvml.gpus[1].fail["nvmlDeviceGetComputeRunningProcesses"] = pynvml.NVMLError_NoPermission
    src, r = _read(fake_nvml)
    assert (r.gpus[2].power, r.gpus[2].energy_mj, r.gpus[2].temperature) == (None, None, None)
    assert r.gpus[2].util == 93.0                       # the rest of that GPU is still read
    assert r.gpus[1].processes == [] and r.gpus[1].util == 93.0
    Sampler(conn).write(r)
    row = conn.execute("SELECT s.power, s.energy_mj, s.temperature, s.util FROM gpu_samples s "
                       "JOIN gpus g ON g.id = s.gpu_id WHERE g.idx = 2").fetchone()
    assert row == (None, None, None, 93.0)


def test_gpu_lost_mid_run_is_marked_and_others_keep_sampling(fake_nvml: FakeNvml, conn) -> None:
    sampler = Sampler(conn)
    src = NvmlSource("node-1").open()
    sampler.write(src.read(T0))
    fake_nvml.gpus[3].lost = True
    r = src.read(T0 + 2000)
    assert [g.lost for g in r.gpus] == [False] * 3 + [True] + [False] * 4
    assert r.gpus[3].uuid == fake_nvml.gpus[3].uuid
    sampler.write(r)
    lost = conn.execute("SELECT idx, lost_at FROM gpus WHERE lost_at IS NOT NULL").fetchall()
    assert lost == [(3, T0 + 2000)]
    counts = dict(conn.execute("SELECT g.idx, SUM(s.n) FROM gpu_samples s JOIN gpus g ON g.id = s.gpu_id "
                               "GROUP BY g.idx").fetchall())
    assert counts == {0: 2, 1: 2, 2: 2, 3: 1, 4: 2, 5: 2, 6: 2, 7: 2}
    # it comes back: lost_at cleared, sampled again
    fake_nvml.gpus[3].lost = False
    sampler.write(src.read(T0 + 4000))
    assert conn.execute("SELECT COUNT(*) FROM gpus WHERE lost_at IS NOT NULL").fetchone()[0] == 0


def test_gpu_lost_at_handle_lookup(fake_nvml: FakeNvml) -> None:
    src = NvmlSource("n").open()
    src.read(T0)
    fake_nvml.gpus[6].fail["nvmlDeviceGetHandleByIndex"] = pynvml.NVMLError_GpuIsLost
    r = src.read(T0 + 2000)
    assert [g.index for g in r.gpus if g.lost] == [6]
    assert len(r.gpus) == 8


def test_process_user_and_command_from_psutil_else_unknown(fake_nvml: FakeNvml) -> None:
    me = os.getpid()
    fake_nvml.gpus[0].processes.append(FakeProc(me, 2 * GIB, 5))
    _, r = _read(fake_nvml)
    procs = {p.pid: p for p in r.gpus[0].processes}
    mine = procs[me]
    assert mine.user == psutil.Process(me).username()
    assert os.path.basename(sys.executable) in mine.command or "python" in mine.command
    assert mine.started == int(psutil.Process(me).create_time())
    other = procs[PID_BASE]                    # a pid this namespace cannot see: kept, "unknown"
    assert (other.user, other.command, other.started) == ("unknown", "unknown", None)


def test_access_denied_keeps_the_pid(fake_nvml: FakeNvml, monkeypatch: pytest.MonkeyPatch) -> None:
    def deny(self):  # noqa: ANN001
        raise psutil.AccessDenied(self.pid)

    monkeypatch.setattr(psutil.Process, "cmdline", deny)
    monkeypatch.setattr(psutil.Process, "username", deny)
    fake_nvml.gpus[0].processes = [FakeProc(os.getpid(), GIB, None)]
    _, r = _read(fake_nvml)
    p = r.gpus[0].processes[0]
    assert (p.pid, p.user, p.command) == (os.getpid(), "unknown", "unknown")


def test_mig_devices_are_their_own_rows_linked_to_the_parent(conn) -> None:
    parent = FakeGpu(index=0, uuid="GPU-a100-parent", name="NVIDIA A100-SXM4-80GB", util=0)
    parent.mig = [
        FakeGpu(index=None, uuid=f"MIG-a100-{i}", name="NVIDIA A100-SXM4-80GB MIG 3g.40gb", gi=i + 1, ci=0,
                memory_total=40 * GIB, memory_used=10 * GIB, processes=[FakeProc(PID_BASE + 10 + i, 10 * GIB)])
        for i in range(2)
    ]
    parent.processes = [FakeProc(PID_BASE + 99, 5 * GIB)]   # would double count: must not be listed
    fake = FakeNvml([parent, FakeGpu(index=1, uuid="GPU-plain", name="NVIDIA A100-SXM4-40GB")])
    _, r = _read(fake)
    assert [g.uuid for g in r.gpus] == ["GPU-a100-parent", "MIG-a100-0", "MIG-a100-1", "GPU-plain"]
    p, m0 = r.gpus[0], r.gpus[1]
    assert p.util is None and p.processes == []            # utilisation is NotSupported with MIG on
    assert (m0.parent_uuid, m0.mig_gi, m0.mig_ci, m0.util) == ("GPU-a100-parent", 1, 0, None)
    assert [x.pid for x in m0.processes] == [PID_BASE + 10]
    Sampler(conn).write(r)
    rows = conn.execute("SELECT g.uuid, p.uuid, g.model FROM gpus g LEFT JOIN gpus p ON p.id = g.parent_id "
                        "ORDER BY g.id").fetchall()
    assert rows == [("GPU-a100-parent", None, "A100-80GB-SXM"), ("MIG-a100-0", "GPU-a100-parent", "A100-80GB-SXM"),
                    ("MIG-a100-1", "GPU-a100-parent", "A100-80GB-SXM"), ("GPU-plain", None, "A100-40GB-SXM")]


def test_driver_missing_is_one_line_with_the_demo_hint(fake_nvml: FakeNvml) -> None:
    fake_nvml.init_error = pynvml.NVMLError_LibraryNotFound
    with pytest.raises(NvmlUnavailable) as info:
        NvmlSource("n").open()
    line = info.value.line()
    assert "NVML is not available" in line and "gpuspend --demo" in line and "\n" not in line
    assert nvml_available() is False


def test_nvml_available_with_a_working_library(fake_nvml: FakeNvml) -> None:
    assert nvml_available() is True


def test_library_mismatch_on_processes_falls_back_to_v2(fake_nvml: FakeNvml) -> None:
    fake_nvml.mismatch_on_processes = True
    _, r = _read(fake_nvml)
    assert [p.pid for p in r.gpus[0].processes] == [PID_BASE]
    assert fake_nvml.calls["nvmlDeviceGetComputeRunningProcesses_v2"] == 8


def test_memory_v2_missing_falls_back_to_v1(fake_nvml: FakeNvml) -> None:
    fake_nvml.no_memory_v2 = True
    src, r = _read(fake_nvml)
    assert r.gpus[0].mem_used == 64 * GIB
    r2 = src.read(T0 + 2000)
    assert r2.gpus[0].mem_used == 64 * GIB


def test_process_utilization_not_found_means_no_new_samples(fake_nvml: FakeNvml) -> None:
    src, r = _read(fake_nvml)
    assert r.gpus[0].processes[0].sm_util == 90.0
    # Same driver timestamp: we pass the newest one we saw, so NVML answers NotFound -> 0% (not an error).
    r2 = src.read(T0 + 2000)
    assert r2.gpus[0].processes[0].sm_util == 0.0
    fake_nvml.gpus[0].util_ts_us += 2_000_000
    fake_nvml.gpus[0].processes[0].sm_util = 70
    assert src.read(T0 + 4000).gpus[0].processes[0].sm_util == 70.0


def test_process_utilization_not_supported_leaves_share_unknown(fake_nvml: FakeNvml) -> None:
    fake_nvml.gpus[0].fail["nvmlDeviceGetProcessUtilization"] = pynvml.NVMLError_NotSupported
    _, r = _read(fake_nvml)
    assert r.gpus[0].processes[0].sm_util is None


def test_real_pynvml_without_driver_says_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    # On GPU-less CI the real binding raises LibraryNotFound; on a GPU box this test has nothing to prove.
    if nvml_available():
        pytest.skip("this machine has a working NVIDIA driver")
    with pytest.raises(NvmlUnavailable, match="NVML is not available"):
        NvmlSource("n").open()


def test_terminal_escapes_in_command_lines_are_dropped(fake_nvml: FakeNvml, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(psutil.Process, "cmdline", lambda self: ["python", "\x1b]0;pwned\x07\x1b[31mred[/b]"])
    fake_nvml.gpus[0].processes = [FakeProc(os.getpid(), GIB, None)]
    _, r = _read(fake_nvml)
    command = r.gpus[0].processes[0].command
    assert "\x1b" not in command and "\x07" not in command
    assert command == "python red[/b]"      # escapes removed whole; markup-looking text stays data, shown as-is


def test_slow_calls_are_not_made_every_sample(fake_nvml: FakeNvml, monkeypatch: pytest.MonkeyPatch) -> None:
    """On an H200 the energy counter took ~4.5 ms a call and MIG mode ~0.4 ms: a 2 s collector reads the
    counter every 30 s and MIG mode every minute, and the counter is still there on the samples it is read."""
    import gpuspend.collectors.nvml as nvml_mod

    mono = [1000.0]
    monkeypatch.setattr(nvml_mod.time, "monotonic", lambda: mono[0])
    src = NvmlSource("node-1").open()
    energies = []
    for k in range(30):                          # one minute at 2 s
        r = src.read(T0 + k * 2000)
        energies.append(r.gpus[0].energy_mj)
        mono[0] += 2.0
    assert fake_nvml.calls["nvmlDeviceGetTotalEnergyConsumption"] == 8 * 2      # at 0 s and 30 s
    assert fake_nvml.calls["nvmlDeviceGetMigMode"] == 8                          # once per GPU
    assert [k for k, e in enumerate(energies) if e is not None] == [0, 15]
    assert all(r.gpus[i].util is not None for i in range(8))                   # the rest every sample

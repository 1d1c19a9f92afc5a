"""The real NVML path, against the real driver. Every other NVML test uses the fake in tests/fake_pynvml.py;
these run only where `nvmlInit()` succeeds (a GPU box) and are skipped with that reason elsewhere (CI has no
GPU). Run them on a GPU node with `python -m pytest tests/foundation/test_nvml_real.py`."""

from __future__ import annotations

import getpass
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpuspend.collectors.nvml import NvmlSource, nvml_available
from gpuspend.collectors.sampler import Sampler
from gpuspend.store import connect
from tests.conftest import run_cli

pytestmark = pytest.mark.skipif(not nvml_available(), reason="no NVIDIA driver here: nvmlInit() fails")

MIB = 1024 * 1024


def _smi(*fields: str) -> list[list[str]]:
    out = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return [[cell.strip() for cell in line.split(",")] for line in out.splitlines() if line.strip()]


def test_every_gpu_is_read_as_nvidia_smi_sees_it() -> None:
    with NvmlSource("gpu-node") as src:
        reading = src.read()
        driver = src.driver_version()
    physical = [g for g in reading.gpus if g.parent_uuid is None]
    assert physical, "NVML initialised but no GPU was read"
    for g in reading.gpus:
        assert g.uuid.startswith(("GPU-", "MIG-")) and g.name and not g.lost
        assert g.memory_total and g.mem_used is not None and 0 <= g.mem_used <= g.memory_total
        assert g.util is None or 0 <= g.util <= 100
    for g in physical:
        assert g.power is None or 0 < g.power < 2000
        assert g.power_limit is None or 0 < g.power_limit < 2000
    if shutil.which("nvidia-smi") is None:
        pytest.skip("nvidia-smi is not on PATH: nothing to compare against")
    smi = _smi("uuid", "name", "memory.total", "driver_version")
    assert {g.uuid for g in physical} == {row[0] for row in smi}
    by_uuid = {row[0]: row for row in smi}
    for g in physical:
        assert g.name == by_uuid[g.uuid][1]
        assert g.memory_total // MIB == int(by_uuid[g.uuid][2])
    assert driver == smi[0][3]


def test_one_real_sample_lands_in_sqlite(tmp_path: Path) -> None:
    conn = connect(tmp_path / "gpuspend.db")
    with NvmlSource("gpu-node") as src:
        reading = src.read()
    Sampler(conn).write(reading)
    n = len(reading.gpus)
    assert conn.execute("SELECT count(*) FROM gpus WHERE host = 'gpu-node'").fetchone()[0] == n
    assert conn.execute("SELECT SUM(n) FROM gpu_samples").fetchone()[0] == n
    assert conn.execute("SELECT count(*) FROM gpu_samples WHERE util IS NULL AND mem_used IS NULL").fetchone()[0] == 0
    conn.close()


def test_collect_once_doctor_and_report_on_the_real_gpus(tmp_path: Path) -> None:
    env = {"GPUSPEND_DB": str(tmp_path / "gpuspend.db")}
    doctor = run_cli("doctor", env=env)
    assert "driver " in doctor.stdout and "NVML is not available" not in doctor.stdout, doctor.stdout
    once = run_cli("collect", "--once", env=env)
    assert once.returncode == 0, once.stderr
    report = run_cli("--report", "--format", "json", env=env)
    assert report.returncode in (0, 1), report.stderr   # 1 = an alert fired (an idle GPU), still a report
    data = json.loads(report.stdout)
    with NvmlSource("gpu-node") as src:
        count = len(src.read().gpus)
    gpus = data["now"]["gpus"]
    assert len(gpus) == count
    # An H100/H200/A100... is in the dated price catalog; whatever it is, the report says where its rate is from.
    assert all(g["rate"]["source"] and g["rate"]["label"] for g in gpus)
    print(json.dumps(gpus, indent=1))


def _gpu_load_child() -> subprocess.Popen[str]:
    code = (
        "import time, torch\n"
        "x = torch.randn(8192, 8192, device='cuda')\n"
        "torch.cuda.synchronize(); print('ready', flush=True)\n"
        "end = time.time() + 30\n"
        "while time.time() < end:\n"
        "    y = x @ x\n"
        "    torch.cuda.synchronize()\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_a_process_using_the_gpu_is_attributed_to_its_pid_user_and_command() -> None:
    pytest.importorskip("torch", reason="torch puts load on the GPU for this test")
    child = _gpu_load_child()
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        seen = None
        with NvmlSource("gpu-node") as src:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                for g in src.read().gpus:
                    for p in g.processes:
                        if p.pid == child.pid and p.sm_util:
                            seen = (g, p)
                if seen:
                    break
                time.sleep(1)
        assert seen is not None, "the load process never showed up with SM use in NVML's process list"
        gpu, proc = seen
        assert proc.used_memory and proc.used_memory >= 256 * MIB
        assert proc.user == getpass.getuser()
        assert "python" in proc.command and "torch" in proc.command
        assert gpu.util and gpu.util > 0
    finally:
        child.kill()
        child.wait(timeout=30)

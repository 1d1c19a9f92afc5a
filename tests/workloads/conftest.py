"""A fake GPU node: 8 GPUs (fake NVML), a procfs tree, a Docker API on a unix socket, an `scontrol` on PATH,
a Jupyter server on 127.0.0.1 and the kubelet's pod log folders, each serving what the real one does."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from tests.fake_pynvml import GIB, FakeGpu, FakeNvml, FakeProc
from tests.workloads import fakes
from tests.workloads.fakes import CGROUPS, HEX_A, KERNEL, POD_UID

HOST = "node-1"
BUSY_PIDS = {0: 101, 1: 102, 2: 103, 3: 104, 4: 105}     # GPU index -> the pid running on it
IDLE_CONTAINER = "e" * 64


@dataclass
class Node:
    root: Path
    fake: FakeNvml
    docker_sock: Path
    pods_dir: Path
    runtime: Path
    docker_seen: list[str]
    config_text: str


def build_tree(root: Path, runtime: Path) -> None:
    fakes.add_proc(root, 101, cgroup=CGROUPS["docker-systemd"], cmdline=["python", "serve.py"], uid=0)
    fakes.add_proc(root, 102, cgroup=CGROUPS["k8s-containerd"], cmdline=["python", "train.py", "--epochs", "3"],
                   uid=0)
    fakes.add_proc(root, 103, cgroup=CGROUPS["slurm-v2"], cmdline=["python", "llama.py"], uid=2101171,
                   environ={"SLURM_JOB_ID": "1392969", "HOME": "/home/alice"})
    fakes.add_proc(root, 104, cgroup=CGROUPS["plain"],
                   cmdline=["python", "-m", "ipykernel_launcher", "-f", str(runtime / f"kernel-{KERNEL}.json")],
                   uid=1000)
    fakes.add_proc(root, 105, cgroup=CGROUPS["plain"], cmdline=["./bench", "--size", "8192"], uid=1000)
    (root / "stat").write_text("cpu  1 2 3 4\nbtime 1794700000\n")


def gpus() -> FakeNvml:
    out = []
    for i in range(8):
        g = FakeGpu(index=i, uuid=f"GPU-node1-{i}", memory_used=0)
        if i in BUSY_PIDS:
            g.util, g.memory_used = 93, 40 * GIB
            g.processes = [FakeProc(BUSY_PIDS[i], 40 * GIB, 90)]
        out.append(g)
    return FakeNvml(out)


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, httpserver: HTTPServer) -> Iterator[Node]:
    root, runtime, pods = tmp_path / "proc", tmp_path / "runtime", tmp_path / "pods"
    runtime.mkdir()
    build_tree(root, runtime)
    (pods / f"ml-team_trainer-7d9f_{POD_UID}").mkdir(parents=True)
    (pods / "kube-system_coredns-5d78_11111111-2222-3333-4444-555555555555").mkdir()
    # Jupyter: the server's runtime file next to the kernel's connection file, sessions on 127.0.0.1
    (runtime / "jpserver-4242.json").write_text(
        f'{{"url": "{httpserver.url_for("/")}", "token": "s3cret", "pid": 4242}}')
    httpserver.expect_request("/api/sessions", headers={"Authorization": "token s3cret"}).respond_with_json([
        {"id": "s1", "path": "notebooks/explore.ipynb", "name": "explore.ipynb", "type": "notebook",
         "kernel": {"id": KERNEL, "name": "python3", "execution_state": "idle",
                    "last_activity": "2026-11-15T11:00:00Z"}}])
    bin_dir = tmp_path / "bin"
    fakes.install_scontrol(bin_dir, {
        1392969: fakes.slurm_job(1392969, "train-llama", "alice", 2101171, "nlp", HOST, "2"),
        777: fakes.slurm_job(777, "reserved-idle", "bob", 2202, "vision", "node-[0-2]", "6"),
        888: fakes.slurm_job(888, "elsewhere", "carol", 2303, "nlp", "node-9", "6"),
    })
    fakes.prepend_path(monkeypatch, bin_dir)
    fake = gpus()
    monkeypatch.setitem(sys.modules, "pynvml", fake.module)
    monkeypatch.setenv("GPUSPEND_PROC_ROOT", str(root))
    short = Path(tempfile.mkdtemp(prefix="gs"))          # unix socket paths are limited to ~107 bytes
    sock = short / "docker.sock"
    containers = [
        fakes.container_doc(HEX_A, "llm-serve", device_ids=["0"]),
        fakes.container_doc(IDLE_CONTAINER, "idle-box", device_ids=["GPU-node1-5"]),
    ]
    cfg = (f"host: {HOST}\nrates:\n  per_host: {{{HOST}: 3.6}}\n"
           f"workloads:\n  docker_socket: {sock}\n  pods_log_dir: {pods}\n  timeout: 2s\n")
    try:
        with fakes.docker_api(sock, containers) as seen:
            yield Node(root, fake, sock, pods, runtime, seen, cfg)
    finally:
        shutil.rmtree(short, ignore_errors=True)

"""Each GPU process on the fake node is resolved to its workload and named from the node's own sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuspend.collectors.nvml import NvmlSource
from gpuspend.collectors.workloads import ResolverConfig, WorkloadResolver
from gpuspend.collectors.workloads.procfs import user_name
from gpuspend.config import load_config
from tests.workloads import fakes
from tests.workloads.conftest import HOST, Node
from tests.workloads.fakes import CGROUPS, HEX_A, KERNEL, POD_UID

T0 = 1_794_743_400_000


def _source(node: Node, tmp_path: Path) -> NvmlSource:
    p = tmp_path / "c.yaml"
    p.write_text(node.config_text)
    cfg = load_config(p)
    return NvmlSource(HOST, nvml=node.fake.module, workloads=cfg.workloads).open()


def test_every_process_resolves_to_its_named_workload(node: Node, tmp_path: Path) -> None:
    src = _source(node, tmp_path)
    r = src.read(T0)
    got = {g.index: (p.pid, p.user, p.command, p.workload) for g in r.gpus for p in g.processes}
    # user and command come from the tree (GPUSPEND_PROC_ROOT), not from this machine's /proc
    assert got[4][2] == "./bench --size 8192" and got[2][2] == "python llama.py"
    assert got[2][1] == user_name(2101171)                      # from the tree's `Uid:` line
    w = {i: v[3] for i, v in got.items()}
    assert (w[0].kind, w[0].id, w[0].name) == ("docker", HEX_A, "llm-serve")
    assert w[0].owner is None                                   # root in a container is nobody's name
    assert (w[1].kind, w[1].id, w[1].namespace, w[1].name) == ("k8s-pod", POD_UID, "ml-team", "trainer-7d9f")
    assert (w[2].kind, w[2].id, w[2].name, w[2].namespace, w[2].owner, w[2].detail) == (
        "slurm-job", "1392969", "train-llama", "nlp", "alice", "step_0")
    assert (w[3].kind, w[3].id, w[3].name, w[3].detail) == ("jupyter-kernel", KERNEL, "notebooks/explore.ipynb",
                                                             "idle")
    assert w[4] is None                                          # a plain process is its own workload
    assert src.workloads.notes() == []


def test_allocated_gpus_from_docker_and_slurm(node: Node, tmp_path: Path) -> None:
    r = _source(node, tmp_path).read(T0)
    held = sorted((uuid, w.kind, w.name) for uuid, w in r.allocations)
    assert held == [
        ("GPU-node1-0", "docker", "llm-serve"),
        ("GPU-node1-2", "slurm-job", "train-llama"),
        ("GPU-node1-5", "docker", "idle-box"),                  # by UUID in DeviceIDs
        ("GPU-node1-6", "slurm-job", "reserved-idle"),          # node-[0-2] holds node-1, GRES IDX:6
    ]                                                            # job 888 runs on node-9: not ours


def test_cached_once_per_process_lifetime(node: Node, tmp_path: Path) -> None:
    src = _source(node, tmp_path)
    src.read(T0)
    n = len(node.docker_seen)
    for i in range(5):
        src.read(T0 + 2000 * (i + 1))
    assert len(node.docker_seen) == n            # no Docker call per sample: names are cached


def test_missing_sources_are_skipped_with_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "proc"
    fakes.add_proc(root, 7, cgroup=CGROUPS["docker-cgroupfs"], cmdline=["python"], uid=0)
    fakes.add_proc(root, 8, cgroup=CGROUPS["slurm-v1"], cmdline=["python"], uid=2101171)
    fakes.add_proc(root, 9, cgroup=CGROUPS["k8s-cgroupfs"], cmdline=["python"], uid=0)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    res = WorkloadResolver(ResolverConfig(docker_socket=str(tmp_path / "none.sock"),
                                          pods_log_dir=str(tmp_path / "nopods"), timeout=0.2), root=root, host=HOST)
    d = res.resolve(7, 1)
    s = res.resolve(8, 1)
    k = res.resolve(9, 1)
    assert (d.kind, d.id, d.name) == ("docker", HEX_A, None)
    assert (s.kind, s.id, s.name, s.detail) == ("slurm-job", "280678", None, "step_interactive")
    assert s.owner == res.describe(8)[0]                          # v1 path carries the owner's uid
    assert (k.kind, k.id, k.name) == ("k8s-pod", POD_UID, None)
    notes = " | ".join(res.notes())
    assert "docker names: no Docker socket at" in notes and "skipped" in notes
    assert "slurm job names: scontrol is not on PATH; skipped" in notes
    assert "kubernetes pod names: cannot list" in notes


def test_team_tag_only_for_trusted_uids(tmp_path: Path) -> None:
    root = tmp_path / "proc"
    env = {"GPUSPEND_TEAM": "vision", "SLURM_JOB_ID": "not-a-number"}
    fakes.add_proc(root, 20, cgroup=CGROUPS["plain"], cmdline=["python"], uid=1000, environ=env)
    fakes.add_proc(root, 21, cgroup=CGROUPS["plain"], cmdline=["python"], uid=1001, environ=env)
    fakes.add_proc(root, 22, cgroup=CGROUPS["plain"], cmdline=["python"], uid=1002,
                   environ={"SLURM_JOB_ID": "4242"})
    res = WorkloadResolver(ResolverConfig(names=False, tag_uids=[1000]), root=root, host=HOST)
    trusted = res.resolve(20, 1)
    assert trusted is not None and trusted.team == "vision"
    assert res.resolve(21, 1) is None                            # anyone can set a variable: not trusted
    job = res.resolve(22, 1)
    assert job is not None and (job.kind, job.id) == ("slurm-job", "4242")   # from environ, cgroup said nothing


def test_unreadable_environ_and_vanished_process(tmp_path: Path) -> None:
    root = tmp_path / "proc"
    fakes.add_proc(root, 30, cgroup=CGROUPS["plain"], cmdline=["python"], uid=1000, environ={"A": "1"})
    (root / "30" / "environ").chmod(0)
    res = WorkloadResolver(ResolverConfig(names=False), root=root, host=HOST)
    assert res.resolve(30, 1) is None
    assert res.resolve(31, None) is None and res.describe(31) == ("unknown", "unknown", None)


def test_with_squeue_only_this_nodes_jobs_are_asked_for(node: Node, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    squeue = bin_dir / "squeue"
    # squeue --nodelist=node-1: only job 1392969 runs here by its account
    squeue.write_text('#!/bin/sh\necho "$@" >> "$(dirname "$0")/squeue.log"\necho 1392969\n')
    squeue.chmod(0o755)
    r = _source(node, tmp_path).read(T0)
    held = sorted((uuid, w.id) for uuid, w in r.allocations if w.kind == "slurm-job")
    assert held == [("GPU-node1-2", "1392969")]
    assert "--nodelist=node-1" in (bin_dir / "squeue.log").read_text()


def test_an_uninspectable_pid_is_not_read_again_on_every_tick(tmp_path: Path) -> None:
    """A collector in another PID namespace cannot see any GPU process: each is looked at once per 30 s, not
    four procfs reads per pid per second; a process that can be seen (its start time known) resolves at once."""
    root = tmp_path / "proc"
    root.mkdir()
    res = WorkloadResolver(ResolverConfig(names=False), root=root, host=HOST)
    reads: list[tuple[int, str]] = []
    real = res.fs._read
    res.fs._read = lambda pid, name: reads.append((pid, name)) or real(pid, name)
    assert res.resolve(31, None) is None
    first = len(reads)
    assert first > 0
    for _ in range(10):
        assert res.resolve(31, None) is None
    assert len(reads) == first                   # no procfs read for it until the retry time
    fakes.add_proc(root, 31, cgroup=CGROUPS["docker-systemd"], cmdline=["python"], uid=0)
    w = res.resolve(31, 7)                       # seen now (a start time): resolved at once
    assert w is not None and w.kind == "docker"

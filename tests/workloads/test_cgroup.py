"""Every public cgroup line form maps to its workload; a user session is a plain process."""

from __future__ import annotations

import pytest

from gpuspend.collectors.workloads import cgroup, kernel_file
from tests.workloads.fakes import CGROUPS, HEX_A, HEX_C, HEX_K, POD_UID, POD_UID2


@pytest.mark.parametrize(("form", "kind", "wid", "extra"), [
    ("slurm-v2", "slurm-job", "1392969", {"step": "step_0"}),
    ("slurm-v1", "slurm-job", "280678", {"step": "step_interactive", "uid": 2101171}),
    ("k8s-containerd", "k8s-pod", POD_UID, {"container": HEX_K}),
    ("k8s-crio", "k8s-pod", POD_UID2, {"container": HEX_C}),
    ("k8s-cgroupfs", "k8s-pod", POD_UID, {"container": HEX_K}),
    ("docker-systemd", "docker", HEX_A, {}),
    ("docker-cgroupfs", "docker", HEX_A, {}),
])
def test_each_public_form_names_its_workload(form: str, kind: str, wid: str, extra: dict) -> None:
    facts = cgroup.parse(CGROUPS[form])
    assert facts is not None and (facts.kind, facts.id) == (kind, wid)
    for k, v in extra.items():
        assert getattr(facts, k) == v


def test_variants_seen_on_real_nodes() -> None:
    # several slurmds per host, adopted ssh sessions, guaranteed pods directly under kubepods.slice
    f = cgroup.parse("0::/system.slice/node7_slurmstepd.scope/job_55/step_extern/user/task_special\n")
    assert f is not None and (f.kind, f.id, f.step) == ("slurm-job", "55", "step_extern")
    g = cgroup.parse(f"0::/kubepods.slice/kubepods-pod{POD_UID.replace('-', '_')}.slice/cri-containerd-{HEX_K}.scope")
    assert g is not None and (g.kind, g.id) == ("k8s-pod", POD_UID)
    k8s_docker = f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD_UID.replace('-', '_')}" \
                 f".slice/docker-{HEX_A}.scope"
    h = cgroup.parse(k8s_docker)
    assert h is not None and h.kind == "k8s-pod"          # a pod's container is the pod, not a bare container


def test_plain_process_and_garbage_are_no_workload() -> None:
    assert cgroup.parse(CGROUPS["plain"]) is None
    assert cgroup.parse("") is None
    assert cgroup.parse("not a cgroup file\n\x00\x01") is None
    assert cgroup.parse("0::/docker/notanid\n") is None


def test_jupyter_kernel_file_from_the_command_line() -> None:
    argv = ["/opt/conda/bin/python", "-m", "ipykernel_launcher", "-f",
            "/home/ann/.local/share/jupyter/runtime/kernel-5f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f.json"]
    assert kernel_file(argv) == argv[-1]
    assert kernel_file(["python", "--f=/run/kernel-abcdef12.json"]) == "/run/kernel-abcdef12.json"
    assert kernel_file(["python", "train.py", "-f", "config.json"]) is None

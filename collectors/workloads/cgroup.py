"""What a process's `/proc/<pid>/cgroup` says about the workload it belongs to.

The file is world-readable (mode 444), so this needs no privilege. Forms seen on real nodes (cgroup v2 is one
`0::PATH` line; v1 has one `N:controllers:PATH` line per hierarchy and any of them may carry the path):

  Slurm v2       /system.slice/slurmstepd.scope/job_1392969/step_0/user/task_0 (also `<host>_slurmstepd.scope`)
  Slurm v1       /slurm/uid_2101171/job_280678/step_interactive/task_0
  k8s systemd    .../kubepods-burstable-pod<uid, _ for ->.slice/cri-containerd-<64 hex>.scope (crio-, docker-)
  k8s cgroupfs   /kubepods/burstable/pod<uid>/<64 hex>
  Docker         /system.slice/docker-<64 hex>.scope (systemd) or /docker/<64 hex> (cgroupfs)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SLURM_V2 = re.compile(r"slurmstepd\.scope/job_(\d+)(?:/step_([A-Za-z0-9_]+))?")
_SLURM_V1 = re.compile(r"/slurm/uid_(\d+)/job_(\d+)(?:/step_([A-Za-z0-9_]+))?")
# Pod UID: dashed (cgroupfs) or with systemd's `_` for `-` (slice names cannot hold a dash).
_POD = re.compile(r"kubepods[^/]*?-pod([0-9a-fA-F_]{36})\.slice|/pod([0-9a-fA-F-]{36})(?:/|$)")
_K8S_CONTAINER = re.compile(r"(?:cri-containerd|crio|docker)-([0-9a-f]{64})\.scope|kubepods[^\n]*/([0-9a-f]{64})$")
_DOCKER = re.compile(r"(?:^|/)docker-([0-9a-f]{64})\.scope|(?:^|/)docker/([0-9a-f]{64})(?:/|$)")


@dataclass(frozen=True, slots=True)
class CgroupFacts:
    kind: str                       # k8s-pod | slurm-job | docker
    id: str                         # pod uid (dashed) | job id | full container id
    container: str | None = None    # k8s: the container id inside the pod
    step: str | None = None         # slurm: step_0, step_batch, step_extern, step_interactive
    uid: int | None = None          # slurm v1 carries the job owner's uid


def paths(text: str) -> list[str]:
    """The cgroup paths of a `/proc/<pid>/cgroup` file, v2 line first."""
    out: list[str] = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and parts[2].strip():
            out.append(parts[2].strip())
    out.sort(key=lambda p: 0 if p else 1)
    return out


def parse(text: str) -> CgroupFacts | None:
    """The workload named by a cgroup file, or None for a plain process (a user session, a service)."""
    for path in paths(text):
        facts = parse_path(path)
        if facts is not None:
            return facts
    return None


def parse_path(path: str) -> CgroupFacts | None:
    m = _SLURM_V2.search(path)
    if m:
        return CgroupFacts("slurm-job", m.group(1), step=_step(m.group(2)))
    m = _SLURM_V1.search(path)
    if m:
        return CgroupFacts("slurm-job", m.group(2), step=_step(m.group(3)), uid=int(m.group(1)))
    if "kubepods" in path:
        m = _POD.search(path)
        if m:
            uid = (m.group(1) or m.group(2)).replace("_", "-").lower()
            c = _K8S_CONTAINER.search(path)
            container = (c.group(1) or c.group(2)) if c else None
            return CgroupFacts("k8s-pod", uid, container=container)
    m = _DOCKER.search(path)
    if m:
        return CgroupFacts("docker", m.group(1) or m.group(2))
    return None


def _step(name: str | None) -> str | None:
    return f"step_{name}" if name else None

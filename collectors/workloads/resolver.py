"""GPU process -> workload (Kubernetes pod, Slurm job, Docker container, Jupyter kernel, else the process).

Resolved once per process lifetime (pid + start time), like user and command: the cgroup file (world-readable)
names pods, jobs and containers; a kernel's command line names its Jupyter kernel; `environ`, only when we may
read it, gives `SLURM_JOB_ID` and an optional team tag (honoured only for the UIDs listed in config, since
anyone can set a variable). Names come from optional sources (names.py), each skipped with a note.

Allocations ("allocated-idle"): GPUs a running container or Slurm job was given, whether or not a process runs
on them, refreshed every ALLOC_EVERY_S, so a GPU reserved and left idle is charged to whoever holds it.
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpuspend.collectors.reading import GpuReading, WorkloadReading
from gpuspend.collectors.workloads import cgroup, names
from gpuspend.collectors.workloads.procfs import ProcFS, is_default_root, proc_root, user_name
from gpuspend.fmt import clean

ALLOC_EVERY_S = 30.0
# Memory a GPU holds with no process is "held with no live process" from this much (a bare driver context uses
# a few hundred MiB at most; nvmlMemory_v2 leaves the reserved part out of `used`).
ORPHAN_MIN_BYTES = 1 << 30
CACHE_MAX = 4096
RETRY_UNKNOWN_S = 30.0      # a pid we could not inspect (gone, other PID namespace) is asked again after this
_KERNEL_FILE = re.compile(r"kernel-([0-9a-fA-F-]{8,64})\.json$")
TAG_KEYS = ("GPUSPEND_TEAM", "GPUSPEND_PROJECT")


@dataclass
class ResolverConfig:
    """What `workloads:` in config sets (gpuspend.config.WorkloadsConfig has the same names)."""
    names: bool = True
    timeout: float = 0.5
    docker_socket: str = "/var/run/docker.sock"
    pods_log_dir: str = "/var/log/pods"
    tag_uids: list[int] = field(default_factory=list)
    allocations: bool = True

    @classmethod
    def from_config(cls, section: Any) -> ResolverConfig:
        if section is None:
            return cls()
        out = cls()
        for name in ("names", "timeout", "docker_socket", "pods_log_dir", "tag_uids", "allocations"):
            value = getattr(section, name, None)
            if value is not None:
                setattr(out, name, value)
        return out


class WorkloadResolver:
    def __init__(self, cfg: ResolverConfig | None = None, *, root: Path | str | None = None,
                 host: str | None = None) -> None:
        self.cfg = cfg or ResolverConfig()
        self.fs = ProcFS(root if root is not None else proc_root())
        self.fake_root = not is_default_root(self.fs.root)
        self.host = (host or socket.gethostname()).split(".")[0]
        t = float(self.cfg.timeout)
        self.docker = names.Docker(self.cfg.docker_socket, t)
        self.pods = names.KubeletPods(self.cfg.pods_log_dir, t)
        self.slurm = names.Slurm(t)
        self.jupyter = names.Jupyter(t)
        self._cache: dict[tuple[int, int | None], WorkloadReading | None] = {}
        self._unknown_until: dict[int, float] = {}     # uninspectable pid -> when to look again
        self._alive: dict[int, bool] = {}              # pid -> in our procfs, for this pass (count_pids)
        self._alloc: list[tuple[str, WorkloadReading]] = []
        self._alloc_at = -1e9
        self.missing_pids = 0       # NVML pids not in our procfs in the last pass (another PID namespace)
        self.seen_pids = 0

    # -- the process itself (GPUSPEND_PROC_ROOT mode) -----------------------------------------------------------
    def describe(self, pid: int) -> tuple[str, str, int | None]:
        """(user, command, started) from the procfs tree: used instead of psutil when the root is not /proc."""
        fs = self.fs
        if not fs.exists(pid):
            return "unknown", "unknown", None
        user = clean(user_name(fs.uid(pid)), 512)
        parts = fs.cmdline(pid)
        command = clean(" ".join(parts) if parts else (fs.name(pid) or "unknown"), 512) or "unknown"
        ticks = fs.start_ticks(pid)
        started = None
        if ticks is not None:
            btime = _boot_time(fs.root)
            started = btime + ticks // _clock_ticks() if btime is not None else ticks
        return user, command, started

    # -- workloads --------------------------------------------------------------------------------------------
    def resolve(self, pid: int, started: int | None, user: str = "unknown") -> WorkloadReading | None:
        """The workload of one process (None: a plain process, the `process` kind)."""
        key = (pid, started)
        if key in self._cache:
            return self._cache[key]
        now = time.monotonic()
        if started is None and self._unknown_until.get(pid, 0.0) > now:
            return None                               # looked at moments ago and could not see it
        w = self._resolve(pid, user)
        if len(self._cache) >= CACHE_MAX:
            self._cache.clear()
        if len(self._unknown_until) >= CACHE_MAX:
            self._unknown_until.clear()
        if started is not None or w is not None:
            self._cache[key] = w
        else:
            # an uninspectable pid is asked again, but not on every tick: in another PID namespace every
            # pid is one, and reading four procfs files for each, each second, is the collector's whole cost
            self._unknown_until[pid] = now + RETRY_UNKNOWN_S
        return w

    def _resolve(self, pid: int, user: str) -> WorkloadReading | None:
        fs = self.fs
        text = fs.cgroup(pid)
        facts = cgroup.parse(text) if text else None
        env = fs.environ(pid)           # None when owner-only and not ours: fine
        uid = fs.uid(pid)
        team = None
        if env is not None and uid is not None and uid in set(self.cfg.tag_uids or ()):
            team = next((clean(env[k], 64) for k in TAG_KEYS if env.get(k)), None)
        owner = None if user in ("", "unknown", "root") else user
        if facts is None and env is not None and (env.get("SLURM_JOB_ID") or "").isdigit():
            facts = cgroup.CgroupFacts("slurm-job", env["SLURM_JOB_ID"])
        if facts is not None:
            if facts.kind == "slurm-job":
                return self._slurm(facts, owner, team)
            if facts.kind == "k8s-pod":
                return self._pod(facts, team)
            return self._container(facts.id, owner, team)
        kernel = kernel_file(fs.cmdline(pid) or [])
        if kernel is not None:
            return self._kernel(kernel, owner, team)
        if team is not None:
            return WorkloadReading("process", str(pid), owner=owner, team=team)
        return None

    def _slurm(self, facts: cgroup.CgroupFacts, owner: str | None, team: str | None) -> WorkloadReading:
        if owner is None and facts.uid is not None:
            owner = user_name(facts.uid)
        name = account = None
        if self.cfg.names:
            job = self.slurm.job(facts.id)
            if job:
                name = clean(job.get("JobName") or "", 200) or None
                account = clean(job.get("Account") or "", 64) or None
                owner = names.user_of(job.get("UserId")) or owner
        return WorkloadReading("slurm-job", facts.id, name=name, namespace=account, owner=owner, team=team,
                               detail=facts.step)

    def _pod(self, facts: cgroup.CgroupFacts, team: str | None) -> WorkloadReading:
        ns = pod = None
        if self.cfg.names:
            found = self.pods.lookup(facts.id)
            if found:
                ns, pod = found
        return WorkloadReading("k8s-pod", facts.id, name=pod, namespace=ns, team=team,
                               detail=facts.container[:12] if facts.container else None)

    def _container(self, cid: str, owner: str | None, team: str | None) -> WorkloadReading:
        name = None
        if self.cfg.names:
            doc = self.docker.inspect(cid)
            if doc:
                name = names.container_name(doc)
        return WorkloadReading("docker", cid, name=name, owner=owner, team=team)

    def _kernel(self, path: str, owner: str | None, team: str | None) -> WorkloadReading:
        m = _KERNEL_FILE.search(path)
        kid = m.group(1).lower() if m else path
        name = state = None
        if self.cfg.names:
            info = self.jupyter.kernel(kid, str(Path(path).parent) if "/" in path else None)
            if info:
                name, state = info.get("path"), info.get("state")
        return WorkloadReading("jupyter-kernel", kid, name=name, owner=owner, team=team, detail=state)

    # -- allocations --------------------------------------------------------------------------------------------
    def allocations(self, gpus: list[GpuReading], now: float | None = None) -> list[tuple[str, WorkloadReading]]:
        """[(gpu uuid, workload)] for GPUs a running container or Slurm job holds, refreshed every ALLOC_EVERY_S."""
        if not self.cfg.allocations:
            return []
        mono = time.monotonic() if now is None else now
        if mono - self._alloc_at < ALLOC_EVERY_S:
            return self._alloc
        self._alloc_at = mono
        physical = [g for g in gpus if g.parent_uuid is None and not g.lost]
        by_index = {str(g.index): g.uuid for g in physical if g.index is not None}
        uuids = {g.uuid for g in gpus}
        out: list[tuple[str, WorkloadReading]] = []
        if os.path.exists(self.cfg.docker_socket) and self.docker.available():
            for c in self.docker.running():
                w = WorkloadReading("docker", c["id"], name=c["name"])
                for uuid in _refs_to_uuids(c["gpus"], by_index, uuids, physical):
                    out.append((uuid, w))
        if self.slurm.available() and names.shutil.which(self.slurm.scontrol):
            for job in self.slurm.jobs(self.host):
                if job.get("JobState") not in (None, "RUNNING") or not job.get("JobId", "").isdigit():
                    continue
                w = WorkloadReading("slurm-job", job["JobId"], name=clean(job.get("JobName") or "", 200) or None,
                                    namespace=clean(job.get("Account") or "", 64) or None,
                                    owner=names.user_of(job.get("UserId")))
                for nodes, idx in job["nodes"]:
                    if self.host in {h.split(".")[0] for h in names.expand_hostlist(nodes)}:
                        # GRES IDX is the node's device index (its /dev/nvidiaN order), which NVML's index
                        # follows on nodes without CUDA_VISIBLE_DEVICES remapping.
                        for uuid in _refs_to_uuids([str(i) for i in idx], by_index, uuids, physical):
                            out.append((uuid, w))
        seen: set[tuple[str, str, str]] = set()
        self._alloc = [(u, w) for u, w in out if (u, w.kind, w.id) not in seen and not seen.add((u, w.kind, w.id))]
        return self._alloc

    # -- memory held with no live process ---------------------------------------------------------------------
    def orphans(self, gpus: list[GpuReading]) -> list[tuple[str, int]]:
        """[(uuid, bytes)] of GPUs holding memory that no live process owns: NVML lists only pids that have
        exited, or none while memory is used. Only when our procfs is the host's (otherwise every process
        would look gone) and not on a MIG-enabled parent (its processes are listed on its slices)."""
        if self.foreign_pid_namespace or self.fake_root and not self.fs.root.is_dir():
            return []
        parents = {g.parent_uuid for g in gpus if g.parent_uuid}
        out: list[tuple[str, int]] = []
        for g in gpus:
            if g.lost or g.uuid in parents or g.mem_used is None:
                continue
            if g.processes:
                if any(self._exists(p.pid) for p in g.processes):
                    continue
                held = sum(p.used_memory or 0 for p in g.processes) or g.mem_used
            else:
                held = g.mem_used
            if held >= ORPHAN_MIN_BYTES:
                out.append((g.uuid, int(held)))
        return out

    @property
    def pid_namespace(self) -> str | None:
        return None if self.seen_pids == 0 else "foreign" if self.foreign_pid_namespace else "host"

    # -- what doctor and the dashboard say --------------------------------------------------------------------
    def count_pids(self, pids: list[int]) -> None:
        """NVML's pids of one pass: how many our procfs does not show (a collector without the host PID ns)."""
        self._alive = {p: self.fs.exists(p) for p in pids}
        self.seen_pids = len(pids)
        self.missing_pids = sum(1 for p in pids if not self._alive[p])

    def _exists(self, pid: int) -> bool:
        """In our procfs: this pass's answer (count_pids) when there is one, else a fresh look."""
        hit = self._alive.get(pid)
        return self.fs.exists(pid) if hit is None else hit

    @property
    def foreign_pid_namespace(self) -> bool:
        """Every GPU process NVML lists is missing from our procfs: we are in another PID namespace, so those
        processes are not orphans and their memory is not "held with no live process"."""
        return self.seen_pids > 0 and self.missing_pids == self.seen_pids

    def notes(self) -> list[str]:
        out = [s.note for s in (self.docker, self.pods, self.slurm, self.jupyter) if s.note]
        if self.foreign_pid_namespace:
            out.append("GPU processes are not visible in this PID namespace: run the collector with the host PID "
                       "namespace (docker --pid=host, Kubernetes hostPID: true) to see workloads")
        return out

    def close(self) -> None:
        self.docker.close()


def kernel_file(argv: list[str]) -> str | None:
    """The connection file of a Jupyter kernel (`-f .../kernel-<uuid>.json`, `--f=...`), else None."""
    for i, arg in enumerate(argv):
        value = None
        if arg in ("-f", "--f") and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(("--f=", "-f=")):
            value = arg.split("=", 1)[1]
        if value and _KERNEL_FILE.search(value):
            return value
    return None


def _refs_to_uuids(refs: list[str], by_index: dict[str, str], uuids: set[str],
                   physical: list[GpuReading]) -> list[str]:
    out: list[str] = []
    for ref in refs:
        if ref == "all":
            out.extend(g.uuid for g in physical)
        elif ref in by_index:
            out.append(by_index[ref])
        elif ref in uuids:
            out.append(ref)
    return out


def _clock_ticks() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError, AttributeError):
        return 100


def _boot_time(root: Path) -> int | None:
    try:
        for line in (root / "stat").read_text().splitlines():
            if line.startswith("btime "):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None

"""What one sampling pass returns, whatever the source (real NVML or the simulator).

Plain slotted dataclasses: the sampler turns them into rows; nothing here touches NVML or SQLite.
Every measured field is Optional: None means NVML said NotSupported/NoPermission (stored as NULL).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class WorkloadReading:
    """What a process (or an idle GPU's holder) belongs to; see gpuspend.collectors.workloads."""
    kind: str                           # k8s-pod | slurm-job | docker | jupyter-kernel | process
    id: str                             # pod uid | job id | container id | kernel id | pid
    name: str | None = None             # pod | job name | container name | notebook path
    namespace: str | None = None        # k8s namespace | Slurm account
    owner: str | None = None            # user, where known (never the `root` of a container runtime)
    team: str | None = None             # GPUSPEND_TEAM / GPUSPEND_PROJECT, for the UIDs config trusts
    detail: str | None = None           # slurm step | k8s container id | kernel state


@dataclass(slots=True)
class ProcReading:
    pid: int
    used_memory: int | None = None      # bytes
    sm_util: float | None = None        # % of the GPU's SMs, when nvmlDeviceGetProcessUtilization gave one
    user: str = "unknown"               # "unknown" when the pid is in another namespace or hidden from us
    command: str = "unknown"
    started: int | None = None          # process start time (epoch s), so a reused pid is a new process
    workload: WorkloadReading | None = None   # None: a plain process


@dataclass(slots=True)
class GpuReading:
    uuid: str
    index: int | None
    name: str | None = None
    memory_total: int | None = None     # bytes
    power_limit: float | None = None    # watts
    util: float | None = None           # %
    mem_util: float | None = None       # %
    mem_used: int | None = None         # bytes
    power: float | None = None          # watts
    energy_mj: int | None = None        # total energy counter since driver load (mJ)
    temperature: float | None = None    # deg C
    sm_clock: int | None = None         # MHz
    processes: list[ProcReading] = field(default_factory=list)
    parent_uuid: str | None = None      # MIG device -> physical GPU
    mig_gi: int | None = None
    mig_ci: int | None = None
    lost: bool = False                  # NVML said GPU is lost: row kept, no measurements


@dataclass(slots=True)
class Reading:
    ts_ms: int
    host: str
    source: str                         # nvml | demo
    gpus: list[GpuReading]
    driver: str | None = None
    allocations: list[tuple[str, WorkloadReading]] = field(default_factory=list)  # (gpu uuid, holder)
    orphans: list[tuple[str, int]] = field(default_factory=list)   # (gpu uuid, bytes held with no live process)
    pid_namespace: str | None = None    # "host", or "foreign" when NVML's pids are not in our procfs

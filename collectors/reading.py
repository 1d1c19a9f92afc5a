"""What one sampling pass returns, whatever the source (real NVML or the simulator).

Plain slotted dataclasses: the sampler turns them into rows; nothing here touches NVML or SQLite.
Every measured field is Optional: None means NVML said NotSupported/NoPermission (stored as NULL).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class ProcReading:
    pid: int
    used_memory: int | None = None      # bytes
    sm_util: float | None = None        # % of the GPU's SMs, when nvmlDeviceGetProcessUtilization gave one
    user: str = "unknown"               # "unknown" when the pid is in another namespace or hidden from us
    command: str = "unknown"
    started: int | None = None          # process start time (epoch s), so a reused pid is a new process


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

"""A fake `pynvml` module for tests and benchmarks: the REAL pynvml error classes and constants, with the
device functions answered from plain Python objects that each test configures.

    fake = FakeNvml.h100_box()                 # 8 GPUs, one process each on 0-3
    fake.gpus[2].fail["nvmlDeviceGetPowerUsage"] = pynvml.NVMLError_NotSupported
    monkeypatch.setitem(sys.modules, "pynvml", fake.module)

Errors are raised the way the real binding raises them: `NVMLError(code)` gives the matching
`NVMLError_*` subclass instance; `NVMLLibraryMismatchError` (not an NVMLError) for a missing `_v3` symbol.

MIG answers as a real MIG driver does: utilisation and per-process utilisation are NotSupported on a MIG device
and on a MIG-enabled parent; processes are listed on the MIG devices. GPM (Hopper and newer, `gpm=True` on the
parent): `nvmlGpmMigSampleGet` fills a real `c_nvmlGpmSample_t` buffer and `nvmlGpmMetricsGet` answers
NVML_GPM_METRIC_SM_UTIL between two samples from the slice's `sm_active` at the time of the second one; a board
without GPM says isSupportedDevice 0 and NotSupported to the sample calls.
"""

from __future__ import annotations

import ctypes
import types
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pynvml as _real

GIB = 1024 ** 3
PID_BASE = 4_200_000      # above the largest possible pid_max (2**22): never a real process


@dataclass
class FakeProc:
    pid: int
    used_memory: int | None          # bytes; None like WDDM / MIG parents
    sm_util: int | None = None       # newest per-process SM sample (None: no sample)


@dataclass
class FakeGpu:
    index: int | None
    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    memory_total: int = 81559 * 1024 * 1024
    memory_used: int = 512 * 1024 * 1024
    util: int = 0
    mem_util: int = 0
    power_mw: int = 75_000
    power_limit_mw: int = 700_000
    energy_mj: int = 10_000_000
    temperature: int = 33
    sm_clock: int = 345
    processes: list[FakeProc] = field(default_factory=list)
    graphics: list[FakeProc] = field(default_factory=list)
    fail: dict[str, Any] = field(default_factory=dict)   # function name -> exception class/instance to raise
    lost: bool = False
    mig: list[FakeGpu] = field(default_factory=list)     # MIG devices (MIG mode on when non-empty)
    gi: int | None = None
    ci: int | None = None
    util_ts_us: int = 1_000_000
    gpm: bool = False                    # the board has GPM (Hopper and newer)
    sm_active: float | None = None       # a MIG slice's SM activity as GPM reports it (None: metric fails)


class _Handle:
    __slots__ = ("gpu",)

    def __init__(self, gpu: FakeGpu) -> None:
        self.gpu = gpu


def _copy_real_names(mod: types.ModuleType) -> None:
    for name in dir(_real):
        if name.startswith(("NVMLError", "NVML_", "nvmlMemory_", "c_nvml")) or name in (
                "NVMLLibraryMismatchError", "nvmlFriendlyObject"):
            setattr(mod, name, getattr(_real, name))


class FakeNvml:
    def __init__(self, gpus: list[FakeGpu] | None = None, *, driver: str = "570.86.15") -> None:
        self.gpus = gpus or []
        self.driver = driver
        self.init_error: Any = None           # e.g. NVMLError_LibraryNotFound: no driver
        self.mismatch_on_processes = False    # unversioned process call raises NVMLLibraryMismatchError
        self.no_memory_v2 = False             # driver < 510.39: version=nvmlMemory_v2 -> FunctionNotFound
        self.calls: Counter[str] = Counter()
        self.gpm_samples: dict[int, tuple[int, float | None]] = {}   # buffer address -> (gi, sm_active then)
        self._buffers: dict[int, Any] = {}
        self.initialised = False
        self.module = self._build()

    @classmethod
    def h100_box(cls, n: int = 8) -> FakeNvml:
        gpus = []
        for i in range(n):
            g = FakeGpu(index=i, uuid=f"GPU-fake-{i:04d}-0000-0000-000000000000")
            if i < 4:
                g.util, g.mem_util, g.power_mw, g.sm_clock = 93, 50, 640_000, 1980
                g.memory_used = 64 * GIB
                g.processes = [FakeProc(PID_BASE + i, 64 * GIB, 90)]
            g.energy_mj += i * 1000
            gpus.append(g)
        return cls(gpus)

    # -- plumbing ----------------------------------------------------------------------------------------
    def _raise(self, err: Any) -> None:
        if isinstance(err, type) and issubclass(err, BaseException):
            raise err()
        if isinstance(err, int):
            raise _real.NVMLError(err)
        raise err

    def _dev(self, fn: str, h: _Handle) -> FakeGpu:
        self.calls[fn] += 1
        if not self.initialised:
            raise _real.NVMLError(_real.NVML_ERROR_UNINITIALIZED)
        g = h.gpu
        if g.lost:
            raise _real.NVMLError(_real.NVML_ERROR_GPU_IS_LOST)
        if fn in g.fail:
            self._raise(g.fail[fn])
        return g

    def _build(self) -> types.ModuleType:
        mod = types.ModuleType("pynvml")
        mod.__file__ = "<fake pynvml>"
        _copy_real_names(mod)
        me = self
        ns = types.SimpleNamespace

        def nvmlInit() -> None:
            me.calls["nvmlInit"] += 1
            if me.init_error is not None:
                me._raise(me.init_error)
            me.initialised = True

        def nvmlShutdown() -> None:
            me.initialised = False

        def nvmlSystemGetDriverVersion() -> str:
            return me.driver

        def nvmlDeviceGetCount() -> int:
            return len(me.gpus)

        def nvmlDeviceGetHandleByIndex(i: int) -> _Handle:
            me.calls["nvmlDeviceGetHandleByIndex"] += 1
            g = me.gpus[i]
            if "nvmlDeviceGetHandleByIndex" in g.fail:
                me._raise(g.fail["nvmlDeviceGetHandleByIndex"])
            return _Handle(g)

        def nvmlDeviceGetUUID(h: _Handle) -> str:
            return me._dev("nvmlDeviceGetUUID", h).uuid

        def nvmlDeviceGetName(h: _Handle) -> str:
            return me._dev("nvmlDeviceGetName", h).name

        def nvmlDeviceGetMemoryInfo(h: _Handle, version: Any = None) -> Any:
            g = me._dev("nvmlDeviceGetMemoryInfo", h)
            free = g.memory_total - g.memory_used
            if version is not None:
                if me.no_memory_v2:
                    raise _real.NVMLError(_real.NVML_ERROR_FUNCTION_NOT_FOUND)
                return ns(version=version, total=g.memory_total, reserved=0, free=free, used=g.memory_used)
            return ns(total=g.memory_total, free=free, used=g.memory_used)

        def nvmlDeviceGetUtilizationRates(h: _Handle) -> Any:
            g = me._dev("nvmlDeviceGetUtilizationRates", h)
            if g.mig or g.gi is not None:    # "not supported on MIG-enabled GPUs"
                raise _real.NVMLError(_real.NVML_ERROR_NOT_SUPPORTED)
            return ns(gpu=g.util, memory=g.mem_util)

        def nvmlDeviceGetPowerUsage(h: _Handle) -> int:
            return me._dev("nvmlDeviceGetPowerUsage", h).power_mw

        def nvmlDeviceGetEnforcedPowerLimit(h: _Handle) -> int:
            return me._dev("nvmlDeviceGetEnforcedPowerLimit", h).power_limit_mw

        def nvmlDeviceGetTotalEnergyConsumption(h: _Handle) -> int:
            return me._dev("nvmlDeviceGetTotalEnergyConsumption", h).energy_mj

        def nvmlDeviceGetTemperature(h: _Handle, sensor: int) -> int:
            return me._dev("nvmlDeviceGetTemperature", h).temperature

        def nvmlDeviceGetClockInfo(h: _Handle, kind: int) -> int:
            return me._dev("nvmlDeviceGetClockInfo", h).sm_clock

        def nvmlDeviceGetMigMode(h: _Handle) -> list[int]:
            g = me._dev("nvmlDeviceGetMigMode", h)
            if g.gi is None and not g.mig and "nvmlDeviceGetMigMode" not in g.fail:
                raise _real.NVMLError(_real.NVML_ERROR_NOT_SUPPORTED)   # pre-Ampere boards
            mode = _real.NVML_DEVICE_MIG_ENABLE if g.mig else _real.NVML_DEVICE_MIG_DISABLE
            return [mode, mode]

        def nvmlDeviceGetMaxMigDeviceCount(h: _Handle) -> int:
            me._dev("nvmlDeviceGetMaxMigDeviceCount", h)
            return 7

        def nvmlDeviceGetMigDeviceHandleByIndex(h: _Handle, i: int) -> _Handle:
            g = me._dev("nvmlDeviceGetMigDeviceHandleByIndex", h)
            if i >= len(g.mig):
                raise _real.NVMLError(_real.NVML_ERROR_NOT_FOUND)
            return _Handle(g.mig[i])

        def nvmlDeviceGetGpuInstanceId(h: _Handle) -> int:
            return me._dev("nvmlDeviceGetGpuInstanceId", h).gi

        def nvmlDeviceGetComputeInstanceId(h: _Handle) -> int:
            return me._dev("nvmlDeviceGetComputeInstanceId", h).ci

        def _plist(procs: list[FakeProc]) -> list[Any]:
            return [ns(pid=p.pid, usedGpuMemory=p.used_memory, gpuInstanceId=0xFFFFFFFF,
                       computeInstanceId=0xFFFFFFFF) for p in procs]

        def nvmlDeviceGetComputeRunningProcesses(h: _Handle) -> list[Any]:
            g = me._dev("nvmlDeviceGetComputeRunningProcesses", h)
            if me.mismatch_on_processes:
                raise _real.NVMLLibraryMismatchError("Unversioned function called and the pyNVML version does "
                                                     "not match the NVML lib version.")
            return _plist(g.processes)

        def nvmlDeviceGetComputeRunningProcesses_v2(h: _Handle) -> list[Any]:
            return _plist(me._dev("nvmlDeviceGetComputeRunningProcesses_v2", h).processes)

        def nvmlDeviceGetGraphicsRunningProcesses(h: _Handle) -> list[Any]:
            g = me._dev("nvmlDeviceGetGraphicsRunningProcesses", h)
            if me.mismatch_on_processes:
                raise _real.NVMLLibraryMismatchError("Unversioned function called")
            return _plist(g.graphics)

        def nvmlDeviceGetGraphicsRunningProcesses_v2(h: _Handle) -> list[Any]:
            return _plist(me._dev("nvmlDeviceGetGraphicsRunningProcesses_v2", h).graphics)

        def nvmlDeviceGetProcessUtilization(h: _Handle, since_us: int) -> list[Any]:
            g = me._dev("nvmlDeviceGetProcessUtilization", h)
            if g.mig or g.gi is not None:
                raise _real.NVMLError(_real.NVML_ERROR_NOT_SUPPORTED)
            samples = [ns(pid=p.pid, timeStamp=g.util_ts_us, smUtil=p.sm_util, memUtil=0, encUtil=0, decUtil=0)
                       for p in g.processes if p.sm_util is not None and g.util_ts_us > since_us]
            if not samples:
                raise _real.NVMLError(_real.NVML_ERROR_NOT_FOUND)   # the normal "no new samples" answer
            return samples

        def nvmlGpmQueryDeviceSupport(h: _Handle) -> Any:
            g = me._dev("nvmlGpmQueryDeviceSupport", h)
            return ns(version=_real.NVML_GPM_SUPPORT_VERSION, isSupportedDevice=1 if g.gpm else 0)

        def nvmlGpmSampleAlloc() -> Any:
            me.calls["nvmlGpmSampleAlloc"] += 1
            buf = ctypes.create_string_buffer(16)
            self._buffers[ctypes.addressof(buf)] = buf
            return ctypes.cast(buf, _real.c_nvmlGpmSample_t)

        def nvmlGpmSampleFree(sample: Any) -> None:
            me.calls["nvmlGpmSampleFree"] += 1
            addr = ctypes.cast(sample, ctypes.c_void_p).value
            self._buffers.pop(addr, None)
            self.gpm_samples.pop(addr, None)

        def nvmlGpmSampleGet(h: _Handle, sample: Any) -> Any:
            g = me._dev("nvmlGpmSampleGet", h)
            if not g.gpm:
                raise _real.NVMLError(_real.NVML_ERROR_NOT_SUPPORTED)
            self.gpm_samples[ctypes.cast(sample, ctypes.c_void_p).value] = (-1, None)
            return sample

        def nvmlGpmMigSampleGet(h: _Handle, gi: int, sample: Any) -> Any:
            g = me._dev("nvmlGpmMigSampleGet", h)
            if not g.gpm:
                raise _real.NVMLError(_real.NVML_ERROR_NOT_SUPPORTED)
            mig = next((m for m in g.mig if m.gi == gi), None)
            if mig is None:
                raise _real.NVMLError(_real.NVML_ERROR_INVALID_ARGUMENT)
            self.gpm_samples[ctypes.cast(sample, ctypes.c_void_p).value] = (gi, mig.sm_active)
            return sample

        def nvmlGpmMetricsGet(mg: Any) -> Any:
            me.calls["nvmlGpmMetricsGet"] += 1
            first = self.gpm_samples.get(ctypes.cast(mg.sample1, ctypes.c_void_p).value)
            second = self.gpm_samples.get(ctypes.cast(mg.sample2, ctypes.c_void_p).value)
            if first is None or second is None or first[0] != second[0]:
                raise _real.NVMLError(_real.NVML_ERROR_INVALID_ARGUMENT)
            for i in range(mg.numMetrics):
                m = mg.metrics[i]
                if m.metricId == _real.NVML_GPM_METRIC_SM_UTIL and second[1] is not None:
                    m.value, m.nvmlReturn = float(second[1]), _real.NVML_SUCCESS
                else:
                    m.value, m.nvmlReturn = 0.0, _real.NVML_ERROR_NOT_SUPPORTED
            return mg

        for fn in list(locals().values()):
            if callable(fn) and getattr(fn, "__name__", "").startswith("nvml"):
                setattr(mod, fn.__name__, fn)
        return mod

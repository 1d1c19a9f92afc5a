"""The thin adapter over NVIDIA's NVML (`pynvml` from nvidia-ml-py): one `read()` = every GPU, MIG device
and process, in one pass.

Every call goes through `_q`, so a field the board does not support (NotSupported), or we may not read
(NoPermission), becomes None instead of an exception; a lost GPU is marked lost and the others keep being
sampled. `NVMLLibraryMismatchError` is not an `NVMLError` subclass (driver without the `_v3` symbol), so it is
caught on its own. `pynvml` is imported lazily in `open()`, which lets tests put a fake module in sys.modules.

MIG: NVML gives no utilisation for a MIG device or a MIG-enabled parent (NotSupported). Where GPM is there
(Hopper and newer), a slice's utilisation is its SM activity between two GPM samples (`nvmlGpmMigSampleGet` +
`nvmlGpmMetricsGet`, NVML_GPM_METRIC_SM_UTIL); elsewhere it stays None, and the cost engine takes the state
from the slice's processes (gpuspend.idle: in use with a process, else unknown; the parent from its slices).
"""

from __future__ import annotations

import importlib
import socket
import time
from types import ModuleType
from typing import Any

from gpuspend import clock
from gpuspend.collectors.reading import GpuReading, ProcReading, Reading
from gpuspend.errors import NvmlUnavailable
from gpuspend.fmt import clean

_NA_U64 = 0xFFFFFFFFFFFFFFFF   # NVML_VALUE_NOT_AVAILABLE for unsigned long long
_NA_U32 = 0xFFFFFFFF
PROC_CACHE_S = 60.0             # user/command of a pid are looked up at most once a minute
# Measured on an H200 (driver 580): nvmlDeviceGetTotalEnergyConsumption takes ~4.5 ms a call, more than the
# rest of a GPU's pass together, and nvmlDeviceGetMigMode ~0.4 ms. The energy counter is cumulative, so
# reading it every ENERGY_EVERY_S loses nothing (the rollup spreads each counter delta over the samples
# between two readings); MIG mode only changes with a GPU reset, so it is re-read every MIG_RECHECK_S.
ENERGY_EVERY_S = 30.0
MIG_RECHECK_S = 60.0
DEMO_HINT = "no NVIDIA driver here? try the demo: `gpuspend --demo` or `gpuspend collect --demo`"


def _import_pynvml() -> ModuleType:
    try:
        return importlib.import_module("pynvml")
    except ImportError as exc:
        raise NvmlUnavailable(f"NVML is not available: cannot import pynvml ({exc})",
                              hint="install nvidia-ml-py; " + DEMO_HINT) from None


def nvml_available() -> bool:
    """Cheap probe (well under a millisecond without a driver), used by `--auto-demo` and doctor."""
    try:
        nv = importlib.import_module("pynvml")
        nv.nvmlInit()
    except Exception:
        return False
    try:
        nv.nvmlShutdown()
    except Exception:
        pass
    return True


class _Never(Exception):
    """Stands in for an error class this pynvml release does not have (so it is never raised)."""


class _Lost(Exception):
    """This GPU answered GPU_IS_LOST (or Unknown at handle lookup): mark it lost, keep sampling the others."""


class _ProcInfo:
    """pid -> (user, command, started) via psutil, cached. Other PID namespace, hidepid, a process gone
    between NVML and /proc: the pid is kept with "unknown" user/command."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[float, str, str, int | None]] = {}

    def lookup(self, pid: int) -> tuple[str, str, int | None]:
        now = time.monotonic()
        hit = self._cache.get(pid)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2], hit[3]
        user, command, started = _describe(pid)
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[pid] = (now + PROC_CACHE_S, user, command, started)
        return user, command, started


def _describe(pid: int) -> tuple[str, str, int | None]:
    import psutil

    try:
        proc = psutil.Process(pid)
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError, OSError):
        return "unknown", "unknown", None
    user, command, started = "unknown", "unknown", None
    try:
        started = int(proc.create_time())
    except (psutil.Error, OSError):
        pass
    try:
        user = clean(proc.username(), 512)      # outside text is data: cleaned once, at the door
    except (psutil.Error, OSError, KeyError):
        pass
    try:
        parts = proc.cmdline()
        command = clean(" ".join(parts) if parts else proc.name(), 512) or "unknown"
    except (psutil.Error, OSError):
        pass
    return user, command, started


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return clean(str(value), 200)


class NvmlSource:
    """Real GPUs. `open()` once, `read()` every interval, `close()` at the end."""

    source = "nvml"

    def __init__(self, host: str | None = None, *, nvml: ModuleType | None = None,
                 workloads: Any = None) -> None:
        self.host = host or socket.gethostname()
        # workloads: a WorkloadResolver, a ResolverConfig / config section for one, or None for the defaults
        self._workloads: Any = workloads
        self._nv: ModuleType | None = nvml
        self._opened = False
        self._mem_v1 = False                         # driver without nvmlMemory_v2: use v1 from then on
        self._uuid_by_index: dict[int, str] = {}     # to report a GPU that is lost after we saw it
        self._last_util_ts: dict[str, int] = {}      # newest process-util timestamp (us) per GPU uuid
        self._energy_due: dict[str, float] = {}      # uuid -> monotonic time the energy counter is next read
        self._mig: dict[str, tuple[float, bool]] = {}  # uuid -> (monotonic expiry, MIG enabled)
        self._procs = _ProcInfo()
        self._errors: tuple[type[BaseException], ...] = ()
        self._mismatch: type[BaseException] = _Never
        self._lost: type[BaseException] = _Never
        self._lost_or_unknown: tuple[type[BaseException], ...] = ()
        self._not_found: type[BaseException] = _Never
        self._no_v2: tuple[type[BaseException], ...] = ()
        self._gpm: _Gpm | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def open(self) -> NvmlSource:
        nv = self._nv or _import_pynvml()
        self._nv = nv
        try:
            nv.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound / DriverNotLoaded / LibRmVersionMismatch / ...
            raise NvmlUnavailable(f"NVML is not available: {_reason(exc)}", hint=DEMO_HINT) from None
        # Resolved once: older nvidia-ml-py releases lack some classes, and a missing name in an
        # `except` clause would itself raise while handling an error.
        self._mismatch = getattr(nv, "NVMLLibraryMismatchError", _Never)
        self._errors = (nv.NVMLError, self._mismatch)
        self._lost = getattr(nv, "NVMLError_GpuIsLost", _Never)
        self._lost_or_unknown = (self._lost, getattr(nv, "NVMLError_Unknown", _Never))
        self._not_found = getattr(nv, "NVMLError_NotFound", _Never)
        self._no_v2 = (getattr(nv, "NVMLError_FunctionNotFound", _Never),
                       getattr(nv, "NVMLError_ArgumentVersionMismatch", _Never), TypeError)
        self._gpm = _Gpm(nv, self._errors)
        self._opened = True
        self._open_workloads()
        return self

    def _open_workloads(self) -> None:
        from gpuspend.collectors.workloads import ResolverConfig, WorkloadResolver

        if not isinstance(self._workloads, WorkloadResolver):
            self._workloads = WorkloadResolver(ResolverConfig.from_config(self._workloads), host=self.host)

    @property
    def workloads(self) -> Any:
        """The WorkloadResolver (its notes() say which name sources were skipped, and why)."""
        return self._workloads

    def close(self) -> None:
        if self._opened and self._nv is not None:
            if self._gpm is not None:
                self._gpm.close()
            try:
                self._nv.nvmlShutdown()
            except Exception:
                pass
        self._opened = False

    def __enter__(self) -> NvmlSource:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def driver_version(self) -> str | None:
        return _text(self._q(self._nv.nvmlSystemGetDriverVersion))

    # -- one call, wrapped -----------------------------------------------------------------------------
    def _q(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except self._lost:
            raise _Lost() from None
        except self._errors:
            # NotSupported, NoPermission, NotFound, FunctionNotFound, LibraryMismatch, Unknown...: no value
            return None

    # -- one pass --------------------------------------------------------------------------------------
    def read(self, now_ms: int | None = None) -> Reading:
        nv = self._nv
        if not self._opened:
            self.open()
            nv = self._nv
        ts = clock.now_ms() if now_ms is None else now_ms
        count = self._q(nv.nvmlDeviceGetCount) or 0
        gpus: list[GpuReading] = []
        for index in range(count):
            try:
                try:
                    handle = nv.nvmlDeviceGetHandleByIndex(index)
                except self._lost_or_unknown:
                    raise _Lost() from None
                except self._errors:
                    continue
                gpu = self._read_gpu(handle, index)
                gpus.append(gpu)
                if gpu.parent_uuid is None:
                    gpus.extend(self._read_mig(handle, gpu))
            except _Lost:
                uuid = self._uuid_by_index.get(index)
                if uuid is not None:
                    gpus.append(GpuReading(uuid=uuid, index=index, lost=True))
        reading = Reading(ts_ms=ts, host=self.host, source=self.source, gpus=gpus)
        self._add_workloads(reading)
        return reading

    def _add_workloads(self, reading: Reading) -> None:
        """Workload of each process (cached per process lifetime) and the GPUs workloads hold; never fails a
        sample: a resolver problem leaves the process a plain `process`."""
        res = self._workloads
        if res is None or not hasattr(res, "resolve"):
            return
        try:
            procs = [p for g in reading.gpus for p in g.processes]
            res.count_pids([p.pid for p in procs])
            for p in procs:
                p.workload = res.resolve(p.pid, p.started, p.user)
            reading.allocations = list(res.allocations(reading.gpus))
            reading.orphans = res.orphans(reading.gpus)
            reading.pid_namespace = res.pid_namespace
        except Exception:
            pass

    def _read_gpu(self, h: Any, index: int | None, parent: GpuReading | None = None,
                  parent_h: Any = None) -> GpuReading:
        nv, q = self._nv, self._q
        uuid = _text(q(nv.nvmlDeviceGetUUID, h))
        if uuid is None:
            raise _Lost()  # no identity, nothing to key rows on
        if index is not None and parent is None:
            self._uuid_by_index[index] = uuid
        g = GpuReading(uuid=uuid, index=index, name=_text(q(nv.nvmlDeviceGetName, h)))
        total, used = self._memory(h)
        g.memory_total, g.mem_used = total, used
        rates = q(nv.nvmlDeviceGetUtilizationRates, h)   # NotSupported on MIG-enabled GPUs and MIG devices
        if rates is not None:
            g.util, g.mem_util = float(rates.gpu), float(rates.memory)
        if parent is None:
            mw = q(nv.nvmlDeviceGetPowerUsage, h)
            g.power = mw / 1000.0 if mw is not None else None
            lim = q(nv.nvmlDeviceGetEnforcedPowerLimit, h)
            g.power_limit = lim / 1000.0 if lim is not None else None
            mono = time.monotonic()
            if mono >= self._energy_due.get(uuid, 0.0):
                g.energy_mj = q(nv.nvmlDeviceGetTotalEnergyConsumption, h)
                self._energy_due[uuid] = mono + ENERGY_EVERY_S
            temp = q(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU)
            g.temperature = float(temp) if temp is not None else None
            g.sm_clock = q(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM)
        else:
            g.parent_uuid = parent.uuid
            g.name = g.name or parent.name
            g.mig_gi = q(nv.nvmlDeviceGetGpuInstanceId, h)
            g.mig_ci = q(nv.nvmlDeviceGetComputeInstanceId, h)
            if g.util is None and g.mig_gi is not None and self._gpm is not None \
                    and self._gpm.supported(parent_h, parent.uuid):
                g.util = self._gpm.mig_sm_util(parent_h, parent.uuid, g.mig_gi)
        if parent is not None or not self._mig_enabled(h, uuid):
            # With MIG on, processes are listed on the MIG devices (the parent needs privileges and would
            # double count them).
            g.processes = self._processes(h, uuid)
        return g

    def _memory(self, h: Any) -> tuple[int | None, int | None]:
        nv = self._nv
        info = None
        if not self._mem_v1 and hasattr(nv, "nvmlMemory_v2"):
            try:
                info = nv.nvmlDeviceGetMemoryInfo(h, version=nv.nvmlMemory_v2)
            except self._lost:
                raise _Lost() from None
            except self._no_v2:
                self._mem_v1 = True   # driver older than 510.39: v1 from now on
            except self._errors:
                return None, None
        if info is None:
            info = self._q(nv.nvmlDeviceGetMemoryInfo, h)
        if info is None:
            return None, None
        total = info.total if info.total != _NA_U64 else None
        used = info.used if info.used != _NA_U64 else None
        return total, used

    def _mig_enabled(self, h: Any, uuid: str) -> bool:
        mono = time.monotonic()
        hit = self._mig.get(uuid)
        if hit is not None and hit[0] > mono:
            return hit[1]
        nv = self._nv
        mode = self._q(nv.nvmlDeviceGetMigMode, h)
        enabled = bool(mode) and mode[0] == nv.NVML_DEVICE_MIG_ENABLE
        self._mig[uuid] = (mono + MIG_RECHECK_S, enabled)
        return enabled

    def _read_mig(self, h: Any, parent: GpuReading) -> list[GpuReading]:
        nv = self._nv
        if not self._mig_enabled(h, parent.uuid):
            return []
        out: list[GpuReading] = []
        for i in range(self._q(nv.nvmlDeviceGetMaxMigDeviceCount, h) or 0):
            mh = self._q(nv.nvmlDeviceGetMigDeviceHandleByIndex, h, i)
            if mh is None:      # NotFound: slot not populated
                continue
            try:
                out.append(self._read_gpu(mh, None, parent, h))
            except _Lost:
                continue
        return out

    def _processes(self, h: Any, uuid: str) -> list[ProcReading]:
        by_pid: dict[int, ProcReading] = {}
        for fn_name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            infos = self._proc_list(h, fn_name)
            for p in infos or ():
                mem = p.usedGpuMemory
                mem = None if mem is None or mem == _NA_U64 else int(mem)
                prev = by_pid.get(p.pid)
                if prev is None:
                    by_pid[p.pid] = ProcReading(pid=int(p.pid), used_memory=mem)
                elif mem is not None:
                    prev.used_memory = max(prev.used_memory or 0, mem)
        if by_pid:
            self._sm_shares(h, uuid, by_pid)
            res = self._workloads
            fake_root = getattr(res, "fake_root", False)
            for proc in by_pid.values():
                # GPUSPEND_PROC_ROOT: user, command and workload all come from that tree
                proc.user, proc.command, proc.started = res.describe(proc.pid) if fake_root \
                    else self._procs.lookup(proc.pid)
        return list(by_pid.values())

    def _proc_list(self, h: Any, fn_name: str) -> list[Any] | None:
        nv = self._nv
        fn = getattr(nv, fn_name, None)
        if fn is None:
            return None
        try:
            return fn(h)
        except self._lost:
            raise _Lost() from None
        except self._mismatch:
            # Driver without the _v3 symbol: the older struct layout through the explicit _v2 call.
            v2 = getattr(nv, fn_name + "_v2", None)
            return self._q(v2, h) if v2 is not None else None
        except self._errors:
            return None

    def _sm_shares(self, h: Any, uuid: str, procs: dict[int, ProcReading]) -> None:
        nv = self._nv
        since = self._last_util_ts.get(uuid, 0)
        try:
            samples = nv.nvmlDeviceGetProcessUtilization(h, since)
        except self._not_found:
            # "no samples since `since`": no process ran a kernel in that window, i.e. 0% each.
            for p in procs.values():
                p.sm_util = 0.0
            return
        except self._lost:
            raise _Lost() from None
        except self._errors:
            return          # NotSupported / NoPermission: unknown, attribution falls back to memory share
        newest: dict[int, tuple[int, float]] = {}
        for s in samples or ():
            if s.smUtil > 100 or s.pid not in procs:   # driver glitches / pids that already left
                continue
            if s.timeStamp >= newest.get(s.pid, (-1, 0.0))[0]:
                newest[s.pid] = (s.timeStamp, float(s.smUtil))
            since = max(since, int(s.timeStamp))
        self._last_util_ts[uuid] = since
        for pid, p in procs.items():
            p.sm_util = newest[pid][1] if pid in newest else 0.0


class _Gpm:
    """SM activity of MIG slices from GPM samples: a metric needs two samples, so each slice keeps its
    previous one (two buffers per slice, allocated once, freed on close). Any NVML error: no value."""

    def __init__(self, nv: ModuleType, errors: tuple[type[BaseException], ...]) -> None:
        self._nv, self._errors = nv, errors
        self._supported: dict[str, tuple[float, bool]] = {}     # parent uuid -> (monotonic expiry, GPM there)
        self._prev: dict[tuple[str, int], Any] = {}             # (parent uuid, gi) -> previous sample
        self._spare: dict[tuple[str, int], Any] = {}

    def supported(self, h: Any, uuid: str) -> bool:
        mono = time.monotonic()
        hit = self._supported.get(uuid)
        if hit is not None and hit[0] > mono:
            return hit[1]
        ok = False
        fn = getattr(self._nv, "nvmlGpmQueryDeviceSupport", None)
        if fn is not None:
            try:
                ok = bool(fn(h).isSupportedDevice)
            except self._errors:
                ok = False
        self._supported[uuid] = (mono + MIG_RECHECK_S, ok)
        return ok

    def mig_sm_util(self, parent_h: Any, parent_uuid: str, gi: int) -> float | None:
        nv = self._nv
        key = (parent_uuid, gi)
        try:
            cur = self._spare.pop(key, None) or nv.nvmlGpmSampleAlloc()
        except self._errors:
            return None
        try:
            nv.nvmlGpmMigSampleGet(parent_h, gi, cur)
        except self._errors:
            self._spare[key] = cur
            return None
        prev = self._prev.get(key)
        self._prev[key] = cur
        if prev is None:
            return None
        self._spare[key] = prev
        try:
            mg = nv.c_nvmlGpmMetricsGet_t()
            mg.version = nv.NVML_GPM_METRICS_GET_VERSION
            mg.numMetrics = 1
            mg.sample1, mg.sample2 = prev, cur
            mg.metrics[0].metricId = nv.NVML_GPM_METRIC_SM_UTIL
            nv.nvmlGpmMetricsGet(mg)
        except self._errors:
            return None
        m = mg.metrics[0]
        if m.nvmlReturn != nv.NVML_SUCCESS or not (0.0 <= m.value <= 100.0):
            return None
        return float(m.value)

    def close(self) -> None:
        free = getattr(self._nv, "nvmlGpmSampleFree", None)
        for sample in (*self._prev.values(), *self._spare.values()):
            try:
                if free is not None:
                    free(sample)
            except Exception:
                pass
        self._prev.clear()
        self._spare.clear()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]

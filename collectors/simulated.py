"""A simulated 8x H100 80GB box for `--demo`, tests, screenshots and benchmarks: deterministic from a seed.

The same per-minute model drives the live `read()` and `generate_history()`, so a month of history joins
the live samples without a seam. What runs where (times UTC):
- GPUs 0-3: alice's training job, ~90% busy, one process per GPU, a checkpoint dip every 2 h; on about one
  day in four the run finishes in the small hours and the GPUs sit free-idle until someone restarts it at 10:30.
- GPU 4: bob's notebook (jupyter-lab kernel) holding 20 GB; busy in short bursts during working hours,
  held-idle every night, every weekend and most of the day (the waste gpuspend is for); the kernel is
  restarted every Monday (free 06:00-09:00).
- GPU 5: free, except a short eval job now and then.
- GPUs 6-7: carol's inference server: traffic peaks at 15:00, nights near-idle while holding 70 GB.
Power follows utilisation (idle 70-90 W, busy up to ~650 W of a 700 W limit); the energy counter only grows.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass

from gpuspend import clock
from gpuspend.collectors.reading import GpuReading, ProcReading, Reading

DEMO_HOST = "gpu-demo-01"
GPU_NAME = "NVIDIA H100 80GB HBM3"
MEM_TOTAL = 81559 * 1024 * 1024
POWER_LIMIT = 700.0
GIB = 1024 ** 3
MINUTE_MS = 60_000
DAY_MIN = 1440
RAW_WINDOW_MS = 3600_000          # generate_history: raw samples for the last hour, rollups before that
HISTORY_INTERVAL_S = 2.0
_M64 = 0xFFFFFFFFFFFFFFFF
# Long-run average draw per GPU role (from 30 days of the model): the energy counter's starting value, so a
# restarted source continues the counter roughly where an uninterrupted one would be.
_AVG_WATTS = (578.0, 578.0, 578.0, 578.0, 111.0, 98.0, 267.0, 267.0)


def _u(*keys: int) -> float:
    """Deterministic uniform [0, 1) from integers (splitmix64): cheap, no RNG state to carry."""
    x = 0x9E3779B97F4A7C15
    for k in keys:
        x = (x ^ (k & _M64)) * 0xBF58476D1CE4E5B9 & _M64
        x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _M64
        x ^= x >> 31
    return (x >> 11) / float(1 << 53)


@dataclass(slots=True)
class _Proc:
    pid: int
    user: str
    command: str
    started: int          # epoch s
    mem: int              # bytes


@dataclass(slots=True)
class _MinuteState:
    util: float           # minute average %
    procs: list[_Proc]


def gpu_uuid(seed: int, index: int) -> str:
    a = int(_u(seed, index, 1) * (1 << 32))
    b = int(_u(seed, index, 2) * (1 << 48))
    return f"GPU-{a:08x}-5e1f-4d3b-9a7c-{b:012x}"


def _idle_power(seed: int, gpu: int) -> float:
    return 70.0 + 20.0 * _u(seed, gpu, 3)


class _Model:
    """Per-minute state of each GPU, a pure function of (seed, gpu, minute)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._run_start: dict[int, int] = {}

    # Training: day D is an "off day" with probability 1/4: the run ends at 01:00-08:59 and restarts at 10:30.
    def _train_off(self, day: int) -> tuple[int, int] | None:
        if _u(self.seed, 11, day) >= 0.25:
            return None
        end = day * DAY_MIN + 60 + int(_u(self.seed, 12, day) * 480)
        return end, day * DAY_MIN + 630

    def _train_run_start(self, minute: int) -> int:
        """Minute the current training run started (for a stable pid/start time per run)."""
        day = minute // DAY_MIN
        key = minute // 30
        hit = self._run_start.get(key)
        if hit is not None:
            return hit
        start = (day - 60) * DAY_MIN
        for d in range(day, day - 60, -1):
            off = self._train_off(d)
            if off is not None and off[1] <= minute:
                start = off[1]
                break
        self._run_start[key] = start
        return start

    def state(self, gpu: int, minute: int) -> _MinuteState:
        s = self.seed
        day, mod = divmod(minute, DAY_MIN)
        hour = mod / 60.0
        if gpu <= 3:
            off = self._train_off(day)
            if off is not None and off[0] <= minute < off[1]:
                return _MinuteState(0.0, [])
            run = self._train_run_start(minute)
            util = 88.0 + 8.0 * _u(s, gpu, minute)
            if (minute - run) % 120 < 2:         # checkpoint: GPUs wait on storage
                util = 12.0 + 10.0 * _u(s, gpu, minute, 1)
            proc = _Proc(20000 + (run // DAY_MIN % 1000) * 8 + gpu, "alice",
                         f"python train.py --config configs/llama-8b.yaml --rank {gpu} --world-size 4",
                         run * 60, int((62 + 4 * _u(s, gpu, run)) * GIB))
            return _MinuteState(util, [proc])
        if gpu == 4:
            weekday = (day + 3) % 7               # 1970-01-01 was a Thursday; 0 = Monday
            if weekday == 0 and 6.0 <= hour < 9.0:
                return _MinuteState(0.0, [])      # Monday 06:00-09:00: kernel killed, restarted at 09:00
            ws_day = day - weekday if (weekday > 0 or hour >= 9.0) else day - 7
            week_start = ws_day * DAY_MIN + 9 * 60
            proc = _Proc(41000 + (ws_day // 7) % 1000, "bob",
                         "/opt/conda/bin/python -m ipykernel_launcher -f /home/bob/.local/share/jupyter/"
                         "runtime/kernel-3f2a.json", week_start * 60, 20 * GIB + int(_u(s, 4, ws_day) * GIB))
            working = weekday < 5 and 9.0 <= hour < 18.0
            if working and _u(s, 4, minute // 10) < 0.3:
                return _MinuteState(40.0 + 40.0 * _u(s, 4, minute), [proc])
            return _MinuteState(2.0 * _u(s, 4, minute), [proc])
        if gpu == 5:
            block = minute // 120
            if _u(s, 5, block) < 0.04:
                proc = _Proc(52000 + block % 10000, "dave", "python eval.py --ckpt /data/ckpt/latest",
                             block * 120 * 60, 30 * GIB)
                return _MinuteState(60.0 + 30.0 * _u(s, 5, minute), [proc])
            return _MinuteState(0.0, [])
        # 6-7: inference, diurnal traffic peaking at 15:00, quieter at weekends
        traffic = 0.5 - 0.5 * math.cos(2 * math.pi * (hour - 3.0) / 24.0)
        if (day + 3) % 7 >= 5:
            traffic *= 0.4
        burst = _u(s, gpu, minute)
        util = 75.0 * traffic ** 1.5 + (15.0 * burst if burst > 0.8 else 0.0) + 2.0 * _u(s, gpu, minute, 2)
        proc = _Proc(31000 + gpu, "carol",
                     "python -m vllm.entrypoints.openai.api_server --model meta-llama/Llama-3.1-70B "
                     "--tensor-parallel-size 2", (day - 200) * DAY_MIN * 60, 72 * GIB)
        return _MinuteState(min(util, 100.0), [proc])


def power_for(seed: int, gpu: int, util: float, holding: bool) -> float:
    idle = _idle_power(seed, gpu) + (6.0 if holding else 0.0)
    return idle + (650.0 - idle) * (util / 100.0) ** 0.9


class SimulatedSource:
    """Same interface as NvmlSource: open(), read(now_ms=None), driver_version(), close()."""

    source = "demo"

    def __init__(self, seed: int = 42, host: str = DEMO_HOST, gpus: int = 8) -> None:
        self.seed = seed
        self.host = host
        self.count = gpus
        self._model = _Model(seed)
        self.uuids = [gpu_uuid(seed, i) for i in range(gpus)]
        self._energy: list[tuple[int, float, float] | None] = [None] * gpus   # (ts, mJ, W) last read
        self._states: tuple[int, list[_MinuteState]] = (-1, [])     # the model is per minute: reads share it

    def open(self) -> SimulatedSource:
        return self

    def close(self) -> None:
        pass

    def driver_version(self) -> str:
        return "demo (simulated 570.86.15)"

    def gpu_static(self, index: int) -> GpuReading:
        return GpuReading(uuid=self.uuids[index], index=index, name=GPU_NAME, memory_total=MEM_TOTAL,
                          power_limit=POWER_LIMIT)

    def read(self, now_ms: int | None = None) -> Reading:
        ts = clock.now_ms() if now_ms is None else int(now_ms)
        minute = ts // MINUTE_MS
        tick = ts // 1000
        if self._states[0] != minute:
            self._states = (minute, [self._model.state(i, minute) for i in range(self.count)])
        gpus: list[GpuReading] = []
        for i in range(self.count):
            st = self._states[1][i]
            jitter = _u(self.seed, i, tick, 7)
            util = st.util
            if util > 5.0:
                util = min(100.0, max(6.0, util + (jitter - 0.5) * 10.0))
            held = bool(st.procs)
            power = power_for(self.seed, i, util, held) + (jitter - 0.5) * 4.0
            mem_used = sum(p.mem for p in st.procs) + 512 * 1024 * 1024
            g = self.gpu_static(i)
            g.util = round(util, 1)
            g.mem_util = round(util * 0.55, 1)
            g.mem_used = mem_used
            g.power = round(power, 2)
            g.energy_mj = self._energy_at(i, ts, power)
            g.temperature = round(28.0 + 0.048 * power + 2.0 * jitter, 1)
            g.sm_clock = 1980 if util > 5.0 else 345
            total_mem = sum(p.mem for p in st.procs) or 1
            g.processes = [ProcReading(pid=p.pid, used_memory=p.mem,
                                       sm_util=round(util * p.mem / total_mem, 1) if util > 5.0 else 0.0,
                                       user=p.user, command=p.command, started=p.started) for p in st.procs]
            gpus.append(g)
        return Reading(ts_ms=ts, host=self.host, source=self.source, gpus=gpus,
                       driver=self.driver_version())

    def _energy_at(self, i: int, ts: int, power: float) -> int:
        """Counter since a fictional driver load: closed form for the first read, then the integral."""
        prev = self._energy[i]
        if prev is None or ts <= prev[0]:
            boot = (ts // 86_400_000 - 40) * 86_400_000
            mj = (ts - boot) * _AVG_WATTS[i % 8] + _u(self.seed, i, 9) * 1e9   # each GPU's long-run average
        else:
            mj = prev[1] + (prev[2] + power) / 2.0 * (ts - prev[0])   # W * ms = mJ
        self._energy[i] = (ts, mj, power)
        return int(mj)

    def processes_for(self, gpu: int, minute: int) -> list[_Proc]:
        return self._model.state(gpu, minute).procs


def _gpu_rows(conn: sqlite3.Connection, src: SimulatedSource, first_ms: int, last_ms: int) -> list[int]:
    from gpuspend.gpu_models import normalise_model

    ids = []
    for i in range(src.count):
        g = src.gpu_static(i)
        conn.execute(
            "INSERT INTO gpus (uuid, host, idx, name, model, memory_total, power_limit, source, first_seen, "
            "last_seen) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(uuid) DO UPDATE SET "
            "first_seen = MIN(first_seen, excluded.first_seen), last_seen = MAX(last_seen, excluded.last_seen)",
            (g.uuid, src.host, i, g.name, normalise_model(g.name), g.memory_total, g.power_limit, src.source,
             first_ms, last_ms))
        ids.append(conn.execute("SELECT id FROM gpus WHERE uuid = ?", (g.uuid,)).fetchone()[0])
    return ids


def _write_minutes(conn: sqlite3.Connection, src: SimulatedSource, gpu_ids: list[int], from_min: int,
                   to_min: int, per_min: int, idle_util_pct: float) -> tuple[int, int]:
    """Per-minute rollups (and their process shares) for minutes [from_min, to_min), in the caller's
    transaction. INSERT OR REPLACE on the (gpu, minute) keys: writing a range twice never counts it twice.
    Returns (gpu_minutes rows, process_minutes rows)."""
    from gpuspend.idle import is_idle

    model = src._model
    seed = src.seed
    base_mem = 512 * 1024 * 1024
    # power_for() unrolled per GPU (same arithmetic): idle draw, and the span from it to 650 W, held or not
    idle_p = [(_idle_power(seed, i), _idle_power(seed, i) + 6.0) for i in range(src.count)]
    gm_rows: list[tuple] = []
    pm_rows: list[tuple] = []
    proc_keys: dict[tuple[int, int], tuple[str, str]] = {}
    for minute in range(from_min, to_min):
        mms = minute * MINUTE_MS
        for i in range(src.count):
            st = model.state(i, minute)
            u = st.util
            procs = st.procs
            held = bool(procs)
            idle = idle_p[i][1] if held else idle_p[i][0]
            power = idle + (650.0 - idle) * (u / 100.0) ** 0.9
            total = sum(p.mem for p in procs)
            busy = not is_idle(u, idle_util_pct)
            gm_rows.append((gpu_ids[i], mms, per_min, 60.0, u, min(100.0, u + 4.0) if busy else u,
                            u * 0.55, float(total + base_mem), power, power * 60.0,
                            60.0 if busy else 0.0, 0.0 if busy or not held else 60.0,
                            0.0 if busy or held else 60.0))
            for p in procs:
                proc_keys[(p.pid, p.started)] = (p.user, p.command)
                share = 60.0 * p.mem / total
                pm_rows.append((gpu_ids[i], mms, (p.pid, p.started), share, 0.0 if busy else share,
                                float(p.mem)))
    proc_ids: dict[tuple[int, int], int] = {}
    for (pid, started), (user, command) in proc_keys.items():
        conn.execute("INSERT OR IGNORE INTO processes (host, pid, started, user, command) VALUES (?,?,?,?,?)",
                     (src.host, pid, started, user, command))
        proc_ids[(pid, started)] = conn.execute(
            "SELECT id FROM processes WHERE host = ? AND pid = ? AND started = ?",
            (src.host, pid, started)).fetchone()[0]
    conn.executemany(
        "INSERT OR REPLACE INTO gpu_minutes (gpu_id, minute, samples, covered_s, util_avg, util_max, "
        "mem_util_avg, mem_used_avg, power_avg, energy_j, busy_s, held_idle_s, free_idle_s) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", gm_rows)
    conn.executemany(
        "INSERT OR REPLACE INTO process_minutes (gpu_id, minute, proc_id, share_s, idle_share_s, "
        "mem_used_avg) VALUES (?,?,?,?,?,?)",
        [(g, m, proc_ids[k], s, i, mu) for g, m, k, s, i, mu in pm_rows])
    return len(gm_rows), len(pm_rows)


def raw_window_start(start_ms: int, end_ms: int) -> int:
    """Where generate_history's raw samples begin: the last hour, from a minute start."""
    return max(start_ms, (end_ms - RAW_WINDOW_MS) // MINUTE_MS * MINUTE_MS)


def generate_history(conn: sqlite3.Connection, start_ms: int, end_ms: int, seed: int = 42, *,
                     interval_s: float = HISTORY_INTERVAL_S, idle_util_pct: float = 5.0,
                     minutes_from_ms: int | None = None) -> dict[str, int]:
    """Write per-minute rollups for [start, end - 1 h) directly, raw samples every `interval_s` for the last
    hour, then roll those up, so the result looks like a collector that has run for the whole period.
    `minutes_from_ms` (>= start) writes only the rollups from there: the older part is left to
    backfill_minutes (the demo shows a recent window first). One transaction for the bulk part."""
    from gpuspend import rollup
    from gpuspend.collectors.sampler import Sampler
    from gpuspend.store import set_meta, transaction

    src = SimulatedSource(seed)
    raw_start = raw_window_start(start_ms, end_ms)
    first = max(start_ms, minutes_from_ms or start_ms)
    per_min = int(round(60 / interval_s))
    with transaction(conn):
        gpu_ids = _gpu_rows(conn, src, start_ms, end_ms)
        gm, pm = _write_minutes(conn, src, gpu_ids, first // MINUTE_MS, raw_start // MINUTE_MS, per_min,
                                idle_util_pct)
        set_meta(conn, rollup.WATERMARK_KEY, str(raw_start))
    # The last hour as raw samples, written by the real sampler, then rolled up by the real rollup.
    sampler = Sampler(conn, interval_s)
    step = int(interval_s * 1000)
    readings = [src.read(ts) for ts in range(raw_start, end_ms + 1, step)]
    sampler.write_many(readings)
    rolled = rollup.roll_up(conn, interval_s=interval_s, idle_util_pct=idle_util_pct, now_ms=end_ms)
    return {"gpu_minutes": gm + rolled, "process_minutes": pm, "raw_samples": len(readings)}


def backfill_minutes(conn: sqlite3.Connection, from_ms: int, to_ms: int, seed: int = 42, *,
                     interval_s: float = HISTORY_INTERVAL_S, idle_util_pct: float = 5.0) -> int:
    """Per-minute rollups for [from_ms, to_ms) of a history generate_history started (its GPUs exist), in
    the caller's transaction; the same rows generate_history would have written. Returns gpu_minutes rows."""
    src = SimulatedSource(seed)
    by_uuid = dict(conn.execute(f"SELECT uuid, id FROM gpus WHERE uuid IN ({','.join('?' * src.count)})",
                                src.uuids).fetchall())
    try:
        gpu_ids = [int(by_uuid[u]) for u in src.uuids]
    except KeyError:
        raise ValueError("backfill_minutes: the simulated GPUs are not in this database") from None
    conn.execute("UPDATE gpus SET first_seen = MIN(first_seen, ?) WHERE source = 'demo'", (from_ms,))
    return _write_minutes(conn, src, gpu_ids, from_ms // MINUTE_MS, to_ms // MINUTE_MS,
                          int(round(60 / interval_s)), idle_util_pct)[0]

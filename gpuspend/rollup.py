"""Raw samples -> per-minute rows (gpu_minutes, process_minutes), then raw retention.

Each sample covers the time up to the next sample of the same GPU; a gap longer than 3 intervals is a gap:
the sample before it covers one interval and the rest is not time we can account for. Per sample, a GPU is
`busy` (util above idle.util_pct), `held-idle` (at or below it while a process holds memory) or `free-idle`;
both rules live in gpuspend.idle.

Idempotent by construction: a watermark in `meta` marks the first minute that may still change (the minute
of the newest sample). Each run deletes the minutes from the watermark on and recomputes them from raw
samples in the same transaction that moves the watermark, so re-running, or being killed at any instant,
never counts anything twice. Raw rows are deleted only once they are behind the watermark.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from gpuspend import clock
from gpuspend.idle import GAP_INTERVALS, covered_ms, sample_state
from gpuspend.store import get_meta, set_meta, transaction

if TYPE_CHECKING:
    from gpuspend.config import Config

WATERMARK_KEY = "rollup.watermark_ms"
MINUTE_MS = 60_000
CHUNK_MS = 3600_000          # roll a long backlog an hour at a time (bounded memory, short transactions)
# The collector reads a GPU's energy counter every 30 s (collectors.nvml.ENERGY_EVERY_S); two minutes
# either side of a rollup range always holds the readings that bracket it.
ENERGY_SPAN_MS = 120_000
TASK_MAX_CHUNKS = 6          # per periodic run: at most 6 h of backlog (a fraction of a second at 2 s)


class _Minute:
    __slots__ = ("samples", "covered", "util_w", "util_t", "util_max", "mu_w", "mu_t", "mem_w", "mem_t",
                 "pow_w", "pow_t", "energy", "busy", "held", "free", "util_sum", "util_n")

    def __init__(self) -> None:
        self.samples = 0
        self.covered = self.util_w = self.util_t = self.mu_w = self.mu_t = 0.0
        self.mem_w = self.mem_t = self.pow_w = self.pow_t = self.energy = 0.0
        self.busy = self.held = self.free = 0.0
        self.util_max: float | None = None
        self.util_sum = 0.0     # plain mean, for a minute whose only sample covers no time yet
        self.util_n = 0


def share_weights(procs: list[tuple[int, int | None, float | None]]) -> list[tuple[int, float, int | None]]:
    """Split a GPU among its processes (the attribution split, its one home: the rollup writes process shares
    with it and the cost engine splits the raw tail with it): SM share when NVML gave one (and it is non-zero),
    else memory share, else equally."""
    sm_total = sum(p[2] or 0.0 for p in procs)
    if sm_total > 0:
        return [(pid, (sm or 0.0) / sm_total, mem) for pid, mem, sm in procs]
    mem_total = sum(p[1] or 0 for p in procs)
    if mem_total > 0:
        return [(pid, (mem or 0) / mem_total, mem) for pid, mem, sm in procs]
    return [(pid, 1.0 / len(procs), mem) for pid, mem, sm in procs]


def roll_up(conn: sqlite3.Connection, *, interval_s: float, idle_util_pct: float = 5.0,
            now_ms: int | None = None, max_chunks: int | None = None, remote_interval_s: float | None = None) -> int:
    """Roll every raw sample not yet final into per-minute rows. Returns the number of gpu_minutes written.

    `max_chunks` bounds the work of one call (the collector's periodic task: a long backlog is worked off an
    hour per chunk over several runs, so sampling and the lease heartbeat are never held up for long).
    `remote_interval_s`: the cloud poll interval, used instead of `interval_s` for GPU-cloud GPUs (sampled
    once per poll), so their polls are not cut to one local interval each."""
    now = clock.now_ms() if now_ms is None else now_ms
    row = conn.execute("SELECT MAX(ts) FROM gpu_samples").fetchone()
    max_ts = row[0] if row else None
    if max_ts is None:
        return 0
    wm_text = get_meta(conn, WATERMARK_KEY)
    if wm_text is None:
        first = conn.execute("SELECT MIN(ts) FROM gpu_samples").fetchone()[0]
        wm = first // MINUTE_MS * MINUTE_MS
    else:
        wm = int(wm_text)
    final_wm = max(wm, max_ts // MINUTE_MS * MINUTE_MS)
    written = 0
    chunks = 0
    while True:
        end = min(wm + CHUNK_MS, final_wm)
        last = end >= final_wm
        written += _roll_range(conn, wm, None if last else end, interval_s, idle_util_pct, now, remote_interval_s)
        chunks += 1
        if last or (max_chunks is not None and chunks >= max_chunks):
            break
        wm = end
    return written


def _energy_rates(samples: list[Any], local_ms: int, remote_ms: int, remote: frozenset[int]) -> dict[int, float]:
    """Sample index -> J per ms, from the GPU's cumulative energy counter.

    The collector reads the counter only every so often (it is slow on some boards), so rows between two
    readings have NULL. Between two readings of one GPU with no gap in the samples, the counter delta is
    spread evenly over those samples. A counter that went back (driver reload) or runs far beyond the
    measured power (a restarted source) is not energy we can trust: those samples use power x time."""
    rates: dict[int, float] = {}
    last: int | None = None              # index of the previous sample with a counter reading, same GPU
    peak = 0.0                           # highest power since that reading
    powered = False
    for i, (gid, ts, _u, _mu, _mem, power, energy) in enumerate(samples):
        if last is not None and samples[last][0] != gid:
            last = None
        if last is not None:
            prev_ts = samples[i - 1][1]
            cap = GAP_INTERVALS * (remote_ms if gid in remote else local_ms)
            if ts - prev_ts > cap:       # a gap: the delta across it is not spread over samples
                last = None
        if last is not None and energy is not None:
            dt = ts - samples[last][1]
            peak = max(peak, power or 0.0)
            watts = (energy - samples[last][6]) / dt if dt > 0 else -1.0     # mJ per ms = W
            bound = 2.0 * peak + 100.0 if powered or power is not None else float("inf")
            if 0 <= watts <= bound:
                for k in range(last, i):
                    rates[k] = watts / 1000.0
        if energy is not None:
            last, peak, powered = i, power or 0.0, power is not None
        elif last is not None:
            peak = max(peak, power or 0.0)
            powered = powered or power is not None
    return rates


def _roll_range(conn: sqlite3.Connection, start: int, end: int | None, interval_s: float, idle_pct: float,
                now: int, remote_interval_s: float | None = None) -> int:
    """Recompute minutes in [start, end) (end None: to the newest sample) and move the watermark to `end`
    (or the newest sample's minute), all in one transaction."""
    local_ms = max(1, int(interval_s * 1000))
    remote_ms = max(1, int(remote_interval_s * 1000)) if remote_interval_s else local_ms
    remote = remote_gpu_ids(conn) if remote_ms != local_ms else frozenset()
    cap = GAP_INTERVALS * max(local_ms, remote_ms if remote else local_ms)
    # The sample before `start` covers time into it; energy counter readings up to ENERGY_SPAN_MS either
    # side bracket the samples of the range.
    lo = start - max(cap, ENERGY_SPAN_MS)
    hi = (end + max(cap, ENERGY_SPAN_MS)) if end is not None else None
    with transaction(conn):
        q = "SELECT gpu_id, ts, util, mem_util, mem_used, power, energy_mj FROM gpu_samples WHERE ts >= ?"
        args: list[Any] = [lo]
        if hi is not None:
            q += " AND ts <= ?"
            args.append(hi)
        samples = conn.execute(q + " ORDER BY gpu_id, ts", args).fetchall()
        pq = "SELECT gpu_id, ts, proc_id, used_memory, sm_util FROM process_samples WHERE ts >= ?"
        procs: dict[tuple[int, int], list[tuple[int, int | None, float | None]]] = defaultdict(list)
        for gid, ts, pid, mem, sm in conn.execute(pq + (" AND ts <= ?" if hi is not None else ""), args):
            procs[(gid, ts)].append((pid, mem, sm))
        e_rates = _energy_rates(samples, local_ms, remote_ms, remote)
        minutes: dict[tuple[int, int], _Minute] = {}
        pmin: dict[tuple[int, int, int], list[float]] = {}       # share_s, idle_share_s, mem*t, t
        limit = end if end is not None else None
        n = len(samples)
        max_ts = start
        for i, (gid, ts, util, mem_util, mem_used, power, _energy) in enumerate(samples):
            max_ts = max(max_ts, ts)
            interval_ms = remote_ms if gid in remote else local_ms
            nxt = samples[i + 1] if i + 1 < n and samples[i + 1][0] == gid else None
            if nxt is not None:
                dt = nxt[1] - ts
                covered = covered_ms(dt, interval_ms)
            else:
                dt = 0
                covered = interval_ms if now < ts else max(0, min(now - ts, interval_ms))
            plist = procs.get((gid, ts), [])
            holds = any((p[1] or 0) > 0 or p[1] is None for p in plist)
            state = sample_state(util, holds, idle_pct)
            e_rate = e_rates.get(i)   # joules per ms of coverage, from the energy counter when it is sane
            m0 = ts // MINUTE_MS * MINUTE_MS
            if m0 >= start and (limit is None or m0 < limit):
                acc = minutes.get((gid, m0))
                if acc is None:
                    acc = minutes[(gid, m0)] = _Minute()
                acc.samples += 1
                if util is not None:
                    acc.util_max = util if acc.util_max is None else max(acc.util_max, util)
                    acc.util_sum += util
                    acc.util_n += 1
            weights = share_weights(plist) if plist else []
            t = ts
            t_end = ts + covered
            while t < t_end:
                m = t // MINUTE_MS * MINUTE_MS
                piece_end = min(t_end, m + MINUTE_MS)
                piece = piece_end - t
                t = piece_end
                if m < start or (limit is not None and m >= limit):
                    continue
                acc = minutes.get((gid, m))
                if acc is None:
                    acc = minutes[(gid, m)] = _Minute()
                sec = piece / 1000.0
                acc.covered += sec
                if util is not None:
                    acc.util_w += util * sec
                    acc.util_t += sec
                if mem_util is not None:
                    acc.mu_w += mem_util * sec
                    acc.mu_t += sec
                if mem_used is not None:
                    acc.mem_w += mem_used * sec
                    acc.mem_t += sec
                if power is not None:
                    acc.pow_w += power * sec
                    acc.pow_t += sec
                if e_rate is not None:
                    acc.energy += e_rate * piece
                elif power is not None:
                    acc.energy += power * sec
                if state == "busy":
                    acc.busy += sec
                elif state == "held-idle":
                    acc.held += sec
                else:
                    acc.free += sec
                idle = state != "busy"
                for pid, w, mem in weights:
                    key = (gid, m, pid)
                    pm = pmin.get(key)
                    if pm is None:
                        pm = pmin[key] = [0.0, 0.0, 0.0, 0.0]
                    pm[0] += sec * w
                    if idle:
                        pm[1] += sec * w
                    if mem is not None:
                        pm[2] += mem * sec
                        pm[3] += sec
        if end is None:
            new_wm = max(start, max_ts // MINUTE_MS * MINUTE_MS)
        else:
            new_wm = end
        rows = []
        for (gid, m), a in minutes.items():
            rows.append((gid, m, a.samples, round(a.covered, 3),
                         a.util_w / a.util_t if a.util_t else (a.util_sum / a.util_n if a.util_n else None),
                         a.util_max,
                         a.mu_w / a.mu_t if a.mu_t else None, a.mem_w / a.mem_t if a.mem_t else None,
                         a.pow_w / a.pow_t if a.pow_t else None, a.energy if (a.pow_t or a.energy) else None,
                         round(a.busy, 3), round(a.held, 3), round(a.free, 3)))
        prow = [(gid, m, pid, v[0], v[1], v[2] / v[3] if v[3] else None) for (gid, m, pid), v in pmin.items()]
        dq = "DELETE FROM {t} WHERE minute >= ?" + (" AND minute < ?" if end is not None else "")
        dargs = [start] + ([end] if end is not None else [])
        conn.execute(dq.format(t="gpu_minutes"), dargs)
        conn.execute(dq.format(t="process_minutes"), dargs)
        conn.executemany(
            "INSERT OR REPLACE INTO gpu_minutes (gpu_id, minute, samples, covered_s, util_avg, util_max, "
            "mem_util_avg, mem_used_avg, power_avg, energy_j, busy_s, held_idle_s, free_idle_s) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        conn.executemany(
            "INSERT OR REPLACE INTO process_minutes (gpu_id, minute, proc_id, share_s, idle_share_s, mem_used_avg) "
            "VALUES (?,?,?,?,?,?)", prow)
        set_meta(conn, WATERMARK_KEY, str(new_wm))
    return len(rows)


def apply_retention(conn: sqlite3.Connection, *, raw_s: float, interval_s: float,
                    now_ms: int | None = None) -> int:
    """Delete raw samples older than `raw_s`, but only those already behind the rollup watermark (rolled
    and no longer needed to cover the next minute). Returns rows deleted."""
    now = clock.now_ms() if now_ms is None else now_ms
    wm_text = get_meta(conn, WATERMARK_KEY)
    if wm_text is None:
        return 0
    safe = int(wm_text) - (GAP_INTERVALS + 1) * int(interval_s * 1000)
    cutoff = min(now - int(raw_s * 1000), safe)
    with transaction(conn):
        n = conn.execute("DELETE FROM gpu_samples WHERE ts < ?", (cutoff,)).rowcount
        n += conn.execute("DELETE FROM process_samples WHERE ts < ?", (cutoff,)).rowcount
    return n


REMOTE_SOURCES = ("runpod", "lambda", "vast")   # GPUs sampled once per cloud poll, not per collector tick


def remote_gpu_ids(conn: sqlite3.Connection) -> frozenset[int]:
    marks = ",".join("?" * len(REMOTE_SOURCES))
    return frozenset(r[0] for r in conn.execute(f"SELECT id FROM gpus WHERE source IN ({marks})", REMOTE_SOURCES))


def cloud_interval(cfg: Config) -> float:
    """The GPU-cloud poll interval (clouds.interval, 5 min by default)."""
    clouds = getattr(cfg, "clouds", None)
    value = getattr(clouds, "interval", None) if clouds is not None else None
    return float(value) if value else 300.0


def collector_interval(conn: sqlite3.Connection, default: float) -> float:
    """The interval the running collector samples at (from its lease row), else the configured one."""
    row = conn.execute("SELECT interval_s FROM collector_lease WHERE id = 1").fetchone()
    return float(row[0]) if row and row[0] else float(default)


def rollup_task(conn: sqlite3.Connection, cfg: Config, now_ms: int) -> None:
    """Periodic task for the collector: roll up, then apply raw retention."""
    interval = collector_interval(conn, cfg.interval)
    roll_up(conn, interval_s=interval, idle_util_pct=cfg.idle.util_pct, now_ms=now_ms, max_chunks=TASK_MAX_CHUNKS,
            remote_interval_s=cloud_interval(cfg))
    apply_retention(conn, raw_s=cfg.retention.raw, interval_s=interval, now_ms=now_ms)

"""Raw samples -> per-minute rows (gpu_minutes, process_minutes), then raw retention.

Each sample covers the time up to the next sample of the same GPU; a gap longer than 3 intervals is a gap:
the sample before it covers one interval and the rest is not time we can account for. Per sample, a GPU is
`busy` (util above idle.util_pct), `held-idle` (at or below it while a process holds memory), `free-idle`
or `unknown` (no utilisation); a MIG-enabled GPU without utilisation of its own takes its state from its slices.
These rules live in gpuspend.idle.

A minute keeps its busy-run edges (busy seconds at its start and end, its longest busy run inside and where it
lies, where the idle begins): `minute_pieces` turns a row back into an ordered few pieces, so that idle episodes
read from rollups equal those read from the raw samples (the order of busy and idle inside a minute matters:
"all idle first" turned a 40 s busy stretch across a minute boundary into a false episode). Each row also keeps
the idle threshold it was rolled with: a new `idle.util_pct` applies from the time it is set; `rebuild` re-rolls
the minutes whose raw samples are still retained.

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
from gpuspend.idle import BUSY, GAP_INTERVALS, HELD_IDLE, UNKNOWN, covered_ms, sample_state, state_of
from gpuspend.samples import ROW_SPAN_MS, gpu_samples, last_sample_ms, proc_samples, repack
from gpuspend.store import REPACK_KEY, ROLLUP_GENERATION, bump_generation, get_meta, set_meta, transaction

if TYPE_CHECKING:
    from gpuspend.config import Config

WATERMARK_KEY = "rollup.watermark_ms"
COLLECTOR_SEEN_KEY = "collector.seen_ms"    # when a collector's periodic rollup last ran (the `collector` alert)
INTERVAL_KEY = "collector.interval_s"       # the interval the last periodic collector sampled at
MINUTE_MS = 60_000
CHUNK_MS = 3600_000          # roll a long backlog an hour at a time (bounded memory, short transactions)
# The collector reads a GPU's energy counter every 30 s (collectors.nvml.ENERGY_EVERY_S); two minutes
# either side of a rollup range always holds the readings that bracket it.
ENERGY_SPAN_MS = 120_000
TASK_MAX_CHUNKS = 6          # per periodic run: at most 6 h of backlog (a fraction of a second at 2 s)


class _Minute:
    __slots__ = ("samples", "covered", "util_w", "util_t", "util_max", "mu_w", "mu_t", "mem_w", "mem_t",
                 "pow_w", "pow_t", "energy", "busy", "held", "free", "util_sum", "util_n",
                 "end", "run_at", "run_len", "run_pre", "lead", "tail", "best", "best_at", "best_pre",
                 "idle_at", "idle_sum", "post_at", "await_post")

    def __init__(self) -> None:
        self.samples = 0
        self.covered = self.util_w = self.util_t = self.mu_w = self.mu_t = 0.0
        self.mem_w = self.mem_t = self.pow_w = self.pow_t = self.energy = 0.0
        self.busy = self.held = self.free = 0.0
        self.util_max: float | None = None
        self.util_sum = 0.0     # plain mean, for a minute whose only sample covers no time yet
        self.util_n = 0
        # busy-run edges, in ms from the minute start (pieces arrive in time order)
        self.end: int | None = None           # end of the last piece
        self.run_at: int | None = None        # the busy run in progress
        self.run_len = self.run_pre = 0.0
        self.lead = self.tail = self.best = self.best_pre = self.idle_sum = 0.0
        self.best_at: int | None = None
        self.idle_at: int | None = None
        self.post_at: int | None = None       # first idle after the longest inner run
        self.await_post = False

    def piece(self, off: int, off_end: int, state: str) -> None:
        sec = (off_end - off) / 1000.0
        if state == BUSY:
            if self.run_at is not None and self.end == off:
                self.run_len += sec
            else:
                self._end_run()
                self.run_at, self.run_len, self.run_pre = off, sec, self.idle_sum
        else:
            self._end_run()
            if state != UNKNOWN:
                if self.idle_at is None:
                    self.idle_at = off
                if self.await_post:
                    self.post_at, self.await_post = off, False
                self.idle_sum += sec
        self.end = off_end

    def _end_run(self) -> None:
        if self.run_at is None:
            return
        if self.run_at == 0:
            self.lead = self.run_len
        elif self.run_len > self.best:
            self.best, self.best_at, self.best_pre = self.run_len, self.run_at, self.run_pre
            self.post_at, self.await_post = None, True
        self.run_at = None

    def edges(self) -> tuple[float, float, float, int | None, int | None, float, int | None]:
        if self.run_at is not None and self.end == MINUTE_MS:
            self.tail = self.run_len
            if self.run_at == 0:
                self.lead = self.run_len        # busy the whole covered minute: lead and tail are one run
            self.run_at = None
        self._end_run()
        return (round(self.lead, 3), round(self.tail, 3), round(self.best, 3), self.best_at, self.idle_at,
                round(self.best_pre, 3), self.post_at)


def minute_pieces(minute: int, cov: float, busy: float, held: float, free: float, lead: float | None,
                  tail: float | None, run: float | None, run_at: int | None, idle_at: int | None,
                  idle_pre: float | None, idle_post_at: int | None = None
                  ) -> list[tuple[int, float, float, float, float]]:
    """A rollup row as ordered (start_ms, covered_s, busy_s, held_s, free_s) pieces for the episode scan:
    busy lead, unknown time, idle before the longest inner busy run, that run, the idle after it, busy tail.
    Short inner busy blips are left out: they cannot end an idle run (shorter than the longest, which is kept)
    and are separated from the edges by idle, unknown time or a hole, all of which break a busy streak.
    Rows rolled before the edges were kept come back whole (idle then busy, the old reading)."""
    if lead is None or tail is None or lead + tail > cov + 0.001:
        return [(minute, cov, busy, held, free)]
    idle = held + free
    hf = held / idle if idle > 0 else 0.0
    unknown = cov - busy - idle
    out: list[tuple[int, float, float, float, float]] = []
    if lead > 0:
        out.append((minute, lead, lead, 0.0, 0.0))
    if unknown > 0.0005:
        out.append((minute + int(round(lead * 1000)), unknown, 0.0, 0.0, 0.0))
    run = run or 0.0
    pre = min(idle, idle_pre or 0.0) if run > 0 and run_at is not None else idle
    if pre > 0:
        out.append((minute + (idle_at or 0), pre, 0.0, pre * hf, pre * (1 - hf)))
    if run > 0 and run_at is not None:
        out.append((minute + run_at, run, run, 0.0, 0.0))
        post = idle - pre
        if post > 0.0005:
            at = idle_post_at if idle_post_at is not None else run_at + int(round(run * 1000))
            out.append((minute + at, post, 0.0, post * hf, post * (1 - hf)))
    if tail > 0:
        out.append((minute + MINUTE_MS - int(round(tail * 1000)), tail, tail, 0.0, 0.0))
    return out


def mig_children(conn: sqlite3.Connection) -> dict[int, int]:
    """MIG slice gpu id -> its physical GPU's id."""
    return {r[0]: r[1] for r in conn.execute("SELECT id, parent_id FROM gpus WHERE parent_id IS NOT NULL")}


def mig_shares(conn: sqlite3.Connection) -> dict[int, dict[int, float]]:
    """Physical GPU id -> {MIG slice id: the slice's share of the GPU} (its memory over the GPU's, the size of
    its profile; equal shares when sizes are unknown). A slice's users pay its share of the GPU's cost."""
    rows = conn.execute("SELECT s.id, s.parent_id, s.memory_total, p.memory_total FROM gpus s "
                        "JOIN gpus p ON p.id = s.parent_id").fetchall()
    out: dict[int, dict[int, float]] = defaultdict(dict)
    for sid, pid, mem, pmem in rows:
        out[pid][sid] = (mem / pmem) if mem and pmem and mem <= pmem else 0.0
    for kids in out.values():
        if not all(kids.values()) or sum(kids.values()) > 1.0 + 1e-9:
            for sid in kids:
                kids[sid] = 1.0 / len(kids)
    return dict(out)


def split_for(gid: int, ts: int, procs: dict[tuple[int, int], list[tuple[int, int | None, float | None]]],
              shares: dict[int, dict[int, float]]) -> list[tuple[int, float, int | None]]:
    """The attribution split of one GPU sample: its own processes (share_weights), or for a MIG-enabled GPU
    (processes are listed on its slices) each slice's processes in that slice's share. A slice's unused share
    stays unattributed, like an idle GPU's."""
    plist = procs.get((gid, ts))
    if plist:
        return share_weights(plist)
    out: list[tuple[int, float, int | None]] = []
    for sid, frac in shares.get(gid, {}).items():
        sp = procs.get((sid, ts))
        if sp:
            out.extend((pid, w * frac, mem) for pid, w, mem in share_weights(sp))
    return out


def slice_states(samples: list[Any], procs: dict[tuple[int, int], list[tuple[int, int | None, float | None]]],
                 parent_of: dict[int, int], idle_pct: float) -> dict[tuple[int, int], list[str]]:
    """(parent gpu id, ts) -> the states of its MIG slices sampled at that instant (one reading: same ts).
    `samples` rows start (gpu_id, ts, util, ...)."""
    out: dict[tuple[int, int], list[str]] = defaultdict(list)
    if not parent_of:
        return out
    for row in samples:
        parent = parent_of.get(row[0])
        if parent is None:
            continue
        plist = procs.get((row[0], row[1]), ())
        holds = any((p[1] or 0) > 0 or p[1] is None for p in plist)
        out[(parent, row[1])].append(sample_state(row[2], holds, idle_pct))
    return out


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
    max_ts = last_sample_ms(conn)
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
        top = None if hi is None else hi + 1
        samples = [r[:7] for r in gpu_samples(conn, lo, top)]
        procs: dict[tuple[int, int], list[tuple[int, int | None, float | None]]] = defaultdict(list)
        for gid, ts, pid, mem, sm in proc_samples(conn, lo, top):
            procs[(gid, ts)].append((pid, mem, sm))
        e_rates = _energy_rates(samples, local_ms, remote_ms, remote)
        parent_of = mig_children(conn)
        slices = slice_states(samples, procs, parent_of, idle_pct)
        shares = mig_shares(conn) if parent_of else {}
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
            if (ts < start and ts + covered <= start) or (limit is not None and ts >= limit):
                continue        # read for the energy counter only (two minutes either side): adds to no minute
            plist = procs.get((gid, ts), [])
            holds = any((p[1] or 0) > 0 or p[1] is None for p in plist)
            state = state_of(util, holds, idle_pct, slices.get((gid, ts)))
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
            weights = split_for(gid, ts, procs, shares) if (plist or gid in shares) else []
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
                acc.piece(t - piece - m, t - m, state)
                if state == BUSY:
                    acc.busy += sec
                elif state == HELD_IDLE:
                    acc.held += sec
                elif state != UNKNOWN:     # unknown time is covered but neither busy nor idle: never waste
                    acc.free += sec
                idle = state not in (BUSY, UNKNOWN)
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
                         round(a.busy, 3), round(a.held, 3), round(a.free, 3), *a.edges(), float(idle_pct)))
        prow = [(gid, m, pid, v[0], v[1], v[2] / v[3] if v[3] else None) for (gid, m, pid), v in pmin.items()]
        dq = "DELETE FROM {t} WHERE minute >= ?" + (" AND minute < ?" if end is not None else "")
        dargs = [start] + ([end] if end is not None else [])
        conn.execute(dq.format(t="gpu_minutes"), dargs)
        conn.execute(dq.format(t="process_minutes"), dargs)
        conn.executemany(
            "INSERT OR REPLACE INTO gpu_minutes (gpu_id, minute, samples, covered_s, util_avg, util_max, "
            "mem_util_avg, mem_used_avg, power_avg, energy_j, busy_s, held_idle_s, free_idle_s, busy_lead_s, "
            "busy_tail_s, busy_run_s, busy_run_at, idle_at, idle_pre_s, idle_post_at, idle_pct) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        conn.executemany(
            "INSERT OR REPLACE INTO process_minutes (gpu_id, minute, proc_id, share_s, idle_share_s, mem_used_avg) "
            "VALUES (?,?,?,?,?,?)", prow)
        set_meta(conn, WATERMARK_KEY, str(new_wm))
    return len(rows)


def rebuild(conn: sqlite3.Connection, *, interval_s: float, idle_util_pct: float, now_ms: int | None = None,
            remote_interval_s: float | None = None) -> tuple[int | None, int]:
    """Re-roll every minute whose raw samples are still retained (after changing `idle.util_pct`): moves the
    watermark back to the first whole minute of raw data and rolls up from there, in the rollup's own
    transactions (killed half way, the next run finishes it). Returns (first minute rebuilt, rows written)."""
    first = conn.execute("SELECT MIN(ts) FROM gpu_samples").fetchone()[0]
    if first is None:
        return None, 0
    # A minute that starts before the first retained sample may hold time covered by a sample retention already
    # deleted: keep that one as it is.
    start = -(-first // MINUTE_MS) * MINUTE_MS
    wm_text = get_meta(conn, WATERMARK_KEY)
    if wm_text is not None:
        start = min(start, int(wm_text))
    with transaction(conn):
        set_meta(conn, WATERMARK_KEY, str(start))
        bump_generation(conn, ROLLUP_GENERATION)   # minutes behind the old watermark change: cached sums go
    return start, roll_up(conn, interval_s=interval_s, idle_util_pct=idle_util_pct, now_ms=now_ms,
                          remote_interval_s=remote_interval_s)


def iso_minute(ms: int) -> str:
    return clock.to_datetime(ms).strftime("%Y-%m-%d %H:%M UTC")


def thresholds_in(conn: sqlite3.Connection, lo_ms: int, hi_ms: int) -> list[float]:
    """The idle thresholds the rollup minutes of [lo, hi) were rolled with (older rows: unknown, left out)."""
    return [r[0] for r in conn.execute("SELECT DISTINCT idle_pct FROM gpu_minutes WHERE minute >= ? AND minute < ? "
                                       "AND idle_pct IS NOT NULL ORDER BY idle_pct", (lo_ms, hi_ms))]


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
        # A row is a run of samples (gpuspend.samples): it goes once its last sample is before the cutoff, with the
        # process rows of the same run; process rows with no GPU row go with their time.
        n = conn.execute("DELETE FROM process_samples WHERE ts < ? AND (ts < ? OR NOT EXISTS (SELECT 1 FROM gpu_samples "
                         "g WHERE g.ts = process_samples.ts AND g.gpu_id = process_samples.gpu_id AND "
                         "g.ts + g.span_ms >= ?))", (cutoff, cutoff - ROW_SPAN_MS, cutoff)).rowcount
        n += conn.execute("DELETE FROM gpu_samples WHERE ts < ? AND ts + span_ms < ?", (cutoff, cutoff)).rowcount
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
    """The interval the raw samples were taken at: the running collector's (its lease row), else the last
    periodic collector's (the samples it left after the watermark were taken at it: judged at the configured
    2 s, samples 10 s apart would each be a gap and count 2 s), else the configured one."""
    row = conn.execute("SELECT interval_s FROM collector_lease WHERE id = 1").fetchone()
    if row and row[0]:
        return float(row[0])
    last = get_meta(conn, INTERVAL_KEY)
    try:
        return float(last) if last else float(default)
    except ValueError:
        return float(default)


def repack_pending(conn: sqlite3.Connection, interval_s: float, max_chunks: int = TASK_MAX_CHUNKS) -> bool:
    """Repack raw rows the store's v11 step left in the old row-per-sample layout (store.REPACK_KEY), an hour
    per transaction, at most `max_chunks` hours. Killed half way, the next call goes on from the last committed
    hour (repacking packed rows changes nothing). Returns True while hours are left."""
    for _ in range(max_chunks):
        with transaction(conn):
            todo = get_meta(conn, REPACK_KEY)
            if todo is None:
                return False
            lo, hi = (int(x) for x in todo.split(":"))
            _, _, nxt = repack(conn, interval_s, lo, hi, max_chunks=1)
            if nxt is None:
                conn.execute("DELETE FROM meta WHERE key = ?", (REPACK_KEY,))
                return False
            set_meta(conn, REPACK_KEY, f"{nxt}:{hi}")
    return True


def rollup_task(conn: sqlite3.Connection, cfg: Config, now_ms: int) -> None:
    """Periodic task for the collector: repack old-layout raw rows, roll up, then apply raw retention."""
    interval = collector_interval(conn, cfg.interval)
    repack_pending(conn, interval)
    with transaction(conn):
        set_meta(conn, COLLECTOR_SEEN_KEY, str(int(now_ms)))
    roll_up(conn, interval_s=interval, idle_util_pct=cfg.idle.util_pct, now_ms=now_ms, max_chunks=TASK_MAX_CHUNKS,
            remote_interval_s=cloud_interval(cfg))
    apply_retention(conn, raw_s=cfg.retention.raw, interval_s=interval, now_ms=now_ms)

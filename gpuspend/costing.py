"""The cost engine: pure functions over store rows, shared by the TUI, `--report`, alerts and metrics.

Time is read as *segments*: a per-minute rollup row (older than the rollup watermark) or one raw sample
(newer), each with seconds busy / held-idle / free-idle. Rollups cover months cheaply; raw samples give the
live tail at sample precision; the watermark keeps the two from ever counting the same second twice.
Money = rate x seconds / 3600; a gap longer than 3 intervals is a gap, not money (the rollup and
`raw_segments` both stop covering after one interval).

Idle episodes (DESIGN.md): a run of idle starts at the first idle second; it becomes an episode once it
holds `idle.after` seconds of idle, and its waste counts from the run's first idle second; it ends after
`idle.busy_for` seconds of continuous busy, or at a gap. Short busy blips do not end a run. Inside a
rollup minute the idle seconds are taken to come before the busy ones (order within a minute is unknown).
"""

from __future__ import annotations

import bisect
import json
import os
import socket
import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

from gpuspend import clock, forecast, pricing
from gpuspend.rollup import (
    GAP_INTERVALS,
    REMOTE_SOURCES,
    WATERMARK_KEY,
    cloud_interval,
    collector_interval,
    remote_gpu_ids,
    sample_state,
)
from gpuspend.snapshot import (
    AlertView,
    Alternative,
    BillingSummary,
    DayTotal,
    GpuNow,
    ProcessNow,
    Rate,
    Snapshot,
    Spender,
)
from gpuspend.store import get_meta

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
STATES = ("busy", "held-idle", "free-idle", "lost", "stale")


# -- small data types ----------------------------------------------------------------------------------
@dataclass
class Episode:
    gpu_id: int
    uuid: str
    start_ms: int
    end_ms: int | None               # None while open
    idle_s: float = 0.0
    held_s: float = 0.0
    waste: float | None = 0.0        # None when the GPU has no rate
    currency: str = "USD"
    by_day: dict[str, float] = field(default_factory=dict)   # waste by UTC day
    by_hour: dict[int, float] = field(default_factory=dict)  # waste by hour start (ms), for report windows
    last_ms: int = 0                 # end of the last idle second seen

    @property
    def open(self) -> bool:
        return self.end_ms is None


@dataclass
class GpuTimeline:
    """What the episode scan leaves behind for one GPU."""
    episodes: list[Episode]
    idle_for_s: float                # current continuous idle run (0 when busy)
    run_start_ms: int | None


@dataclass(frozen=True)
class Spend:
    """Attributed money for one process (cost, and of it the idle part)."""
    proc_id: int
    pid: int
    user: str
    command: str
    cost: float
    idle_cost: float
    currency: str


def day_start(ms: int) -> int:
    return ms // DAY_MS * DAY_MS


def _money(rate: Rate, seconds: float) -> float:
    return (rate.per_gpu_hour or 0.0) * seconds / 3600.0


# -- reading the store ---------------------------------------------------------------------------------
def load_gpus(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    cur = conn.execute("SELECT id, uuid, host, idx, name, model, memory_total, power_limit, parent_id, source, "
                       "first_seen, last_seen, lost_at FROM gpus ORDER BY host, idx, uuid")
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def watermark(conn: sqlite3.Connection) -> int:
    """Rollup rows are final before this; raw samples are read from it on."""
    wm = get_meta(conn, WATERMARK_KEY)
    if wm is not None:
        return int(wm)
    row = conn.execute("SELECT MIN(ts) FROM gpu_samples").fetchone()
    return row[0] // 60_000 * 60_000 if row and row[0] is not None else 0


MIG_LABEL = "MIG slice: its cost is counted on the physical GPU"


def resolve_rates(conn: sqlite3.Connection, cfg: Any, gpus: list[dict[str, Any]],
                  now_ms: int | None = None, **kw: Any) -> dict[int, Rate]:
    """Rate per gpu id. MIG slices carry no money of their own: the physical GPU is what is paid for, so
    pricing both would count it twice."""
    out = {}
    for g in gpus:
        if g.get("parent_id"):
            out[g["id"]] = Rate(None, cfg.currency or "USD", "none", MIG_LABEL)
        else:
            out[g["id"]] = pricing.resolve_rate(cfg, conn, g, now_ms=now_ms, **kw)
    return out


_TAIL_CACHE: dict[tuple, dict[int, list[tuple[int, float, float, float, float]]]] = {}


def raw_segments(conn: sqlite3.Connection, lo_ms: int, hi_ms: int, interval_s: float, idle_pct: float,
                 now_ms: int, gpu_id: int | None = None, remote_interval_s: float | None = None
                 ) -> dict[int, list[tuple[int, float, float, float, float]]]:
    """{gpu_id: [(start_ms, covered_s, busy_s, held_s, free_s)]} from raw samples in [lo, hi), one per
    sample, each covering up to the next sample (one interval after a gap or at the end). GPU-cloud GPUs
    are sampled once per cloud poll: `remote_interval_s` is their interval (gap rule and last sample).

    The tail after the rollup watermark is read once per state of the database (data_version moves when
    another connection commits, total_changes when this one does) and sliced for each caller: a snapshot
    asks for it a dozen times."""
    wm = watermark(conn)
    if lo_ms < wm:
        return _raw_segments(conn, lo_ms, hi_ms, interval_s, idle_pct, now_ms, gpu_id, remote_interval_s)
    key = (id(conn), _db_key(conn), conn.execute("PRAGMA data_version").fetchone()[0], conn.total_changes,
           wm, interval_s, idle_pct, now_ms, remote_interval_s)
    tail = _TAIL_CACHE.get(key)
    if tail is None:
        tail = _raw_segments(conn, wm, now_ms + 1, interval_s, idle_pct, now_ms, None, remote_interval_s)
        _TAIL_CACHE.clear()
        _TAIL_CACHE[key] = tail
    if hi_ms > now_ms + 1:
        return _raw_segments(conn, lo_ms, hi_ms, interval_s, idle_pct, now_ms, gpu_id, remote_interval_s)
    out: dict[int, list[tuple[int, float, float, float, float]]] = {}
    for gid, segs in tail.items():
        if gpu_id is not None and gid != gpu_id:
            continue
        i = bisect.bisect_left(segs, (lo_ms,))
        j = bisect.bisect_left(segs, (hi_ms,))
        if i < j:
            out[gid] = segs[i:j]
    return out


def _raw_segments(conn: sqlite3.Connection, lo_ms: int, hi_ms: int, interval_s: float, idle_pct: float,
                  now_ms: int, gpu_id: int | None = None, remote_interval_s: float | None = None
                  ) -> dict[int, list[tuple[int, float, float, float, float]]]:
    local_ms = max(1, int(interval_s * 1000))
    remote_ms = max(1, int(remote_interval_s * 1000)) if remote_interval_s else local_ms
    remote = remote_gpu_ids(conn) if remote_ms != local_ms else frozenset()
    holders: set[tuple[int, int]] = set()
    only = "" if gpu_id is None else " AND gpu_id = ?"
    args: tuple = (lo_ms, hi_ms) if gpu_id is None else (lo_ms, hi_ms, gpu_id)
    for gid, ts in conn.execute(
            "SELECT DISTINCT gpu_id, ts FROM process_samples WHERE ts >= ? AND ts < ? "
            "AND (used_memory IS NULL OR used_memory > 0)" + only, args):
        holders.add((gid, ts))
    rows = conn.execute("SELECT gpu_id, ts, util FROM gpu_samples WHERE ts >= ? AND ts < ?" + only +
                        " ORDER BY gpu_id, ts", args).fetchall()
    out: dict[int, list[tuple[int, float, float, float, float]]] = defaultdict(list)
    for i, (gid, ts, util) in enumerate(rows):
        interval_ms = remote_ms if gid in remote else local_ms
        cap = GAP_INTERVALS * interval_ms
        nxt = rows[i + 1] if i + 1 < len(rows) and rows[i + 1][0] == gid else None
        if nxt is not None:
            dt = nxt[1] - ts
            covered = dt if dt <= cap else interval_ms
        else:
            covered = max(0, min(now_ms - ts, interval_ms))
        sec = covered / 1000.0
        state = sample_state(util, (gid, ts) in holders, idle_pct)
        out[gid].append((ts, sec, sec if state == "busy" else 0.0, sec if state == "held-idle" else 0.0,
                         sec if state == "free-idle" else 0.0))
    return out


def segments(conn: sqlite3.Connection, cfg: Any, lo_ms: int, hi_ms: int, now_ms: int,
             wm: int | None = None, gpu_id: int | None = None
             ) -> dict[int, list[tuple[int, float, float, float, float]]]:
    """Rollup minutes before the watermark + raw samples after it, ordered, per GPU (or just `gpu_id`)."""
    wm = watermark(conn) if wm is None else wm
    out: dict[int, list[tuple[int, float, float, float, float]]] = defaultdict(list)
    if lo_ms < wm:
        q = ("SELECT gpu_id, minute, covered_s, busy_s, held_idle_s, free_idle_s FROM gpu_minutes "
             "WHERE minute >= ? AND minute < ?")
        args: tuple = (lo_ms, min(hi_ms, wm))
        if gpu_id is not None:
            q, args = q + " AND gpu_id = ?", (*args, gpu_id)
        for gid, minute, cov, busy, held, free in conn.execute(q + " ORDER BY gpu_id, minute", args):
            out[gid].append((minute, cov, busy, held, free))
    if hi_ms > wm:
        interval = collector_interval(conn, cfg.interval)
        for gid, segs in raw_segments(conn, max(lo_ms, wm), hi_ms, interval, cfg.idle.util_pct, now_ms,
                                      gpu_id, cloud_interval(cfg)).items():
            out[gid].extend(segs)
    return out


MAX_LOOKBACK_MS = 31 * DAY_MS


def is_remote(source: str | None) -> bool:
    """A GPU rented from a GPU cloud (RunPod, Lambda, Vast): sampled once per cloud poll, priced by its API."""
    return source in REMOTE_SOURCES


def gap_ms_for(cfg: Any, source: str | None) -> float:
    """Silence after which a GPU's idle run ends (3 sampling intervals, + a rollup minute of slack). GPU-cloud
    GPUs are sampled once per `clouds.interval`, local ones every `interval`."""
    interval = cloud_interval(cfg) if is_remote(source) else float(cfg.interval)
    return GAP_INTERVALS * interval * 1000 + 60_000


def run_start_bound(conn: sqlite3.Connection, cfg: Any, gpu_id: int, before_ms: int, wm: int) -> int:
    """Where to start scanning one GPU so that an idle run in progress at `before_ms` is seen from its first
    idle second: the last rollup minute before it that was clearly busy (or a month back at most)."""
    floor = before_ms - MAX_LOOKBACK_MS
    memo = _memo(conn) if before_ms <= wm else None
    if memo is not None:                  # reads only final rollup minutes: the answer cannot change
        key = (gpu_id, before_ms, float(cfg.idle.busy_for))
        cache, hit = _memo_get(memo, "run_start", key, size=256)
        if hit is None:
            hit = cache[key] = _run_start_in_minutes(conn, cfg, gpu_id, floor, before_ms)
        return hit
    if before_ms > wm:
        row = conn.execute("SELECT MAX(ts) FROM gpu_samples WHERE gpu_id = ? AND ts >= ? AND ts < ? AND util > ?",
                           (gpu_id, wm, before_ms, float(cfg.idle.util_pct))).fetchone()
        if row and row[0] is not None:
            return int(row[0])
    return _run_start_in_minutes(conn, cfg, gpu_id, floor, min(before_ms, wm))


def _run_start_in_minutes(conn: sqlite3.Connection, cfg: Any, gpu_id: int, floor: int, hi_ms: int) -> int:
    row = conn.execute("SELECT MAX(minute) FROM gpu_minutes WHERE gpu_id = ? AND minute >= ? AND minute < ? "
                       "AND busy_s >= ?", (gpu_id, floor, hi_ms, float(cfg.idle.busy_for))).fetchone()
    return int(row[0]) if row and row[0] is not None else floor


# -- idle episodes -------------------------------------------------------------------------------------
class EpisodeScan:
    """The idle-episode state machine for one GPU, fed its segments in time order.

    Resumable: `feed` may be called any number of times with consecutive slices and gives exactly what one
    call with all of them gives (same operations in the same order). `timeline` ends the scan (it may close
    the run), so call it on a `copy()` to keep feeding; the cost engine keeps one scan per GPU at the rollup
    watermark and one after the last final raw sample, and feeds them only what is new."""

    __slots__ = ("rate", "gpu_id", "uuid", "after", "busy_for", "gap_ms", "episodes", "run", "pending",
                 "busy_streak", "streak_start", "last_end")

    def __init__(self, rate: Rate, cfg: Any, gpu_id: int = 0, uuid: str = "", gap_ms: float | None = None) -> None:
        self.rate = rate
        self.gpu_id = gpu_id
        self.uuid = uuid
        self.after, self.busy_for = float(cfg.idle.after), float(cfg.idle.busy_for)
        self.gap_ms = GAP_INTERVALS * float(cfg.interval) * 1000 + 60_000 if gap_ms is None else gap_ms
        self.episodes: list[Episode] = []     # closed episodes: never changed again
        self.run: Episode | None = None       # the idle run in progress
        self.pending: list[tuple[int, float]] = []     # (ts, idle_s) of a run not yet long enough
        self.busy_streak = 0.0
        self.streak_start = 0.0
        self.last_end: float | None = None

    def copy(self) -> EpisodeScan:
        """An independent scan in the same state (closed episodes are shared: nothing changes them)."""
        c = EpisodeScan.__new__(EpisodeScan)
        for name in ("rate", "gpu_id", "uuid", "after", "busy_for", "gap_ms", "busy_streak", "streak_start",
                     "last_end"):
            setattr(c, name, getattr(self, name))
        c.episodes = list(self.episodes)
        run = self.run
        c.run = None if run is None else replace(run, by_day=dict(run.by_day), by_hour=dict(run.by_hour))
        c.pending = list(self.pending)
        return c

    def _close(self, at: float) -> None:
        run = self.run
        if run is not None and run.idle_s >= self.after:
            run.end_ms = int(at)
            self.episodes.append(run)
        self.run, self.pending = None, []

    def feed(self, segs: list[tuple[int, float, float, float, float]]) -> EpisodeScan:
        rate, after, busy_for, gap_ms = self.rate, self.after, self.busy_for, self.gap_ms
        has_rate = rate.per_gpu_hour is not None
        run, pending, last_end = self.run, self.pending, self.last_end
        busy_streak, streak_start = self.busy_streak, self.streak_start
        for start, cov, busy, held, free in segs:
            if last_end is not None and start - last_end > gap_ms and run is not None:
                self.run, self.pending = run, pending
                self._close(last_end)             # a gap ends a run: we do not know what happened in it
                run, pending = None, self.pending
            idle = held + free
            if idle > 0:
                if run is None:
                    run = Episode(self.gpu_id, self.uuid, start, None, currency=rate.currency,
                                  waste=0.0 if has_rate else None)
                run.idle_s += idle
                run.held_s += held
                run.last_ms = int(start + idle * 1000)
                busy_streak = 0.0
                if run.idle_s - idle >= after:    # already an episode: book straight away
                    _book(run, start, idle, rate)
                else:
                    pending.append((start, idle))
                    if run.idle_s >= after:
                        for ts, s in pending:
                            _book(run, ts, s, rate)
                        pending = []
            if busy > 0 and run is not None:
                if busy_streak == 0.0:
                    streak_start = start + (cov - busy) * 1000
                busy_streak += busy
                if busy_streak >= busy_for:
                    self.run, self.pending = run, pending
                    self._close(streak_start)     # ended when the busy stretch began (confirmed busy_for later)
                    run, pending = None, self.pending
                    busy_streak = 0.0
            last_end = start + cov * 1000
        self.run, self.pending, self.last_end = run, pending, last_end
        self.busy_streak, self.streak_start = busy_streak, streak_start
        return self

    def timeline(self, now_ms: int) -> GpuTimeline:
        """Episodes and the current idle run as of `now_ms`. Ends the scan."""
        idle_for = 0.0
        run_start = None
        run, last_end = self.run, self.last_end
        if run is not None:
            if last_end is not None and now_ms - last_end > self.gap_ms:
                self._close(last_end)             # data stopped: the run ended when the data did
            else:
                idle_for = max(0.0, ((last_end or run.start_ms) - run.start_ms) / 1000.0)
                run_start = run.start_ms
                if run.idle_s >= self.after:
                    self.episodes.append(run)     # open episode (end_ms None)
        return GpuTimeline(self.episodes, idle_for, run_start)


def scan_episodes(segs: list[tuple[int, float, float, float, float]], rate: Rate, cfg: Any, now_ms: int,
                  gpu_id: int = 0, uuid: str = "", gap_ms: float | None = None) -> GpuTimeline:
    """Walk one GPU's segments (ordered) and return its idle episodes and current idle run."""
    return EpisodeScan(rate, cfg, gpu_id, uuid, gap_ms).feed(segs).timeline(now_ms)


def _book(ep: Episode, ts: int, idle_s: float, rate: Rate) -> None:
    if rate.per_gpu_hour is None:
        return
    money = _money(rate, idle_s)
    ep.waste = (ep.waste or 0.0) + money
    d = forecast.day_key(ts)
    ep.by_day[d] = ep.by_day.get(d, 0.0) + money
    h = ts // HOUR_MS * HOUR_MS
    ep.by_hour[h] = ep.by_hour.get(h, 0.0) + money


def idle_episodes(conn: sqlite3.Connection, cfg: Any, since_ms: int, until_ms: int, now_ms: int | None = None,
                  rates: dict[int, Rate] | None = None, gpus: list[dict[str, Any]] | None = None
                  ) -> tuple[list[Episode], dict[int, GpuTimeline]]:
    """Episodes that overlap [since, until) (open or closed), and each GPU's timeline. Each GPU is scanned
    from its last busy minute before `since`, so an episode that began earlier keeps its true start.

    Up to now (until = now + 1) on a store connection, each GPU's scan resumes from the state this
    connection kept last time (see _live_timeline): the same numbers as a full scan, for the price of the
    samples that arrived since. Treat the returned episodes as read-only: closed ones are shared."""
    now = clock.now_ms() if now_ms is None else now_ms
    gpus = load_gpus(conn) if gpus is None else gpus
    rates = resolve_rates(conn, cfg, gpus, now) if rates is None else rates
    wm = watermark(conn)
    memo = _memo(conn)
    live = memo is not None and until_ms == now + 1 and wm <= until_ms
    interval = collector_interval(conn, cfg.interval) if live else 0.0
    out: list[Episode] = []
    timelines: dict[int, GpuTimeline] = {}
    for g in gpus:
        lo = run_start_bound(conn, cfg, g["id"], since_ms, wm)
        gap = gap_ms_for(cfg, g.get("source"))
        if live:
            assert memo is not None
            tl = _live_timeline(conn, cfg, memo, g, rates[g["id"]], lo, wm, now, gap, interval)
        else:
            segs = segments(conn, cfg, lo, until_ms, now, wm, g["id"])
            tl = scan_episodes(segs.get(g["id"], []), rates[g["id"]], cfg, now, g["id"], g["uuid"], gap)
        timelines[g["id"]] = tl
        out.extend(e for e in tl.episodes if (e.end_ms is None or e.end_ms > since_ms) and e.start_ms < until_ms)
    out.sort(key=lambda e: (e.start_ms, e.gpu_id))
    return out, timelines


@dataclass
class _ScanCheckpoint:
    """One GPU's scan, kept on the connection between calls.

    `at_wm`: fed every rollup minute in [lo, wm): final (the rollup never rewrites a minute behind its
    watermark), so it only ever grows by the minutes the watermark moved over. `raw`: `at_wm` plus the raw
    samples after the watermark that already have a successor (a sample's segment depends on the next
    sample, and only the newest one on `now`); `raw_n` of them, the last being `raw_last`."""
    wm: int
    at_wm: EpisodeScan
    raw: EpisodeScan | None = None
    raw_n: int = 0
    raw_last: tuple | None = None


def _live_timeline(conn: sqlite3.Connection, cfg: Any, memo: dict[str, Any], g: dict[str, Any], rate: Rate,
                   lo: int, wm: int, now: int, gap: float, interval: float) -> GpuTimeline:
    """scan_episodes(segments(conn, cfg, lo, now + 1, now, wm, gpu)) without re-reading what was scanned."""
    gid = g["id"]
    idle_pct = float(cfg.idle.util_pct)
    remote_s = cloud_interval(cfg)
    key = (gid, g["uuid"], lo, rate.per_gpu_hour, rate.currency, float(cfg.idle.after), float(cfg.idle.busy_for),
           gap, idle_pct, interval, remote_s)
    scans: dict[tuple, _ScanCheckpoint] = memo.setdefault("scans", {})
    ck = scans.get(key)
    if ck is None or wm < ck.wm:          # first call, other settings, or a store that went back: start over
        at_wm = EpisodeScan(rate, cfg, gid, g["uuid"], gap)
        if lo < wm:
            at_wm.feed(segments(conn, cfg, lo, wm, now, wm, gid).get(gid, []))
        if len(scans) > 64:
            scans.clear()
        ck = scans[key] = _ScanCheckpoint(wm, at_wm)
    elif wm > ck.wm:                      # the rollup moved on: its new minutes replace raw samples
        if max(lo, ck.wm) < wm:
            ck.at_wm.feed(segments(conn, cfg, max(lo, ck.wm), wm, now, wm, gid).get(gid, []))
        ck.wm, ck.raw, ck.raw_n, ck.raw_last = wm, None, 0, None
    tail = raw_segments(conn, max(lo, wm), now + 1, interval, idle_pct, now, gid, remote_s).get(gid, [])
    n = ck.raw_n
    if ck.raw is None or n > len(tail) - 1 or (n and tail[n - 1] != ck.raw_last):
        ck.raw, n = ck.at_wm.copy(), 0    # the tail is not what we scanned (clock went back, rows rewritten)
    if len(tail) - 1 > n:
        ck.raw.feed(tail[n:-1])
        n = len(tail) - 1
    ck.raw_n, ck.raw_last = n, tail[n - 1] if n else None
    scan = ck.raw.copy()
    if tail:
        scan.feed(tail[-1:])
    return scan.timeline(now)


def reset_caches() -> None:
    """Forget the module-wide caches (tail, day sums, 24 h utilisation); per-connection memos go with their
    connection. For tests and benchmarks that want a cold computation."""
    _TAIL_CACHE.clear()
    _DAY_CACHE.clear()
    _UNDER_CACHE.clear()


def _memo(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """Per-connection memo (store.StoreConnection carries attributes; a bare sqlite3 connection does not,
    and is then always computed cold). Lives and dies with the connection, so it never crosses databases."""
    attrs = getattr(conn, "__dict__", None)
    if attrs is None:
        return None
    memo = attrs.get("_costing_memo")
    if memo is None:
        memo = attrs["_costing_memo"] = {}
    return memo


def waste_since(episodes: list[Episode], since_ms: int) -> dict[str, float]:
    """{currency: waste booked from the hour holding `since_ms` on} (episodes may have begun earlier)."""
    h0 = since_ms // HOUR_MS * HOUR_MS
    out: dict[str, float] = {}
    for e in episodes:
        v = sum(m for h, m in e.by_hour.items() if h >= h0)
        if e.waste is not None:
            out[e.currency] = out.get(e.currency, 0.0) + v
    return out


def waste_in(episodes: list[Episode], day: str | None = None) -> float:
    """Sum of episode waste (one UTC day, or all)."""
    if day is None:
        return sum(e.waste or 0.0 for e in episodes)
    return sum(e.by_day.get(day, 0.0) for e in episodes)


_UNDER_CACHE: dict[tuple, tuple[float, list]] = {}


def underutilised(conn: sqlite3.Connection, cfg: Any, now_ms: int,
                  gpus: list[dict[str, Any]] | None = None) -> list[tuple[str, float]]:
    """[(uuid, avg util %)] of GPUs whose average utilisation over the last 24 h is below idle.low_util_pct.
    A 24 h average moves slowly: recomputed at most once a minute per database."""
    key = (_db_key(conn), now_ms // 60_000, float(cfg.idle.low_util_pct))
    hit = _UNDER_CACHE.get(key)
    if hit is not None:
        return list(hit[1])
    gpus = load_gpus(conn) if gpus is None else gpus
    by_id = {g["id"]: g["uuid"] for g in gpus}
    out = []
    for gid, avg in conn.execute(
            # both bounds: with only `minute >= ?` SQLite prefers a full scan in primary-key order
            "SELECT gpu_id, SUM(util_avg * covered_s) / SUM(covered_s) FROM gpu_minutes WHERE minute >= ? "
            "AND minute < ? AND util_avg IS NOT NULL AND covered_s > 0 GROUP BY gpu_id",
            (now_ms - DAY_MS, now_ms + 1)):
        if avg is not None and avg < float(cfg.idle.low_util_pct) and gid in by_id:
            out.append((by_id[gid], float(avg)))
    _UNDER_CACHE.clear()
    _UNDER_CACHE[key] = (0.0, out)
    return sorted(out)


# -- metered cost ----------------------------------------------------------------------------------------
_DAY_CACHE: dict[tuple, tuple[float, dict[int, list[float]]]] = {}
_CACHE_TTL_S = 600.0


def _db_key(conn: sqlite3.Connection) -> tuple:
    path = conn.execute("PRAGMA database_list").fetchone()[2]
    try:
        st = os.stat(path)
        return (path, st.st_ino)
    except OSError:
        return (path, 0)


def covered_by_day(conn: sqlite3.Connection, cfg: Any, lo_ms: int, hi_ms: int, now_ms: int
                   ) -> dict[tuple[int, str], list[float]]:
    """{(gpu_id, day): [covered_s, busy_s, idle_s]} over [lo, hi). Whole days before today and behind the
    rollup watermark are final, so they are cached per day (a few minutes, keyed by the database file):
    calling this every second, or for overlapping ranges, costs one query for the days not seen yet."""
    wm = watermark(conn)
    today0 = day_start(now_ms)
    out: dict[tuple[int, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    past_hi = min(hi_ms, today0, wm)
    recent_lo = max(lo_ms, past_hi)
    if lo_ms < past_hi:
        first_full = -(-lo_ms // DAY_MS) * DAY_MS
        last_full = past_hi // DAY_MS * DAY_MS
        if first_full >= last_full:          # no whole day inside: a plain range
            recent_lo = lo_ms
        else:
            parts = [(lo_ms, first_full)] if lo_ms < first_full else []
            if last_full < past_hi:
                parts.append((last_full, past_hi))
            dbk = _db_key(conn)
            clock_s = time.monotonic()
            days = range(first_full, last_full, DAY_MS)
            # Local copies: the TUI and the metrics thread share these caches, and either may clear them.
            have = {d: hit[1] for d in days
                    if (hit := _DAY_CACHE.get((dbk, d))) is not None and clock_s - hit[0] <= _CACHE_TTL_S}
            missing = [d for d in days if d not in have]
            if missing:
                fresh: dict[int, dict[int, list[float]]] = {d: {} for d in missing}
                for gid, d, cov, busy, idle in minute_sums(conn, missing[0], missing[-1] + DAY_MS, DAY_MS):
                    if d * DAY_MS in fresh:
                        fresh[d * DAY_MS][gid] = [cov, busy, idle]
                if len(_DAY_CACHE) > 4096:
                    _DAY_CACHE.clear()
                for d, per_gpu in fresh.items():
                    _DAY_CACHE[(dbk, d)] = (clock_s, per_gpu)
                    have[d] = per_gpu
            for d in days:
                name = forecast.day_key(d)
                for gid, vals in have[d].items():
                    out[(gid, name)] = list(vals)
            for a, b in parts:
                for (gid, d), vals in covered_totals(conn, cfg, a, b, now_ms, DAY_MS).items():
                    acc = out[(gid, forecast.day_key(d))]
                    for i, v in enumerate(vals):
                        acc[i] += v
    for (gid, d), vals in covered_totals(conn, cfg, recent_lo, hi_ms, now_ms, DAY_MS).items():
        acc = out[(gid, forecast.day_key(d))]
        for i, v in enumerate(vals):
            acc[i] += v
    return out


def metered_daily(conn: sqlite3.Connection, cfg: Any, rates: dict[int, Rate], lo_ms: int, hi_ms: int,
                  now_ms: int) -> dict[str, dict[str, float]]:
    """{currency: {day: metered cost}} over [lo, hi); GPUs without a rate add nothing (and are noted)."""
    out: dict[str, dict[str, float]] = {}
    for (gid, day), (cov, *_rest) in covered_by_day(conn, cfg, lo_ms, hi_ms, now_ms).items():
        rate = rates.get(gid)
        if rate is None or rate.per_gpu_hour is None:
            continue
        bucket = out.setdefault(rate.currency, {})
        bucket[day] = bucket.get(day, 0.0) + _money(rate, cov)
    return out


def minute_sums(conn: sqlite3.Connection, lo_ms: int, hi_ms: int, bucket_ms: int | None) -> list[tuple]:
    """[(gpu_id, bucket, covered_s, busy_s, idle_s)] from gpu_minutes in [lo, hi). One primary-key range
    scan per GPU: rows are stored by (gpu_id, minute), so this reads them in order, where the minute index
    would cost a random lookup per row (about twice slower on a year of rollups)."""
    group = f"minute / {int(bucket_ms)}" if bucket_ms else "0"     # our own integer, never outside text
    q = (f"SELECT gpu_id, {group} AS b, SUM(covered_s), SUM(busy_s), SUM(held_idle_s + free_idle_s) "
         "FROM gpu_minutes WHERE gpu_id = ? AND minute >= ? AND minute < ? GROUP BY b")
    out: list[tuple] = []
    for (gid,) in conn.execute("SELECT id FROM gpus ORDER BY id").fetchall():
        out.extend(conn.execute(q, (gid, lo_ms, hi_ms)).fetchall())
    return out


def _final_key(conn: sqlite3.Connection, table: str, lo_ms: int, hi_ms: int) -> tuple:
    """The rows of `table` (gpu_minutes / process_minutes) in [lo, hi), hi <= the rollup watermark, named by
    their first and last minute (two index lookups). Behind the watermark rows are final and only ever added
    after it, so equal keys mean equal rows; a window sliding by the second changes key once a minute."""
    args = (lo_ms, hi_ms)
    first = conn.execute(f"SELECT MIN(minute) FROM {table} WHERE minute >= ? AND minute < ?", args).fetchone()[0]
    last = conn.execute(f"SELECT MAX(minute) FROM {table} WHERE minute >= ? AND minute < ?", args).fetchone()[0]
    return (table, first, last)                   # table: our own identifier, never outside text


def _memo_get(memo: dict[str, Any], name: str, key: tuple, size: int = 32) -> tuple[dict, Any]:
    cache = memo.setdefault(name, {})
    hit = cache.get(key)
    if hit is None and len(cache) >= size:
        cache.pop(next(iter(cache)))       # the oldest entry
    return cache, hit


def _final_minute_sums(conn: sqlite3.Connection, lo_ms: int, hi_ms: int, bucket_ms: int | None) -> list[tuple]:
    """minute_sums over rollup minutes behind the watermark (hi <= watermark), memoised per connection:
    the same result, read again only when the window takes in another minute or the watermark moves."""
    memo = _memo(conn)
    if memo is None:
        return minute_sums(conn, lo_ms, hi_ms, bucket_ms)
    gids = tuple(r[0] for r in conn.execute("SELECT id FROM gpus ORDER BY id"))
    key = (*_final_key(conn, "gpu_minutes", lo_ms, hi_ms), bucket_ms, gids)
    cache, hit = _memo_get(memo, "minute_sums", key)
    if hit is None:
        hit = cache[key] = minute_sums(conn, lo_ms, hi_ms, bucket_ms)
    return hit


def covered_totals(conn: sqlite3.Connection, cfg: Any, lo_ms: int, hi_ms: int, now_ms: int,
                   bucket_ms: int | None = None) -> dict[tuple[int, int], list[float]]:
    """{(gpu_id, bucket start): [covered_s, busy_s, idle_s]} over [lo, hi): sums done by SQLite on the
    rollups, raw tail added in Python. bucket_ms None: one bucket (0) for the whole range."""
    wm = watermark(conn)
    out: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    if lo_ms >= hi_ms:
        return out
    if lo_ms < wm:
        for gid, b, cov, busy, idle in _final_minute_sums(conn, lo_ms, min(hi_ms, wm), bucket_ms):
            acc = out[(gid, b * bucket_ms if bucket_ms else 0)]
            acc[0] += cov
            acc[1] += busy
            acc[2] += idle
    if hi_ms > wm:
        interval = collector_interval(conn, cfg.interval)
        for gid, segs in raw_segments(conn, max(lo_ms, wm), hi_ms, interval, cfg.idle.util_pct, now_ms,
                                      remote_interval_s=cloud_interval(cfg)).items():
            for start, cov, busy, held, free in segs:
                acc = out[(gid, start // bucket_ms * bucket_ms if bucket_ms else 0)]
                acc[0] += cov
                acc[1] += busy
                acc[2] += held + free
    return out


def metered_total(conn: sqlite3.Connection, cfg: Any, rates: dict[int, Rate], lo_ms: int, hi_ms: int,
                  now_ms: int) -> dict[str, float]:
    """{currency: metered cost} over [lo, hi) (run rates, today)."""
    out: dict[str, float] = {}
    for (gid, _b), (cov, _busy, _idle) in covered_totals(conn, cfg, lo_ms, hi_ms, now_ms).items():
        rate = rates.get(gid)
        if rate is None or rate.per_gpu_hour is None:
            continue
        out[rate.currency] = out.get(rate.currency, 0.0) + _money(rate, cov)
    return out


def hourly(conn: sqlite3.Connection, cfg: Any, rates: dict[int, Rate], now_ms: int,
           hours: int = 24) -> tuple[tuple[int, float, float], ...]:
    """(hour start ms, useful money, idle money) for the last `hours` hours, in the main currency."""
    h0 = now_ms // HOUR_MS * HOUR_MS - (hours - 1) * HOUR_MS
    acc: dict[int, list[float]] = {h0 + i * HOUR_MS: [0.0, 0.0] for i in range(hours)}
    for (gid, h), (_cov, busy, idle) in covered_totals(conn, cfg, h0, now_ms + 1, now_ms, HOUR_MS).items():
        rate = rates.get(gid)
        slot = acc.get(h)
        if rate is None or rate.per_gpu_hour is None or slot is None:
            continue
        slot[0] += _money(rate, busy)
        slot[1] += _money(rate, idle)
    return tuple((h, round(v[0], 6), round(v[1], 6)) for h, v in sorted(acc.items()))


# -- attribution -----------------------------------------------------------------------------------------
def _weights(procs: list[tuple[int, int | None, float | None]]) -> list[tuple[int, float]]:
    """SM share when NVML gave one, else memory share, else equal (same rule as the rollup)."""
    sm_total = sum(p[2] or 0.0 for p in procs)
    if sm_total > 0:
        return [(pid, (sm or 0.0) / sm_total) for pid, _m, sm in procs]
    mem_total = sum(p[1] or 0 for p in procs)
    if mem_total > 0:
        return [(pid, (mem or 0) / mem_total) for pid, mem, _s in procs]
    return [(pid, 1.0 / len(procs)) for pid, _m, _s in procs]


def _final_process_sums(conn: sqlite3.Connection, lo_ms: int, hi_ms: int) -> list[tuple]:
    """[(proc_id, gpu_id, share_s, idle_share_s)] over process_minutes in [lo, hi), hi <= watermark (final,
    so memoised per connection like _final_minute_sums)."""
    def read() -> list[tuple]:
        return conn.execute("SELECT proc_id, gpu_id, SUM(share_s), SUM(idle_share_s) FROM process_minutes "
                            "WHERE minute >= ? AND minute < ? GROUP BY proc_id, gpu_id", (lo_ms, hi_ms)).fetchall()

    memo = _memo(conn)
    if memo is None:
        return read()
    key = _final_key(conn, "process_minutes", lo_ms, hi_ms)
    cache, hit = _memo_get(memo, "process_sums", key)
    if hit is None:
        hit = cache[key] = read()
    return hit


def attribution(conn: sqlite3.Connection, cfg: Any, rates: dict[int, Rate], lo_ms: int, hi_ms: int,
                now_ms: int) -> list[Spend]:
    """Cost and idle cost per process over [lo, hi), biggest first. Older time from process_minutes,
    the raw tail split like the rollup does (SM share, else memory share)."""
    wm = watermark(conn)
    acc: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0.0, 0.0])   # (proc, gpu) -> share, idle
    if lo_ms < wm:
        for proc, gid, share, idle in _final_process_sums(conn, lo_ms, min(hi_ms, wm)):
            a = acc[(proc, gid)]
            a[0] += share or 0.0
            a[1] += idle or 0.0
    if hi_ms > wm:
        lo = max(lo_ms, wm)
        procs: dict[tuple[int, int], list[tuple[int, int | None, float | None]]] = defaultdict(list)
        for gid, ts, proc, mem, sm in conn.execute(
                "SELECT gpu_id, ts, proc_id, used_memory, sm_util FROM process_samples WHERE ts >= ? AND ts < ?",
                (lo, hi_ms)):
            procs[(gid, ts)].append((proc, mem, sm))
        if procs:
            interval = collector_interval(conn, cfg.interval)
            for gid, segs in raw_segments(conn, lo, hi_ms, interval, cfg.idle.util_pct, now_ms,
                                          remote_interval_s=cloud_interval(cfg)).items():
                for start, cov, _busy, held, free in segs:
                    plist = procs.get((gid, start))
                    if not plist:
                        continue
                    for proc, w in _weights(plist):
                        a = acc[(proc, gid)]
                        a[0] += cov * w
                        a[1] += (held + free) * w
    if not acc:
        return []
    ids = sorted({p for p, _g in acc})
    info: dict[int, tuple[int, str, str]] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        marks = ",".join("?" * len(chunk))
        for pid_row in conn.execute(f"SELECT id, pid, user, command FROM processes WHERE id IN ({marks})", chunk):
            info[pid_row[0]] = (pid_row[1], pid_row[2] or "?", pid_row[3] or "")
    # One line per process as a user knows it (pid, user, command): a process row recorded twice (history
    # and live sampler) or spread over several GPUs is still one process.
    money: dict[tuple[int, str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for (proc, gid), (share, idle) in acc.items():
        rate = rates.get(gid)
        if rate is None or rate.per_gpu_hour is None:
            continue
        pid, user, command = info.get(proc, (0, "?", ""))
        m = money[(pid, user, command, rate.currency)]
        m[0] += _money(rate, share)
        m[1] += _money(rate, idle)
        m[2] = max(m[2], proc)
    out = [Spend(int(v[2]), pid, user, command, cost=v[0], idle_cost=v[1], currency=cur)
           for (pid, user, command, cur), v in money.items()]
    out.sort(key=lambda s: (-s.cost, s.pid))
    return out


def by_user(spends: list[Spend]) -> list[tuple[str, str, float, float]]:
    """[(user, currency, cost, idle cost)] biggest first."""
    acc: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for s in spends:
        a = acc[(s.user, s.currency)]
        a[0] += s.cost
        a[1] += s.idle_cost
    return sorted(((u, c, v[0], v[1]) for (u, c), v in acc.items()), key=lambda r: (-r[2], r[0]))


# -- the snapshot ----------------------------------------------------------------------------------------
def _latest(conn: sqlite3.Connection, wm: int, now_ms: int) -> dict[int, tuple]:
    """Newest sample per GPU: {gpu_id: (ts, util, mem_used, power, temperature)}."""
    out: dict[int, tuple] = {}
    # gpu_samples is keyed (ts, gpu_id) and the sampler keeps gpus.last_seen = the GPU's newest sample ts,
    # so this is a point lookup per GPU; the bounded fallback covers rows whose last_seen is not a sample.
    for gid, last in conn.execute("SELECT id, last_seen FROM gpus").fetchall():
        row = conn.execute("SELECT ts, util, mem_used, power, temperature FROM gpu_samples WHERE ts = ? "
                           "AND gpu_id = ?", (last, gid)).fetchone()
        if row is None and last is not None:
            row = conn.execute("SELECT ts, util, mem_used, power, temperature FROM gpu_samples WHERE ts <= ? "
                               "AND ts >= ? AND gpu_id = ? ORDER BY ts DESC LIMIT 1",
                               (last, last - 3600_000, gid)).fetchone()
        if row:
            out[gid] = row
    return out


def _current_procs(conn: sqlite3.Connection, latest: dict[int, tuple]) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = {}
    for gid, row in latest.items():
        out[gid] = conn.execute(
            "SELECT ps.proc_id, p.pid, p.user, p.command, ps.used_memory, ps.sm_util FROM process_samples ps "
            "JOIN processes p ON p.id = ps.proc_id WHERE ps.gpu_id = ? AND ps.ts = ? ORDER BY p.pid",
            (gid, row[0])).fetchall()
    return out


def _alerts(conn: sqlite3.Connection) -> tuple[AlertView, ...]:
    out = []
    for kind, subject, state, started, dollars, details in conn.execute(
            "SELECT kind, subject, state, started, dollars, details FROM alerts WHERE state = 'open' "
            "ORDER BY started"):
        msg = ""
        if details:
            try:
                d = json.loads(details)
                msg = str(d.get("message", "")) if isinstance(d, dict) else ""
            except ValueError:
                msg = ""
        out.append(AlertView(kind, subject, state, started, dollars, msg or f"{kind} {subject}"))
    return tuple(out)


def _collector(conn: sqlite3.Connection, now_ms: int) -> str:
    from gpuspend import lease

    info = lease.holder(conn, now_ms)
    if info is None:
        return "none"
    return f"{info.describe()}{' (stale)' if info.stale else ''}"


def build_snapshot(conn: sqlite3.Connection, cfg: Any, now_ms: int | None = None, *,
                   month: str | None = None) -> Snapshot:
    """Everything a reader shows, computed once from the store. Cheap enough to call every second."""
    now = clock.now_ms() if now_ms is None else now_ms
    gpus = load_gpus(conn)
    rates = resolve_rates(conn, cfg, gpus, now)
    wm = watermark(conn)
    interval = collector_interval(conn, cfg.interval)
    latest = _latest(conn, wm, now)
    cur_procs = _current_procs(conn, latest)
    today0 = day_start(now)
    today = forecast.day_key(now)
    episodes, timelines = idle_episodes(conn, cfg, today0, now + 1, now, rates, gpus)
    stale_ms = GAP_INTERVALS * interval * 1000
    currency = next((r.currency for r in rates.values() if r.per_gpu_hour is not None), cfg.currency or "USD")

    gnow: list[GpuNow] = []
    by_state: dict[str, float] = {s: 0.0 for s in STATES}
    total = 0.0
    for g in gpus:
        rate = rates[g["id"]]
        row = latest.get(g["id"])
        procs = cur_procs.get(g["id"], [])
        stale_after = GAP_INTERVALS * cloud_interval(cfg) * 1000 if is_remote(g["source"]) else stale_ms
        if g["lost_at"] is not None:
            state = "lost"
        elif row is None or now - row[0] > stale_after:
            state = "stale"
        else:
            holds = any((p[4] is None) or p[4] > 0 for p in procs)
            state = sample_state(row[1], holds, cfg.idle.util_pct)
        tl = timelines.get(g["id"])
        open_ep = next((e for e in (tl.episodes if tl else []) if e.open), None)
        cph = rate.per_gpu_hour
        if cph is not None and rate.currency == currency:
            total += cph
            by_state[state] += cph
        idle_state = state in ("held-idle", "free-idle")
        parent = next((p["uuid"] for p in gpus if p["id"] == g["parent_id"]), None) if g["parent_id"] else None
        gnow.append(GpuNow(
            uuid=g["uuid"], index=g["idx"], host=g["host"], name=g["name"] or "", model=g["model"],
            source=g["source"], state=state, util=row[1] if row else None, mem_used=row[2] if row else None,
            mem_total=g["memory_total"], power=row[3] if row else None, temperature=row[4] if row else None,
            rate=rate, cost_per_hour=cph, idle_for_s=tl.idle_for_s if (tl and idle_state) else 0.0,
            episode_open=open_ep is not None, episode_waste=(open_ep.waste or 0.0) if open_ep else 0.0,
            last_sample_ms=row[0] if row else None, parent_uuid=parent))

    uuid_of = {g["id"]: (g["uuid"], g["idx"]) for g in gpus}
    spends = {(s.pid, s.user, s.command): s for s in attribution(conn, cfg, rates, today0, now + 1, now)}
    pnow = []
    for gid, procs in cur_procs.items():
        for _proc_id, pid, user, command, mem, sm in procs:
            s = spends.get((pid, user or "?", command or ""))
            pnow.append(ProcessNow(pid=pid, user=user or "?", command=command or "", gpu_uuid=uuid_of[gid][0],
                                   gpu_index=uuid_of[gid][1], used_memory=mem, sm_util=sm,
                                   cost_today=s.cost if s else 0.0))

    month = month or forecast.month_of(now)
    months, cov_end = month_views_for(conn, cfg, month, now, rates)
    cov_today = max(cov_end or 0, today0)
    today_billed = forecast.billed_daily(conn, forecast.month_of(now), cov_end).get(currency, {}).get(today, 0.0) \
        if cov_end and cov_end > today0 else 0.0
    today_metered = metered_total(conn, cfg, local_rates(conn, rates), cov_today, now + 1, now).get(currency, 0.0)
    today_metered += sum(cloud_daily(conn, cfg, today0, now + 1, now).get(currency, {}).values())

    notes = []
    no_rate = [g for g in gnow if g.rate.per_gpu_hour is None and g.rate.label != MIG_LABEL]
    if no_rate:
        notes.append(f"{len(no_rate)} GPU{'s' if len(no_rate) > 1 else ''} have no rate: "
                     f"{no_rate[0].rate.label}")
    cat_dates = sorted({r.as_of for r in rates.values() if r.source == "catalog" and r.as_of})
    for d in cat_dates:
        if pricing.is_stale(d, cfg, now):
            notes.append(f"catalog price from {d} is older than {cfg.alerts.stale_catalog / 86400:.0f} days")
    under = underutilised(conn, cfg, now, gpus)
    if under:
        notes.append(f"underutilised over 24 h (< {cfg.idle.low_util_pct:g}%): "
                     + ", ".join(f"{u[:12]} {a:.0f}%" for u, a in under[:4]))
    last = max((r[0] for r in latest.values()), default=None)
    return Snapshot(
        now_ms=now, host=cfg.host or (gpus[0]["host"] if gpus else socket.gethostname()), currency=currency,
        gpus=tuple(gnow), processes=tuple(sorted(pnow, key=lambda p: (-p.cost_today, p.pid))),
        cost_per_hour=total, cost_per_hour_by_state=tuple((s, by_state[s]) for s in STATES),
        today_cost=today_billed + today_metered,
        idle_waste_today=sum(e.by_day.get(today, 0.0) for e in episodes if e.currency == currency),
        months=months, alerts=_alerts(conn), hourly=hourly(conn, cfg, rates, now),
        rate_sources=tuple(sorted({r.label for r in rates.values()})), nvml_available=None,
        collector=_collector(conn, now), last_sample_ms=last, billing_coverage_end_ms=cov_end,
        catalog_as_of=cat_dates[0] if cat_dates else None, notes=tuple(notes),
        underutilised=tuple(u for u, _a in under))


def month_views_for(conn: sqlite3.Connection, cfg: Any, month: str, now_ms: int,
                    rates: dict[int, Rate]) -> tuple[tuple, int | None]:
    """MonthViews for `month` and the coverage end. Metered = local GPUs after the exports' coverage end
    (their time x rate) + GPU-cloud spend over the whole month (cloud_daily: no billing export holds it, so
    the exports' coverage does not apply). GPU-cloud GPUs are metered only through their cloud spend."""
    start, end = forecast.month_bounds(month)
    cov_end = forecast.billing_coverage(conn, month)
    local = local_rates(conn, rates)
    lo = max(start, cov_end or start)
    hi = min(end, now_ms + 1)
    metered = metered_daily(conn, cfg, local, lo, hi, now_ms) if lo < hi else {}
    cloud = cloud_daily(conn, cfg, start, hi, now_ms)
    win_lo = max(start, now_ms - int(float(cfg.forecast.window) * 1000)) if now_ms < end else end
    first = first_data_ms(conn)
    if first is not None and win_lo < first < now_ms:
        # A box collecting for an hour has an hour of run rate, not a day's worth averaged with nothing.
        win_lo = first
    w_lo = max(win_lo, cov_end or win_lo)
    window = metered_total(conn, cfg, local, w_lo, min(now_ms + 1, end), now_ms) if w_lo < now_ms else {}
    if win_lo < now_ms:
        for cur, days in cloud_daily(conn, cfg, win_lo, min(now_ms + 1, end), now_ms).items():
            window[cur] = window.get(cur, 0.0) + sum(days.values())
    views = forecast.month_views(conn, cfg, month, now_ms, _add_daily(metered, cloud), window, cov_end, win_lo)
    views = tuple(replace(v, cloud=sum(cloud.get(v.currency, {}).values())) for v in views)
    return views, cov_end


def first_data_ms(conn: sqlite3.Connection) -> int | None:
    """When this database starts knowing about money: the first sample, rollup minute, billed charge or cloud
    poll (indexed MINs but the last, on a small table)."""
    row = conn.execute(
        "SELECT (SELECT MIN(ts) FROM gpu_samples), (SELECT MIN(minute) FROM gpu_minutes), "
        "(SELECT MIN(charge_period_start) * 1000 FROM charges), (SELECT MIN(ts) FROM cloud_spend)").fetchone()
    found = [int(v) for v in row if v is not None]
    return min(found) if found else None


def local_rates(conn: sqlite3.Connection, rates: dict[int, Rate]) -> dict[int, Rate]:
    """The rates to meter GPU time with: GPU-cloud GPUs are left out, their money comes from the provider's
    own meter (cloud_daily), so a remote GPU is never counted twice."""
    remote = remote_gpu_ids(conn)
    return {gid: r for gid, r in rates.items() if gid not in remote}


def _add_daily(*parts: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for part in parts:
        for cur, days in part.items():
            bucket = out.setdefault(cur, {})
            for d, v in days.items():
                bucket[d] = bucket.get(d, 0.0) + v
    return out


# -- GPU-cloud spend (RunPod, Lambda, Vast.ai) -------------------------------------------------------------
def _spread(out: dict[str, dict[str, float]], currency: str, per_ms: float, a_ms: int, b_ms: int,
            lo_ms: int, hi_ms: int) -> None:
    """Add money spent at `per_ms` over [a, b) to the UTC days it falls on, clipped to [lo, hi)."""
    t, stop = max(a_ms, lo_ms), min(b_ms, hi_ms)
    bucket = out.setdefault(currency, {})
    while t < stop:
        nxt = min(stop, day_start(t) + DAY_MS)
        d = forecast.day_key(t)
        bucket[d] = bucket.get(d, 0.0) + per_ms * (nxt - t)
        t = nxt


def _vast_charges(conn: sqlite3.Connection, out: dict[str, dict[str, float]], lo_ms: int, hi_ms: int
                  ) -> dict[str, int]:
    """Add Vast.ai charges in [lo, hi) to `out` (each spread evenly over its start..end), and return how far
    the charges reach per instance id (epoch ms): the poll log meters an instance only after that.

    Each month's fetch replaces that month (cloud_charges.period_start) and may list a contract that spans
    months in full, so a month's money is read only from that month's fetch, clipped to the month."""
    reach: dict[str, int] = {}
    for source, end in conn.execute("SELECT source, MAX(end) FROM cloud_charges WHERE provider = 'vast' "
                                    "AND end IS NOT NULL GROUP BY source"):
        if source.startswith("instance-"):
            reach[source[len("instance-"):]] = int(end) * 1000
    month = forecast.month_of(lo_ms)
    while True:
        m0, m1 = forecast.month_bounds(month)
        if m0 >= hi_ms:
            break
        a, b = max(lo_ms, m0), min(hi_ms, m1)
        for start, end, amount, cur in conn.execute(
                "SELECT start, end, amount, currency FROM cloud_charges WHERE provider = 'vast' AND period_start = ?",
                (m0 // 1000,)):
            cur = cur or "USD"
            s_ms = int(start if start is not None else end if end is not None else m0 // 1000) * 1000
            e_ms = int(end) * 1000 if end is not None else s_ms
            if e_ms > s_ms:
                _spread(out, cur, float(amount) / (e_ms - s_ms), s_ms, e_ms, a, b)
            elif a <= s_ms < b:                   # a charge without a span: on the day it names
                bucket = out.setdefault(cur, {})
                d = forecast.day_key(s_ms)
                bucket[d] = bucket.get(d, 0.0) + float(amount)
        month = forecast.month_of(m1)
    return reach


def cloud_daily(conn: sqlite3.Connection, cfg: Any, lo_ms: int, hi_ms: int, now_ms: int
                ) -> dict[str, dict[str, float]]:
    """{currency: {day: money}} spent on GPU-cloud instances in [lo, hi).

    RunPod and Lambda: the poll log (cloud_spend) integrated with the same gap rule as GPU samples: a
    billed poll counts until the next poll, or one poll interval after a gap of more than 3 intervals or
    after the last poll. Vast.ai: its charges where they reach for each instance, the poll log after that."""
    out: dict[str, dict[str, float]] = {}
    if lo_ms >= hi_ms:
        return out
    interval_ms = int(cloud_interval(cfg) * 1000)
    cap = GAP_INTERVALS * interval_ms
    reach = _vast_charges(conn, out, lo_ms, hi_ms)
    rows = conn.execute(
        "SELECT s.provider, s.instance_id, s.ts, s.price_per_hour, s.running, COALESCE(i.currency, 'USD') "
        "FROM cloud_spend s LEFT JOIN cloud_instances i ON i.provider = s.provider AND i.instance_id = s.instance_id "
        "WHERE s.ts >= ? AND s.ts < ? ORDER BY s.provider, s.instance_id, s.ts", (lo_ms - cap, hi_ms)).fetchall()
    for i, (provider, instance_id, ts, price, running, cur) in enumerate(rows):
        if not running or price is None:
            continue
        nxt = rows[i + 1] if i + 1 < len(rows) and rows[i + 1][:2] == (provider, instance_id) else None
        if nxt is not None:
            dt = nxt[2] - ts
            stop = ts + (dt if dt <= cap else interval_ms)
        else:
            stop = ts + max(0, min(now_ms - ts, interval_ms))
        start = max(ts, reach.get(instance_id, ts)) if provider == "vast" else ts
        _spread(out, cur, float(price) / HOUR_MS, start, stop, lo_ms, hi_ms)
    return {cur: days for cur, days in out.items() if days}


# -- billing summary -------------------------------------------------------------------------------------
def billing_summary(conn: sqlite3.Connection, cfg: Any, month: str, now_ms: int | None = None,
                    currency: str | None = None, top: int = 8) -> BillingSummary:
    """The month so far by day (billed and metered), top services, top GPU SKUs, import coverage and the
    "cheaper elsewhere" alternatives for this box's GPUs."""
    now = clock.now_ms() if now_ms is None else now_ms
    start, end = forecast.month_bounds(month)
    s_s, e_s = start // 1000, end // 1000
    cov_end = forecast.billing_coverage(conn, month)
    all_billed = forecast.billed_daily(conn, month, cov_end)
    if currency is None:      # the currency with the most billed money this month
        totals = sorted(((sum(abs(v) for v in d.values()), c) for c, d in all_billed.items()), reverse=True)
        currency = totals[0][1] if totals else (cfg.currency or "USD")
    gpus = load_gpus(conn)
    rates = resolve_rates(conn, cfg, gpus, now)
    billed = all_billed.get(currency, {})
    lo, hi = max(start, cov_end or start), min(end, now + 1)
    metered = _add_daily(metered_daily(conn, cfg, local_rates(conn, rates), lo, hi, now) if lo < hi else {},
                         cloud_daily(conn, cfg, start, hi, now)).get(currency, {})
    days = tuple(DayTotal(d, round(billed.get(d, 0.0), 6), round(metered.get(d, 0.0), 6))
                 for d in sorted(set(billed) | set(metered)))
    services = tuple(Spender(name or "(none)", float(total), bool(g)) for name, total, g in conn.execute(
        "SELECT service, SUM(billed_cost) AS t, MAX(is_gpu) FROM charges WHERE billing_period_start >= ? "
        "AND billing_period_start < ? AND currency = ? GROUP BY service ORDER BY t DESC LIMIT ?",
        (s_s, e_s, currency, top)))
    skus = tuple(Spender(name or "(none)", float(total), True) for name, total in conn.execute(
        "SELECT COALESCE(instance_type, sku, gpu_model) AS k, SUM(billed_cost) AS t FROM charges "
        "WHERE billing_period_start >= ? AND billing_period_start < ? AND currency = ? AND is_gpu = 1 "
        "GROUP BY k ORDER BY t DESC LIMIT ?", (s_s, e_s, currency, top)))
    coverage = tuple((fmt, f"{src}/{acct}" if acct else src, c * 1000 if c is not None else None, int(n or 0))
                     for fmt, src, acct, c, n in conn.execute(
                         "SELECT format, source, account, MAX(coverage_end), SUM(rows) FROM imports "
                         "WHERE billing_period_start >= ? AND billing_period_start < ? "
                         "GROUP BY format, source, account ORDER BY source", (s_s, e_s)))
    return BillingSummary(month=month, currency=currency, days=days, services=services, gpu_skus=skus,
                          coverage=coverage, alternatives=alternatives(conn, cfg, month, now, gpus, rates))


def alternatives(conn: sqlite3.Connection, cfg: Any, month: str, now_ms: int,
                 gpus: list[dict[str, Any]] | None = None, rates: dict[int, Rate] | None = None
                 ) -> tuple[Alternative, ...]:
    """What this box's GPU-hours this month would cost at each other catalog provider (USD only)."""
    gpus = load_gpus(conn) if gpus is None else gpus
    rates = resolve_rates(conn, cfg, gpus, now_ms) if rates is None else rates
    start, end = forecast.month_bounds(month)
    hi = min(end, now_ms + 1)
    if start >= hi:
        return ()
    cov = covered_by_day(conn, cfg, start, hi, now_ms)
    hours: dict[str, float] = defaultdict(float)
    current: dict[str, float] = defaultdict(float)
    current_provider: dict[str, str] = {}
    model_of = {g["id"]: g["model"] for g in gpus}
    for (gid, _day), (secs, *_r) in cov.items():
        model, rate = model_of.get(gid), rates.get(gid)
        if not model or rate is None or rate.per_gpu_hour is None or rate.currency != "USD":
            continue
        hours[model] += secs / 3600.0
        current[model] += _money(rate, secs)
        if rate.provider:               # where this money goes now: not an alternative to itself
            current_provider[model] = rate.provider
    out = []
    cat = pricing.load_catalog()
    for model in sorted(hours):
        for e in cat.for_model(model):
            if e.provider == current_provider.get(model):
                continue
            cost = hours[model] * e.usd_per_gpu_hour
            out.append(Alternative(provider=e.provider, gpu_model=model, per_gpu_hour=round(e.usd_per_gpu_hour, 6),
                                   as_of=e.as_of, cost_same_hours=round(cost, 6),
                                   saving=round(current[model] - cost, 6)))
    out.sort(key=lambda a: (a.gpu_model, -a.saving, a.provider))
    return tuple(out)

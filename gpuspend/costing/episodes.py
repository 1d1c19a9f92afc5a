"""Idle episodes (DESIGN.md "Cost semantics").

A run of idle starts at the first idle second; it becomes an episode once it holds `idle.after` seconds of
idle, and its waste counts from the run's first idle second; it ends after `idle.busy_for` seconds of
continuous busy (it is "resolved" only when work is seen). Short busy blips do not end a run. A collection gap
or unknown time (no utilisation) is neither idle nor busy: a run idle on both sides of it spans it, its seconds
are not waste, and it breaks a busy streak (busy on both sides of a gap is not continuous busy). Rollup minutes
come back as their busy-run edges (gpuspend.rollup.minute_pieces), so the scan reads the same order of busy and
idle from rollups as from raw samples.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field, replace
from typing import Any

from gpuspend import clock, forecast
from gpuspend.costing.common import DAY_MS, HOUR_MS, Episode, GpuTimeline, money
from gpuspend.costing.context import Cache, cache_for
from gpuspend.costing.store_read import (
    final_hours,
    load_gpus,
    raw_segments,
    resolve_rates,
    rollup_generation,
    segments,
    watermark,
)
from gpuspend.idle import GAP_INTERVALS, is_idle
from gpuspend.rollup import REMOTE_SOURCES, cloud_interval, collector_interval
from gpuspend.samples import gpu_samples
from gpuspend.snapshot import Rate

MAX_LOOKBACK_MS = 31 * DAY_MS


def is_remote(source: str | None) -> bool:
    """A GPU rented from a GPU cloud (RunPod, Lambda, Vast): sampled once per cloud poll, priced by its API."""
    return source in REMOTE_SOURCES


def gap_ms_for(cfg: Any, source: str | None) -> float:
    """Silence after which a GPU's data counts as a gap (3 sampling intervals, + a rollup minute of slack); a gap
    no longer ends an idle run (see the module docstring), the value only keys the scan checkpoints. GPU-cloud
    GPUs are sampled once per `clouds.interval`, local ones every `interval`."""
    interval = cloud_interval(cfg) if is_remote(source) else float(cfg.interval)
    return GAP_INTERVALS * interval * 1000 + 60_000


def run_start_bound(conn: sqlite3.Connection, cfg: Any, gpu_id: int, before_ms: int, wm: int) -> int:
    """Where to start scanning one GPU so that an idle run in progress at `before_ms` is seen from its first
    idle second: the last rollup minute before it that was clearly busy (or a month back at most)."""
    floor = before_ms - MAX_LOOKBACK_MS
    if before_ms <= wm:                   # reads only final rollup minutes: the answer cannot change
        return cache_for(conn).get("run_start", (gpu_id, before_ms, float(cfg.idle.busy_for)),
                                   lambda: _run_start_in_minutes(conn, cfg, gpu_id, floor, before_ms),
                                   durable=True, size=256)
    if before_ms > wm:
        pct = float(cfg.idle.util_pct)
        busy = [r[1] for r in gpu_samples(conn, wm, before_ms, (gpu_id,)) if not is_idle(r[2], pct) and r[2] is not None]
        if busy:
            return int(max(busy))
    return _run_start_in_minutes(conn, cfg, gpu_id, floor, min(before_ms, wm))


def _run_start_in_minutes(conn: sqlite3.Connection, cfg: Any, gpu_id: int, floor: int, hi_ms: int) -> int:
    # A minute holding a continuous busy run of busy_for ends any idle run before it (rows without edges:
    # their busy total, the old reading).
    row = conn.execute("SELECT MAX(minute) FROM gpu_minutes WHERE gpu_id = ? AND minute >= ? AND minute < ? "
                       "AND COALESCE(MAX(busy_lead_s, busy_tail_s, busy_run_s), busy_s) >= ?",
                       (gpu_id, floor, hi_ms, float(cfg.idle.busy_for))).fetchone()
    return int(row[0]) if row and row[0] is not None else floor


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
        self.gap_ms = gap_ms_for(cfg, None) if gap_ms is None else gap_ms
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
        rate, after, busy_for = self.rate, self.after, self.busy_for
        has_rate = rate.per_gpu_hour is not None
        run, pending, last_end = self.run, self.pending, self.last_end
        busy_streak, streak_start = self.busy_streak, self.streak_start
        for start, cov, busy, held, free in segs:
            if last_end is not None and start > last_end + 1:
                busy_streak = 0.0                 # a hole: busy on both sides of it is not continuous busy
                if run is not None:
                    run.unseen_s += (start - last_end) / 1000.0
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
            if cov - busy - idle > 0.0005:
                busy_streak = 0.0                 # unknown time breaks a busy streak too
                if run is not None:
                    run.unseen_s += cov - busy - idle
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
            # Data that stopped does not end a run: nobody saw work (the `collector` alert says data stopped).
            idle_for = max(0.0, ((last_end or run.start_ms) - run.start_ms) / 1000.0)
            run_start = run.start_ms
            if run.idle_s >= self.after:
                self.episodes.append(run)         # open episode (end_ms None)
        return GpuTimeline(self.episodes, idle_for, run_start)


def scan_episodes(segs: list[tuple[int, float, float, float, float]], rate: Rate, cfg: Any, now_ms: int,
                  gpu_id: int = 0, uuid: str = "", gap_ms: float | None = None) -> GpuTimeline:
    """Walk one GPU's segments (ordered) and return its idle episodes and current idle run."""
    return EpisodeScan(rate, cfg, gpu_id, uuid, gap_ms).feed(segs).timeline(now_ms)


def _book(ep: Episode, ts: int, idle_s: float, rate: Rate) -> None:
    if rate.per_gpu_hour is None:
        return
    m = money(rate, idle_s)
    ep.waste = (ep.waste or 0.0) + m
    d = forecast.day_key(ts)
    ep.by_day[d] = ep.by_day.get(d, 0.0) + m
    h = ts // HOUR_MS * HOUR_MS
    ep.by_hour[h] = ep.by_hour.get(h, 0.0) + m


def idle_episodes(conn: sqlite3.Connection, cfg: Any, since_ms: int, until_ms: int, now_ms: int | None = None,
                  rates: dict[int, Rate] | None = None, gpus: list[dict[str, Any]] | None = None
                  ) -> tuple[list[Episode], dict[int, GpuTimeline]]:
    """Episodes that overlap [since, until) (open or closed), and each GPU's timeline. Each GPU is scanned
    from its last busy minute before `since`, so an episode that began earlier keeps its true start.

    Up to now (until = now + 1) on a database file, each GPU's scan resumes from the state kept in the cache
    last time (see _live_timeline): the same numbers as a full scan, for the price of the
    samples that arrived since. Treat the returned episodes as read-only: closed ones are shared."""
    now = clock.now_ms() if now_ms is None else now_ms
    gpus = load_gpus(conn) if gpus is None else gpus
    rates = resolve_rates(conn, cfg, gpus, now) if rates is None else rates
    wm = watermark(conn)
    cache = cache_for(conn)
    cache.seen_rollup(wm, rollup_generation(conn))
    live = until_ms == now + 1 and wm <= until_ms
    interval = collector_interval(conn, cfg.interval) if live else 0.0
    out: list[Episode] = []
    timelines: dict[int, GpuTimeline] = {}
    for g in gpus:
        lo = run_start_bound(conn, cfg, g["id"], since_ms, wm)
        gap = gap_ms_for(cfg, g.get("source"))
        if live:
            tl = _live_timeline(conn, cfg, cache, g, rates[g["id"]], lo, wm, now, gap, interval)
        else:
            segs = segments(conn, cfg, lo, until_ms, now, wm, g["id"])
            tl = scan_episodes(segs.get(g["id"], []), rates[g["id"]], cfg, now, g["id"], g["uuid"], gap)
        timelines[g["id"]] = tl
        out.extend(e for e in tl.episodes if (e.end_ms is None or e.end_ms > since_ms) and e.start_ms < until_ms)
    out.sort(key=lambda e: (e.start_ms, e.gpu_id))
    return out, timelines


@dataclass
class _ScanCheckpoint:
    """One GPU's scan, kept in the cache between calls (durable: it checks the rows it is fed against the
    rows it was fed, so it is right whichever connection reads).

    `at_wm`: fed every rollup minute in [lo, wm): final (the rollup never rewrites a minute behind its
    watermark), so it only ever grows by the minutes the watermark moved over. `raw`: `at_wm` plus the raw
    samples after the watermark that already have a successor (a sample's segment depends on the next
    sample, and only the newest one on `now`); `raw_n` of them, the last being `raw_last`."""
    wm: int = 0
    at_wm: EpisodeScan | None = None
    raw: EpisodeScan | None = None
    raw_n: int = 0
    raw_last: tuple | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)    # threads reading one database share it


def _live_timeline(conn: sqlite3.Connection, cfg: Any, cache: Cache, g: dict[str, Any], rate: Rate,
                   lo: int, wm: int, now: int, gap: float, interval: float) -> GpuTimeline:
    """scan_episodes(segments(conn, cfg, lo, now + 1, now, wm, gpu)) without re-reading what was scanned."""
    gid = g["id"]
    idle_pct = float(cfg.idle.util_pct)
    remote_s = cloud_interval(cfg)
    key = (gid, g["uuid"], lo, rate.per_gpu_hour, rate.currency, float(cfg.idle.after), float(cfg.idle.busy_for),
           gap, idle_pct, interval, remote_s)
    ck: _ScanCheckpoint = cache.get("scans", key, _ScanCheckpoint, durable=True, size=64)
    with ck.lock:
        if ck.at_wm is None or wm < ck.wm:    # first call, or a store that went back: start over
            ck.at_wm = EpisodeScan(rate, cfg, gid, g["uuid"], gap)
            if lo < wm:
                ck.at_wm.feed(segments(conn, cfg, lo, wm, now, wm, gid).get(gid, []))
            ck.wm, ck.raw, ck.raw_n, ck.raw_last = wm, None, 0, None
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


def underutilised(conn: sqlite3.Connection, cfg: Any, now_ms: int,
                  gpus: list[dict[str, Any]] | None = None) -> list[tuple[str, float]]:
    """[(uuid, avg util %)] of GPUs whose average utilisation over the last 24 h is below idle.low_util_pct.
    A 24 h average moves slowly: recomputed once a minute per database, or when the rollup moves on."""
    key = (now_ms // 60_000, float(cfg.idle.low_util_pct), watermark(conn))
    return list(cache_for(conn).get("underutilised", key, lambda: _underutilised(conn, cfg, now_ms, gpus),
                                    durable=True, size=4))


def _underutilised(conn: sqlite3.Connection, cfg: Any, now_ms: int,
                   gpus: list[dict[str, Any]] | None) -> list[tuple[str, float]]:
    gpus = load_gpus(conn) if gpus is None else gpus
    by_id = {g["id"]: g["uuid"] for g in gpus}
    sums: dict[int, list[float]] = {}           # gpu id -> [util x covered seconds, covered seconds]

    def add(rows: Any) -> None:
        for gid, util_s, cov in rows:
            acc = sums.setdefault(gid, [0.0, 0.0])
            acc[0] += util_s or 0.0
            acc[1] += cov or 0.0

    def read(a: int, b: int, by_hour: bool = False) -> list[tuple]:
        # both bounds: with only `minute >= ?` SQLite prefers a full scan in primary-key order
        hour = f"minute / {HOUR_MS}" if by_hour else "0"          # our own integer, never outside text
        return conn.execute(
            f"SELECT {hour} AS h, gpu_id, SUM(util_avg * covered_s), SUM(covered_s) FROM gpu_minutes "
            "WHERE minute >= ? AND minute < ? AND util_avg IS NOT NULL AND covered_s > 0 GROUP BY h, gpu_id",
            (a, b)).fetchall()

    def hours(a: int, b: int) -> dict[int, dict[int, tuple[float, float]]]:
        out: dict[int, dict[int, tuple[float, float]]] = {}
        for h, gid, util_s, cov in read(a, b, by_hour=True):
            out.setdefault(h * HOUR_MS, {})[gid] = (util_s, cov)
        return out

    # The last 24 h: its whole hours behind the rollup watermark are summed once each; only the hour at either
    # end (and the minutes not rolled up for good) are read again, a minute later.
    direct, buckets = final_hours(conn, "util_hours", now_ms - DAY_MS, now_ms + 1, watermark(conn), hours)
    for a, b in direct:
        add(r[1:] for r in read(a, b))
    for per in buckets:
        add((gid, util_s, cov) for gid, (util_s, cov) in per.items())
    index = {g["id"]: (g.get("idx") is None, g.get("idx") or 0) for g in gpus}
    out = []
    for gid, (util_s, cov) in sorted(sums.items(), key=lambda kv: (index.get(kv[0], (True, 0)), by_id.get(kv[0]))):
        avg = util_s / cov if cov > 0 else None
        if avg is not None and avg < float(cfg.idle.low_util_pct) and gid in by_id:
            out.append((by_id[gid], float(avg)))
    return out                      # in GPU index order, as every GPU list is shown

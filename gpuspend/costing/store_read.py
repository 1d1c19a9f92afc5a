"""Reading the store: GPUs, rates, the rollup watermark, and time as *segments*.

A segment is a per-minute rollup row (older than the rollup watermark) or one raw sample (newer), each with
seconds covered / busy / held-idle / free-idle. Rollups cover months cheaply; raw samples give the live tail at
sample precision; the watermark keeps the two from ever counting the same second twice. A gap longer than 3
intervals is a gap, not money (gpuspend.idle.covered_ms: the rollup and `raw_segments` both stop covering after
one interval). Values read from final rollup rows or once per database state go through the read cache
(context.py).
"""

from __future__ import annotations

import bisect
import json
import sqlite3
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from gpuspend import forecast, pricing
from gpuspend.costing.common import DAY_MS, HOUR_MS
from gpuspend.costing.context import cache_for, memo
from gpuspend.idle import GAP_INTERVALS, covered_ms, state_of
from gpuspend.rollup import (
    WATERMARK_KEY,
    cloud_interval,
    collector_interval,
    mig_children,
    minute_pieces,
    remote_gpu_ids,
    slice_states,
)
from gpuspend.samples import gpu_samples, latest_all, proc_samples, procs_at_many
from gpuspend.snapshot import AlertView, Rate
from gpuspend.store import BILLING_GENERATION, PRICES_GENERATION, ROLLUP_GENERATION, get_meta


def load_gpus(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    cur = conn.execute("SELECT id, uuid, host, idx, name, model, memory_total, power_limit, parent_id, source, "
                       "first_seen, last_seen, lost_at FROM gpus ORDER BY host, idx, uuid")
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def watermark(conn: sqlite3.Connection) -> int:
    """Rollup rows are final before this; raw samples are read from it on (once per read context)."""
    return memo(conn, "watermark", None, lambda: _watermark(conn))


def rollup_generation(conn: sqlite3.Connection) -> str | None:
    """Moves when rollup minutes behind the watermark change (once per read context)."""
    return memo(conn, "rollup_generation", None, lambda: get_meta(conn, ROLLUP_GENERATION))


def _watermark(conn: sqlite3.Connection) -> int:
    wm = get_meta(conn, WATERMARK_KEY)
    if wm is not None:
        return int(wm)
    row = conn.execute("SELECT MIN(ts) FROM gpu_samples").fetchone()
    return row[0] // 60_000 * 60_000 if row and row[0] is not None else 0


# Hour and day sums of final rollup rows kept in the read cache (a few hundred bytes each: a month of hours and a
# year of days fit).
BUCKETS_CACHED = 4096
# What pricing.resolve_rate reads of a `gpus` row (never last_seen, which moves with every sample).
_RATE_GPU_FIELDS = ("id", "uuid", "host", "idx", "name", "model", "parent_id", "source")


def resolve_rates(conn: sqlite3.Connection, cfg: Any, gpus: list[dict[str, Any]],
                  now_ms: int | None = None, **kw: Any) -> dict[int, Rate]:
    """Rate per gpu id, from pricing.resolve_rate (which also decides a MIG slice's rate: pricing.mig_slice_rate).

    Every surface asks for the rates on every snapshot, and they change only with what they are read from: a
    durable entry of the read cache keyed by all of it (the GPUs, the config's rate sections, this machine's
    resource id, the billing and prices generations and imports, the catalog, the GPU count per host), checked
    against `now` for the catalog's staleness (a label that turns STALE at its second). Not cached: an on-prem
    electricity price (the rate follows the measured power), GPU-cloud GPUs (priced from the provider's rows,
    which the poller rewrites in place) and explicit pricing options (`kw`)."""
    def compute() -> dict[int, Rate]:
        return {g["id"]: pricing.resolve_rate(cfg, conn, g, now_ms=now_ms, **kw) for g in gpus}

    try:
        if kw or cfg.onprem.electricity_per_kwh is not None or \
                any(g.get("source") in pricing.CLOUD_SOURCES for g in gpus):
            return compute()
        config = repr((cfg.rates, cfg.currency, cfg.provider, cfg.billing.resource_id, cfg.onprem,
                       float(cfg.alerts.stale_catalog)))
    except AttributeError:                # a partial config (tests): read as it is
        return compute()

    catalog = pricing.catalog_for(conn)
    key = (tuple(tuple(g.get(f) for f in _RATE_GPU_FIELDS) for g in gpus), config,
           pricing.machine_resource_id(cfg, conn), get_meta(conn, BILLING_GENERATION),
           get_meta(conn, PRICES_GENERATION), id(catalog),
           tuple(conn.execute("SELECT COUNT(*), MAX(id), MAX(imported_at) FROM imports").fetchone()),
           tuple(conn.execute("SELECT host, COUNT(*) FROM gpus WHERE parent_id IS NULL GROUP BY host").fetchall()))
    cache = cache_for(conn)
    hit = cache.peek("rates", key, durable=True)
    if hit is not None:
        held, stale, rates = hit
        if held is catalog and all(pricing.is_stale(d, cfg, now_ms) == was for d, was in stale):
            return dict(rates)
    rates = compute()
    stale = tuple((d, pricing.is_stale(d, cfg, now_ms)) for d in sorted({r.as_of for r in rates.values() if r.as_of}))
    # the catalog is held with its entry, so its id in the key cannot be another catalog's
    cache.put("rates", key, (catalog, stale, dict(rates)), durable=True, size=8)
    return rates


def raw_segments(conn: sqlite3.Connection, lo_ms: int, hi_ms: int, interval_s: float, idle_pct: float,
                 now_ms: int, gpu_id: int | None = None, remote_interval_s: float | None = None
                 ) -> dict[int, list[tuple[int, float, float, float, float]]]:
    """{gpu_id: [(start_ms, covered_s, busy_s, held_s, free_s)]} from raw samples in [lo, hi), one per
    sample, each covering up to the next sample (one interval after a gap or at the end). GPU-cloud GPUs
    are sampled once per cloud poll: `remote_interval_s` is their interval (gap rule and last sample).

    The tail after the rollup watermark is read once per state of the database (the read context's cache)
    and sliced for each caller: a snapshot asks for it a dozen times."""
    wm = watermark(conn)
    if lo_ms < wm or hi_ms > now_ms + 1:
        return _raw_segments(conn, lo_ms, hi_ms, interval_s, idle_pct, now_ms, gpu_id, remote_interval_s)
    tail = cache_for(conn).get(
        "tail", (wm, interval_s, idle_pct, now_ms, remote_interval_s),
        lambda: _raw_segments(conn, wm, now_ms + 1, interval_s, idle_pct, now_ms, None, remote_interval_s,
                              shared=True), size=4)
    out: dict[int, list[tuple[int, float, float, float, float]]] = {}
    for gid, segs in tail.items():
        if gpu_id is not None and gid != gpu_id:
            continue
        i = bisect.bisect_left(segs, (lo_ms,))
        j = bisect.bisect_left(segs, (hi_ms,))
        if i < j:
            out[gid] = segs[i:j]
    return out


def tail_head_ms(conn: sqlite3.Connection, interval_s: float, remote_interval_s: float | None) -> int:
    """How far before `lo` raw samples are read: a sample shortly before it covers time after it (one gap's
    length back, clipped), so the seconds between the last rolled-up sample and the watermark are neither lost
    nor counted twice."""
    local_ms = max(1, int(interval_s * 1000))
    remote_ms = max(1, int(remote_interval_s * 1000)) if remote_interval_s else local_ms
    remote = remote_gpu_ids(conn) if remote_ms != local_ms else frozenset()
    return GAP_INTERVALS * (max(local_ms, remote_ms) if remote else local_ms)


def tail_reads(conn: sqlite3.Connection, wm: int, now_ms: int, head_ms: int) -> tuple[list[tuple], list[tuple]]:
    """The raw rows of the live tail, [wm - head_ms, now + 1): ([(gpu_id, ts, util)], the process samples
    [(gpu_id, ts, proc_id, used_memory, sm_util)]), read once per state of the database and shared by the
    tail's segments and attribution's split of them (the same rows a read of any range inside gives: runs never
    leave their minute, so rows further back only hold samples before the range)."""
    return cache_for(conn).get(
        "tail_reads", (wm, now_ms, head_ms),
        lambda: ([r[:3] for r in gpu_samples(conn, wm - head_ms, now_ms + 1)],
                 proc_samples(conn, wm - head_ms, now_ms + 1)), size=4)


def _raw_segments(conn: sqlite3.Connection, lo_ms: int, hi_ms: int, interval_s: float, idle_pct: float,
                  now_ms: int, gpu_id: int | None = None, remote_interval_s: float | None = None, *,
                  shared: bool = False) -> dict[int, list[tuple[int, float, float, float, float]]]:
    """`shared`: [lo, hi) is the live tail, [watermark, now + 1), for every GPU: its rows come from tail_reads."""
    local_ms = max(1, int(interval_s * 1000))
    remote_ms = max(1, int(remote_interval_s * 1000)) if remote_interval_s else local_ms
    remote = remote_gpu_ids(conn) if remote_ms != local_ms else frozenset()
    holders: set[tuple[int, int]] = set()
    parent_of = mig_children(conn)
    # A MIG-enabled GPU takes its state from its slices: read them along with it.
    ids = [] if gpu_id is None else [gpu_id, *(c for c, p in parent_of.items() if p == gpu_id)]
    head_ms = tail_head_ms(conn, interval_s, remote_interval_s)
    sel = ids or None
    if shared:
        rows, prows = tail_reads(conn, lo_ms, now_ms, head_ms)
    else:
        prows = proc_samples(conn, lo_ms - head_ms, hi_ms, sel)
        rows = [r[:3] for r in gpu_samples(conn, lo_ms - head_ms, hi_ms, sel)]
    for gid, ts, _proc, mem, _sm in prows:
        if mem is None or mem > 0:
            holders.add((gid, ts))
    slices = slice_states(rows, {k: [(0, 1, None)] for k in holders}, parent_of, idle_pct) if parent_of else {}
    out: dict[int, list[tuple[int, float, float, float, float]]] = defaultdict(list)
    for i, (gid, ts, util) in enumerate(rows):
        if gpu_id is not None and gid != gpu_id:
            continue
        interval_ms = remote_ms if gid in remote else local_ms
        nxt = rows[i + 1] if i + 1 < len(rows) and rows[i + 1][0] == gid else None
        if nxt is not None:
            dt = nxt[1] - ts
            covered = covered_ms(dt, interval_ms)
        else:
            covered = max(0, min(now_ms - ts, interval_ms))
        start = ts
        if ts < lo_ms:
            if ts + covered <= lo_ms:
                continue
            covered, start = ts + covered - lo_ms, lo_ms
        sec = covered / 1000.0
        state = state_of(util, (gid, ts) in holders, idle_pct, slices.get((gid, ts)))
        out[gid].append((start, sec, sec if state == "busy" else 0.0, sec if state == "held-idle" else 0.0,
                         sec if state == "free-idle" else 0.0))
    return out


def segments(conn: sqlite3.Connection, cfg: Any, lo_ms: int, hi_ms: int, now_ms: int,
             wm: int | None = None, gpu_id: int | None = None
             ) -> dict[int, list[tuple[int, float, float, float, float]]]:
    """Rollup minutes before the watermark + raw samples after it, ordered, per GPU (or just `gpu_id`)."""
    wm = watermark(conn) if wm is None else wm
    out: dict[int, list[tuple[int, float, float, float, float]]] = defaultdict(list)
    if lo_ms < wm:
        q = ("SELECT gpu_id, minute, covered_s, busy_s, held_idle_s, free_idle_s, busy_lead_s, busy_tail_s, "
             "busy_run_s, busy_run_at, idle_at, idle_pre_s, idle_post_at FROM gpu_minutes "
             "WHERE minute >= ? AND minute < ?")
        args: tuple = (lo_ms, min(hi_ms, wm))
        if gpu_id is not None:
            q, args = q + " AND gpu_id = ?", (*args, gpu_id)
        for gid, *row in conn.execute(q + " ORDER BY gpu_id, minute", args):
            out[gid].extend(minute_pieces(*row))     # the minute's busy-run edges, in order
    if hi_ms > wm:
        interval = collector_interval(conn, cfg.interval)
        for gid, segs in raw_segments(conn, max(lo_ms, wm), hi_ms, interval, cfg.idle.util_pct, now_ms,
                                      gpu_id, cloud_interval(cfg)).items():
            out[gid].extend(segs)
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


def _final_minute_sums(conn: sqlite3.Connection, lo_ms: int, hi_ms: int, bucket_ms: int | None,
                       wm: int) -> list[tuple]:
    """minute_sums over rollup minutes behind the watermark (hi <= wm): the whole days inside, then the whole
    hours at either end, from _final_bucket_sums (each bucket read once); only the partial hours left at the
    ends are read. A window that grows by the minute (today, the last 24 hours, the month) reads at most two
    hours' rows, and each span's sums are kept as the caller buckets them (a few tuples per GPU)."""
    cache = cache_for(conn)
    gen = rollup_generation(conn)
    cache.seen_rollup(wm, gen)
    gids = tuple(r[0] for r in conn.execute("SELECT id FROM gpus ORDER BY id"))
    sizes = [s for s in (DAY_MS, HOUR_MS) if not bucket_ms or bucket_ms % s == 0]
    out: list[tuple] = []

    def span(first: int, last: int, size: int) -> list[tuple]:
        acc: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        for start, per_gpu in _final_bucket_sums(conn, gen, first, last, size).items():
            k = start // bucket_ms if bucket_ms else 0
            for gid, vals in per_gpu.items():
                t = acc[(gid, k)]
                for i in range(3):
                    t[i] += vals[i]
        return [(gid, k, *vals) for (gid, k), vals in acc.items()]

    def take(a: int, b: int, level: int) -> None:
        if a >= b:
            return
        if level == len(sizes):           # under an hour: one short read, kept until it takes in a minute
            key = (*_final_key(conn, "gpu_minutes", a, b), bucket_ms, gids, gen)
            out.extend(cache.get("minute_sums", key, lambda: minute_sums(conn, a, b, bucket_ms), durable=True))
            return
        size = sizes[level]
        first, last = -(-a // size) * size, b // size * size
        if first >= last:
            take(a, b, level + 1)
            return
        take(a, first, level + 1)
        out.extend(cache.get("bucket_span", (size, first, last, bucket_ms, gids, gen),
                             lambda: span(first, last, size), durable=True))
        take(last, b, level + 1)

    take(lo_ms, hi_ms, 0)
    return out


def _final_bucket_sums(conn: sqlite3.Connection, generation: str | None, first_ms: int, last_ms: int,
                      bucket_ms: int) -> dict[int, dict[int, list[float]]]:
    """{bucket start: {gpu_id: [covered_s, busy_s, idle_s]}} for the whole buckets (hours, days) in
    [first, last), last <= the watermark (final_buckets)."""
    def read(lo: int, hi: int) -> dict[int, dict[int, list[float]]]:
        fresh: dict[int, dict[int, list[float]]] = defaultdict(dict)
        for gid, i, cov, busy, idle in minute_sums(conn, lo, hi, bucket_ms):
            fresh[i * bucket_ms][gid] = [cov, busy, idle]
        return fresh

    return final_buckets(conn, "bucket_sums", generation, first_ms, last_ms, bucket_ms, read)


def final_buckets(conn: sqlite3.Connection, name: str, generation: str | None, first_ms: int, last_ms: int,
                  bucket_ms: int, read: Callable[[int, int], dict[int, dict]]) -> dict[int, dict]:
    """{bucket start: what `read` made of it} for the whole buckets in [first, last), last <= the watermark.
    Rollup rows behind it are final, so each bucket is read once and kept (a durable entry of the read cache,
    under `name`) with the store's rollup generation, which the only writers behind the watermark (a rebuild,
    the demo's history backfill) move on. One `read(lo, hi)` for the buckets not seen; a bucket it leaves out
    had no rows (kept as an empty dict)."""
    cache = cache_for(conn)
    keys = {b: (bucket_ms, b, generation) for b in range(first_ms, last_ms, bucket_ms)}
    have = {b: hit for b, k in keys.items() if (hit := cache.peek(name, k, durable=True)) is not None}
    missing = [b for b in keys if b not in have]
    if missing:
        fresh = read(missing[0], missing[-1] + bucket_ms)
        for b in missing:
            value = fresh.get(b, {})
            cache.put(name, keys[b], value, durable=True, size=BUCKETS_CACHED)
            have[b] = value
    return {b: have[b] for b in keys}


def final_hours(conn: sqlite3.Connection, name: str, lo_ms: int, hi_ms: int, final_ms: int,
                hours: Callable[[int, int], dict[int, dict]]) -> tuple[list[tuple[int, int]], list[dict]]:
    """[lo, hi) as (the ranges to read as they are, the values of its whole hours before `final_ms`): those
    hours are final and summed once each (final_buckets, under `name`), so a window sliding or growing by the
    minute reads again only the partial hour at either end (and anything from `final_ms` on)."""
    first, last = -(-lo_ms // HOUR_MS) * HOUR_MS, min(hi_ms, final_ms) // HOUR_MS * HOUR_MS
    if first >= last:
        return [(lo_ms, hi_ms)], []
    buckets = final_buckets(conn, name, rollup_generation(conn), first, last, HOUR_MS, hours)
    return [r for r in ((lo_ms, first), (last, hi_ms)) if r[0] < r[1]], list(buckets.values())


def covered_totals(conn: sqlite3.Connection, cfg: Any, lo_ms: int, hi_ms: int, now_ms: int,
                   bucket_ms: int | None = None) -> dict[tuple[int, int], list[float]]:
    """{(gpu_id, bucket start): [covered_s, busy_s, idle_s]} over [lo, hi): sums done by SQLite on the
    rollups, raw tail added in Python. bucket_ms None: one bucket (0) for the whole range."""
    wm = watermark(conn)
    out: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    if lo_ms >= hi_ms:
        return out
    if lo_ms < wm:
        for gid, b, cov, busy, idle in _final_minute_sums(conn, lo_ms, min(hi_ms, wm), bucket_ms, wm):
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


def covered_by_day(conn: sqlite3.Connection, cfg: Any, lo_ms: int, hi_ms: int, now_ms: int
                   ) -> dict[tuple[int, str], list[float]]:
    """{(gpu_id, day): [covered_s, busy_s, idle_s]} over [lo, hi) (UTC days). Whole days behind the rollup
    watermark are final and cached per day (_final_bucket_sums): calling this every second, or for overlapping
    ranges, reads the days not seen yet and today's last partial hour."""
    return {(gid, forecast.day_key(d)): vals
            for (gid, d), vals in covered_totals(conn, cfg, lo_ms, hi_ms, now_ms, DAY_MS).items()}


def final_process_sums(conn: sqlite3.Connection, lo_ms: int, hi_ms: int) -> list[tuple]:
    """[(proc_id, gpu_id, share_s, idle_share_s)] over process_minutes in [lo, hi), hi <= watermark. Final rows,
    so the whole hours inside are summed once each (final_buckets) and only the partial hours at the ends are
    read: a window growing by the minute (today) reads at most two hours' rows, not the whole day's again."""
    def read(a: int, b: int) -> list[tuple]:
        return conn.execute("SELECT proc_id, gpu_id, SUM(share_s), SUM(idle_share_s) FROM process_minutes "
                            "WHERE minute >= ? AND minute < ? GROUP BY proc_id, gpu_id", (a, b)).fetchall()

    def ends(a: int, b: int) -> list[tuple]:           # kept until the range takes in another minute
        return cache_for(conn).get("process_sums", _final_key(conn, "process_minutes", a, b), lambda: read(a, b),
                                   durable=True)

    def hours(a: int, b: int) -> dict[int, dict[tuple[int, int], tuple[float, float]]]:
        out: dict[int, dict[tuple[int, int], tuple[float, float]]] = defaultdict(dict)
        for h, proc, gid, share, idle in conn.execute(
                f"SELECT minute / {HOUR_MS} AS h, proc_id, gpu_id, SUM(share_s), SUM(idle_share_s) "
                "FROM process_minutes WHERE minute >= ? AND minute < ? GROUP BY h, proc_id, gpu_id", (a, b)):
            out[h * HOUR_MS][(proc, gid)] = (share, idle)
        return out

    direct, buckets = final_hours(conn, "process_hours", lo_ms, hi_ms, hi_ms, hours)
    if not buckets:
        return ends(lo_ms, hi_ms)
    acc: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0.0, 0.0])
    parts = [row for a, b in direct for row in ends(a, b)]
    for per in buckets:
        parts.extend((proc, gid, share, idle) for (proc, gid), (share, idle) in per.items())
    for proc, gid, share, idle in parts:
        a = acc[(proc, gid)]
        a[0] += share or 0.0
        a[1] += idle or 0.0
    return [(proc, gid, share, idle) for (proc, gid), (share, idle) in acc.items()]


def local_rates(conn: sqlite3.Connection, rates: dict[int, Rate]) -> dict[int, Rate]:
    """The rates to meter GPU time with: GPU-cloud GPUs are left out, their money comes from the provider's
    own meter (cloud_daily), so a remote GPU is never counted twice."""
    remote = remote_gpu_ids(conn)
    return {gid: r for gid, r in rates.items() if gid not in remote}


def latest_samples(conn: sqlite3.Connection) -> dict[int, tuple]:
    """Newest sample per GPU: {gpu_id: (ts, util, mem_used, power, temperature)}. The sampler keeps
    gpus.last_seen = the GPU's newest sample ts, so this is a bounded lookup of the row (a run) holding it."""
    return {gid: (ts, util, mem, power, temp) for gid, (ts, util, _mu, mem, power, temp, _clk)
            in latest_all(conn).items()}


def process_rows(conn: sqlite3.Connection, proc_ids: set[int]) -> dict[int, tuple]:
    """proc id -> (pid, user, command) as stored, in one read per 500 ids (every dashboard tick asks)."""
    ids = sorted(proc_ids)
    out: dict[int, tuple] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        out.update((r[0], r[1:]) for r in conn.execute(
            f"SELECT id, pid, user, command FROM processes WHERE id IN ({','.join('?' * len(chunk))})", chunk))
    return out


def current_procs(conn: sqlite3.Connection, latest: dict[int, tuple]) -> dict[int, list[tuple]]:
    """{gpu_id: [(proc id, pid, user, command, used_memory, sm_util)]} at each GPU's sample in `latest`."""
    at = procs_at_many(conn, {gid: row[0] for gid, row in latest.items()})
    info = process_rows(conn, {proc for procs in at.values() for proc, _mem, _sm in procs})
    out: dict[int, list[tuple]] = {}
    for gid, procs in at.items():
        rows = [(proc, *info[proc], mem, sm) for proc, mem, sm in procs if proc in info]
        rows.sort(key=lambda r: r[1])
        out[gid] = rows
    return out


def open_alerts(conn: sqlite3.Connection) -> tuple[AlertView, ...]:
    out = []
    for kind, subject, state, started, dollars, details, currency in conn.execute(
            "SELECT kind, subject, state, started, dollars, details, currency FROM alerts WHERE state = 'open' "
            "ORDER BY started"):
        msg = ""
        if details:
            try:
                d = json.loads(details)
                msg = str(d.get("message", "")) if isinstance(d, dict) else ""
            except ValueError:
                msg = ""
        out.append(AlertView(kind, subject, state, started, dollars, msg or f"{kind} {subject}", currency))
    return tuple(out)


def collector_holder(conn: sqlite3.Connection, now_ms: int) -> str:
    from gpuspend import lease

    info = lease.holder(conn, now_ms)
    if info is None:
        return "none"
    return f"{info.describe()}{' (stale)' if info.stale else ''}"

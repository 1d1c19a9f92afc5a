"""Attribution: a GPU's cost per interval split among its processes (DESIGN.md "Attribution")."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from typing import Any

from gpuspend.costing.common import Spend, money
from gpuspend.costing.store_read import (
    final_process_sums,
    process_rows,
    raw_segments,
    tail_head_ms,
    tail_reads,
    watermark,
)
from gpuspend.idle import GAP_INTERVALS
from gpuspend.rollup import cloud_interval, collector_interval, mig_shares, remote_gpu_ids, split_for
from gpuspend.samples import gpu_samples, proc_samples
from gpuspend.snapshot import Rate


def attribution(conn: sqlite3.Connection, cfg: Any, rates: dict[int, Rate], lo_ms: int, hi_ms: int,
                now_ms: int) -> list[Spend]:
    """Cost and idle cost per process over [lo, hi), biggest first. Older time from process_minutes,
    the raw tail split by the rule the rollup writes them with (rollup.share_weights: SM share, else memory
    share, else equally)."""
    acc = process_seconds(conn, cfg, lo_ms, hi_ms, now_ms)
    if not acc:
        return []
    return _per_process(conn, acc, rates)


def attribution_by_gpu(conn: sqlite3.Connection, cfg: Any, rates: dict[int, Rate], lo_ms: int, hi_ms: int,
                       now_ms: int) -> dict[tuple[int, str, str, int], tuple[float, float]]:
    """{(pid, user, command, gpu id): (cost, idle cost)} over [lo, hi): a process's money on each of its GPUs,
    from the same seconds as `attribution` (a process on two GPUs is two rows that add up to its total)."""
    acc = process_seconds(conn, cfg, lo_ms, hi_ms, now_ms)
    info = _process_info(conn, {p for p, _g in acc})
    out: dict[tuple[int, str, str, int], tuple[float, float]] = {}
    for (proc, gid), (share, idle) in acc.items():
        rate = rates.get(gid)
        if rate is None or rate.per_gpu_hour is None:
            continue
        pid, user, command = info.get(proc, (0, "?", ""))
        cost, idle_cost = out.get((pid, user, command, gid), (0.0, 0.0))
        out[(pid, user, command, gid)] = (cost + money(rate, share), idle_cost + money(rate, idle))
    return out


def _process_info(conn: sqlite3.Connection, proc_ids: set[int]) -> dict[int, tuple[int, str, str]]:
    """proc id -> (pid, user, command)."""
    return {proc: (pid, user or "?", command or "") for proc, (pid, user, command) in process_rows(conn, proc_ids).items()}


def process_seconds(conn: sqlite3.Connection, cfg: Any, lo_ms: int, hi_ms: int,
                    now_ms: int) -> dict[tuple[int, int], list[float]]:
    """{(proc id, gpu id): [GPU-seconds, of which idle]} over [lo, hi): the split every per-process and
    per-workload figure is made of (gpuspend.costing.workloads adds up the same seconds by workload)."""
    wm = watermark(conn)
    acc: dict[tuple[int, int], list[float]] = defaultdict(lambda: [0.0, 0.0])   # (proc, gpu) -> share, idle
    if lo_ms < wm:
        for proc, gid, share, idle in final_process_sums(conn, lo_ms, min(hi_ms, wm)):
            a = acc[(proc, gid)]
            a[0] += share or 0.0
            a[1] += idle or 0.0
    if hi_ms > wm:
        lo = max(lo_ms, wm)
        interval = collector_interval(conn, cfg.interval)
        # raw_segments starts with the part after `lo` of the sample just before it (its time up to the next
        # sample): that piece is split among that sample's processes.
        remote = remote_gpu_ids(conn)
        back = GAP_INTERVALS * 1000 * (max(interval, cloud_interval(cfg)) if remote else interval)
        # Up to now, the rows are those the live tail's segments were made of (read once per database state).
        head_ms = tail_head_ms(conn, interval, cloud_interval(cfg))
        tail = tail_reads(conn, wm, now_ms, head_ms) if hi_ms == now_ms + 1 and wm - head_ms <= lo - back else None
        near = [r for r in tail[0] if lo - back <= r[1] < lo + 1] if tail is not None \
            else gpu_samples(conn, lo - back, lo + 1)
        at_lo = {r[0] for r in near if r[1] == lo}
        head: dict[int, int] = {}
        for r in near:
            if r[1] < lo and r[0] not in at_lo:
                head[r[0]] = max(head.get(r[0], r[1]), r[1])
        procs: dict[tuple[int, int], list[tuple[int, int | None, float | None]]] = defaultdict(list)
        first = min(head.values(), default=lo)
        for gid, ts, proc, mem, sm in ([r for r in tail[1] if r[1] >= first] if tail is not None
                                       else proc_samples(conn, first, hi_ms)):
            procs[(gid, ts)].append((proc, mem, sm))
        if procs:
            shares = mig_shares(conn)       # a MIG-enabled GPU's cost goes to its slices' processes
            for gid, segs in raw_segments(conn, lo, hi_ms, interval, cfg.idle.util_pct, now_ms,
                                          remote_interval_s=cloud_interval(cfg)).items():
                for start, cov, _busy, held, free in segs:
                    ts = head[gid] if start == lo and gid in head else start
                    if (gid, ts) not in procs and gid not in shares:
                        continue
                    for proc, w, _mem in split_for(gid, ts, procs, shares):
                        a = acc[(proc, gid)]
                        a[0] += cov * w
                        a[1] += (held + free) * w
    return acc


def _per_process(conn: sqlite3.Connection, acc: dict[tuple[int, int], list[float]],
                 rates: dict[int, Rate]) -> list[Spend]:
    info = _process_info(conn, {p for p, _g in acc})
    # One line per process as a user knows it (pid, user, command): a process row recorded twice (history
    # and live sampler) or spread over several GPUs is still one process.
    per_proc: dict[tuple[int, str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for (proc, gid), (share, idle) in acc.items():
        rate = rates.get(gid)
        if rate is None or rate.per_gpu_hour is None:
            continue
        pid, user, command = info.get(proc, (0, "?", ""))
        m = per_proc[(pid, user, command, rate.currency)]
        m[0] += money(rate, share)
        m[1] += money(rate, idle)
        m[2] = max(m[2], proc)
    out = [Spend(int(v[2]), pid, user, command, cost=v[0], idle_cost=v[1], currency=cur)
           for (pid, user, command, cur), v in per_proc.items()]
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

"""Metered cost: covered GPU time x rate, per day, per window and per hour (the local meter)."""

from __future__ import annotations

import sqlite3
from typing import Any

from gpuspend import forecast
from gpuspend.costing.common import DAY_MS, HOUR_MS, money
from gpuspend.costing.store_read import covered_by_day, covered_totals, raw_segments, watermark
from gpuspend.rollup import cloud_interval, collector_interval
from gpuspend.samples import gpu_samples
from gpuspend.snapshot import Rate


def metered_daily(conn: sqlite3.Connection, cfg: Any, rates: dict[int, Rate], lo_ms: int, hi_ms: int,
                  now_ms: int) -> dict[str, dict[str, float]]:
    """{currency: {day: metered cost}} over [lo, hi); GPUs without a rate add nothing (and are noted).
    On-prem energy is the energy of each interval, never the current power for all of history."""
    out: dict[str, dict[str, float]] = {}
    energy = energy_by_day(conn, cfg, lo_ms, hi_ms, now_ms) \
        if any(r.energy_per_kwh is not None for r in rates.values()) else {}
    for (gid, day), (cov, *_rest) in covered_by_day(conn, cfg, lo_ms, hi_ms, now_ms).items():
        rate = rates.get(gid)
        if rate is None or rate.per_gpu_hour is None:
            continue
        bucket = out.setdefault(rate.currency, {})
        if rate.energy_per_kwh is not None:
            amount = (rate.capex_per_hour or 0.0) * cov / 3600.0 + energy.get((gid, day), 0.0) * rate.energy_per_kwh
        else:
            amount = money(rate, cov)
        bucket[day] = bucket.get(day, 0.0) + amount
    return out


def energy_by_day(conn: sqlite3.Connection, cfg: Any, lo_ms: int, hi_ms: int, now_ms: int
                  ) -> dict[tuple[int, str], float]:
    """{(gpu_id, day): kWh} over [lo, hi): rollup minutes (average power x covered time) behind the watermark,
    raw samples (power x the time each covers, the gap rule included) after it."""
    wm = watermark(conn)
    out: dict[tuple[int, str], float] = {}
    if lo_ms < wm:
        for gid, d, wh in conn.execute(
                "SELECT gpu_id, minute / 86400000, SUM(power_avg * covered_s) / 3600.0 FROM gpu_minutes "
                "WHERE minute >= ? AND minute < ? AND power_avg IS NOT NULL GROUP BY 1, 2", (lo_ms, min(hi_ms, wm))):
            key = (gid, forecast.day_key(int(d) * DAY_MS))
            out[key] = out.get(key, 0.0) + float(wh or 0.0) / 1000.0
    if hi_ms > wm:
        a = max(lo_ms, wm)
        power = {(r[0], r[1]): r[5] for r in gpu_samples(conn, a, hi_ms) if r[5] is not None}
        interval = collector_interval(conn, cfg.interval)
        for gid, segs in raw_segments(conn, a, hi_ms, interval, cfg.idle.util_pct, now_ms,
                                      remote_interval_s=cloud_interval(cfg)).items():
            for ts, sec, *_r in segs:
                p = power.get((gid, ts))
                if p is not None:
                    key = (gid, forecast.day_key(ts))
                    out[key] = out.get(key, 0.0) + float(p) * sec / 3.6e6
    return out


def metered_total(conn: sqlite3.Connection, cfg: Any, rates: dict[int, Rate], lo_ms: int, hi_ms: int,
                  now_ms: int) -> dict[str, float]:
    """{currency: metered cost} over [lo, hi) (run rates, today)."""
    out: dict[str, float] = {}
    for (gid, _b), (cov, _busy, _idle) in covered_totals(conn, cfg, lo_ms, hi_ms, now_ms).items():
        rate = rates.get(gid)
        if rate is None or rate.per_gpu_hour is None:
            continue
        out[rate.currency] = out.get(rate.currency, 0.0) + money(rate, cov)
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
        slot[0] += money(rate, busy)
        slot[1] += money(rate, idle)
    return tuple((h, round(v[0], 6), round(v[1], 6)) for h, v in sorted(acc.items()))

"""Metered cost: covered GPU time x rate, per day, per window and per hour (the local meter)."""

from __future__ import annotations

import sqlite3
from typing import Any

from gpuspend.costing.common import HOUR_MS, money
from gpuspend.costing.store_read import covered_by_day, covered_totals
from gpuspend.snapshot import Rate


def metered_daily(conn: sqlite3.Connection, cfg: Any, rates: dict[int, Rate], lo_ms: int, hi_ms: int,
                  now_ms: int) -> dict[str, dict[str, float]]:
    """{currency: {day: metered cost}} over [lo, hi); GPUs without a rate add nothing (and are noted)."""
    out: dict[str, dict[str, float]] = {}
    for (gid, day), (cov, *_rest) in covered_by_day(conn, cfg, lo_ms, hi_ms, now_ms).items():
        rate = rates.get(gid)
        if rate is None or rate.per_gpu_hour is None:
            continue
        bucket = out.setdefault(rate.currency, {})
        bucket[day] = bucket.get(day, 0.0) + money(rate, cov)
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

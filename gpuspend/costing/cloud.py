"""GPU-cloud spend (RunPod, Lambda, Vast.ai): the one meter of the poll log, shown on the dashboard, in
`--report` and on /metrics."""

from __future__ import annotations

import sqlite3
from typing import Any

from gpuspend import forecast
from gpuspend.costing.common import DAY_MS, HOUR_MS, day_start
from gpuspend.idle import GAP_INTERVALS, covered_ms
from gpuspend.rollup import cloud_interval


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
            stop = ts + covered_ms(nxt[2] - ts, interval_ms)
        else:
            stop = ts + max(0, min(now_ms - ts, interval_ms))
        start = max(ts, reach.get(instance_id, ts)) if provider == "vast" else ts
        _spread(out, cur, float(price) / HOUR_MS, start, stop, lo_ms, hi_ms)
    return {cur: days for cur, days in out.items() if days}

"""Month-to-date, projection, 80% interval and budgets (DESIGN.md "Month"; reference/cost-tools.md section 3).

MTD = billed charges of this billing period up to the exports' coverage end + metered local cost after it.
Projection = MTD + run rate x hours left (run rate over the trailing `forecast.window`). The 80% interval is
projection +- z80 * sigma_daily * sqrt(days left), sigma from the complete days' totals; under 3 complete days
there is no interval and the view says so. Currencies are never summed: one MonthView per currency.

Pure arithmetic lives in `project` (budget percentages and crossings: gpuspend.budget); `month_views` gathers
billed rows and takes the metered figures from costing (passed in, so this module never imports costing).
"""

from __future__ import annotations

import math
import sqlite3
import statistics
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from gpuspend import budget as budget_rule
from gpuspend.errors import UsageError
from gpuspend.snapshot import MonthView

if TYPE_CHECKING:
    from gpuspend.config import Config

Z80 = 1.2816             # two-sided 80% interval of a normal distribution
MIN_DAYS = 3
DAY_MS = 86_400_000


def parse_month(text: str) -> str:
    try:
        d = datetime.strptime(text, "%Y-%m")
    except ValueError:
        raise UsageError(f"--month {text!r} is not a month", hint="use YYYY-MM, e.g. 2026-11") from None
    return d.strftime("%Y-%m")


def month_of(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m")


def month_bounds(month: str) -> tuple[int, int]:
    """[start, end) of a calendar month in epoch ms (UTC)."""
    start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    nxt = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return int(start.timestamp() * 1000), int(nxt.timestamp() * 1000)


def day_key(ms: int) -> str:
    return _day_name(int(ms // DAY_MS))


@lru_cache(maxsize=4096)
def _day_name(day: int) -> str:
    return datetime.fromtimestamp(day * 86400, tz=UTC).strftime("%Y-%m-%d")


def project(mtd: float, run_rate_per_h: float, hours_left: float,
            complete_daily: list[float]) -> tuple[float, float | None, float | None, str]:
    """(projection, low, high, note). `complete_daily`: totals of the complete days of the month so far."""
    projection = mtd + run_rate_per_h * max(0.0, hours_left)
    n = len(complete_daily)
    if n < MIN_DAYS:
        return projection, None, None, f"not enough data for an interval ({n} complete days, need {MIN_DAYS})"
    sigma = statistics.stdev(complete_daily)
    half = Z80 * sigma * math.sqrt(max(0.0, hours_left) / 24.0)
    low = max(mtd, projection - half)
    return projection, low, projection + half, f"80% interval from {n} daily totals"


def billing_coverage(conn: sqlite3.Connection, month: str) -> int | None:
    """End (epoch ms) of the imported exports' coverage for this billing period, None without imports."""
    start, end = month_bounds(month)
    row = conn.execute(
        "SELECT MAX(coverage_end) FROM imports WHERE billing_period_start >= ? AND billing_period_start < ?",
        (start // 1000, end // 1000)).fetchone()
    return int(row[0]) * 1000 if row and row[0] is not None else None


def billed_daily(conn: sqlite3.Connection, month: str, until_ms: int | None) -> dict[str, dict[str, float]]:
    """{currency: {YYYY-MM-DD: billed}} for charges of this billing period starting before `until_ms`.
    Remembered while the database is unchanged (month view, today and the billing summary all ask), in the
    cost engine's read cache (gpuspend.costing.context: keyed by database file and content version)."""
    from gpuspend.costing.context import cache_for

    hit = cache_for(conn).get("billed_daily", (month, until_ms), lambda: _billed_daily(conn, month, until_ms),
                              size=8)
    return {cur: dict(days) for cur, days in hit.items()}


def _billed_daily(conn: sqlite3.Connection, month: str, until_ms: int | None) -> dict[str, dict[str, float]]:
    start, end = month_bounds(month)
    q = ("SELECT currency, (charge_period_start / 86400) AS d, SUM(billed_cost) FROM charges "
         "WHERE billing_period_start >= ? AND billing_period_start < ?")
    args: list[Any] = [start // 1000, end // 1000]
    if until_ms is not None:
        q += " AND charge_period_start < ?"
        args.append(until_ms // 1000)
    out: dict[str, dict[str, float]] = {}
    for cur, d, total in conn.execute(q + " GROUP BY currency, d", args):
        if d is None or total is None:
            continue
        out.setdefault(cur or "USD", {})[day_key(int(d) * DAY_MS)] = float(total)
    return out


def month_views(conn: sqlite3.Connection, cfg: Config, month: str, now_ms: int,
                metered_daily: dict[str, dict[str, float]], metered_window: dict[str, float],
                coverage_end_ms: int | None, window_lo_ms: int) -> tuple[MonthView, ...]:
    """One MonthView per currency. `metered_daily` is local metered cost after the coverage end, by day;
    `metered_window` the metered cost in [window_lo_ms, now) after the coverage end (run rate)."""
    start, end = month_bounds(month)
    until = min(now_ms, end)
    billed = billed_daily(conn, month, coverage_end_ms)
    window_h = max((until - window_lo_ms) / 3_600_000, 1 / 60)
    billed_window: dict[str, float] = {}
    if coverage_end_ms is not None and coverage_end_ms > window_lo_ms:
        for cur, total in conn.execute(
                "SELECT currency, SUM(billed_cost) FROM charges WHERE charge_period_start >= ? "
                "AND charge_period_start < ? GROUP BY currency", (window_lo_ms // 1000, coverage_end_ms // 1000)):
            billed_window[cur or "USD"] = float(total or 0.0)
    today = day_key(until - 1) if until > start else None
    hours_left = max(0.0, (end - until) / 3_600_000) if now_ms < end else 0.0
    views = []
    for cur in sorted(set(billed) | set(metered_daily) | ({cfg.budget.currency} if cfg.budget.monthly else set())):
        b = billed.get(cur, {})
        m = metered_daily.get(cur, {})
        b_total, m_total = sum(b.values()), sum(m.values())
        mtd = b_total + m_total
        run_rate = (billed_window.get(cur, 0.0) + metered_window.get(cur, 0.0)) / window_h
        complete = [b.get(d, 0.0) + m.get(d, 0.0) for d in sorted(set(b) | set(m)) if d != today or now_ms >= end]
        if now_ms >= end:
            projection, low, high, note = mtd, None, None, "month closed"
        elif now_ms < start:
            projection, low, high, note = None, None, None, "month not started"
        else:
            projection, low, high, note = project(mtd, run_rate, hours_left, complete)
        budget, pa, pf = budget_rule.pcts(cfg, cur, mtd, projection)
        views.append(MonthView(month=month, currency=cur, mtd=mtd, billed=b_total, metered=m_total,
                               coverage_end_ms=coverage_end_ms, projection=projection, low=low, high=high,
                               interval_note=note, budget=budget, budget_pct_actual=pa, budget_pct_forecast=pf))
    return tuple(views)

"""The month: month-to-date (billed + metered where the exports do not reach), the projection inputs for
gpuspend.forecast, and the billing summary (by day, top services and SKUs, coverage, cheaper alternatives)."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from dataclasses import replace
from typing import Any

from gpuspend import clock, forecast, pricing
from gpuspend.costing import context
from gpuspend.costing.cloud import cloud_daily
from gpuspend.costing.common import money
from gpuspend.costing.metering import metered_daily, metered_total
from gpuspend.costing.store_read import covered_by_day, first_data_ms, load_gpus, local_rates, resolve_rates
from gpuspend.snapshot import Alternative, BillingSummary, DayTotal, Rate, Spender


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
    views = forecast.month_views(conn, cfg, month, now_ms, add_daily(metered, cloud), window, cov_end, win_lo)
    views = tuple(replace(v, cloud=sum(cloud.get(v.currency, {}).values())) for v in views)
    return views, cov_end


def add_daily(*parts: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for part in parts:
        for cur, days in part.items():
            bucket = out.setdefault(cur, {})
            for d, v in days.items():
                bucket[d] = bucket.get(d, 0.0) + v
    return out


def billing_summary(conn: sqlite3.Connection, cfg: Any, month: str, now_ms: int | None = None,
                    currency: str | None = None, top: int = 8) -> BillingSummary:
    """The month so far by day (billed and metered), top services, top GPU SKUs, import coverage and the
    "cheaper elsewhere" alternatives for this box's GPUs."""
    now = clock.now_ms() if now_ms is None else now_ms
    with context.reading(conn, cfg, now):
        return _billing_summary(conn, cfg, month, now, currency, top)


def _billing_summary(conn: sqlite3.Connection, cfg: Any, month: str, now: int, currency: str | None,
                     top: int) -> BillingSummary:
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
    metered = add_daily(metered_daily(conn, cfg, local_rates(conn, rates), lo, hi, now) if lo < hi else {},
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


def alternatives(conn: sqlite3.Connection, cfg: Any, month: str, now_ms: int, gpus: list[dict[str, Any]],
                 rates: dict[int, Rate]) -> tuple[Alternative, ...]:
    """What this box's GPU-hours this month would cost at each other catalog provider (USD only)."""
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
        current[model] += money(rate, secs)
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

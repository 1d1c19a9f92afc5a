"""The month: month-to-date (billed + metered where the exports do not reach), the projection inputs for
gpuspend.forecast, and the billing summary (by day, top services and SKUs, coverage, cheaper alternatives)."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

from gpuspend import budget as budget_rule
from gpuspend import clock, forecast, pricing
from gpuspend.costing import context
from gpuspend.costing.cloud import cloud_daily
from gpuspend.costing.common import DAY_MS, day_start, money
from gpuspend.costing.metering import metered_daily
from gpuspend.costing.store_read import covered_by_day, load_gpus, local_rates, resolve_rates
from gpuspend.forecast import Stream
from gpuspend.snapshot import Alternative, BillingSummary, DayTotal, MonthView, Rate, Spender
from gpuspend.store import period_match, resource_match

# A billed row longer than this is a monthly, recurring or one-time charge (a support fee, tax for the month,
# an RI fee, a monthly-granularity export): counted once in the month, never a day's rate, never coverage.
LONG_ROW_S = 25 * 3600
# Purchases (commitments, one-time fees) are never usage to carry forward, whatever their charge period.
ONCE_CATEGORIES = ("purchase",)
# Slack for "the first day is complete": a collector started at 00:00:30 has a complete first day.
FIRST_DAY_SLACK_MS = 60_000
_BOTH_ENDS = "charge_period_start IS NOT NULL AND charge_period_end IS NOT NULL"
_SHORT_PERIOD = f"{_BOTH_ENDS} AND charge_period_end - charge_period_start <= {LONG_ROW_S}"
_ONCE = ', '.join(repr(c) for c in ONCE_CATEGORIES)
_SHORT = f"{_SHORT_PERIOD} AND LOWER(COALESCE(charge_category, 'usage')) NOT IN ({_ONCE})"
_USAGE = "LOWER(COALESCE(charge_category, 'usage')) = 'usage'"
# A recurring fee billed by the hour or day (a Savings Plan's recurring commitment: FOCUS Purchase, Recurring,
# one row per hour) accrues every hour of the month like usage; a monthly one billed on a single day (an Azure
# reservation's monthly payment) is paid once. Told apart per commitment: rows on two days or more accrue.
_RECURRING = (f"{_SHORT_PERIOD} AND LOWER(COALESCE(charge_category, '')) IN ({_ONCE}) "
              "AND LOWER(COALESCE(charge_frequency, '')) = 'recurring'")


_OUTSIDE = "(charge_period_end <= ? OR charge_period_start >= ?)"      # the month's [start, end), in seconds
# A one-time credit, refund or fee whatever its charge period (an hour, a day): its money once, never a rate.
_ONE_TIME = "LOWER(COALESCE(charge_frequency, '')) = 'one-time'"


@dataclass(frozen=True)
class MonthBilling:
    """What the exports hold for one billing period, split the way the month needs it:
    local:  {currency: {day: billed}} usage rows of the locally metered resource (this box); a monthly-granularity
            row of it is spread over the time it covers (its start to its import);
    other:  {currency: {day: billed}} short rows of everything else (other services and machines);
    once:   {currency: billed} long and purchase rows: counted once, never projected (once_daily: the same
            by the day their charge period starts, for the chart of the month);
    covered: merged [start, end) ms of the local resource's usage rows: the hours the meter must not add
             (per resource and hour, never from a fee, tax or other resource's row);
    other_streams: {(currency, export): (days, first ms, end ms)}: `other` per export (source and account), each
            with the start and end of what it holds: every export is complete up to its own end (an AWS export a
            day behind a GCP one has not billed that day yet, which is not a day without spend);
    local_first: ms or None;
    export_ends: {export: ms} the end of each export's short rows (this box's and the rest): how far each
            reaches; the month is as fresh as the one that reaches least."""
    local: dict[str, dict[str, float]]
    other: dict[str, dict[str, float]]
    once: dict[str, float]
    once_daily: dict[str, dict[str, float]]
    covered: tuple[tuple[int, int], ...]
    other_streams: dict[tuple[str, str], tuple[dict[str, float], int, int]]
    local_first: int | None
    coverage_end_ms: int | None
    export_ends: dict[str, int]

    def billed(self, cur: str) -> float:
        return sum(self.local.get(cur, {}).values()) + sum(self.other.get(cur, {}).values()) + \
            self.once.get(cur, 0.0)

    def currencies(self) -> set[str]:
        return set(self.local) | set(self.other) | set(self.once)


def _local_match(rid: str | None) -> tuple[str, tuple]:
    """SQL condition (and its arguments) for rows of the locally metered resource. With this machine's
    resource id: that resource (the id, or an ARN/path ending in it). Without one: GPU usage rows, the only
    rows that can be this box's GPUs (the exports' other spend is never suppressed by the local meter).
    A condition on `charge_rows`, where a resource id may be stored as a text id (store v14)."""
    if rid:
        return resource_match(rid)
    return "is_gpu = 1", ()


def month_billing(conn: sqlite3.Connection, cfg: Any, month: str) -> MonthBilling:
    """The period's billed rows, split (see MonthBilling). Charges change only with an import, which bumps
    the billing generation: read once per generation (a durable entry of the read cache)."""
    from gpuspend.store import BILLING_GENERATION, get_meta

    rid = pricing.machine_resource_id(cfg, conn)
    key = (month, rid, get_meta(conn, BILLING_GENERATION),
           tuple(conn.execute("SELECT COUNT(*), MAX(id), MAX(imported_at) FROM imports").fetchone()))
    return context.cache_for(conn).get("month_billing", key, lambda: _month_billing(conn, month, rid),
                                       durable=True, size=16)


def billing_coverage_end(conn: sqlite3.Connection, cfg: Any, month: str) -> tuple[int | None, str]:
    """How far the billing exports reach, as every surface states it (the report's freshness, the `outdated`
    alert): (end ms, the export it is, named when the month has more than one). The end of the month's export
    that reaches least (an AWS export a day behind a GCP one, or one that stopped, is what is outdated, as
    `doctor` says of each source), else (nothing imported for the month yet: its first days, or exports that
    stopped) that of the newest month whose exports have one. The same rule as the month's: short rows only,
    never a fee's, tax's or monthly row's charge period (a November tax row ends 12-01 whatever day November's
    usage rows reach). Each month's is read once per billing generation (month_billing). (None, "") only
    when no export has a short row."""
    for m in dict.fromkeys([month, *_imported_months(conn)]):
        ends = month_billing(conn, cfg, m).export_ends
        if ends:
            export, end = min(ends.items(), key=lambda kv: (kv[1], kv[0]))
            return end, export if len(ends) > 1 else ""
    return None, ""


def _imported_months(conn: sqlite3.Connection) -> list[str]:
    """The months the imports' billing periods start in, newest first."""
    return list(dict.fromkeys(forecast.month_of(int(s) * 1000) for (s,) in conn.execute(
        "SELECT DISTINCT billing_period_start FROM imports WHERE billing_period_start IS NOT NULL ORDER BY 1 DESC")))


def export_name(source: str, account: str | None) -> str:
    """An export, wherever one is named: one source's one account (two AWS accounts are two exports)."""
    return f"{source}/{account}" if account else source


def export_coverage(conn: sqlite3.Connection, cfg: Any,
                    month: str | None = None) -> tuple[tuple[str, str, int | None, int], ...]:
    """(format, export, end ms or None, rows) of each export of `month`, else of all months, by the freshness
    rule (month_billing's export_ends: usage rows only, never a fee's, tax's or monthly row's charge period),
    so the billing screen, the report's imports and `doctor` say what the `outdated` alert judges. Across
    months, an export's end is the one of the newest month where it has one. None: no usage row (fees only)."""
    where, args = "", ()
    if month is not None:
        start, end = forecast.month_bounds(month)
        where, args = "WHERE billing_period_start >= ? AND billing_period_start < ? ", (start // 1000, end // 1000)
    rows = conn.execute(f"SELECT format, source, account, SUM(rows) FROM imports {where}"
                        "GROUP BY format, source, account", args).fetchall()
    ends: dict[str, int] = {}
    for m in [month] if month is not None else _imported_months(conn):
        for export, end_ms in month_billing(conn, cfg, m).export_ends.items():
            ends.setdefault(export, end_ms)
    named = ((fmt, export_name(src, acct), n) for fmt, src, acct, n in rows)
    return tuple(sorted(((fmt, name, ends.get(name), int(n or 0)) for fmt, name, n in named),
                        key=lambda r: (r[1], r[0])))


def _month_billing(conn: sqlite3.Connection, month: str, rid: str | None) -> MonthBilling:
    start, end = forecast.month_bounds(month)
    period, pargs = period_match(start // 1000, end // 1000)
    local_sql, largs = _local_match(rid)
    local: dict[str, dict[str, float]] = {}
    other: dict[str, dict[str, float]] = {}
    once: dict[str, float] = {}
    once_daily: dict[str, dict[str, float]] = {}
    streams: dict[tuple[str, str], tuple[dict[str, float], list[int]]] = {}   # (cur, export) -> days, [first, end]
    export_of = {i: export_name(src, acct) for i, src, acct in conn.execute("SELECT id, source, account FROM imports")}
    export_ends: dict[str, int] = {}
    local_first: int | None = None
    ends: list[int] = []
    local_long = f"{local_sql} AND {_USAGE} AND NOT ({_SHORT}) AND {_BOTH_ENDS}"
    # A row whose charge period lies wholly outside the month (a correction of an earlier month, late usage,
    # billed in this period) is money of this period once: never a rate, never how far an export reaches. Read
    # as a day's rate, one $50 hour of October made November's projection $4.1M.
    # Classified per line item and day (store v18): the rows' own conditions (outside the month, a short period,
    # both ends known) are summed over first in `charge_lines` alone, and each group is joined to its item
    # once, not each row (the same classes as row by row: each flag holds its condition's value, NULL included).
    short = _SHORT.replace(_SHORT_PERIOD, "g.sp")
    by_item = (f"SELECT item_id, import_id, charge_period_start / 86400 AS d, {_OUTSIDE} AS o, ({_SHORT_PERIOD}) AS sp, "
               f"({_BOTH_ENDS}) AS ends, SUM(billed_cost) AS total, MIN(charge_period_start) AS first, "
               f"MAX(charge_period_end) AS last FROM charge_lines WHERE {period} GROUP BY item_id, d, o, sp, ends")
    q = (f"SELECT COALESCE(currency, 'USD'), CASE WHEN g.o OR {_ONE_TIME} THEN 'once' "
         f"WHEN {local_sql} AND {_USAGE} AND NOT ({short}) AND g.ends THEN 'local_long' "
         f"WHEN {_RECURRING.replace(_SHORT_PERIOD, 'g.sp')} THEN 'recurring' WHEN NOT ({short}) THEN 'once' "
         f"WHEN {local_sql} AND {_USAGE} THEN 'local' ELSE 'other' END AS cls, g.d, SUM(g.total), MIN(g.first), "
         f"MAX(g.last), g.import_id FROM ({by_item}) g JOIN charge_items i ON i.id = g.item_id "
         "GROUP BY 1, 2, 3, g.import_id")
    spans: list[tuple[int, int]] = []
    rows = list(conn.execute(q, (*largs, *largs, start // 1000, end // 1000, *pargs)))
    if any(r[1] == "recurring" for r in rows):
        rows += _recurring_fees(conn, period, pargs)
    for cur, cls, d, total, first, last, import_id in rows:
        day = forecast.day_key(int(d if d is not None else start // 1000 // 86400) * DAY_MS)
        if total is None:
            # No billed cost at all (an amortized dataset: effective cost only) bills nothing, covers nothing,
            # reaches nowhere: what bills those hours is not imported yet. Its days are still the month's days.
            other.setdefault(cur, {}).setdefault(day, 0.0)
            continue
        if cls in ("local_long", "recurring"):
            continue                      # below, row by row; recurring fees: by commitment (_recurring_fees)
        amount = float(total or 0.0)
        if cls == "once" or d is None:
            once[cur] = once.get(cur, 0.0) + amount
            once_daily.setdefault(cur, {})[day] = once_daily.get(cur, {}).get(day, 0.0) + amount
            continue
        bucket = (local if cls == "local" else other).setdefault(cur, {})
        bucket[day] = bucket.get(day, 0.0) + amount
        ends.append(int(last) * 1000)
        export = export_of.get(import_id, "")
        export_ends[export] = max(export_ends.get(export, 0), int(last) * 1000)
        if cls == "local":
            local_first = int(first) * 1000 if local_first is None else min(local_first, int(first) * 1000)
        else:
            days, span = streams.setdefault((cur, export), ({}, [int(first) * 1000, 0]))
            days[day] = days.get(day, 0.0) + amount
            span[0], span[1] = min(span[0], int(first) * 1000), max(span[1], int(last) * 1000)
    # This box's usage in a monthly-granularity export: the row is the month so far as of its export, so it
    # covers this box up to when it was imported (never later: the meter takes over from there, and the gap
    # between export and import is counted by neither rather than by both); for the projection its money is
    # spread evenly over that time.
    for cur, a, b, cost, imported, import_id in conn.execute(
            "SELECT COALESCE(currency, 'USD'), charge_period_start, charge_period_end, billed_cost, "
            f"(SELECT imported_at FROM imports WHERE imports.id = r.import_id), import_id FROM charge_rows r "
            f"WHERE {local_long} AND {period} AND billed_cost IS NOT NULL", (*largs, *pargs)):
        a_ms = max(start, int(a) * 1000)
        b_ms = min(end, int(b) * 1000, int(imported or b) * 1000)
        amount = float(cost or 0.0)
        if a_ms >= b_ms:
            once[cur] = once.get(cur, 0.0) + amount
            continue
        spans.append((a_ms, b_ms))
        ends.append(b_ms)
        export = export_of.get(import_id, "")
        export_ends[export] = max(export_ends.get(export, 0), b_ms)
        local_first = a_ms if local_first is None else min(local_first, a_ms)
        bucket = local.setdefault(cur, {})
        for d0 in range(a_ms // DAY_MS * DAY_MS, b_ms, DAY_MS):
            part = (min(b_ms, d0 + DAY_MS) - max(a_ms, d0)) / (b_ms - a_ms)
            bucket[forecast.day_key(d0)] = bucket.get(forecast.day_key(d0), 0.0) + amount * part
    for a, b in conn.execute(
            f"SELECT DISTINCT charge_period_start, charge_period_end FROM charge_rows WHERE {period} AND {_SHORT} "
            f"AND {local_sql} AND {_USAGE} AND billed_cost IS NOT NULL ORDER BY 1, 2", (*pargs, *largs)):
        a_ms, b_ms = max(start, int(a) * 1000), min(end, int(b) * 1000)
        if a_ms < b_ms:
            spans.append((a_ms, b_ms))
    merged: list[tuple[int, int]] = []
    for a_ms, b_ms in sorted(spans):
        if merged and a_ms <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b_ms))
        else:
            merged.append((a_ms, b_ms))
    spans = merged
    return MonthBilling(local, other, once, once_daily, tuple(spans),
                        # an export with no billed money (an amortized-only dataset) is no stream to project
                        {k: (days, lo, hi) for k, (days, (lo, hi)) in sorted(streams.items()) if any(days.values())},
                        local_first, max(ends) if ends else None, export_ends)


def _recurring_fees(conn: sqlite3.Connection, period: str, pargs: tuple) -> list[tuple]:
    """The month's short recurring purchase rows as (currency, 'other' or 'once', day, billed, first, last,
    import id) by day: 'other' (spend of every day, projected with the rest of its export) for a commitment
    (import, resource, SKU) billed on two days or more, else 'once'."""
    by: dict[tuple, list[tuple]] = defaultdict(list)
    for cur, imp, res, sku, d, total, first, last in conn.execute(
            "SELECT COALESCE(currency, 'USD'), import_id, COALESCE(resource_id_tid, resource_id), "
            "COALESCE(sku_tid, sku, sku_description_tid, sku_description), charge_period_start / 86400, "
            "SUM(billed_cost), MIN(charge_period_start), MAX(charge_period_end) FROM charge_rows "
            f"WHERE {period} AND {_RECURRING} GROUP BY 1, 2, 3, 4, 5", pargs):
        by[(cur, imp, res, sku)].append((d, total, first, last))
    out = []
    for (cur, imp, _res, _sku), days in by.items():
        cls = "other" if len(days) >= 2 else "once"
        out.extend((cur, cls, d, total, first, last, imp) for d, total, first, last in days)
    return out


def uncovered(covered: tuple[tuple[int, int], ...], lo: int, hi: int) -> list[tuple[int, int]]:
    """[lo, hi) less the hours the exports cover for the local resource: where the local meter counts."""
    out, at = [], lo
    for a, b in covered:
        if b <= at:
            continue
        if a >= hi:
            break
        if a > at:
            out.append((at, min(a, hi)))
        at = max(at, b)
    if at < hi:
        out.append((at, hi))
    return out


def local_metered_daily(conn: sqlite3.Connection, cfg: Any, rates: dict[int, Rate], mb: MonthBilling,
                        lo: int, hi: int, now_ms: int, *, invoiced: bool = True) -> dict[str, dict[str, float]]:
    """{currency: {day: metered}} of local GPUs in [lo, hi) outside the exports' coverage of this box, at
    what the invoice bills (Rate.invoiced: the month's money), or `invoiced=False` at the effective rate
    (today's cost, beside idle waste)."""
    local = {gid: r.invoiced() for gid, r in local_rates(conn, rates).items()} if invoiced \
        else local_rates(conn, rates)
    return add_daily(*(metered_daily(conn, cfg, local, a, b, now_ms) for a, b in uncovered(mb.covered, lo, hi)))


def _first_local_ms(conn: sqlite3.Connection, mb: MonthBilling) -> int | None:
    row = conn.execute("SELECT (SELECT MIN(ts) FROM gpu_samples), (SELECT MIN(minute) FROM gpu_minutes), "
                       "(SELECT MIN(ts) FROM cloud_spend)").fetchone()
    found = [int(v) for v in (*row, mb.local_first) if v is not None]
    return min(found) if found else None


def _days(lo: int, hi: int) -> list[str]:
    """Names of the whole days inside [lo, hi)."""
    first = -(-lo // DAY_MS) * DAY_MS
    return [forecast.day_key(d) for d in range(first, hi - DAY_MS + 1, DAY_MS)]


def _stream(daily: dict[str, float], first_ms: int | None, known_end: int, start: int, end: int) -> Stream:
    """A stream's complete days (from the first whole day of its data to its known end) and days left."""
    lo = max(start, first_ms if first_ms is not None else known_end)
    lo_day = (lo - FIRST_DAY_SLACK_MS) // DAY_MS * DAY_MS
    lo = lo_day if lo - lo_day <= FIRST_DAY_SLACK_MS else lo
    hi = min(known_end, end)
    days = _days(lo, hi)
    seen_days = max((hi - lo) / DAY_MS, 1 / 1440)
    return Stream(tuple(daily.get(d, 0.0) for d in days), max(0.0, (end - known_end) / DAY_MS),
                  sum(daily.values()) / seen_days if not days else 0.0,
                  offset=(hi - hi // DAY_MS * DAY_MS) / DAY_MS if days else 0.0)


def stream_history(conn: sqlite3.Connection, cfg: Any, rates: dict[int, Rate], start: int, now_ms: int,
                   first_local: int | None
                   ) -> tuple[dict[str, tuple[float, ...]], dict[tuple[str, str], tuple[float, ...]]]:
    """({currency: local days}, {(currency, export): billing-only days}): each stream's complete days in the
    `forecast.window` before the month starting at `start`, oldest first (the local stream: metered + GPU clouds
    + this box's billed rows, from its first whole day of data; the billing-only stream: each month's other rows
    within what its exports cover). gpuspend.forecast reads from them how often and how much the level changes.
    A window of 0 (or under a day): none."""
    window_ms = int(cfg.forecast.window * 1000)
    if window_ms < DAY_MS:
        return {}, {}
    lo = -(-(start - window_ms) // DAY_MS) * DAY_MS          # whole days only
    local: dict[str, dict[str, float]] = {}
    other: dict[tuple[str, str], list[float]] = {}
    m_start, m_end = forecast.month_bounds(forecast.month_of(lo))
    while m_start < start:
        a, b = max(lo, m_start), min(m_end, start)
        mb = month_billing(conn, cfg, forecast.month_of(m_start))
        local = add_daily(local, local_metered_daily(conn, cfg, rates, mb, a, b, now_ms),
                          cloud_daily(conn, cfg, a, b, now_ms), mb.local)
        if mb.local_first is not None:          # this box's billed rows may start before its meter
            first_local = mb.local_first if first_local is None else min(first_local, mb.local_first)
        for key, (days, first, last) in mb.other_streams.items():
            other.setdefault(key, []).extend(_stream(days, first, min(last, b), a, b).daily)
        m_start, m_end = m_end, forecast.month_bounds(forecast.month_of(m_end))[1]
    return ({cur: _stream(days, first_local, start, lo, start).daily for cur, days in local.items()},
            {key: tuple(days) for key, days in other.items()})


def month_views_for(conn: sqlite3.Connection, cfg: Any, month: str, now_ms: int,
                    rates: dict[int, Rate]) -> tuple[tuple, int | None]:
    """MonthViews for `month` and the billing exports' coverage end.

    MTD = every billed row of the period + the local GPUs' metered cost in the hours the exports do not cover
    for this box (coverage per resource and hour, from its usage rows) + GPU-cloud spend (no export holds it).
    Projection (gpuspend.forecast.project): MTD + the local stream (metered + this box's billed rows + GPU
    clouds) from its complete days for the hours to month end + each export's (source and account) billing-only
    stream from its complete days for the hours after that export ends, each with its complete days in the `forecast.window`
    before the month (how often its level changes). Long and purchase rows are counted once."""
    start, end = forecast.month_bounds(month)
    mb = month_billing(conn, cfg, month)
    hi = min(end, now_ms + 1)
    metered = local_metered_daily(conn, cfg, rates, mb, start, hi, now_ms) if start < hi else {}
    cloud = cloud_daily(conn, cfg, start, hi, now_ms) if start < hi else {}
    first_local = _first_local_ms(conn, mb)
    until = min(now_ms, end)
    currencies = mb.currencies() | set(metered) | set(cloud)
    budget_cur = cfg.budget.currency if cfg.budget.monthly else None
    # Each stream's days before the month (forecast.window): only while there is a month left to project.
    local_hist, other_hist = stream_history(conn, cfg, rates, start, now_ms, first_local) \
        if start <= now_ms < end else ({}, {})
    views = []
    for cur in sorted(currencies | ({budget_cur} if budget_cur else set())):
        m_total = sum(metered.get(cur, {}).values())
        c_total = sum(cloud.get(cur, {}).values())
        billed = mb.billed(cur)
        mtd = billed + m_total + c_total
        local_daily = add_daily({cur: metered.get(cur, {})}, {cur: cloud.get(cur, {})},
                                {cur: mb.local.get(cur, {})}).get(cur, {})
        streams = []
        if local_daily or (cur in metered or cur in cloud):
            streams.append(replace(_stream(local_daily, first_local, until, start, end),
                                   history=local_hist.get(cur, ())))
        for (s_cur, export), (days, first, last) in mb.other_streams.items():     # each export to its own end
            if s_cur == cur:
                streams.append(replace(_stream(days, first, min(last, end), start, end),
                                       history=other_hist.get((cur, export), ())))
        if now_ms >= end:
            projection, low, high, note = mtd, None, None, "month closed"
        elif now_ms < start:
            projection, low, high, note = None, None, None, "month not started"
        elif not streams:
            projection, low, high, note = mtd, None, None, "nothing to project"
        else:
            projection, low, high, note = forecast.project(mtd, streams)
        budget, pa, pf = budget_rule.pcts(cfg, cur, mtd, projection)
        why = budget_rule.uncompared(cfg, currencies) if cur == budget_cur else None
        if why:
            note, pa, pf, projection = why, None, None, None
        views.append(MonthView(month=month, currency=cur, mtd=mtd, billed=billed, metered=m_total + c_total,
                               coverage_end_ms=mb.coverage_end_ms, projection=projection, low=low, high=high,
                               interval_note=note, budget=budget, budget_pct_actual=pa, budget_pct_forecast=pf,
                               cloud=c_total))
    return tuple(views), mb.coverage_end_ms


def today_cost(conn: sqlite3.Connection, cfg: Any, now_ms: int, rates: dict[int, Rate], currency: str) -> float:
    """Today so far in `currency`: today's short billed rows + the local meter outside the exports' coverage
    + GPU-cloud spend. A monthly fee is the month's, not today's."""
    today0 = day_start(now_ms)
    mb = month_billing(conn, cfg, forecast.month_of(now_ms))
    day = forecast.day_key(now_ms)
    billed = mb.local.get(currency, {}).get(day, 0.0) + mb.other.get(currency, {}).get(day, 0.0)
    metered = local_metered_daily(conn, cfg, rates, mb, today0, now_ms + 1, now_ms, invoiced=False).get(currency, {})
    cloud = cloud_daily(conn, cfg, today0, now_ms + 1, now_ms).get(currency, {})
    return billed + sum(metered.values()) + sum(cloud.values())


def add_daily(*parts: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for part in parts:
        for cur, days in part.items():
            bucket = out.setdefault(cur, {})
            for d, v in days.items():
                bucket[d] = bucket.get(d, 0.0) + v
    return out


def sources_without_billed_cost(conn: sqlite3.Connection, month: str) -> list[str]:
    """Billing sources of `month` whose rows carry no billed (invoice) cost at all, e.g. an Azure amortized
    dataset imported without its actual-cost twin: their money is effective cost only, never month to date.
    Read once per billing generation, as month_billing."""
    from gpuspend.store import BILLING_GENERATION, get_meta

    key = (month, get_meta(conn, BILLING_GENERATION),
           tuple(conn.execute("SELECT COUNT(*), MAX(id), MAX(imported_at) FROM imports").fetchone()))
    return list(context.cache_for(conn).get("no_billed_cost", key, lambda: _sources_without_billed_cost(conn, month),
                                            durable=True, size=16))


def _sources_without_billed_cost(conn: sqlite3.Connection, month: str) -> tuple[str, ...]:
    start, end = forecast.month_bounds(month)
    return tuple(r[0] for r in conn.execute(
        "SELECT i.source FROM imports i JOIN charges c ON c.import_id = i.id WHERE i.billing_period_start >= ? "
        "AND i.billing_period_start < ? GROUP BY i.source HAVING COUNT(c.billed_cost) = 0 ORDER BY i.source",
        (start // 1000, end // 1000)))


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
    period, pargs = period_match(s_s, e_s)
    mb = month_billing(conn, cfg, month)
    all_billed = add_daily(mb.local, mb.other, mb.once_daily)
    if currency is None:      # the currency with the most billed money this month
        totals = sorted(((sum(abs(v) for v in d.values()), c) for c, d in all_billed.items()), reverse=True)
        currency = totals[0][1] if totals else (cfg.currency or "USD")
    gpus = load_gpus(conn)
    rates = resolve_rates(conn, cfg, gpus, now)
    billed = all_billed.get(currency, {})
    hi = min(end, now + 1)
    metered = add_daily(local_metered_daily(conn, cfg, rates, mb, start, hi, now) if start < hi else {},
                        cloud_daily(conn, cfg, start, hi, now)).get(currency, {})
    days = tuple(DayTotal(d, round(billed.get(d, 0.0), 6), round(metered.get(d, 0.0), 6))
                 for d in sorted(set(billed) | set(metered)))
    # Grouped on the stored form (an inline text or a charge_texts id, store v13), the texts looked up once per
    # group rather than per row through the `charges` view (half the time on a month of a million rows).
    services = tuple(Spender(name or "(none)", float(total), bool(g)) for name, total, g in conn.execute(
        "SELECT COALESCE(s.service, x.text) AS name, SUM(s.t) AS t, MAX(s.g) FROM ("
        f"SELECT service, service_tid, SUM(billed_cost) AS t, MAX(is_gpu) AS g FROM charge_rows WHERE {period} "
        "AND currency = ? GROUP BY service, service_tid) s LEFT JOIN charge_texts x ON x.id = s.service_tid "
        "GROUP BY name HAVING t IS NOT NULL ORDER BY t DESC LIMIT ?",   # amortized-only rows carry no billed cost
        (*pargs, currency, top)))
    skus = tuple(Spender(name or "(none)", float(total), True) for name, total in conn.execute(
        f"SELECT COALESCE(instance_type, sku, gpu_model) AS k, SUM(billed_cost) AS t FROM charges WHERE {period} "
        "AND currency = ? AND is_gpu = 1 GROUP BY k HAVING t IS NOT NULL ORDER BY t DESC LIMIT ?",
        (*pargs, currency, top)))
    coverage = export_coverage(conn, cfg, month)
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
    model_of = {g["id"]: pricing.gpu_model_key(g) for g in gpus}
    for (gid, _day), (secs, *_r) in cov.items():
        model, rate = model_of.get(gid), rates.get(gid)
        if not model or rate is None or rate.per_gpu_hour is None or rate.currency != "USD":
            continue
        hours[model] += secs / 3600.0
        current[model] += money(rate, secs)
        if rate.provider:               # where this money goes now: not an alternative to itself
            current_provider[model] = rate.provider
    out = []
    cat = pricing.catalog_for(conn)      # shipped, with this database's fetched prices over it
    for model in sorted(hours):
        for e in cat.for_model(model):
            if e.provider == current_provider.get(model):
                continue
            cost = hours[model] * e.usd_per_gpu_hour
            out.append(Alternative(provider=e.provider, gpu_model=model, per_gpu_hour=round(e.usd_per_gpu_hour, 6),
                                   as_of=e.as_of, cost_same_hours=round(cost, 6),
                                   saving=round(current[model] - cost, 6), gpu_hours=round(hours[model], 6)))
    out.sort(key=lambda a: (a.gpu_model, -a.saving, a.provider))
    return tuple(out)

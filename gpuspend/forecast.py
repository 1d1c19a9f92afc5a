"""Month arithmetic: month bounds, day names, and the projection with its 80% interval (DESIGN.md "Month";
reference/cost-tools.md section 3). Pure functions: the cost engine (gpuspend.costing.month) reads the store
and hands the daily totals in, so this module never reads SQLite.

The projection of one *stream* of spend (the local box; the spend known only from billing exports) from its
complete days (a partial day, such as the first day of collection, is never a day's total):
- rate: three models of the daily totals compete by BIC: a level (the mean), a trend (the OLS line) and a
  step (a level that changed once: the mean since the change); the last two need TREND_MIN_DAYS days and
  more evidence under two weeks (a weekend dip is not a trend); from two weeks on, a weekly cycle (the mean of
  each day of the week) competes too, so quiet weekends are a pattern, not noise that widens the interval;
- interval: Student-t (df = days - parameters) x the residual spread of the daily totals, carrying both the
  noise of the days left and the uncertainty of the fitted rate itself: for L days left,
  var = s^2 (L + L^2/n + D^2/Sxx) (D: the trend term's lever), so it widens when the window is short; under
  two weeks a trend that was not chosen widens it too; equal days still leave MIN_REL_SD of spread.
Streams add up (their variances too). Under MIN_DAYS complete days there is no interval, and the note says so.
bench/bench_forecast.py backtests this over simulated months (coverage of the interval, error by day).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from gpuspend.errors import UsageError

Z80 = 1.2816             # two-sided 80% interval of a normal distribution (many days)
MIN_DAYS = 3
TREND_MIN_DAYS = 7
# BIC penalties (in parameters) beyond the parameters themselves: a weekly dip must not read as a trend or
# a step (the step also searches its day).
TREND_PENALTY = 2.0
STEP_PENALTY = 4.0
SHORT_PENALTY = 2.0
WEEKLY_PENALTY = 2.0
# Share of an unchosen trend's effect (squared) counted as uncertainty under two weeks of days.
DOUBT = 0.5
DOUBT_T = 1.0
# The least spread of a day's spend around its expected level (relative).
MIN_REL_SD = 0.05
DAY_MS = 86_400_000
MODEL_NOTE = {"mean": "mean of daily totals", "trend": "trend of daily totals", "step": "level since a change",
              "weekly": "weekly cycle of daily totals"}
# Two-sided 80% quantiles of Student's t (0.90 one-sided) by degrees of freedom: short windows widen.
_T80 = (3.078, 1.886, 1.638, 1.533, 1.476, 1.440, 1.415, 1.397, 1.383, 1.372, 1.363, 1.356, 1.350, 1.345,
        1.341, 1.337, 1.333, 1.330, 1.328, 1.325, 1.323, 1.321, 1.319, 1.318, 1.316, 1.315, 1.314, 1.313, 1.311,
        1.310)


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


def t80(df: int) -> float:
    """Two-sided 80% quantile of Student's t with `df` degrees of freedom."""
    if df < 1:
        return math.inf
    return _T80[df - 1] if df <= len(_T80) else Z80


@dataclass(frozen=True)
class Stream:
    """One stream of a currency's spend, as known so far.
    daily: totals of its complete days, oldest first (days with no spend are 0.0, days before its data absent);
    days_left: days from the end of what is known of it (now; a billing export's coverage end) to month end;
    partial_rate: spend per day over its known time, used only without a complete day (a box collecting for
    an hour has an hour of run rate)."""
    daily: tuple[float, ...]
    days_left: float
    partial_rate: float = 0.0
    offset: float = 0.0             # days from the end of the last complete day to the known end (today so far)


@dataclass(frozen=True)
class StreamForecast:
    expected: float                 # spend expected over the days left
    variance: float | None          # of `expected` vs what will happen; None: not enough days
    model: str = "mean"             # mean | trend | step | weekly


def _fit_trend(y: list[float]) -> tuple[float, float, float, float]:
    """(rss, mean, slope, sxx) of the OLS line through the days (x = day centres)."""
    n = len(y)
    mean, xbar = sum(y) / n, n / 2.0
    sxx = sum((i + 0.5 - xbar) ** 2 for i in range(n))
    slope = sum((i + 0.5 - xbar) * (v - mean) for i, v in enumerate(y)) / sxx
    rss = sum((v - mean - slope * (i + 0.5 - xbar)) ** 2 for i, v in enumerate(y))
    return rss, mean, slope, sxx


def _fit_step(y: list[float]) -> tuple[float, int] | None:
    """(rss, first day of the new level) of the best single level change, each side >= MIN_DAYS days."""
    n = len(y)
    best: tuple[float, int] | None = None
    for c in range(MIN_DAYS, n - MIN_DAYS + 1):
        a, b = y[:c], y[c:]
        ma, mb = sum(a) / len(a), sum(b) / len(b)
        rss = sum((v - ma) ** 2 for v in a) + sum((v - mb) ** 2 for v in b)
        if best is None or rss < best[0]:
            best = (rss, c)
    return best


def _fit_weekly(y: list[float], offset: float, left: float) -> tuple[float, float, float] | None:
    """(rss, expected spend over the days left, rate-uncertainty factor) of the day-of-week means model."""
    n = len(y)
    groups: list[list[float]] = [y[k::7] for k in range(7)]
    means = [sum(g) / len(g) for g in groups]
    rss = sum((v - means[i % 7]) ** 2 for i, v in enumerate(y))
    weight = [0.0] * 7                    # how much of each weekday is still ahead
    at, stop = n + offset, n + offset + left
    while at < stop - 1e-9:
        nxt = min(stop, math.floor(at) + 1.0)
        weight[int(math.floor(at)) % 7] += nxt - at
        at = nxt
    expected = sum(w * m for w, m in zip(weight, means, strict=True))
    var_rate = sum(w * w / len(g) for w, g in zip(weight, groups, strict=True))
    return rss, expected, var_rate


def _bic(rss: float, n: int, params: float) -> float:
    return n * math.log(max(rss, 1e-12) / n) + params * math.log(n)


def forecast_stream(s: Stream) -> StreamForecast:
    """The expected spend of one stream over its days left, and the variance of that expectation.
    Models of the complete days compete by BIC: a level (the mean), a trend (a line), a step (a level that
    changed once: the mean since the change), a weekly cycle (from two weeks); the trend and the step need
    TREND_MIN_DAYS days, and the step pays for the search of its day. The interval carries the residual noise of the days left and the
    uncertainty of the fitted rate (var = s^2 (L + L^2/n + D^2/Sxx))."""
    y = list(s.daily)
    n, left = len(y), max(0.0, s.days_left)
    if left == 0.0:
        return StreamForecast(0.0, 0.0)
    if n == 0:
        return StreamForecast(s.partial_rate * left, None)
    mean = sum(y) / n
    if n < MIN_DAYS:
        return StreamForecast(mean * left, None)
    rss = sum((v - mean) ** 2 for v in y)
    model, expected, df = "mean", left * mean, n - 1
    var_rate = left * left / n
    # Where the days left sit on the days' axis (x = 0 at the first complete day's start): from the end of
    # what is known (`offset` days after the last complete day) for `left` days; their centre minus the days'.
    lever = left * (n + s.offset + left / 2.0 - n / 2.0)
    best = _bic(rss, n, 1)
    # Under two weeks a weekly dip (weekends) looks like a trend or a step: ask for more evidence.
    extra = 0.0 if n >= 2 * 7 else SHORT_PENALTY
    if n >= TREND_MIN_DAYS:
        t_rss, t_mean, slope, sxx = _fit_trend(y)
        if _bic(t_rss, n, 2 + TREND_PENALTY + extra) < best:
            model, expected, df, rss = "trend", left * t_mean + slope * lever, n - 2, t_rss
            var_rate = left * left / n + lever * lever / sxx
            best = _bic(t_rss, n, 2 + TREND_PENALTY + extra)
        step = _fit_step(y)
        if step is not None and _bic(step[0], n, 2 + STEP_PENALTY + extra) < best:
            c = step[1]
            tail = y[c:]
            model, expected, df, rss = "step", left * sum(tail) / len(tail), n - 2, step[0]
            var_rate = left * left / len(tail)
    # Two weeks or more: a weekly cycle (quiet weekends) is a pattern of its own, not noise to widen by.
    if n >= 2 * 7:
        weekly = _fit_weekly(y, s.offset, left)
        if weekly is not None and _bic(weekly[0], n, 7 + WEEKLY_PENALTY) < best:
            rss, expected, var_rate = weekly
            model, df = "weekly", n - 7
    # A trend that was not chosen may still be real: under two weeks its effect is part of the uncertainty.
    doubt = 0.0
    if model == "mean" and n < 2 * 7:
        t_rss, _m, slope, sxx = _fit_trend(y)
        se = math.sqrt(t_rss / (n - 2) / sxx) if n > 2 and t_rss > 0 else 0.0
        if se == 0.0 or abs(slope) > DOUBT_T * se:
            doubt = DOUBT * (slope * lever) ** 2
    if min(y) >= 0.0:
        expected = max(0.0, expected)
    s2 = rss / df
    # Spend noise grows with spend: scale the spread from the days seen to the level expected ahead.
    if model != "mean" and mean > 0 and expected > 0:
        s2 *= max(1.0, (expected / left / mean) ** 2)
    # Equal days are no promise of equal days to come (a job ends, a GPU stops): never a zero-width interval.
    s2 = max(s2, (MIN_REL_SD * expected / left) ** 2)
    # Scale so that z80 x sqrt(variance) is the t80 half-width: streams then add variances.
    return StreamForecast(expected, s2 * (left + var_rate) * (t80(df) / Z80) ** 2 + doubt, model)


def project(mtd: float, streams: list[Stream]) -> tuple[float, float | None, float | None, str]:
    """(projection, low, high, note): month to date + each stream's expected spend for its days left."""
    parts = [forecast_stream(s) for s in streams]
    projection = mtd + sum(p.expected for p in parts)
    pending = [(p, s) for p, s in zip(parts, streams, strict=True) if s.days_left > 0]
    short = [s for p, s in pending if p.variance is None]
    if not pending:
        return projection, None, None, "nothing left to project"
    if short:
        n = min(len(s.daily) for s in short)
        return projection, None, None, f"not enough data for an interval ({n} complete days, need {MIN_DAYS})"
    half = Z80 * math.sqrt(sum(p.variance or 0.0 for p, _s in pending))
    n = max(len(s.daily) for _p, s in pending)
    how = "; ".join(MODEL_NOTE[m] for m in sorted({p.model for p, _s in pending}))
    # The month never ends below what is already spent (unless credits are what is projected).
    low = max(mtd, projection - half) if projection >= mtd else projection - half
    return projection, low, projection + half, f"80% interval from {n} complete days ({how})"

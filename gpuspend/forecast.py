"""Month arithmetic: month bounds, day names, and the projection with its 80% interval (DESIGN.md "Month";
reference/cost-tools.md section 3). Pure functions: the cost engine (gpuspend.costing.month) reads the store
and hands the daily totals in, so this module never reads SQLite.

The projection of one *stream* of spend (the local box; the spend known only from billing exports) from its
complete days (a partial day, such as the first day of collection, is never a day's total):
- models of the daily totals, each with its forecast of the days left and the variance of that forecast:
  a level (the mean); from TREND_MIN_DAYS days a trend (the OLS line); from STEP_MIN_DAYS a step (a level that
  changed once: the mean since the change, STEP_TAIL days at least); from WEEKEND_MIN_DAYS a weekend (two
  days of the week at their own level, seen twice or once between other days); from two weeks a weekly cycle
  (the mean of each day of the week); from WANDER_MIN_DAYS a level that wanders (the local-level model: a
  random walk seen through day noise, its step variance by profile likelihood from the days' own day-to-day
  changes), whose interval grows with the cube of the days left, for levels that keep moving;
- the projection is the model with the best BIC (with penalties for searched days and, under two weeks, for
  a trend or step a weekend dip could fake); the interval averages the models: each weighs exp(-BIC/2),
  models outside Occam's window (under 1/OCCAM of the best) are left out, and the variance is the weighted
  variances plus each model's distance from the projection, so an unclear choice between a level and a
  step widens the interval instead of betting on one (averaging the projection too made it worse);
- each model's variance is Student-t (df = days - parameters) x the residual spread of the daily totals,
  carrying the noise of the days left and the uncertainty of the fitted rate itself: for L days left,
  var = s^2 (L + L^2/n + D^2/Sxx) (D: the trend term's lever), so it widens when the window is short; the
  noise of the days left is scaled to the level expected ahead; equal days still leave MIN_REL_SD of spread;
- under TREND_MIN_DAYS days the trend's forecast is too erratic to average in, but its distance from the
  projection, weighted by its BIC weight, is added to the variance (a ramp's first days).
What the month's own days cannot say: a change of level still to come (a job starts or ends, GPUs are added or
stopped). No box can know in advance that it is steady, so every interval carries the risk of one: a prior
rate and size of level changes (CHANGE_PRIOR_*), updated by the stream's own days, the days before the month
(Stream.history, the `forecast.window`) and the month's complete days: their changes of level (binary
segmentation by one step or a pair, such as a stop and a restart, with the step model's BIC test), as sizes
relative to the larger level, are evidence of how often and by how much this stream moves. Changes still to come are a Poisson process of steps: rate x E[size^2] per day,
q = (CHANGE_PRIOR_COUNT x CHANGE_PRIOR_SIZE^2 + sum of the changes' relative sizes squared) /
(CHANGE_PRIOR_COUNT x CHANGE_PRIOR_DAYS + days seen); a change t days from now moves the L - t days after it,
so the variance grows by q x level^2 x L^3 / 3. Long steady history shrinks q, changes seen grow it.
bench/bench_forecast.py backtests it over simulated months (coverage per scenario and day, and the step months
before and after their step), with and without the days before the month.
Streams add up (their variances too). Under MIN_DAYS complete days there is no interval, and the note says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from gpuspend.errors import UsageError

Z80 = 1.2816             # two-sided 80% interval of a normal distribution (many days)
MIN_DAYS = 3
TREND_MIN_DAYS = 7       # a line through fewer days follows the noise (or a weekend at either end)
STEP_TAIL = 3            # days at the new level: two low days are as likely a weekend as a change
STEP_MIN_DAYS = MIN_DAYS + STEP_TAIL
WEEKEND_MIN_DAYS = 7     # a week of days
WANDER_MIN_DAYS = 5
# BIC penalties (in parameters) beyond the parameters themselves: a weekly dip must not read as a trend or
# a step (the step also searches its day, the weekend its pair of days, the wander its step variance).
TREND_PENALTY = 2.0
STEP_PENALTY = 4.0
SHORT_PENALTY = 2.0
WEEKEND_PENALTY = 2.0
WEEKLY_PENALTY = 2.0
WANDER_PENALTY = 2.0
# Daily step variance of the wandering level, in units of the day noise's, searched by profile likelihood.
WANDER_RATIOS = (0.01, 0.03, 0.1, 0.3, 1.0)
# Occam's window: models under 1/OCCAM of the best one's weight take no part in the average.
OCCAM = 20.0
# The least spread of a day's spend around its expected level (relative).
MIN_REL_SD = 0.05
# The prior risk of a change of level still to come. Real GPU spend changes level (a training run starts or
# ends, nodes are added or stopped) and a box cannot know in advance that it is steady: the prior is one change
# per CHANGE_PRIOR_DAYS days (about one every four months), of CHANGE_PRIOR_SIZE of the level (RMS: a node in
# five added or stopped), worth CHANGE_PRIOR_COUNT changes seen: weak, so CHANGE_PRIOR_DAYS steady days halve
# it and one change seen of a fifth of the level doubles it (a doubling, x7). The backtest's population changes
# level in about one month in four, by x1.25 to x3 (one change per ~120 days of ~49% RMS): the prior is smaller
# than that, so steady months are not over-covered far past 80%, and a stream's changes, once seen, widen it.
CHANGE_PRIOR_DAYS = 120.0
CHANGE_PRIOR_SIZE = 0.2
CHANGE_PRIOR_COUNT = 1.0
DAY_MS = 86_400_000
MODEL_NOTE = {"mean": "mean of daily totals", "trend": "trend of daily totals", "step": "level since a change",
              "weekend": "weekly cycle: weekdays and weekend", "weekly": "weekly cycle of daily totals",
              "wander": "level that moves"}
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


@lru_cache(maxsize=256)
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
    # complete days before `daily` (the `forecast.window` before the month), oldest first: how often and by
    # how much this stream's level has changed, the one thing the month's own days cannot say before it happens
    history: tuple[float, ...] = ()


@dataclass(frozen=True)
class StreamForecast:
    expected: float                 # spend expected over the days left
    variance: float | None          # of `expected` vs what will happen; None: not enough days
    model: str = "mean"             # the projection's: mean | trend | step | weekend | weekly | wander


@dataclass(frozen=True)
class _Fit:
    model: str
    bic: float
    expected: float                 # spend over the days left if this model is the right one
    variance: float                 # of the spend over the days left under this model (normal-equivalent)


# The fits below that read only the days (never the days left, the offset or month to date) are memoised on
# the days themselves: a snapshot every second projects the same complete days until a day completes or new
# billing data changes one (then the key, the days, differs and they are fitted again). Exact: pure functions
# of their argument, keyed by its value (floats; tuples, so the cached results cannot be changed by a caller).
FIT_CACHE = 256


def clear_caches() -> None:
    """Forget the memoised fits (benchmarks and tests that want a cold computation)."""
    for fn in (_fit_trend, _fit_step, _change_rate, _wander, _weekly_means, _weekend_pair):
        fn.cache_clear()


@lru_cache(maxsize=FIT_CACHE)
def _fit_trend(y: tuple[float, ...]) -> tuple[float, float, float, float]:
    """(rss, mean, slope, sxx) of the OLS line through the days (x = day centres)."""
    n = len(y)
    mean, xbar = sum(y) / n, n / 2.0
    sxx = sum((i + 0.5 - xbar) ** 2 for i in range(n))
    slope = sum((i + 0.5 - xbar) * (v - mean) for i, v in enumerate(y)) / sxx
    rss = sum((v - mean - slope * (i + 0.5 - xbar)) ** 2 for i, v in enumerate(y))
    return rss, mean, slope, sxx


@lru_cache(maxsize=FIT_CACHE)
def _fit_step(y: tuple[float, ...]) -> tuple[float, int] | None:
    """(rss, first day of the new level) of the best single level change: MIN_DAYS days before it, STEP_TAIL
    days from it on."""
    n = len(y)
    best: tuple[float, int] | None = None
    for c in range(MIN_DAYS, n - STEP_TAIL + 1):
        a, b = y[:c], y[c:]
        ma, mb = sum(a) / len(a), sum(b) / len(b)
        rss = sum((v - ma) ** 2 for v in a) + sum((v - mb) ** 2 for v in b)
        if best is None or rss < best[0]:
            best = (rss, c)
    return best


def _level_changes(y: Sequence[float]) -> list[float]:
    """The changes of level in the days, each relative to the larger of the two levels (-1: a stop, 1: a start
    from nothing), by binary segmentation: the best single step of a stretch, or the best pair of steps (a level
    that went and came back: a stop and a restart, a week-long job), MIN_DAYS days in each part, is kept when it
    passes the step model's BIC test (STEP_PENALTY per step searched), then each part is searched again. A
    weekend is too short a stretch to count; a ramp counts as the steps it climbs by."""
    s1, s2 = [0.0], [0.0]
    for v in y:
        s1.append(s1[-1] + v)
        s2.append(s2[-1] + v * v)

    def rss(i: int, j: int) -> float:
        return max(0.0, s2[j] - s2[i] - (s1[j] - s1[i]) ** 2 / (j - i))

    def level(i: int, j: int) -> float:
        return (s1[j] - s1[i]) / (j - i)

    found: list[float] = []
    stack = [(0, len(y))]
    while stack:
        a, b = stack.pop()
        n = b - a
        if n < 2 * MIN_DAYS:
            continue
        best = (_bic(rss(a, b), n, 1), (a, b))
        one = min(((rss(a, c) + rss(c, b), c) for c in range(a + MIN_DAYS, b - MIN_DAYS + 1)), default=None)
        if one is not None:
            best = min(best, (_bic(one[0], n, 2 + STEP_PENALTY), (a, one[1], b)))
        two = min(((rss(a, c) + rss(c, d) + rss(d, b), c, d) for c in range(a + MIN_DAYS, b - 2 * MIN_DAYS + 1)
                   for d in range(c + MIN_DAYS, b - MIN_DAYS + 1)), default=None)
        if two is not None:
            best = min(best, (_bic(two[0], n, 3 + 2 * STEP_PENALTY), (a, two[1], two[2], b)))
        cuts = best[1]
        for i in range(1, len(cuts) - 1):
            before, after = level(cuts[i - 1], cuts[i]), level(cuts[i], cuts[i + 1])
            found.append((after - before) / (max(abs(before), abs(after)) or 1.0))
        if len(cuts) > 2:
            stack += list(zip(cuts, cuts[1:], strict=False))
    return found


def change_rate(days: Sequence[float]) -> float:
    """q: the variance per day, relative to the level squared, of the changes of level still to come (rate x
    E[relative size^2]): the prior (CHANGE_PRIOR_*) updated by the changes seen in `days`."""
    return _change_rate(tuple(float(v) for v in days))


@lru_cache(maxsize=FIT_CACHE)
def _change_rate(days: tuple[float, ...]) -> float:
    # the segmentation searches every pair of cuts: the costliest step of a projection, once per set of days
    seen = _level_changes(days)
    return (CHANGE_PRIOR_COUNT * CHANGE_PRIOR_SIZE ** 2 + sum(r * r for r in seen)) / \
        (CHANGE_PRIOR_COUNT * CHANGE_PRIOR_DAYS + len(days))


def _ahead(n: int, offset: float, left: float) -> list[float]:
    """How much of each position of the week (day index mod 7, from the first complete day) is still ahead."""
    weight = [0.0] * 7
    at, stop = n + offset, n + offset + left
    while at < stop - 1e-9:
        nxt = min(stop, math.floor(at) + 1.0)
        weight[int(math.floor(at)) % 7] += nxt - at
        at = nxt
    return weight


def _fit_weekly(y: Sequence[float], ahead: list[float]) -> tuple[float, float, float]:
    """(rss, expected spend over the days left, rate-uncertainty factor) of the day-of-week means model."""
    rss, means, sizes = _weekly_means(tuple(y))
    expected = sum(w * m for w, m in zip(ahead, means, strict=True))
    var_rate = sum(w * w / size for w, size in zip(ahead, sizes, strict=True))
    return rss, expected, var_rate


@lru_cache(maxsize=FIT_CACHE)
def _weekly_means(y: tuple[float, ...]) -> tuple[float, tuple[float, ...], tuple[int, ...]]:
    """(rss, mean of each day of the week, days of each) of the day-of-week means model: the days' part of it."""
    groups = [y[k::7] for k in range(7)]
    means = tuple(sum(g) / len(g) for g in groups)
    rss = sum((v - means[i % 7]) ** 2 for i, v in enumerate(y))
    return rss, means, tuple(len(g) for g in groups)


def _fit_weekend(y: Sequence[float], ahead: list[float]) -> tuple[float, float, float] | None:
    """(rss, expected, rate-uncertainty factor) of the best "two days a week differ" model: one level for five
    days of the week, another for two consecutive ones (a weekend; the days carry no weekday, so the pair is
    searched). From a week of days on, a quiet weekend is then a pattern rather than noise or a trend.
    None: no pair qualifies yet."""
    found = _weekend_pair(tuple(y))
    if found is None:
        return None
    rss, low, ma, mb, na, nb = found
    wa = sum(w for k, w in enumerate(ahead) if k in low)
    wb = sum(ahead) - wa
    return rss, wa * ma + wb * mb, wa * wa / na + wb * wb / nb


@lru_cache(maxsize=FIT_CACHE)
def _weekend_pair(y: tuple[float, ...]) -> tuple[float, frozenset[int], float, float, int, int] | None:
    """The days' part of the weekend model: (rss, the pair, its level, the other days' level, days of each) of
    the pair of days of the week with the least rss (the first one on a tie). The days left only weigh it."""
    best: tuple[float, frozenset[int], float, float, int, int] | None = None
    n = len(y)
    for p in range(7):
        low = frozenset((p, (p + 1) % 7))
        # A pattern is what repeats, or what came back: a pair of days of the week seen twice each, or seen
        # once between other days (low first days are as likely a ramp's start, low last days a change).
        if any(len(range(k, n, 7)) < 2 for k in low) and (p == 0 or p + 2 >= n):
            continue
        a = [v for i, v in enumerate(y) if i % 7 in low]
        b = [v for i, v in enumerate(y) if i % 7 not in low]
        ma, mb = sum(a) / len(a), sum(b) / len(b)
        rss = sum((v - ma) ** 2 for v in a) + sum((v - mb) ** 2 for v in b)
        if best is None or rss < best[0]:
            best = (rss, low, ma, mb, len(a), len(b))
    return best


@lru_cache(maxsize=FIT_CACHE)
def _wander(y: tuple[float, ...]) -> tuple[float, float, float, float, float]:
    """The local-level model (the level takes a random step every day, variance r x the day noise's):
    (2 x log-likelihood gain over a fixed level, r, level now, its variance / noise variance, noise variance),
    r by profile likelihood over WANDER_RATIOS (a Kalman filter from the first day, diffuse start)."""
    def run(r: float) -> tuple[float, float, float, float]:
        a, p, sv, slf = y[0], 1.0 + r, 0.0, 0.0
        for v in y[1:]:
            f = p + 1.0
            e = v - a
            a += p / f * e
            sv += e * e / f
            slf += math.log(f)
            p = p / f + r
        s2 = sv / (len(y) - 1)
        return -(len(y) - 1) * math.log(max(s2, 1e-12)) - slf, a, p, s2
    base = run(0.0)[0]
    best = max(((run(r), r) for r in WANDER_RATIOS), key=lambda t: t[0][0])
    (ll, level, p, s2), r = best
    return ll - base, r, level, p, s2


def _bic(rss: float, n: int, params: float) -> float:
    return n * math.log(max(rss, 1e-12) / n) + params * math.log(n)


def _candidates(y: tuple[float, ...], left: float, offset: float) -> list[_Fit]:
    """Every model of the days that may be tried with this many days, each with its BIC and its prediction."""
    n = len(y)
    mean = sum(y) / n
    nonneg = min(y) >= 0.0

    def fit(model: str, bic: float, expected: float, s2: float, df: int, units: float, fixed: float = 0.0) -> _Fit:
        """`units`: the variance over the days left in units of the day noise at the level ahead; `fixed`: in
        units of the day noise of the days seen (a line's slope is as uncertain as the days it was fitted to)."""
        if nonneg:
            expected = max(0.0, expected)
        rate = expected / left
        # Spend noise grows with spend: scale the spread from the days seen to the level expected ahead.
        scale = max(1.0, (rate / mean) ** 2) if model != "mean" and mean > 0 and rate > 0 else 1.0
        # Equal days are no promise of equal days to come (a job ends, a GPU stops or starts again): never a
        # zero-width interval while there is spend, also after a stop (the level of the days seen).
        floor = (MIN_REL_SD * max(rate, mean)) ** 2
        units_var = max(s2 * scale, floor) * units + max(s2, floor) * fixed
        # Student-t, as a normal-equivalent variance: z80 x sqrt(variance) is the t80 half-width.
        return _Fit(model, bic, expected, units_var * (t80(df) / Z80) ** 2)

    rss = sum((v - mean) ** 2 for v in y)
    fits = [fit("mean", _bic(rss, n, 1), left * mean, rss / (n - 1), n - 1, left + left * left / n)]
    # Under two weeks a weekend dip looks like a trend or a step: ask for more evidence.
    short = 0.0 if n >= 2 * 7 else SHORT_PENALTY
    if n >= TREND_MIN_DAYS:
        t_rss, t_mean, slope, sxx = _fit_trend(y)
        # Where the days left sit on the days' axis (x = 0 at the first complete day's start): from the end of
        # what is known (`offset` days after the last complete day) for `left` days; their centre minus the days'.
        lever = left * (n + offset + left / 2.0 - n / 2.0)
        fits.append(fit("trend", _bic(t_rss, n, 2 + TREND_PENALTY + short), left * t_mean + slope * lever,
                        t_rss / (n - 2), n - 2, left, left * left / n + lever * lever / sxx))
    if n >= STEP_MIN_DAYS:
        found = _fit_step(y)
        if found is not None:
            s_rss, c = found
            tail = y[c:]
            fits.append(fit("step", _bic(s_rss, n, 2 + STEP_PENALTY + short), left * sum(tail) / len(tail),
                            s_rss / (n - 2), n - 2, left + left * left / len(tail)))
    ahead = _ahead(n, offset, left)
    weekend = _fit_weekend(y, ahead) if n >= WEEKEND_MIN_DAYS else None
    if weekend is not None:
        w_rss, w_exp, w_var = weekend
        fits.append(fit("weekend", _bic(w_rss, n, 2 + WEEKEND_PENALTY), w_exp, w_rss / (n - 2), n - 2,
                        left + w_var))
    if n >= 2 * 7:
        w_rss, w_exp, w_var = _fit_weekly(y, ahead)
        fits.append(fit("weekly", _bic(w_rss, n, 7 + WEEKLY_PENALTY), w_exp, w_rss / (n - 7), n - 7, left + w_var))
    if n >= WANDER_MIN_DAYS and rss > 0:
        gain, r, level, p, s2 = _wander(y)
        if r > 0 and gain > 0:
            # The days left: their own noise, the level now's uncertainty (and its drift over `offset`), and the
            # random steps still to come (sum over the days left of the steps before each: r L^3 / 3).
            units = left + left * left * (p + r * offset) + r * left ** 3 / 3.0
            fits.append(fit("wander", fits[0].bic - gain + (1 + WANDER_PENALTY) * math.log(n), left * level,
                            s2 * (n - 1) / (n - 2), n - 2, units))
    return fits


def forecast_stream(s: Stream) -> StreamForecast:
    """The expected spend of one stream over its days left (the best model of its complete days by BIC) and the
    variance of that expectation (over the models in Occam's window, weighted by BIC: their own variance and
    their distance from the expectation)."""
    y = tuple(float(v) for v in s.daily)
    n, left = len(y), max(0.0, s.days_left)
    if left == 0.0:
        return StreamForecast(0.0, 0.0)
    if n == 0:
        return StreamForecast(s.partial_rate * left, None)
    mean = sum(y) / n
    if n < MIN_DAYS:
        return StreamForecast(mean * left, None)
    fits = _candidates(y, left, s.offset)
    best = min(f.bic for f in fits)
    # Occam's window: a model far less likely than the best (BIC weight under 1/OCCAM of it) takes no part.
    kept = [f for f in fits if f.bic - best <= 2 * math.log(OCCAM)]
    raw = [math.exp(-(f.bic - best) / 2) for f in kept]
    weights = [w / sum(raw) for w in raw]
    # The projection is the best model's: averaging the point in made it worse in the backtest (a weekend in
    # a week of days pulled a trend's collapse in; a clear ramp was diluted by the level). The interval is the
    # average's: each kept model's variance plus its distance from the projection, weighted.
    chosen = min(kept, key=lambda f: f.bic)
    expected = chosen.expected
    variance = sum(w * (f.variance + (f.expected - expected) ** 2) for w, f in zip(weights, kept, strict=True))
    if n < TREND_MIN_DAYS:
        # Too few days for a line's forecast to be averaged in (with 1-4 degrees of freedom it follows the
        # noise: a weekend at either end reads as a collapse or a boom), but too few to rule a trend out
        # either (a ramp's first days): the line's weight against the level (BIC) counts how far its forecast
        # lies from the projection in the interval, never in the projection itself.
        t_rss, t_mean, slope, _sxx = _fit_trend(y)
        lever = left * (n + s.offset + left / 2.0 - n / 2.0)
        gap = _bic(t_rss, n, 2 + TREND_PENALTY + SHORT_PENALTY) - fits[0].bic
        t_exp = left * t_mean + slope * lever
        if min(y) >= 0.0:
            t_exp = max(0.0, t_exp)
        variance += (t_exp - expected) ** 2 / (1.0 + math.exp(gap / 2))
    # Level changes still to come (the prior, updated by the days before the month and the month's own): a
    # change t days from now moves the L - t days after it by its size, relative to the level ahead (or, after
    # a stop, the level of the days seen: a stopped box may start again).
    level = expected / left if expected > 0 else mean
    variance += change_rate((*s.history, *y)) * level * level * left ** 3 / 3.0
    return StreamForecast(expected, variance, chosen.model)


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
        days = f"{n} complete day{'' if n == 1 else 's'}"
        return projection, None, None, f"not enough data for an interval ({days}, need {MIN_DAYS})"
    half = Z80 * math.sqrt(sum(p.variance or 0.0 for p, _s in pending))
    n = max(len(s.daily) for _p, s in pending)
    how = "; ".join(MODEL_NOTE[m] for m in sorted({p.model for p, _s in pending}))
    # The month never ends below what is already spent (unless credits are what is projected).
    low = max(mtd, projection - half) if projection >= mtd else projection - half
    return projection, low, projection + half, f"80% interval from {n} complete days ({how})"

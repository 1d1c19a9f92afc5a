"""Backtest of the month projection and its 80% interval (gpuspend.forecast) over simulated months.

Scenarios (daily spend totals of a 30-day month, 400 months each, seeded):
  iid     $768/day (8 GPUs x $4/h) with 20% independent noise
  ramp    from $200/day to $1,000/day, 10% noise
  weekly  weekdays $900, weekends $300, 10% noise
  step    $400/day, doubling on a random day between 8 and 22, 10% noise
  demo    the demo box's own November (gpuspend --demo), its daily totals, as one month
At the end of each day k (k complete days known, 30 - k left) the projection and interval are compared with the
real month total. Printed: coverage of the 80% interval (target 75-85%) and mean absolute error as % of the
month total, by day of month and overall (target at day 10 < 10%). A step is news no forecast can know before it
happens, so the step months are also scored only at checkpoints 3+ days after their step.
    python bench/bench_forecast.py [months per scenario]
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

from _common import ROOT  # noqa: F401  (puts the repository on sys.path)

from gpuspend import forecast

DAYS = 30
CHECKPOINTS = (3, 5, 7, 10, 15, 20, 25, 28)


def iid(rng: random.Random) -> list[float]:
    return [max(0.0, rng.gauss(768, 0.2 * 768)) for _ in range(DAYS)]


def ramp(rng: random.Random) -> list[float]:
    return [max(0.0, (200 + 800 * d / (DAYS - 1)) * rng.gauss(1, 0.1)) for d in range(DAYS)]


def weekly(rng: random.Random) -> list[float]:
    shift = rng.randrange(7)
    return [max(0.0, (300 if (d + shift) % 7 in (5, 6) else 900) * rng.gauss(1, 0.1)) for d in range(DAYS)]


STEP_DAYS: list[int] = []        # the day each simulated step month changes level


def step(rng: random.Random) -> list[float]:
    at = rng.randint(8, 22)
    STEP_DAYS.append(at)
    return [max(0.0, (800 if d >= at else 400) * rng.gauss(1, 0.1)) for d in range(DAYS)]


def demo_month() -> list[float]:
    """The demo's November by day (billed + metered, USD), built at 2026-12-01 00:00 so the month is closed."""
    from gpuspend import costing
    from gpuspend.config import load_config
    from gpuspend.demo import build_demo_db
    from gpuspend.store import connect

    now = forecast.month_bounds("2026-12")[0]
    with tempfile.TemporaryDirectory() as tmp:
        db = build_demo_db(Path(tmp) / "demo.db", now)
        conn = connect(db)
        try:
            cfg = load_config(None)
            s = costing.billing_summary(conn, cfg, "2026-11", now, currency="USD")
            by_day = {d.day: d.billed + d.metered for d in s.days}
        finally:
            conn.close()
    return [by_day.get(forecast.day_key(forecast.month_bounds("2026-11")[0] + i * forecast.DAY_MS), 0.0)
            for i in range(DAYS)]


def backtest(months: list[list[float]]) -> dict[int, tuple[float, float, int]]:
    """{day: (coverage, mean abs error % of month, months)} over CHECKPOINTS."""
    out = {}
    for k in CHECKPOINTS:
        hits, errs, n = 0, 0.0, 0
        for daily in months:
            total = sum(daily)
            proj, low, high, _note = forecast.project(sum(daily[:k]), [forecast.Stream(tuple(daily[:k]), DAYS - k)])
            if low is None or high is None or total <= 0:
                continue
            n += 1
            hits += low <= total <= high
            errs += abs(proj - total) / total
        out[k] = (hits / n if n else float("nan"), 100 * errs / n if n else float("nan"), n)
    return out


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    rng = random.Random(20261201)
    scenarios = {name: [gen(rng) for _ in range(count)] for name, gen in
                 (("iid", iid), ("ramp", ramp), ("weekly", weekly), ("step", step))}
    try:
        scenarios["demo"] = [demo_month()]
    except Exception as e:  # noqa: BLE001  (the simulated months still say what they say)
        print(f"demo month not available: {type(e).__name__}: {e}")
    print(f"80% interval coverage / mean abs error (% of the month) at the end of day k; {count} months each")
    print(f"{'scenario':9}" + "".join(f"  day {k:>2}     " for k in CHECKPOINTS) + "  all")
    pooled_hits = pooled_n = 0
    for name, months in scenarios.items():
        res = backtest(months)
        cells = "".join(f"  {c * 100:4.0f}% {e:5.1f}%" for c, e, _n in res.values())
        hits = sum(c * n for c, _e, n in res.values())
        n = sum(n for _c, _e, n in res.values())
        if name != "demo":
            pooled_hits += hits
            pooled_n += n
        print(f"{name:9}{cells}  {100 * hits / n:4.0f}%")
    day10 = {k: backtest(m)[10][1] for k, m in scenarios.items() if k != "demo"}
    print(f"pooled coverage (simulated): {100 * pooled_hits / pooled_n:.1f}% (target 75-85%); "
          f"mean abs error at day 10: {sum(day10.values()) / len(day10):.1f}% all, "
          f"{sum(v for k, v in day10.items() if k != 'step') / (len(day10) - 1):.1f}% without the step months "
          "(target < 10%)")
    # A step is news no forecast can know before it happens: how the interval does once it has been seen.
    seen = hits = 0
    for daily, at in zip(scenarios["step"], STEP_DAYS, strict=True):
        for k in CHECKPOINTS:
            if k < at + 3:
                continue
            _p, low, high, _n = forecast.project(sum(daily[:k]), [forecast.Stream(tuple(daily[:k]), DAYS - k)])
            if low is not None and high is not None:
                seen += 1
                hits += low <= sum(daily) <= high
    print(f"step months, checkpoints 3+ days after the step: coverage {100 * hits / max(seen, 1):.0f}% ({seen})")
    others = sum(c * n for k, m in scenarios.items() if k not in ("demo", "step") for c, _e, n in backtest(m).values())
    others_n = sum(n for k, m in scenarios.items() if k not in ("demo", "step") for _c, _e, n in backtest(m).values())
    print(f"pooled coverage, step months only once the step is seen: {100 * (others + hits) / (others_n + seen):.1f}%")


if __name__ == "__main__":
    main()

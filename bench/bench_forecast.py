"""Backtest of the month projection and its 80% interval (gpuspend.forecast) over simulated months.

Scenarios (daily spend totals of a 30-day month, N months each, each scenario with its own seed; each month
comes with the 30 days before it, from the same process):
  iid     $768/day (8 GPUs x $4/h) with 20% independent noise
  ramp    from $200/day to $1,000/day, 10% noise (flat at $200/day the month before)
  weekly  weekdays $900, weekends $300 (weekday of the 1st at random), 10% noise
  step    $400/day that changes level once, on any day 1-29 (uniform), up or down by x1.25 to x3 (log-uniform
          size, either sign: a job ends, GPUs are added or stopped), 10% noise; the month before changed once
          too, on a day and by a factor drawn the same way, to the $400
  demo    the demo box's own November (gpuspend --demo), its daily totals, as one month (no days before)
At the end of each day k (k complete days known, 30 - k left) the projection and interval are compared with the
real month total. Printed, all measured in the same run: the current method from the month's own days only (a
user's first month, or `forecast.window: 0`), the current method also given the 30 days before the month
(Stream.history: what the cost engine hands in with the default `forecast.window` of 30 days), and the previous
method (the projection as of commit BASELINE, read from git; skipped outside a git
checkout): coverage of the 80% interval (target 75-85%), mean absolute error as % of the month total and the
mean half-width of the interval at day 10, per scenario and checkpoint day; pooled over the simulated
scenarios; the step months split into checkpoints before their step and after it; how far the scenario x day
cells are from 80% on average.
    python bench/bench_forecast.py [months per scenario]
"""

from __future__ import annotations

import math
import random
import subprocess
import sys
import tempfile
import types
from collections.abc import Callable
from pathlib import Path

from _common import ROOT

from gpuspend import forecast

DAYS = 30
CHECKPOINTS = (3, 5, 7, 10, 15, 20, 25, 28)
BASELINE = "0b725c9"             # the commit whose gpuspend/forecast.py is the baseline (hard BIC choice)

Project = Callable[[float, list], tuple]


Month = tuple[list[float], int | None, list[float]]      # (days, first day at the new level, the 30 days before)


def iid(rng: random.Random) -> Month:
    days = [max(0.0, rng.gauss(768, 0.2 * 768)) for _ in range(2 * DAYS)]
    return days[DAYS:], None, days[:DAYS]


def ramp(rng: random.Random) -> Month:
    """A project that starts ramping up on the 1st: flat at $200/day before."""
    before = [max(0.0, 200 * rng.gauss(1, 0.1)) for _ in range(DAYS)]
    return [max(0.0, (200 + 800 * d / (DAYS - 1)) * rng.gauss(1, 0.1)) for d in range(DAYS)], None, before


def weekly(rng: random.Random) -> Month:
    shift = rng.randrange(7)
    days = [max(0.0, (300 if (d + shift) % 7 in (5, 6) else 900) * rng.gauss(1, 0.1)) for d in range(2 * DAYS)]
    return days[DAYS:], None, days[:DAYS]


def _change(rng: random.Random) -> tuple[int, float]:
    """A day 1-29 (uniform) and a factor x1.25 to x3 (log-uniform), up or down."""
    return rng.randint(1, DAYS - 1), math.exp(rng.uniform(math.log(1.25), math.log(3.0))) ** rng.choice((1, -1))


def step(rng: random.Random) -> Month:
    """$400/day that changes level once in the month; the month before changed once too (to the $400)."""
    at_before, f_before = _change(rng)
    before = [max(0.0, (400 if d >= at_before else 400 / f_before) * rng.gauss(1, 0.1)) for d in range(DAYS)]
    at, factor = _change(rng)
    return [max(0.0, (400 * factor if d >= at else 400) * rng.gauss(1, 0.1)) for d in range(DAYS)], at, before


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


def baseline_project() -> Project | None:
    """forecast.project as of commit BASELINE, loaded from git into a module of its own."""
    try:
        src = subprocess.run(["git", "-C", str(ROOT), "show", f"{BASELINE}:gpuspend/forecast.py"], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    mod = types.ModuleType("forecast_baseline")
    sys.modules[mod.__name__] = mod           # its dataclasses look their module up
    exec(compile(src, f"{BASELINE}:gpuspend/forecast.py", "exec"), mod.__dict__)  # noqa: S102  (our own file)
    return lambda mtd, streams: mod.project(mtd, [mod.Stream(s.daily, s.days_left) for s in streams])


def score(project: Project, months: list[Month], history: bool) -> dict:
    """Per checkpoint: [hits, abs error sum, n, half-width sum]; and the step months' hits/n before/after."""
    per = {k: [0, 0.0, 0, 0.0] for k in CHECKPOINTS}
    split = {"before": [0, 0], "after": [0, 0]}
    for daily, at, before in months:
        total = sum(daily)
        if total <= 0:
            continue
        for k in CHECKPOINTS:
            stream = forecast.Stream(tuple(daily[:k]), DAYS - k, history=tuple(before) if history else ())
            proj, low, high, _note = project(sum(daily[:k]), [stream])
            if low is None or high is None:
                continue
            hit = low <= total <= high
            cell = per[k]
            cell[0] += hit
            cell[1] += abs(proj - total) / total
            cell[2] += 1
            cell[3] += (high - low) / 2 / total
            if at is not None:
                part = split["before" if k <= at else "after"]
                part[0] += hit
                part[1] += 1
    return {"per": per, "split": split}


def pct(a: float, b: float) -> str:
    return f"{100 * a / b:4.0f}%" if b else "   - "


def report(title: str, project: Project, scenarios: dict[str, list], history: bool = False) -> dict[str, dict]:
    print(f"\n{title}: 80% interval coverage / mean abs error (% of the month) at the end of day k")
    print(f"{'scenario':9}" + "".join(f"  day {k:>2}     " for k in CHECKPOINTS) + "   all   half-width@10")
    results = {}
    for name, months in scenarios.items():
        res = score(project, months, history)
        results[name] = res
        per = res["per"]
        cells = "".join(f"  {pct(h, n)} {100 * e / n if n else math.nan:5.1f}%" for h, e, n, _w in per.values())
        hits, n = sum(c[0] for c in per.values()), sum(c[2] for c in per.values())
        w10 = per[10]
        print(f"{name:9}{cells}  {pct(hits, n)}   {100 * w10[3] / max(w10[2], 1):5.1f}%")
    sim = [r for k, r in results.items() if k != "demo"]
    hits = sum(c[0] for r in sim for c in r["per"].values())
    n = sum(c[2] for r in sim for c in r["per"].values())
    day10 = {k: 100 * r["per"][10][1] / max(r["per"][10][2], 1) for k, r in results.items() if k != "demo"}
    sp = results["step"]["split"]
    print(f"pooled coverage (simulated scenarios, all checkpoints): {100 * hits / n:.1f}% (target 75-85%)")
    print("mean abs error at day 10: " + ", ".join(f"{k} {v:.1f}%" for k, v in day10.items())
          + f"; mean {sum(day10.values()) / len(day10):.1f}% (target < 10%)")
    print(f"step months: coverage at checkpoints before the step {pct(*sp['before'])} ({sp['before'][1]}), "
          f"after it {pct(*sp['after'])} ({sp['after'][1]})")
    # Coverage with the step months scored only once their step is in the days (a change still to come is news
    # no forecast of the month's own days can know), and how far the cells are from 80% on average.
    seen_hits = hits - sum(c[0] for c in results["step"]["per"].values()) + sp["after"][0]
    seen_n = n - sum(c[2] for c in results["step"]["per"].values()) + sp["after"][1]
    cells = [100 * c[0] / c[2] for r in sim for c in r["per"].values() if c[2]]
    print(f"pooled coverage, step months once their step is seen: {100 * seen_hits / seen_n:.1f}%; "
          f"mean |coverage - 80%| over the scenario x day cells: {sum(abs(c - 80) for c in cells) / len(cells):.1f} "
          "points")
    return results


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    scenarios: dict[str, list] = {}
    for seed, (name, gen) in enumerate((("iid", iid), ("ramp", ramp), ("weekly", weekly), ("step", step))):
        rng = random.Random(20261201 + seed)
        scenarios[name] = [gen(rng) for _ in range(count)]
    try:
        scenarios["demo"] = [(demo_month(), None, [])]
    except Exception as e:  # noqa: BLE001  (the simulated months still say what they say)
        print(f"demo month not available: {type(e).__name__}: {e}")
    print(f"{count} simulated months per scenario")
    report("current (gpuspend.forecast), the month's own days only (a first month, or forecast.window: 0)",
           forecast.project, scenarios)
    report("current, with the 30 days before the month as Stream.history (the default forecast.window: 30d)",
           forecast.project, scenarios, history=True)
    old = baseline_project()
    if old is None:
        print(f"\nbaseline (commit {BASELINE}) not available: not a git checkout")
    else:
        report(f"baseline (forecast.py as of commit {BASELINE})", old, scenarios)


if __name__ == "__main__":
    main()

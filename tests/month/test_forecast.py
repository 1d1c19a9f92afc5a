"""The projection on months a user recognises: a level change, a stop, a ramp's first days (gpuspend.forecast)."""

from __future__ import annotations

import math

import pytest

from gpuspend import forecast
from gpuspend.forecast import Stream

# A fixed pattern of day-to-day noise (+-5%), so the months below are the same on every run.
NOISE = (1.02, 0.97, 1.05, 0.99, 0.96, 1.03, 1.01, 0.98, 1.04, 0.95)


def month(before: float, after: float, days_after: int) -> tuple[float, ...]:
    """10 days at `before` $/day, then `days_after` days at `after`, each with NOISE."""
    return tuple(before * x for x in NOISE) + tuple(after * x for x in NOISE[:days_after])


@pytest.mark.parametrize(("before", "after"), [(400.0, 800.0), (800.0, 200.0)])
def test_after_a_level_change_the_forecast_carries_the_new_level(before, after):
    days = month(before, after, 5)                    # 15 complete days, 15 left
    mtd = sum(days)
    proj, low, high, note = forecast.project(mtd, [Stream(days, 15.0)])
    # the days left at the new level (the last 5 days average 1.002 x `after`), not at the mean of all 15 days
    assert proj - mtd == pytest.approx(15 * after, rel=0.02)
    assert abs(proj - mtd - 15 * after) < abs(sum(days) / 15 * 15 - 15 * after) / 10
    assert low < mtd + 15 * after < high and high - low > 0
    assert "level since a change" in note


def test_a_stopped_box_still_has_an_interval():
    # $500/day for 10 days, then stopped for 5: the projection stays at the month to date, but a box that
    # stopped can start again, so the interval is not zero wide (it never goes below what is spent)
    days = (500.0,) * 10 + (0.0,) * 5
    proj, low, high, _note = forecast.project(5000.0, [Stream(days, 15.0)])
    assert proj == pytest.approx(5000.0) and low == pytest.approx(5000.0) and high > 5000.0


@pytest.mark.parametrize("days", [
    (100.0,) * 3, (100.0,) * 7, (100.0,) * 29,                      # equal days, short and long
    (400.0,) * 10 + (800.0,) * 10,                                  # a change of level with no noise
    tuple(100.0 * (d + 1) for d in range(14)),                      # an exact ramp
    ((900.0,) * 5 + (300.0,) * 2) * 2,                              # an exact weekly cycle
    (0.0, 0.0, 0.0, 50.0, 50.0, 50.0),                              # spend that started
])
@pytest.mark.parametrize("left", [0.5, 1.0, 10.0, 27.0])
def test_the_interval_is_never_zero_wide_while_there_is_spend(days, left):
    proj, low, high, _note = forecast.project(sum(days), [Stream(days, left)])
    assert low is not None and high is not None
    assert low <= proj < high and high - low > 0


def test_a_ramps_first_days_widen_the_interval_but_do_not_bet_on_the_line():
    # 5 days from $200 to $320 (+$30/day), 25 days left. Five days are too few to carry a line 25 days on
    # (a weekend at the end of them would read as a collapse), so the projection is the mean, 260/day:
    # 1,300 + 25 x 260 = 7,800 (the wandering-level model, which follows the last days, pulls it up a
    # little); but the interval reaches what the line says: 1,300 + 25 x 260 + 30 x (25 x 15) = 19,050.
    days = (200.0, 230.0, 260.0, 290.0, 320.0)
    proj, low, high, _note = forecast.project(1300.0, [Stream(days, 25.0)])
    assert 7800 <= proj < 7800 * 1.1
    assert high > 19050 and low == pytest.approx(1300.0)


def test_the_days_before_the_month_update_the_risk_of_a_change_of_level():
    # The month so far: 10 days at $800, 20 days left. Every interval carries the risk of a change of level
    # still to come: the prior, one change per 120 days of 20% of the level, updated by the days seen and
    # their changes (relative to the larger level): q = (0.2^2 + sum of sizes^2) / (120 + days) a day, and a
    # change t days from now moves the 20 - t days after it: q x 800^2 x 20^3 / 3 more variance.
    # - a first month (no days before it): 10 steady days, q = 0.04 / 130;
    # - 30 steady days before it: 40 steady days, q = 0.04 / 160 (a steady history narrows the interval);
    # - $400 for 15 days, then $800: one change of 0.5 in 40 days, q = (0.04 + 0.25) / 160.
    # The projection is the same in all three.
    days = (800.0,) * 10
    plain = forecast.forecast_stream(Stream(days, 20.0))
    steady = forecast.forecast_stream(Stream(days, 20.0, history=(800.0,) * 30))
    changed = forecast.forecast_stream(Stream(days, 20.0, history=(400.0,) * 15 + (800.0,) * 15))
    assert plain.expected == steady.expected == changed.expected == pytest.approx(16000.0)
    unit = 800 ** 2 * 20 ** 3 / 3
    base = plain.variance - 0.04 / 130 * unit           # the month's own days' part, the same in all three
    assert base > 0
    assert steady.variance == pytest.approx(base + 0.04 / 160 * unit)
    assert changed.variance == pytest.approx(base + 0.29 / 160 * unit)
    assert steady.variance < plain.variance < changed.variance
    proj, _low, high, _note = forecast.project(8000.0, [Stream(days, 20.0, history=(400.0,) * 15 + (800.0,) * 15)])
    assert high - proj == pytest.approx(forecast.Z80 * math.sqrt(changed.variance))


def test_a_long_steady_history_shrinks_the_risk_and_changes_seen_grow_it():
    # 10 days at $800, 20 left: the interval narrows as steady days before the month accumulate, and widens
    # with each change seen (here: a stop and a restart, sizes -1 and +1).
    days = (800.0,) * 10
    width = [forecast.forecast_stream(Stream(days, 20.0, history=(800.0,) * h)).variance for h in (0, 30, 90, 365)]
    assert width == sorted(width, reverse=True)
    restarted = forecast.forecast_stream(Stream(days, 20.0, history=(800.0,) * 10 + (0.0,) * 10 + (800.0,) * 10))
    base = width[0] - 0.04 / 130 * 800 ** 2 * 20 ** 3 / 3
    assert restarted.variance == pytest.approx(base + (0.04 + 2.0) / 160 * 800 ** 2 * 20 ** 3 / 3)

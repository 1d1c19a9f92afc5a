"""The projection arithmetic of gpuspend.forecast, by hand (complete days in, projection and 80% interval out)."""

from __future__ import annotations

import math

import pytest

from gpuspend import forecast
from gpuspend.forecast import Stream


def test_mean_of_complete_days_with_a_student_t_interval_that_carries_the_rate_uncertainty():
    # 5 complete days 100, 110, 90, 100, 100; MTD 500; 10 days left.
    # No trend in the projection under 7 days; mean $100/day -> projection 500 + 1000 = 1500.
    # s^2 = 200 / 4 = 50; var = s^2 (L + L^2 / n) = 50 (10 + 20) = 1500; t80 with 4 df = 1.533 (as a normal
    # variance: 1500 x (1.533 / 1.2816)^2).
    # The line a trend would draw (slope -1/day; the days left are centred 7.5 days after the days' centre:
    # lever 10 x 7.5 = 75, so it says 1000 - 75 = 925) is not ruled out by 5 days: its BIC weight against the
    # level, gap = 5 ln(190 / 200) + (2 + 2 + 2 - 1) ln 5, weight 1 / (1 + e^(gap / 2)) = 2.0%, times its
    # distance from the projection squared (75^2) widens the interval a little.
    # A change of level still to come: the prior, one change per 120 days of 20% of the level, updated by 5
    # days with no change: q = 0.2^2 / (120 + 5) a day, and a change t days from now moves the 10 - t days
    # after it: q x 100^2 x 10^3 / 3 more variance.
    proj, low, high, note = forecast.project(500.0, [Stream((100, 110, 90, 100, 100), 10.0)])
    assert proj == pytest.approx(1500.0)
    gap = 5 * math.log(190 / 200) + 5 * math.log(5)
    change = 0.2 ** 2 / 125 * 100 ** 2 * 10 ** 3 / 3
    var = 1500 * (1.533 / 1.2816) ** 2 + 75 ** 2 / (1 + math.exp(gap / 2)) + change
    half = 1.2816 * math.sqrt(var)
    assert low == pytest.approx(1500 - half, rel=1e-3) and high == pytest.approx(1500 + half, rel=1e-3)
    assert note == "80% interval from 5 complete days (mean of daily totals)"


def test_equal_days_still_leave_an_interval():
    # s^2 = 0 -> floored at (5% of the $100 level)^2 = 25; var = 25 (10 + 100 / 14) x (t80(13) / z80)^2,
    # plus the prior risk of a change of level after 14 steady days: 0.2^2 / (120 + 14) x 100^2 x 10^3 / 3
    proj, low, high, _note = forecast.project(1400.0, [Stream((100.0,) * 14, 10.0)])
    assert proj == pytest.approx(2400.0)
    half = 1.2816 * math.sqrt((1.350 / 1.2816) ** 2 * 25 * (10 + 100 / 14) + 0.2 ** 2 / 134 * 100 ** 2 * 1000 / 3)
    assert high - proj == pytest.approx(half) and proj - low == pytest.approx(half)


def test_under_three_complete_days_there_is_no_interval_and_the_note_says_so():
    proj, low, high, note = forecast.project(200.0, [Stream((100.0, 100.0), 1.0)])
    assert proj == pytest.approx(300.0) and low is None and high is None
    assert note == "not enough data for an interval (2 complete days, need 3)"
    assert forecast.project(100.0, [Stream((100.0,), 2.0)])[3] == "not enough data for an interval (1 complete day, need 3)"
    # no complete day at all: the rate since data began
    proj, low, _h, _n = forecast.project(8.0, [Stream((), 15.5, partial_rate=8.0 * 24)])
    assert proj == pytest.approx(8.0 + 8.0 * 24 * 15.5) and low is None


def test_a_level_change_is_carried_at_the_new_level():
    # 10 days at $400 then 10 at $800 (no noise): the month goes on at $800/day for the 10 days left
    proj, low, high, note = forecast.project(12000.0, [Stream((400.0,) * 10 + (800.0,) * 10, 10.0)])
    assert proj == pytest.approx(12000 + 8000) and low < proj < high
    assert "level since a change" in note


def test_streams_add_up_with_their_own_days_left():
    # the box: $100/day, 10 days left; billing-only: $50/day known to 2 days ago, 12 days left
    proj, low, high, _note = forecast.project(2000.0, [Stream((100.0,) * 10, 10.0), Stream((50.0,) * 8, 12.0)])
    assert proj == pytest.approx(2000 + 1000 + 600)
    a = forecast.forecast_stream(Stream((100.0,) * 10, 10.0))
    b = forecast.forecast_stream(Stream((50.0,) * 8, 12.0))
    assert high - proj == pytest.approx(forecast.Z80 * math.sqrt(a.variance + b.variance))


def test_a_closed_or_ended_stream_adds_nothing():
    proj, low, high, note = forecast.project(3000.0, [Stream((100.0,) * 30, 0.0)])
    assert (proj, low, high) == (3000.0, None, None) and note == "nothing left to project"


def test_a_weekly_cycle_is_carried_day_by_day_after_two_weeks():
    # two weeks of five $900 weekdays and two $300 weekend days; the next two days are weekdays: $1,800
    # (the mean, $728.57/day, would say $1,457)
    week = (900.0,) * 5 + (300.0,) * 2
    proj, low, high, note = forecast.project(10200.0, [Stream(week * 2, 2.0)])
    assert proj == pytest.approx(10200 + 1800) and low < proj < high
    assert "weekly cycle" in note

"""The days before the month (`forecast.window`) in the month's projection: how often this box's spend changed
level before is evidence of how likely a change is in the days left (gpuspend.forecast, costing/month.py).

Two H100s at $4/h each ($96 a GPU-day); the clock at 2026-11-15 12:00 UTC: the month's complete days are
11-01 .. 11-14, 15.5 days are left. The default window is 30 days: 10-02 .. 10-31 (whole days)."""

from __future__ import annotations

import math

import pytest

from gpuspend import costing, forecast
from tests.costing.builders import NOW_MS, add_gpus, add_minutes, cfg_from, new_store, set_watermark
from tests.month.store import DAY_MS, DAY_S, NOV1_S, charges, day_ms, new_import

RATES = "rates: {per_model: {H100: 4.0}}\n"
OCT1_MS = day_ms(1) - 31 * DAY_MS
UNIT = 192.0 ** 2 * 15.5 ** 3 / 3        # (level)^2 x L^3 / 3: the variance of a change of size 1 still to come


def box(db_path, second_gpu_from_ms: int):
    """GPU 1 busy from 10-01; GPU 2 busy from `second_gpu_from_ms`: both all of November ($192/day)."""
    conn = new_store(db_path)
    one, two = add_gpus(conn, 2)
    add_minutes(conn, one, OCT1_MS, (NOW_MS - OCT1_MS) // 60_000)
    add_minutes(conn, two, second_gpu_from_ms, (NOW_MS - second_gpu_from_ms) // 60_000)
    set_watermark(conn, NOW_MS)
    return conn


def views_of(conn, cfg) -> dict:
    rates = costing.resolve_rates(conn, cfg, costing.load_gpus(conn), NOW_MS)
    views, _cov = costing.month_views_for(conn, cfg, "2026-11", NOW_MS, rates)
    return {v.currency: v for v in views}


def usd(conn, cfg):
    return views_of(conn, cfg)["USD"]


def var_of(view) -> float:
    """The variance behind the interval (its upper half: the lower one stops at the month to date)."""
    return ((view.high - view.projection) / forecast.Z80) ** 2


def test_a_month_after_a_level_change_gets_a_wider_interval_than_after_a_steady_month(tmp_path):
    # Steady: both GPUs since 10-01, 44 days at $192 (30 before the month, 14 in it), no change:
    #   q = 0.2^2 / (120 + 44) a day.
    # Changed: GPU 2 added on 10-16: 10-02 .. 10-15 at $96, then 30 days at $192: one change, 96 / 192 = 0.5:
    #   q = (0.2^2 + 0.5^2) / (120 + 44).
    # The month's own days are the same, so the projection is too, and the variances differ by exactly
    # 0.5^2 / 164 x 192^2 x 15.5^3 / 3.
    cfg = cfg_from(tmp_path, RATES)
    steady = usd(box(tmp_path / "steady.db", OCT1_MS), cfg)
    changed = usd(box(tmp_path / "changed.db", OCT1_MS + 15 * DAY_MS), cfg)
    assert steady.mtd == changed.mtd == pytest.approx(14.5 * 192)
    assert steady.projection == changed.projection == pytest.approx(30 * 192)
    assert changed.high > steady.high
    assert var_of(changed) - var_of(steady) == pytest.approx(0.25 / 164 * UNIT, rel=1e-6)


def test_forecast_window_0_uses_no_days_before_the_month(tmp_path):
    # The changed box again, with `forecast.window: 0`: only the month's 14 steady days, q = 0.2^2 / (120 + 14),
    # the interval of a stream with no history; against the steady box with its 30 days (q = 0.2^2 / 164).
    on = cfg_from(tmp_path, RATES)
    off = cfg_from(tmp_path, RATES + "forecast: {window: 0}\n")
    changed = box(tmp_path / "changed.db", OCT1_MS + 15 * DAY_MS)
    without = usd(changed, off)
    steady = usd(box(tmp_path / "steady.db", OCT1_MS), on)
    assert without.projection == pytest.approx(30 * 192)
    assert var_of(without) - var_of(steady) == pytest.approx(0.04 * (1 / 134 - 1 / 164) * UNIT, rel=1e-6)
    # ... which is what the month's own days give on their own
    alone = forecast.project(without.mtd, [forecast.Stream((192.0,) * 14, 15.5, offset=0.5)])
    assert without.high == pytest.approx(alone[2])
    assert usd(changed, on).high > without.high


def test_a_first_month_carries_the_prior_risk_alone(tmp_path):
    # Collecting since 11-01: no days before the month to read, so the prior (one change per 120 days of 20%)
    # updated by the month's 14 steady days: the same interval as a stream with no history.
    conn = new_store(tmp_path / "new.db")
    for gid in add_gpus(conn, 2):
        add_minutes(conn, gid, day_ms(1), (NOW_MS - day_ms(1)) // 60_000)
    set_watermark(conn, NOW_MS)
    view = usd(conn, cfg_from(tmp_path, RATES))
    alone = forecast.forecast_stream(forecast.Stream((192.0,) * 14, 15.5, offset=0.5))
    assert view.projection == pytest.approx(14.5 * 192 + alone.expected)
    assert var_of(view) == pytest.approx(alone.variance, rel=1e-6)
    assert math.sqrt(alone.variance) > math.sqrt(0.04 / 134 * UNIT)    # the prior is part of it


def eur_account(db_path, october: list[float]):
    """No GPU here: an Azure VM billed per day, EUR. October's export (10-01 .. 10-31) bills `october`; November's,
    to 11-14 00:00, 100 EUR a day."""
    conn = new_store(db_path)
    oct1_s = NOV1_S - 31 * DAY_S
    imp = new_import(conn, NOV1_S, source="azure", period=(oct1_s, NOV1_S))
    charges(conn, imp, [dict(start_s=oct1_s + d * DAY_S, end_s=oct1_s + (d + 1) * DAY_S, cost=cost, currency="EUR",
                             service="Virtual Machines", resource_id="vm-a") for d, cost in enumerate(october)],
            period=(oct1_s, NOV1_S))
    imp = new_import(conn, NOV1_S + 13 * DAY_S, source="azure")
    charges(conn, imp, [dict(start_s=NOV1_S + d * DAY_S, end_s=NOV1_S + (d + 1) * DAY_S, cost=100.0, currency="EUR",
                             service="Virtual Machines", resource_id="vm-a") for d in range(13)])
    return conn


def test_a_billing_only_stream_reads_its_own_days_before_the_month(tmp_path):
    # The export's stream: 13 complete days in November, 17 left (11-14 .. 11-30). Its October in the window:
    # 10-02 .. 10-31. Steady: 100 EUR all along, 43 steady days, q = 0.2^2 / 163. Changed: 50 EUR to 10-15, then
    # 100: one change of 0.5, q = (0.2^2 + 0.5^2) / 163. The variances differ by 0.5^2 / 163 x 100^2 x 17^3 / 3.
    cfg = cfg_from(tmp_path, "")
    steady = views_of(eur_account(tmp_path / "steady.db", [100.0] * 31), cfg)["EUR"]
    changed = views_of(eur_account(tmp_path / "changed.db", [50.0] * 15 + [100.0] * 16), cfg)["EUR"]
    assert steady.mtd == changed.mtd == pytest.approx(1300)
    assert steady.projection == changed.projection == pytest.approx(1300 + 17 * 100)
    assert var_of(changed) - var_of(steady) == pytest.approx(0.25 / 163 * 100 ** 2 * 17 ** 3 / 3, rel=1e-6)

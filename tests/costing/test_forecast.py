"""Month-to-date, projection, 80% interval, budgets, currencies apart, and the billing summary."""

from __future__ import annotations

import pytest

from gpuspend import budget, costing, forecast
from tests.costing.builders import (
    HOUR,
    NOW_MS,
    add_charge,
    add_gpus,
    add_import,
    add_minutes,
    cfg_from,
    new_store,
    set_watermark,
)

NOV1_S = 1793491200            # 2026-11-01 00:00 UTC
NOV10_MS = (NOV1_S + 9 * 86400) * 1000


def test_month_bounds_and_parse():
    assert forecast.month_bounds("2026-11") == (NOV1_S * 1000, (NOV1_S + 30 * 86400) * 1000)
    assert forecast.month_bounds("2026-12")[1] - forecast.month_bounds("2026-12")[0] == 31 * 86_400_000
    with pytest.raises(Exception, match="YYYY-MM"):
        forecast.parse_month("2026-13")


@pytest.fixture
def month_store(db_path):
    """Billing period 2026-11 with exports covering up to 11-10 00:00:
    USD $100/day and EUR 50/day on days 1-9 (EUR: another account), plus one local GPU metered at $2/h
    from 11-10 00:00 to now (11-15 12:00, 132 h -> $264)."""
    conn = new_store(db_path)
    (gid,) = add_gpus(conn, 1)
    imp = add_import(conn, period_start_s=NOV1_S, period_end_s=NOV1_S + 30 * 86400, coverage_end_s=NOV10_MS // 1000)
    for d in range(9):
        add_charge(conn, imp, start_s=NOV1_S + d * 86400, hours=24, cost=80.0, period_start_s=NOV1_S,
                   service="Amazon EC2", instance_type="p5.48xlarge", is_gpu=True, gpu_count=8)
        add_charge(conn, imp, start_s=NOV1_S + d * 86400, hours=24, cost=20.0, period_start_s=NOV1_S,
                   service="Amazon S3")
        add_charge(conn, imp, start_s=NOV1_S + d * 86400, hours=24, cost=50.0, currency="EUR",
                   period_start_s=NOV1_S, service="Virtual Machines")
    # a charge after the coverage end would be double counting with the meter: must be ignored
    add_minutes(conn, gid, NOV10_MS, int((NOW_MS - NOV10_MS) / 60_000))
    set_watermark(conn, NOW_MS)
    yield conn
    conn.close()


def test_mtd_projection_budget_and_currencies_apart(month_store, tmp_path):
    cfg = cfg_from(tmp_path, "rates: {per_model: {H100: 2.0}}\n"
                             "budget: {monthly: 2000, currency: USD, thresholds: [50, 80, 100]}\n")
    rates = costing.resolve_rates(month_store, cfg, costing.load_gpus(month_store))
    views, cov = costing.month_views_for(month_store, cfg, "2026-11", NOW_MS, rates)
    assert cov == NOV10_MS
    usd, eur = sorted(views, key=lambda v: v.currency, reverse=True)
    assert (usd.currency, eur.currency) == ("USD", "EUR")
    # USD: billed 9 x $100 = $900 + metered $264 = $1164
    assert usd.billed == pytest.approx(900) and usd.metered == pytest.approx(264) and usd.mtd == pytest.approx(1164)
    # projection (complete days only; tests/month checks the method by hand): the box's stream fell from $80/day
    # (billed, days 1-9) to $48/day (metered, days 10-14): a step, carried at $48/day for the 15.5 days left;
    # S3 exists only in the exports ($20/day to 11-10 00:00): carried for the 21 days after the export ends.
    assert usd.projection == pytest.approx(1164 + 48 * 15.5 + 20 * 21)
    assert usd.low < usd.projection < usd.high
    assert usd.budget == 2000 and usd.budget_pct_actual == pytest.approx(58.2)
    assert usd.budget_pct_forecast == pytest.approx(116.4)
    crossed = [(c.threshold, c.basis) for c in budget.crossed(cfg, usd)]
    assert crossed == [(50.0, "actual"), (50.0, "forecast"), (80.0, "forecast"), (100.0, "forecast")]
    # EUR is reported on its own: never added to USD, no budget, no metered part
    assert eur.mtd == pytest.approx(450) and eur.metered == 0 and eur.budget is None
    # billing-only: 50/day carried for the 21 days after its export ends
    assert eur.projection == pytest.approx(450 + 50 * 21) and eur.low < eur.projection < eur.high


def test_past_month_is_closed(month_store, tmp_path):
    cfg = cfg_from(tmp_path, "rates: {per_model: {H100: 2.0}}\n")
    rates = costing.resolve_rates(month_store, cfg, costing.load_gpus(month_store))
    views, _ = costing.month_views_for(month_store, cfg, "2026-10", NOW_MS, rates)
    assert views == ()


def test_billing_summary_services_skus_alternatives(month_store, tmp_path):
    cfg = cfg_from(tmp_path, "provider: aws\n")
    s = costing.billing_summary(month_store, cfg, "2026-11", NOW_MS)
    assert s.currency == "USD"
    assert [(x.name, x.amount) for x in s.services] == [("Amazon EC2", 720.0), ("Amazon S3", 180.0)]
    assert [(x.name, x.amount) for x in s.gpu_skus] == [("p5.48xlarge", 720.0)]
    assert s.days[0].day == "2026-11-01" and s.days[0].billed == 100.0
    assert s.days[-1].day == "2026-11-15" and s.days[-1].metered == pytest.approx(12 * 55.04 / 8)
    assert s.coverage == (("focus", "aws/acct", NOV10_MS, 0),)
    # 132 GPU-hours of H100 this month at aws $6.88: elsewhere = 132 x their price, saving vs $908.16
    alts = {a.provider: a for a in s.alternatives}
    assert "aws" not in alts
    assert alts["runpod"].cost_same_hours == pytest.approx(132 * 3.99)
    assert alts["runpod"].saving == pytest.approx(132 * (6.88 - 3.99))
    assert alts["azure"].saving < 0
    # what is compared is said with its number: the hours observed, which can be fewer than the invoice's
    from gpuspend.snapshot import observed_hours_label
    assert alts["runpod"].gpu_hours == pytest.approx(132)
    assert observed_hours_label({a.gpu_model: a.gpu_hours for a in s.alternatives}) == \
        "the 132 GPU-hours observed this month"
    eur = costing.billing_summary(month_store, cfg, "2026-11", NOW_MS, currency="EUR")
    assert [(x.name, x.amount) for x in eur.services] == [("Virtual Machines", 450.0)]


def test_snapshot_month_and_today_with_billing(month_store, tmp_path):
    cfg = cfg_from(tmp_path, "rates: {per_model: {H100: 2.0}}\n")
    snap = costing.build_snapshot(month_store, cfg, NOW_MS)
    assert {m.currency for m in snap.months} == {"USD", "EUR"}
    assert snap.today_cost == pytest.approx(24.0)
    assert snap.billing_coverage_end_ms == NOV10_MS
    # 24 hourly slots ending with the hour in progress (12:00, nothing yet); 11:00-12:00 cost $2 busy
    assert len(snap.hourly) == 24 and snap.hourly[-1] == (NOW_MS, 0.0, 0.0)
    assert snap.hourly[-2] == (NOW_MS - HOUR, 2.0, 0.0)


def test_a_box_collecting_for_one_hour_projects_from_that_hour(db_path, tmp_path):
    """A fresh install with an hour of data at $8/h: the run rate is $8/h, not $8 spread over a 24 h window
    (which projected a month end of almost nothing on a real H200 node an hour after install)."""
    conn = new_store(db_path)
    (gid,) = add_gpus(conn, 1)
    add_minutes(conn, gid, NOW_MS - HOUR, 60)
    set_watermark(conn, NOW_MS)
    cfg = cfg_from(tmp_path, "rates: {per_model: {H100: 8.0}}\n")
    rates = costing.resolve_rates(conn, cfg, costing.load_gpus(conn))
    (usd,), _ = costing.month_views_for(conn, cfg, "2026-11", NOW_MS, rates)
    hours_left = 15.5 * 24
    assert usd.mtd == pytest.approx(8.0)
    assert usd.projection == pytest.approx(8.0 + 8.0 * hours_left)
    conn.close()

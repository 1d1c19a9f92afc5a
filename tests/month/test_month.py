"""Month to date and projection that match the invoice: months worked out by hand (issue 12, items 1-7).

Every store is real SQLite written row by row (tests/month/store.py); the clock is fixed at 2026-11-15 12:00 UTC
unless a test says otherwise. November has 30 days: at 11-15 12:00, 15.5 days are left."""

from __future__ import annotations

import json

import jsonschema
import pytest

from gpuspend import budget, costing, pricing
from tests.conftest import ROOT, run_cli
from tests.costing.builders import (
    NOW_MS,
    add_gpus,
    add_minutes,
    add_samples,
    cfg_from,
    new_store,
    set_watermark,
)
from tests.month.store import (
    DAY_S,
    NOV1_S,
    RID,
    charges,
    day_ms,
    hourly,
    new_import,
    power_minutes,
)

SCHEMA = ROOT / "gpuspend" / "data" / "report.schema.json"


def views_of(conn, cfg, now_ms: int = NOW_MS) -> dict:
    rates = costing.resolve_rates(conn, cfg, costing.load_gpus(conn), now_ms)
    views, _cov = costing.month_views_for(conn, cfg, "2026-11", now_ms, rates)
    return {v.currency: v for v in views}


# -- 1. a month-long row never freezes local metering -----------------------------------------------------------
FEE_CFG = (f"billing: {{resource_id: {RID}}}\nrates: {{per_model: {{H100: 4.0}}}}\n"
           "budget: {monthly: 5000, currency: USD, thresholds: [100], basis: [forecast]}\n")


def fee_month(conn, now_ms: int, usage_until_ms: int) -> None:
    """Two local H100s at $4/h collecting all month; the exports hold this box's hourly usage ($8/h) from
    11-01 00:00 to `usage_until_ms`, and one tax row of $150 whose charge period is the whole month."""
    gpus = add_gpus(conn, 2)
    for gid in gpus:
        add_minutes(conn, gid, day_ms(1), (now_ms - day_ms(1)) // 60_000)
    set_watermark(conn, now_ms)
    imp = new_import(conn, NOV1_S + 30 * DAY_S)       # as the importer records it: the latest charge period end
    hours = (usage_until_ms - day_ms(1)) // 3_600_000
    charges(conn, imp, hourly(NOV1_S, hours, 8.0, resource_id=RID, is_gpu=True, gpu_count=2)
            + [dict(start_s=NOV1_S, end_s=NOV1_S + 30 * DAY_S, cost=150.0, category="Tax", service="Tax")])


def test_a_month_long_tax_row_does_not_freeze_local_cost(db_path, tmp_path):
    conn = new_store(db_path)
    fee_month(conn, NOW_MS, day_ms(10))
    cfg = cfg_from(tmp_path, FEE_CFG)
    usd = views_of(conn, cfg)["USD"]
    # billed: 216 h x $8 = $1,728 + tax $150; the exports end 11-10 00:00 for this box, so the meter adds
    # 11-10 00:00 .. 11-15 12:00 = 132 h x $8 = $1,056 (and not the hours the exports already bill)
    assert usd.billed == pytest.approx(1728 + 150)
    assert usd.metered == pytest.approx(1056)
    assert usd.mtd == pytest.approx(2934)
    assert usd.coverage_end_ms == day_ms(10)          # the usage rows' end, not the tax row's 12-01
    # $192 every complete day (billed or metered), 15.5 days left, tax once: 30 x 192 + 150
    assert usd.projection == pytest.approx(30 * 192 + 150)
    assert usd.low < usd.projection < usd.high
    assert [(c.threshold, c.basis) for c in budget.crossed(cfg, usd)] == [(100.0, "forecast")]
    snap = costing.build_snapshot(conn, cfg, NOW_MS)
    assert snap.today_cost == pytest.approx(12 * 8.0)  # today so far: 12 h x $8 (was $0.00)
    assert snap.billing_coverage_end_ms == day_ms(10)


def test_on_day_one_a_month_long_row_is_counted_once_not_as_a_day_rate(db_path, tmp_path):
    now = day_ms(1, 12)
    conn = new_store(db_path)
    fee_month(conn, now, day_ms(1, 10))
    cfg = cfg_from(tmp_path, FEE_CFG)
    usd = views_of(conn, cfg, now)["USD"]
    # billed 10 h x $8 + tax $150, metered 10:00-12:00 2 h x $8: $246 so far
    assert usd.mtd == pytest.approx(80 + 150 + 16)
    # no complete day yet: the box's rate is its 12 h so far ($96 -> $192/day) for 29.5 days; tax once
    assert usd.projection == pytest.approx(246 + 192 * 29.5)
    assert usd.projection == pytest.approx(30 * 192 + 150)
    assert usd.low is None and "not enough data" in usd.interval_note
    assert budget.crossed(cfg, usd) and usd.budget_pct_forecast == pytest.approx(100 * 5910 / 5000)


def test_this_box_in_a_monthly_granularity_export_is_covered_until_it_was_imported(db_path, tmp_path):
    """One H100 at $2/h all month; a monthly-granularity export (like the shared aws-cur sample) bills this box
    $600 for the month so far in one row whose charge period is all of November, imported 11-13 12:00."""
    conn = new_store(db_path)
    (gid,) = add_gpus(conn, 1)
    add_minutes(conn, gid, day_ms(1), (NOW_MS - day_ms(1)) // 60_000)
    set_watermark(conn, NOW_MS)
    imp = new_import(conn, NOV1_S + 30 * DAY_S, imported_at_s=day_ms(13, 12) // 1000)
    charges(conn, imp, [dict(start_s=NOV1_S, end_s=NOV1_S + 30 * DAY_S, cost=600.0, resource_id=RID)])
    usd = views_of(conn, cfg_from(tmp_path, f"billing: {{resource_id: {RID}}}\nrates: {{per_model: {{H100: 2.0}}}}\n"))
    usd = usd["USD"]
    # billed $600 to 11-13 12:00, metered after it: 48 h x $2 (never the hours the row already bills)
    assert usd.billed == pytest.approx(600) and usd.metered == pytest.approx(96)
    # $48 a day all month (the row spread over the 12.5 days it covers): 30 x $48
    assert usd.projection == pytest.approx(30 * 48)


# -- 2. spend that exists only in the exports is projected ------------------------------------------------------
def test_a_billing_only_eur_month_is_projected_with_a_real_interval(db_path, tmp_path):
    """No GPU here: an Azure VM billed 100 EUR/day, exports to 11-14 00:00, plus a 30 EUR monthly fee."""
    conn = new_store(db_path)
    imp = new_import(conn, NOV1_S + 13 * DAY_S, source="azure")
    charges(conn, imp, [dict(start_s=NOV1_S + d * DAY_S, end_s=NOV1_S + (d + 1) * DAY_S, cost=100.0, currency="EUR",
                             service="Virtual Machines", resource_id="vm-a", quantity=24.0, unit="1 Hour")
                        for d in range(13)]
         + [dict(start_s=NOV1_S, end_s=NOV1_S + 30 * DAY_S, cost=30.0, currency="EUR", service="Support")])
    cfg = cfg_from(tmp_path, "")
    eur = views_of(conn, cfg)["EUR"]
    assert eur.mtd == pytest.approx(1330) and eur.metered == 0
    # 100 EUR/day for the 17 days after the export ends (11-14 .. 11-30); the fee is not per day
    assert eur.projection == pytest.approx(1330 + 100 * 17)
    assert eur.low < eur.projection < eur.high         # equal days: still an interval (was zero width)
    assert "13 complete days" in eur.interval_note


# -- 3. partial days and trends ---------------------------------------------------------------------------------
def test_the_first_day_of_collection_is_not_a_complete_day(db_path, tmp_path):
    """One GPU at $2/h, collecting since 11-12 18:00."""
    conn = new_store(db_path)
    (gid,) = add_gpus(conn, 1)
    add_minutes(conn, gid, day_ms(12, 18), (NOW_MS - day_ms(12, 18)) // 60_000)
    set_watermark(conn, NOW_MS)
    cfg = cfg_from(tmp_path, "rates: {per_model: {H100: 2.0}}\n")
    usd = views_of(conn, cfg)["USD"]
    assert usd.mtd == pytest.approx(66 * 2.0)          # 6 h + 48 h + 12 h
    # complete days: 11-13 and 11-14 ($48 each); 11-12 (6 h, $12) is not one
    assert usd.projection == pytest.approx(132 + 48 * 15.5)
    assert usd.low is None and usd.high is None
    assert usd.interval_note == "not enough data for an interval (2 complete days, need 3)"


def test_a_ramp_is_projected_along_its_trend(db_path, tmp_path):
    """Billing-only spend growing by $100 a day: $100 on 11-01 ... $1,400 on 11-14 (exports to 11-15 00:00)."""
    conn = new_store(db_path)
    imp = new_import(conn, NOV1_S + 14 * DAY_S)
    charges(conn, imp, [dict(start_s=NOV1_S + d * DAY_S, end_s=NOV1_S + (d + 1) * DAY_S, cost=100.0 * (d + 1),
                             service="SageMaker", resource_id="training-job") for d in range(14)])
    usd = views_of(conn, cfg_from(tmp_path, ""))["USD"]
    assert usd.mtd == pytest.approx(100 * sum(range(1, 15)))
    # the line carried on: 11-15 .. 11-30 cost 1,500 .. 3,000 -> the month is 100 x (1 + ... + 30)
    assert usd.projection == pytest.approx(100 * sum(range(1, 31)))
    assert usd.low < usd.projection < usd.high
    assert "trend" in usd.interval_note


# -- 4. billing-derived rate: billed hours, not elapsed time ----------------------------------------------------
def test_a_stopped_and_started_instance_is_priced_per_billed_hour(db_path, tmp_path):
    """8 GPUs; the instance ran 12 h a day for the last 7 days, billed $32 an hour: $4.00 per GPU-hour
    (elapsed time, 11-08 00:00 .. 11-14 12:00 = 156 h, gave $2.15)."""
    conn = new_store(db_path)
    add_gpus(conn, 8)
    imp = new_import(conn, NOV1_S + 14 * DAY_S)
    rows = []
    for d in range(7, 14):
        rows += hourly(NOV1_S + d * DAY_S, 12, 32.0, resource_id=RID, is_gpu=True, gpu_count=8)
    charges(conn, imp, rows)
    cfg = cfg_from(tmp_path, f"billing: {{resource_id: {RID}}}\n")
    rate = pricing.resolve_rate(cfg, conn, costing.load_gpus(conn)[0])
    assert rate.source == "billing"
    assert rate.per_gpu_hour == pytest.approx(4.0)
    assert "84 billed h" in rate.label


def test_daily_rows_are_priced_by_their_usage_quantity(db_path, tmp_path):
    """A daily-granularity export: one row a day of $384 for 12 hours ("1 Hour" units) of an 8-GPU VM."""
    conn = new_store(db_path)
    add_gpus(conn, 8)
    imp = new_import(conn, NOV1_S + 14 * DAY_S, source="azure")
    charges(conn, imp, [dict(start_s=NOV1_S + d * DAY_S, end_s=NOV1_S + (d + 1) * DAY_S, cost=384.0, quantity=12.0,
                             unit="1 Hour", resource_id=f"/subscriptions/s/vms/{RID}", gpu_count=8, is_gpu=True)
                        for d in range(7, 14)])
    rate = pricing.resolve_rate(cfg_from(tmp_path, f"billing: {{resource_id: {RID}}}\n"), conn,
                                costing.load_gpus(conn)[0])
    assert rate.per_gpu_hour == pytest.approx(384 / 12 / 8)
    assert pricing.unit_hours("Hrs") == 1.0 and pricing.unit_hours("10 Hours") == 10.0
    assert pricing.unit_hours("seconds") == pytest.approx(1 / 3600) and pricing.unit_hours("GB-Mo") is None


# -- 5. on-prem energy per interval -----------------------------------------------------------------------------
def onprem_day(conn) -> None:
    """11-14: 23 h at 700 W, then 1 h at 100 W (16.2 kWh)."""
    (gid,) = add_gpus(conn, 1)
    power_minutes(conn, gid, day_ms(14), 23 * 60, 700.0)
    power_minutes(conn, gid, day_ms(14, 23), 60, 100.0)
    set_watermark(conn, NOW_MS)


def test_on_prem_energy_is_the_energy_of_each_interval(db_path, tmp_path):
    conn = new_store(db_path)
    onprem_day(conn)
    cfg = cfg_from(tmp_path, "onprem: {electricity_per_kwh: 0.20, pue: 1.0}\n")
    usd = views_of(conn, cfg)["USD"]
    # (23 x 0.7 + 1 x 0.1) kWh x $0.20 = $3.24 (the last hour's 100 W for all 24 h gave $0.48)
    assert usd.mtd == pytest.approx(3.24)
    day = next(d for d in costing.billing_summary(conn, cfg, "2026-11", NOW_MS).days if d.day == "2026-11-14")
    assert day.metered == pytest.approx(3.24)


def test_on_prem_capex_and_energy_add_up_and_the_label_is_plain_money(db_path, tmp_path):
    conn = new_store(db_path)
    onprem_day(conn)
    cfg = cfg_from(tmp_path, "onprem: {purchase_price: 35040, amortise_years: 4, electricity_per_kwh: 0.20, "
                             "pue: 1.0}\n")
    # capex $35,040 / (4 x 8,760 h) = $1.00/h for 24 h + energy $3.24
    assert views_of(conn, cfg)["USD"].mtd == pytest.approx(24 + 3.24)
    rate = pricing.resolve_rate(cfg, conn, costing.load_gpus(conn)[0])
    assert "$35,040.00 over 4 y" in rate.label and "e+" not in rate.label
    assert "$0.20/kWh" in rate.label


# -- 6. currencies ----------------------------------------------------------------------------------------------
def test_gpus_rated_in_two_currencies_are_never_summed_and_say_so(db_path, tmp_path):
    """GPU 0 at $2/h from config; GPU 1 priced from this box's EUR billing: 6 EUR/h for 2 GPUs -> 3 EUR/h."""
    conn = new_store(db_path)
    gpus = add_gpus(conn, 2)
    for gid in gpus:
        add_minutes(conn, gid, day_ms(15), 12 * 60)
    set_watermark(conn, NOW_MS)
    imp = new_import(conn, NOV1_S + 14 * DAY_S, source="azure")
    charges(conn, imp, hourly(NOV1_S + 13 * DAY_S, 24, 6.0, currency="EUR", resource_id=RID, gpu_count=2,
                              is_gpu=True))
    cfg = cfg_from(tmp_path, f"billing: {{resource_id: {RID}}}\nrates: {{per_gpu: {{'0': 2.0}}}}\n"
                             "budget: {monthly: 1000, currency: EUR}\n")
    snap = costing.build_snapshot(conn, cfg, NOW_MS)
    assert snap.currency == "USD" and snap.cost_per_hour == pytest.approx(2.0)
    assert any("1 GPU rated in EUR (3.00 EUR/h) not in the USD totals" in n for n in snap.notes), snap.notes
    views = {m.currency: m for m in snap.months}
    # EUR: billed 11-14 (144 EUR) + GPU 1 metered today 12 h x 3 EUR; USD: GPU 0 today 12 h x $2
    assert views["EUR"].mtd == pytest.approx(144 + 36) and views["USD"].mtd == pytest.approx(24)
    assert views["EUR"].budget_pct_actual == pytest.approx(18.0)


def test_a_budget_in_a_currency_with_no_spend_says_so_instead_of_zero_percent(db_path, tmp_path):
    conn = new_store(db_path)
    (gid,) = add_gpus(conn, 1)
    add_minutes(conn, gid, day_ms(15), 12 * 60)
    set_watermark(conn, NOW_MS)
    cfg = cfg_from(tmp_path, "rates: {per_model: {H100: 2.0}}\nbudget: {monthly: 1000, currency: EUR}\n")
    views = views_of(conn, cfg)
    assert views["USD"].mtd == pytest.approx(24) and views["USD"].budget is None
    eur = views["EUR"]
    assert eur.budget == 1000 and eur.budget_pct_actual is None and eur.budget_pct_forecast is None
    assert "no spend in EUR" in eur.interval_note and "USD" in eur.interval_note
    assert budget.crossed(cfg, eur) == []


# -- 7. unknown money is null, never 0 --------------------------------------------------------------------------
def test_an_unrated_idle_gpu_reports_null_money_and_no_rate(db_path, tmp_path):
    conn = new_store(db_path)
    (gid,) = add_gpus(conn, 1, model="MYSTERY")
    conn.execute("UPDATE gpus SET name = 'Mystery Accelerator' WHERE id = ?", (gid,))
    conn.commit()
    add_samples(conn, gid, NOW_MS - 40 * 60_000, NOW_MS, 2000, util=0.0)   # free-idle for 40 min
    set_watermark(conn, NOW_MS - 40 * 60_000)
    conn.close()
    cfg = tmp_path / "config.yaml"
    cfg.write_text("interval: 2\n", encoding="utf-8")
    env = {"GPUSPEND_NOW": "2026-11-15T12:00:00+00:00"}
    r = run_cli("--db", str(db_path), "--config", str(cfg), "--report", "--no-sample", "--format", "json", env=env)
    assert r.returncode in (0, 1), r.stderr
    doc = json.loads(r.stdout)
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(doc)
    (g,) = doc["now"]["gpus"]
    assert g["cost_per_hour"] is None and g["state"] == "free-idle"
    assert g["episode_open"] and g["episode_waste"] is None
    assert doc["now"]["by_state"]["free-idle"] is None and doc["now"]["by_state"]["busy"] == 0
    assert doc["today"]["cost"] is None and doc["today"]["idle_waste"] is None
    text = run_cli("--db", str(db_path), "--config", str(cfg), "--report", "--no-sample", env=env).stdout
    assert "wasted no rate" in text and "$0.00" not in text.split("This month")[0]


def test_an_unrated_idle_gpu_has_no_money_samples_on_metrics_rather_than_zero(db_path, tmp_path):
    import httpx

    from gpuspend import metrics

    conn = new_store(db_path)
    (gid,) = add_gpus(conn, 1, model="MYSTERY")
    add_samples(conn, gid, NOW_MS - 40 * 60_000, NOW_MS, 2000, util=0.0)
    set_watermark(conn, NOW_MS - 40 * 60_000)
    snap = costing.build_snapshot(conn, cfg_from(tmp_path, "interval: 2\n"), NOW_MS)
    assert snap.gpus[0].episode_open and snap.gpus[0].episode_waste is None
    with metrics.Exporter("127.0.0.1", 0) as ex:
        ex.update(snap)
        text = httpx.get(ex.url, timeout=5).text
    samples = [ln.split("{")[0] for ln in text.splitlines() if ln and not ln.startswith("#")]
    for name in ("gpuspend_today_cost", "gpuspend_idle_waste_today", "gpuspend_gpu_idle_episode_waste"):
        assert name not in samples, name            # unknown: no sample (was 0.0)
    assert 'gpuspend_cost_per_hour_by_state{' in text and 'state="free-idle"' not in \
        "".join(ln for ln in text.splitlines() if ln.startswith("gpuspend_cost_per_hour_by_state"))


def test_an_amortized_dataset_ahead_of_the_actual_cost_export_does_not_stop_the_meter(db_path, tmp_path):
    """One H100 at $2/h all month. The actual-cost export bills this box $2/h to 11-05 00:00; an amortized
    dataset of the same box (effective cost only, no billed cost: Azure's AmortizedCost) reaches 11-10 00:00.
    What bills it from 11-05 on is not imported yet, so the meter counts it, as with no amortized data:
      billed 4 days x $48 = $192; metered 11-05 00:00 .. 11-15 12:00 = 252 h x $2 = $504; to date $696."""
    conn = new_store(db_path)
    (gid,) = add_gpus(conn, 1)
    add_minutes(conn, gid, day_ms(1), (NOW_MS - day_ms(1)) // 60_000)
    set_watermark(conn, NOW_MS)
    actual = new_import(conn, NOV1_S + 4 * DAY_S, source="azure-actual")
    charges(conn, actual, hourly(NOV1_S, 4 * 24, 2.0, resource_id=RID))
    amortized = new_import(conn, NOV1_S + 9 * DAY_S, source="azure-amortized")
    charges(conn, amortized, hourly(NOV1_S, 9 * 24, 2.0, resource_id=RID))
    conn.execute("UPDATE charge_lines SET billed_cost = NULL WHERE import_id = ?", (amortized,))
    conn.commit()
    cfg = cfg_from(tmp_path, f"billing: {{resource_id: {RID}}}\nrates: {{per_model: {{H100: 2.0}}}}\n")
    usd = views_of(conn, cfg)["USD"]
    assert usd.billed == pytest.approx(192) and usd.metered == pytest.approx(504)
    assert usd.mtd == pytest.approx(696)
    # the month is as fresh as what bills it: the actual-cost export's end
    from gpuspend.costing.month import billing_coverage_end

    assert billing_coverage_end(conn, cfg, "2026-11")[0] == (NOV1_S + 4 * DAY_S) * 1000
    assert usd.coverage_end_ms == (NOV1_S + 4 * DAY_S) * 1000


def test_a_correction_of_an_earlier_month_is_its_money_once_not_a_rate(db_path, tmp_path):
    """A $50 correction of one October hour, billed in November by an export that holds nothing else (as the
    FOCUS spec's late-arriving usage delta): read as a day rate from its one hour, it projected November at
    $4.1M and said the export ended in October. By hand, beside another account's $1/h to 11-15 00:00 (14
    complete days): to date 14 * 24 + 50 = $386, projected 386 + 1 * 24 * 16 days left = $770."""
    conn = new_store(db_path)
    usage = new_import(conn, NOV1_S + 14 * DAY_S, source="focus:AWS")
    charges(conn, usage, hourly(NOV1_S, 14 * 24, 1.0, resource_id="i-other"))
    late = new_import(conn, NOV1_S - 27 * DAY_S + 3600, source="focus:AWS/222")
    charges(conn, late, [dict(start_s=NOV1_S - 27 * DAY_S, end_s=NOV1_S - 27 * DAY_S + 3600, cost=50.0,
                              resource_id="i-late")])
    usd = views_of(conn, cfg_from(tmp_path, ""))["USD"]
    assert usd.mtd == pytest.approx(386.0)
    assert usd.projection == pytest.approx(770.0)


def test_a_report_on_a_closed_month_judges_freshness_by_now_not_by_that_month(db_path, tmp_path):
    """`--month 2026-10` on 11-15 with November's export a few hours old: October's exports end where October
    does, and the `outdated` alert fired on that (a monthly cron report paged every time)."""
    from gpuspend import alerts

    conn = new_store(db_path)
    oct1 = NOV1_S - 31 * DAY_S
    october = new_import(conn, NOV1_S, period=(oct1, NOV1_S))
    charges(conn, october, hourly(oct1, 31 * 24, 1.0, resource_id="i-a"), period=(oct1, NOV1_S))
    november = new_import(conn, NOV1_S + 14 * DAY_S + 6 * 3600)
    charges(conn, november, hourly(NOV1_S, 14 * 24 + 6, 1.0, resource_id="i-a"))
    cfg = cfg_from(tmp_path, "")
    snap = costing.build_snapshot(conn, cfg, NOW_MS, month="2026-10")
    assert snap.billing_coverage_end_ms == (NOV1_S + 14 * DAY_S + 6 * 3600) * 1000
    [billing] = [c for c in alerts.outdated_conditions(cfg, snap, NOW_MS) if c.subject == "billing"]
    assert billing.firing is False
    [oct_usd] = snap.months
    assert oct_usd.mtd == pytest.approx(744.0)        # the month itself is still October's


@pytest.mark.parametrize("hours", [1, 24])
def test_a_one_time_credit_is_its_money_once_whatever_its_charge_period(db_path, tmp_path, hours):
    """A -$100 credit, ChargeFrequency One-Time, on 11-10 beside $1/h usage to 11-15 00:00. With a one-hour
    (or one-day) charge period it was read as that day's rate: projected 236 + 16 * 236/14. By hand: to date
    14 * 24 - 100 = $236, projected 236 + 16 * 24 = $620 (the credit once, as with a month-long period)."""
    conn = new_store(db_path)
    imp = new_import(conn, NOV1_S + 14 * DAY_S)
    charges(conn, imp, hourly(NOV1_S, 14 * 24, 1.0, resource_id="i-a"))
    start = NOV1_S + 9 * DAY_S
    with conn:
        conn.execute("INSERT INTO charges (import_id, billing_period_start, billing_period_end, charge_period_start, "
                     "charge_period_end, charge_category, charge_frequency, billed_cost, effective_cost, currency) "
                     "VALUES (?, ?, ?, ?, ?, 'Credit', 'One-Time', -100, -100, 'USD')",
                     (imp, NOV1_S, NOV1_S + 30 * DAY_S, start, start + hours * 3600))
    from gpuspend.store import bump_generation, transaction
    with transaction(conn):
        bump_generation(conn)
    usd = views_of(conn, cfg_from(tmp_path, ""))["USD"]
    assert usd.mtd == pytest.approx(236.0)
    assert usd.projection == pytest.approx(620.0)

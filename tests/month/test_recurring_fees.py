"""A recurring fee billed by the day or hour (a Savings Plan's commitment: FOCUS Purchase + Recurring, one row
per period) is spend of every day, projected like usage; an upfront purchase and a monthly payment billed on
a single day are paid once.

Worked by hand, on 2026-12-11 with no local GPU, one AWS export to 12-11 00:00:
  days 1..10: Savings Plan recurring fee $240/day (the covered usage bills $0) + S3 usage $48/day
  day 3: an upfront purchase (One-Time) $5,000; day 5: a reservation's monthly payment (Recurring, one day)
  $3,000; the month's tax $100
  MTD = 10 x 288 + 5,000 + 3,000 + 100                 = $10,980.00
  projection = MTD + 21 days left x $288 (the days' mean) = $17,028.00
  (with the fee read as once, as before: 21 x $48 = $1,008 -> $11,988.00, $5,040 short)
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

HEADER = ("ProviderName,BillingAccountId,BillingPeriodStart,BillingPeriodEnd,ChargePeriodStart,ChargePeriodEnd,"
          "ChargeCategory,ChargeFrequency,BilledCost,EffectiveCost,BillingCurrency,ServiceName,ResourceId,SkuId")
PERIOD = "2026-12-01T00:00:00Z,2027-01-01T00:00:00Z"


def day(d: int) -> str:
    return f"2026-12-{d:02d}T00:00:00Z,2026-12-{d + 1:02d}T00:00:00Z"


def export(path: Path) -> Path:
    rows = []
    for d in range(1, 11):
        rows += [f"AWS,111111111111,{PERIOD},{day(d)},Usage,Usage-Based,0,200,USD,Amazon EC2,i-0box,BOX",
                 f"AWS,111111111111,{PERIOD},{day(d)},Purchase,Recurring,240,0,USD,Savings Plans,arn:sp/1,SPFEE",
                 f"AWS,111111111111,{PERIOD},{day(d)},Usage,Usage-Based,48,48,USD,Amazon S3,bucket-1,S3"]
    rows += [f"AWS,111111111111,{PERIOD},{day(3)},Purchase,One-Time,5000,0,USD,Savings Plans,arn:sp/2,SPUP",
             f"AWS,111111111111,{PERIOD},{day(5)},Purchase,Recurring,3000,0,USD,Reservations,ri-1,RIMONTH",
             f"AWS,111111111111,{PERIOD},{PERIOD},Tax,Recurring,100,100,USD,Tax,,TAX"]
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def test_a_daily_recurring_fee_is_projected_an_upfront_or_monthly_purchase_is_not(cli, db_path: Path,
                                                                                     tmp_path: Path) -> None:
    env = {"GPUSPEND_NOW": "2026-12-11T01:00:00Z"}
    assert cli("--db", str(db_path), "import", str(export(tmp_path / "aws.csv")), env=env).returncode == 0
    doc = json.loads(cli("--db", str(db_path), "--report", "--no-sample", "--format", "json", env=env).stdout)
    (mv,) = doc["month"]
    assert mv["mtd"] == pytest.approx(10_980.0)
    assert mv["projection"] == pytest.approx(17_028.0)
    conn = sqlite3.connect(db_path)
    try:       # stored on every row but usage: usage rows carry none
        kept = conn.execute("SELECT charge_category, charge_frequency, COUNT(*) FROM charge_rows "
                            "GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
    finally:
        conn.close()
    assert kept == [("Purchase", "One-Time", 1), ("Purchase", "Recurring", 11), ("Tax", "Recurring", 1), ("Usage", None, 20)]


def test_cur_line_item_types_carry_their_frequency(cli, db_path: Path, tmp_path: Path) -> None:
    """The same rule read from an AWS CUR: the line item type says which purchases recur."""
    header = ("bill_billing_period_start_date,bill_billing_period_end_date,bill_payer_account_id,"
              "line_item_line_item_type,line_item_usage_start_date,line_item_usage_end_date,line_item_product_code,"
              "line_item_resource_id,line_item_currency_code,line_item_unblended_cost")
    bp = "2026-12-01T00:00:00Z,2027-01-01T00:00:00Z"
    hour = "2026-12-02T05:00:00Z,2026-12-02T06:00:00Z"
    lines = [f"{bp},111111111111,{t},{hour},ComputeSavingsPlans,arn:sp/1,USD,{c}" for t, c in (
        ("SavingsPlanRecurringFee", "10"), ("SavingsPlanUpfrontFee", "5000"), ("Fee", "700"), ("RIFee", "3"),
        ("SavingsPlanCoveredUsage", "98"), ("SavingsPlanNegation", "-98"), ("Usage", "1"))]
    path = tmp_path / "cur.csv"
    path.write_text("\n".join([header, *lines]) + "\n")
    assert cli("--db", str(db_path), "import", str(path)).returncode == 0
    conn = sqlite3.connect(db_path)
    try:
        got = dict(conn.execute("SELECT charge_type, charge_frequency FROM charge_rows"))
    finally:
        conn.close()
    assert got == {"SavingsPlanRecurringFee": "Recurring", "RIFee": "Recurring", "SavingsPlanUpfrontFee": "One-Time",
                   "Fee": "One-Time", "SavingsPlanCoveredUsage": None, "SavingsPlanNegation": None, "Usage": None}


def test_cur_purchases_imported_before_store_v16_get_their_frequency_on_upgrade(cli, db_path: Path,
                                                                                tmp_path: Path) -> None:
    """A Savings Plan's hourly fee imported by a gpuspend before store v16 (no frequency stored) is projected
    as every day's spend once the store is upgraded, without importing the file again; the migration maps
    the line item types as the importer does now (aws_cur.FREQUENCY)."""
    from gpuspend.collectors.billing.aws_cur import FREQUENCY
    from tests.billing.helpers import store_copy_at

    header = ("bill_billing_period_start_date,bill_billing_period_end_date,bill_payer_account_id,"
              "line_item_line_item_type,line_item_usage_start_date,line_item_usage_end_date,line_item_product_code,"
              "line_item_resource_id,line_item_currency_code,line_item_unblended_cost")
    bp = "2026-12-01T00:00:00Z,2027-01-01T00:00:00Z"
    lines = [f"{bp},111111111111,SavingsPlanRecurringFee,2026-12-{d:02d}T00:00:00Z,2026-12-{d + 1:02d}T00:00:00Z,"
             f"ComputeSavingsPlans,arn:sp/1,USD,240" for d in range(1, 11)]
    lines += [f"{bp},111111111111,{t},2026-12-03T00:00:00Z,2026-12-04T00:00:00Z,ComputeSavingsPlans,arn:sp/2,USD,{c}"
              for t, c in (("SavingsPlanUpfrontFee", "5000"), ("Fee", "700"), ("RIFee", "3"))]
    path = tmp_path / "cur.csv"
    path.write_text("\n".join([header, *lines]) + "\n")
    env = {"GPUSPEND_NOW": "2026-12-11T01:00:00Z"}
    ref_path = tmp_path / "ref.db"
    assert cli("--db", str(ref_path), "import", str(path), env=env).returncode == 0
    ref = sqlite3.connect(ref_path)
    try:         # the same rows as a store at v16 held them, before v17 filled in their frequency
        store_copy_at(16, db_path, ref, ("imports", "charge_rows", "charge_texts", "meta"),
                      {"charge_frequency": "NULL"})
    finally:
        ref.close()
    doc = json.loads(cli("--db", str(db_path), "--report", "--no-sample", "--format", "json", env=env).stdout)
    (mv,) = doc["month"]
    # MTD 10 x 240 + 5,000 + 700 + 3 = 8,103; projected: + 21 days x $240 = 13,143
    assert mv["mtd"] == pytest.approx(8_103.0)
    assert mv["projection"] == pytest.approx(13_143.0)
    conn = sqlite3.connect(db_path)
    try:
        got = dict(conn.execute("SELECT charge_type, charge_frequency FROM charge_rows"))
    finally:
        conn.close()
    assert got == {t: FREQUENCY[t.lower()] for t in ("SavingsPlanRecurringFee", "SavingsPlanUpfrontFee", "Fee", "RIFee")}


def _covered_box(db_path: Path) -> None:
    """This box's 2 H100s, busy from 12-01 00:00 to now, 12-13 06:00 (rolled up)."""
    from gpuspend.store import connect
    from tests.costing.builders import add_gpus, add_minutes, set_watermark

    conn = connect(db_path)
    try:
        for gid in add_gpus(conn, 2):
            add_minutes(conn, gid, 1_796_083_200_000, 12 * 1440 + 360)      # 12-01 00:00 .. 12-13 06:00
        set_watermark(conn, 1_797_141_600_000)
    finally:
        conn.close()


def _report_on_box(cli, db_path: Path, tmp_path: Path, header: str, lines: list[str]) -> dict:
    """Import an export of `lines` and read the report's JSON at 12-13 06:00 (this box is i-0box). Either way
    the month reads as the invoice will: to date $2,400.00, projected $7,440.00."""
    export = tmp_path / "export.csv"
    export.write_text("\n".join([header, *lines]) + "\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text("billing: {resource_id: i-0box}\n")
    env = {"GPUSPEND_NOW": "2026-12-13T06:00:00Z"}
    assert cli("--db", str(db_path), "import", str(export), env=env).returncode == 0
    r = cli("--config", str(cfg), "--db", str(db_path), "--report", "--no-sample", "--format", "json", env=env)
    doc = json.loads(r.stdout)
    (mv,) = doc["month"]
    assert mv["mtd"] == pytest.approx(2_400.0)
    assert mv["projection"] == pytest.approx(7_440.0)
    return doc


def test_a_box_a_savings_plan_covers_is_not_counted_twice_after_its_export_ends(cli, db_path: Path,
                                                                               tmp_path: Path) -> None:
    """This box (2 H100s, i-0box) runs under a Savings Plan: its usage bills $0 (effective $192/day, $4 per
    GPU-hour) and the plan's fee bills $240/day (it also covers i-other, effective $48/day). The export ends
    12-11 00:00; the meter runs on to now, 12-13 06:00. By hand, as the invoice will read:
      to date   = 10 days x $240 fee + $0 usage + 2 days 6 h metered x $0 invoiced = $2,400.00
      projected = $2,400 + 21 days x $240 (the fee to month end; the box adds no bill of its own) = $7,440.00
    Metered at the effective $4/h, the box's days after the export would be counted on top of the fee that
    bills them ($432 to date). Its $/h, today's cost and idle waste stay at the effective rate."""
    _covered_box(db_path)
    rows = []
    for d in range(1, 11):
        rows += [f"AWS,111111111111,{PERIOD},{day(d)},Usage,Usage-Based,0,192,USD,Amazon EC2,i-0box,BOX",
                 f"AWS,111111111111,{PERIOD},{day(d)},Usage,Usage-Based,0,48,USD,Amazon EC2,i-other,OTHER",
                 f"AWS,111111111111,{PERIOD},{day(d)},Purchase,Recurring,240,0,USD,Savings Plans,arn:sp/1,SPFEE"]
    doc = _report_on_box(cli, db_path, tmp_path, HEADER, rows)
    gpus = doc["now"]["gpus"]
    assert [g["cost_per_hour"] for g in gpus] == [pytest.approx(4.0)] * 2          # effective, as before
    assert all("invoiced $0.00/h: a commitment's fee bills the rest" in g["rate"]["label"] for g in gpus)
    assert doc["today"]["cost"] == pytest.approx(48.0)     # 12-13 00:00-06:00, 2 GPUs x $4/h effective


def test_the_same_box_read_from_a_cur_nets_its_covered_usage_and_negation(cli, db_path: Path,
                                                                         tmp_path: Path) -> None:
    """An AWS CUR states the covered usage at its on-demand price ($300/day, unblended) and takes it back in
    a SavingsPlanNegation line; its amortised cost is the plan's effective cost ($192/day). Invoiced: $0.
    The same month by hand: to date 10 x $240 = $2,400.00; projected 31 x $240 = $7,440.00."""
    _covered_box(db_path)
    header = ("bill_billing_period_start_date,bill_billing_period_end_date,bill_payer_account_id,"
              "line_item_line_item_type,line_item_usage_start_date,line_item_usage_end_date,line_item_product_code,"
              "line_item_resource_id,line_item_currency_code,line_item_unblended_cost,"
              "savings_plan_savings_plan_effective_cost")
    lines = []
    for d in range(1, 11):
        span = f"2026-12-{d:02d}T00:00:00Z,2026-12-{d + 1:02d}T00:00:00Z"
        lines += [f"{PERIOD},111111111111,SavingsPlanCoveredUsage,{span},AmazonEC2,i-0box,USD,300,192",
                  f"{PERIOD},111111111111,SavingsPlanNegation,{span},AmazonEC2,i-0box,USD,-300,",
                  f"{PERIOD},111111111111,SavingsPlanRecurringFee,{span},ComputeSavingsPlans,arn:sp/1,USD,240,"]
    doc = _report_on_box(cli, db_path, tmp_path, header, lines)
    assert [g["cost_per_hour"] for g in doc["now"]["gpus"]] == [pytest.approx(4.0)] * 2

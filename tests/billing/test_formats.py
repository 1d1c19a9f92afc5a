"""Each format normalised to FOCUS meanings, on the project's own fixtures (GPU rows included)."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from gpuspend.collectors.billing.importer import import_paths
from gpuspend.store import connect
from tests.billing.helpers import FIXTURES, csv_rows, num, sums_by


@pytest.fixture
def conn(db_path: Path):
    c = connect(db_path)
    yield c
    c.close()


def q(conn: sqlite3.Connection, sql: str, *args) -> list[tuple]:
    return conn.execute(sql, args).fetchall()


def test_focus_billed_and_effective_kept_apart_per_currency(conn) -> None:
    path = FIXTURES / "focus_gpu.csv"
    [res] = import_paths(conn, [path])
    expect = sums_by(csv_rows(path), "BillingCurrency", "BilledCost", "EffectiveCost")
    got = {p["currency"]: [p["billed_cost"], p["effective_cost"]] for p in res.as_json()["periods"]}
    assert set(got) == {"USD", "EUR"}                    # never summed across currencies
    for cur, (billed, eff) in expect.items():
        assert got[cur] == [pytest.approx(billed), pytest.approx(eff)]
    assert got["EUR"][0] != got["EUR"][1]


def test_focus_nulls_tags_and_correction(conn) -> None:
    import_paths(conn, [FIXTURES / "focus_gpu.csv"])
    classes = {r[0] for r in q(conn, "SELECT charge_class FROM charges")}
    assert classes == {None, "Correction"}               # NULL, (null), "" all read as null
    assert q(conn, "SELECT COUNT(*) FROM charges WHERE sub_account IS NULL")[0][0] == 2
    tags = q(conn, "SELECT tags FROM charges WHERE resource_id = 'i-0aaa111p5' AND tags IS NOT NULL")
    assert json.loads(tags[0][0]) == {"env": "prod", "team": "llm"}
    ms = json.loads(q(conn, "SELECT tags FROM charges WHERE currency = 'EUR' AND tags IS NOT NULL")[0][0])
    assert ms == {"org": "ai", " org": "ai2"}            # keys kept exactly, even with a leading space
    # The correction lands in the current billing period with its past charge period.
    bp, cp = q(conn, "SELECT billing_period_start, charge_period_start FROM charges WHERE charge_class = "
                     "'Correction'")[0]
    assert bp == 1793491200 and cp == 1792454400          # 2026-11-01 and 2026-10-20


def test_focus_gpu_marking(conn) -> None:
    import_paths(conn, [FIXTURES / "focus_gpu.csv"])
    gpus = dict((r[0], (r[1], r[2], r[3])) for r in q(
        conn, "SELECT resource_id, instance_type, gpu_model, gpu_count FROM charges WHERE is_gpu = 1 "
              "AND resource_id IS NOT NULL"))
    assert gpus["i-0aaa111p5"] == ("p5.48xlarge", "H100", 8)
    assert gpus["i-0bbb222p4d"] == ("p4d.24xlarge", "A100-40GB", 8)
    assert gpus["//compute.googleapis.com/projects/proj-a/zones/us-central1-a/instances/a3-train"][1:] == ("H100", 8)
    assert any(k.endswith("virtualMachines/gpu01") and v[1:] == ("H100", 8) for k, v in gpus.items())
    non_gpu = q(conn, "SELECT is_gpu FROM charges WHERE resource_id = 'vol-0ccc333' OR charge_category = 'Tax'")
    assert {r[0] for r in non_gpu} == {0}


def test_cur_legacy_every_line_item_type(conn) -> None:
    path = FIXTURES / "aws_cur_legacy.csv"
    [res] = import_paths(conn, [path])
    rows = csv_rows(path)
    billed = math.fsum(num(r["lineItem/UnblendedCost"]) for r in rows)     # invoice = sum of unblended
    by = {r["lineItem/LineItemType"]: r for r in rows}
    # Amortised, by hand: covered usage at its effective cost, unused commitment, upfront fees at 0.
    effective = (num(by["Usage"]["lineItem/UnblendedCost"])
                 + num(by["DiscountedUsage"]["reservation/EffectiveCost"])
                 + num(by["SavingsPlanCoveredUsage"]["savingsPlan/SavingsPlanEffectiveCost"])
                 + 0.0                                                       # SavingsPlanNegation
                 + num(by["SavingsPlanRecurringFee"]["savingsPlan/TotalCommitmentToDate"])
                 - num(by["SavingsPlanRecurringFee"]["savingsPlan/UsedCommitment"])
                 + 0.0 + 0.0                                                 # SavingsPlanUpfrontFee, RI Fee
                 + num(by["RIFee"]["reservation/UnusedAmortizedUpfrontFeeForBillingPeriod"])
                 + num(by["RIFee"]["reservation/UnusedRecurringFee"])
                 + sum(num(by[k]["lineItem/UnblendedCost"]) for k in ("Credit", "Refund", "Tax", "EdpDiscount")))
    [p] = res.as_json()["periods"]
    assert p["billed_cost"] == pytest.approx(billed) and p["effective_cost"] == pytest.approx(effective)
    cats = dict(q(conn, "SELECT charge_type, charge_category FROM charges"))
    assert cats["Tax"] == "Tax" and cats["Credit"] == "Credit" and cats["Refund"] == "Credit"
    assert cats["RIFee"] == "Purchase" and cats["DiscountedUsage"] == "Usage"
    assert q(conn, "SELECT gpu_model, gpu_count FROM charges WHERE resource_id = 'i-0p4d00000001' AND "
                   "charge_type = 'Usage'") == [("A100-40GB", 8.0)]
    assert q(conn, "SELECT gpu_model FROM charges WHERE charge_type = 'DiscountedUsage'") == [("H100",)]
    assert json.loads(q(conn, "SELECT tags FROM charges WHERE charge_type = 'Usage'")[0][0]) == {"user:team": "vision"}
    assert q(conn, "SELECT account, source FROM imports") == [("999988887777", "aws")]


def test_cur2_csv_and_parquet_give_the_same_rows(conn, tmp_path: Path) -> None:
    src = FIXTURES / "aws_cur2.csv"
    pq_path = tmp_path / "cur2-00001.snappy.parquet"
    pq.write_table(pacsv.read_csv(src), pq_path)             # typed columns (timestamps, doubles) in Parquet
    [a] = import_paths(conn, [src])
    cols = "billing_period_start, charge_period_start, charge_period_end, billed_cost, effective_cost, currency, " \
           "resource_id, tags, is_gpu, gpu_model, gpu_count"
    from_csv = q(conn, f"SELECT {cols} FROM charges ORDER BY line")
    [b] = import_paths(conn, [pq_path])                       # same slice: replaces the CSV rows
    from_parquet = q(conn, f"SELECT {cols} FROM charges ORDER BY line")
    assert a.format == "aws-cur2" and b.format == "aws-cur2"
    assert from_parquet == from_csv
    rows = csv_rows(src)
    assert a.as_json()["periods"][0]["billed_cost"] == pytest.approx(
        sum(num(r["line_item_net_unblended_cost"]) for r in rows))      # net unblended = the invoice
    assert json.loads(from_csv[0][7]) == {"user_env": "prod", "user_team": "llm"}


def test_gcp_jsonl_net_cost_and_pacific_invoice_month(conn) -> None:
    path = FIXTURES / "gcp_export.jsonl"
    [res] = import_paths(conn, [path])
    objs = [json.loads(line) for line in path.read_text().splitlines()]
    expect: dict[tuple[str, str], float] = {}
    for o in objs:
        k = (o["invoice"]["month"], o["currency"])
        expect[k] = expect.get(k, 0.0) + o["cost"] + sum(c["amount"] for c in o["credits"])
    periods = res.as_json()["periods"]
    got = {(p["start"][:4] + p["start"][5:7], p["currency"]): p["billed_cost"] for p in periods}
    assert got == {k: pytest.approx(v) for k, v in expect.items()}
    # Usage at 2026-11-01 03:00 UTC is still October in Pacific time: invoice month 202610.
    starts = dict(q(conn, "SELECT charge_period_start, billing_period_start FROM charges WHERE sku = 'GPU-H100'"))
    assert starts == {1793502000: 1790838000}              # 2026-10-01 00:00 PDT = 07:00 UTC
    gpu = q(conn, "SELECT sku, gpu_model, gpu_count FROM charges WHERE is_gpu = 1 ORDER BY sku, currency")
    assert ("A3C1-0001", "H100", 8.0) in gpu and ("GPU-H100", "H100", None) in gpu and ("G2-L4", "L4", None) in gpu
    assert q(conn, "SELECT charge_category FROM charges WHERE charge_type = 'tax'") == [("Tax",)]
    assert json.loads(q(conn, "SELECT tags FROM charges WHERE sku = 'GPU-H100'")[0][0]) == {"team": "llm"}


def test_gcp_flattened_csv_matches_jsonl(conn, tmp_path: Path) -> None:
    """The same rows as koku-style flattened CSV: dotted headers, credits as a Python repr."""
    import csv

    objs = [json.loads(line) for line in (FIXTURES / "gcp_export.jsonl").read_text().splitlines()]
    path = tmp_path / "gcp.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["billing_account_id", "service.description", "sku.id", "sku.description", "usage_start_time",
                    "usage_end_time", "project.id", "cost", "currency", "credits", "invoice.month", "cost_type"])
        for o in objs:
            w.writerow([o["billing_account_id"], o["service"]["description"], o["sku"]["id"], o["sku"]["description"],
                        o["usage_start_time"].replace(" UTC", "+00:00"), o["usage_end_time"], o["project"]["id"],
                        o["cost"], o["currency"], repr(o["credits"]), o["invoice"]["month"], o["cost_type"]])
    [a] = import_paths(conn, [FIXTURES / "gcp_export.jsonl"])
    [b] = import_paths(conn, [path])
    assert b.format == "gcp" and b.as_json()["periods"] == a.as_json()["periods"]


def test_azure_mca_bom_iso_dates_and_gpu(conn) -> None:
    path = FIXTURES / "azure_mca_actual.csv"
    [res] = import_paths(conn, [path])
    rows = csv_rows(path)
    [p] = res.as_json()["periods"]
    assert p["billed_cost"] == pytest.approx(sum(num(r["costInBillingCurrency"]) for r in rows))
    assert q(conn, "SELECT billing_period_start, billing_period_end FROM imports") == [(1793491200, 1796083200)]
    gpu = dict((r[0].rsplit("/", 1)[-1], r[1:]) for r in q(
        conn, "SELECT resource_id, instance_type, gpu_model, gpu_count FROM charges WHERE resource_id LIKE '%/virtualMachines/%'"))
    assert gpu["nd01"] == ("Standard_ND96isr_H100_v5", "H100", 8.0)
    assert gpu["nc01"] == ("Standard_NC40ads_H100_v5", "H100-NVL", 1.0)
    assert json.loads(q(conn, "SELECT tags FROM charges WHERE resource_id LIKE '%disks/nd01-os'")[0][0]) == {"env": "prod"}
    assert dict(q(conn, "SELECT charge_type, charge_category FROM charges"))["Refund"] == "Credit"


def test_azure_actual_and_amortised_datasets(conn) -> None:
    """Actual -> billed, amortised -> effective; importing both never double counts either."""
    actual, amort = FIXTURES / "azure_ea_actualcost.csv", FIXTURES / "azure_ea_amortizedcost.csv"
    import_paths(conn, [actual])
    import_paths(conn, [amort])
    billed, effective = q(conn, "SELECT SUM(billed_cost), SUM(effective_cost) FROM charges")[0]
    assert billed == pytest.approx(sum(num(r["Cost"]) for r in csv_rows(actual)))
    assert effective == pytest.approx(sum(num(r["Cost"]) for r in csv_rows(amort)))
    # US dates without zero padding; inclusive period end stored exclusive; EA tags without braces.
    assert q(conn, "SELECT DISTINCT billing_period_start, billing_period_end FROM charges") == [(1793491200, 1796083200)]
    assert {r[0] for r in q(conn, "SELECT charge_period_start FROM charges WHERE charge_type = 'Usage'")} == \
        {1794182400, 1794268800}
    assert json.loads(q(conn, "SELECT tags FROM charges WHERE tags IS NOT NULL")[0][0]) == \
        {"CostCenter": "1234", "env": "prod"}
    # Re-importing the actual dataset keeps the reconciliation.
    import_paths(conn, [FIXTURES / "azure_ea_actualcost.csv"])
    assert q(conn, "SELECT SUM(effective_cost) FROM charges")[0][0] == pytest.approx(effective)


def test_azure_localized_headers(conn) -> None:
    [res] = import_paths(conn, [FIXTURES / "azure_payg_german.csv"])
    assert res.format == "azure"
    assert res.as_json()["periods"] == [{"start": "2026-11-01", "currency": "EUR", "billed_cost": 88.45,
                                         "effective_cost": 88.45, "rows": 2}]
    assert q(conn, "SELECT gpu_model, gpu_count FROM charges WHERE is_gpu = 1") == [("A100-80GB", 1.0)]

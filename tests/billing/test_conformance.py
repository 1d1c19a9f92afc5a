"""Every public sample in ../shared/billing-samples imports, with totals checked by independent arithmetic.

The expected figures come from a few lines of csv/json code here, not from the importer: the sum of the
format's invoice column per (billing period, currency), in the export's own terms.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import math
from collections import defaultdict
from pathlib import Path

import pytest

from gpuspend.collectors.billing.importer import import_paths
from gpuspend.store import connect
from tests.billing.helpers import num

# path (relative to billing-samples) -> (format, period column, currency column, billed columns)
CSV_SAMPLES = {
    "focus/focus_sample.csv": ("focus", "BillingPeriodStart", "BillingCurrency", "BilledCost"),
    "focus-corrections/scenario_2_late_arriving_usage_delta.csv": ("focus", "BillingPeriodStart", None, "BilledCost"),
    "focus-corrections/scenario_2_late_arriving_usage_replacement.csv":
        ("focus", "BillingPeriodStart", None, "BilledCost"),
    "aws-cur/test_cur.csv": ("aws-cur", "bill/BillingPeriodStartDate", "lineItem/CurrencyCode",
                             "lineItem/UnblendedCost"),
    "aws-cur/2022-07-01-alt-columns.csv": ("aws-cur", "bill_billing_period_start_date", "line_item_currency_code",
                                           "line_item_unblended_cost"),
    "aws-cur2-mock/sample_billing_data_v2.csv": ("aws-cur2", "bill_billing_period_start_date",
                                                 "line_item_currency_code", "line_item_unblended_cost"),
    "aws-cur2-mock/sample-cur20.csv": ("aws-cur2", "line_item_usage_start_date", None, "line_item_unblended_cost"),
    "gcp/202011_30c31bca571d9b7f3b2c8459dd8bc34a_2020-11-08_2020-11-11.csv": ("gcp", "invoice.month", "currency",
                                                                              "cost"),
    "azure/EA_ActualCost_Small.csv": ("azure", "BillingPeriodStartDate", "BillingCurrency", "Cost"),
    "azure/Enterprise.csv": ("azure", "BillingPeriodStartDate", "BillingCurrencyCode", "CostInBillingCurrency"),
    "azure/PayAsYouGo.csv": ("azure", "UsageDateTime", "Currency", "PreTaxCost"),
    "azure/azure_version_2.csv": ("azure", "BillingPeriodStartDate", "BillingCurrencyCode", "CostInBillingCurrency"),
}
AMORTISED = {"azure/EA_AmortizedCost_Small.csv": ("azure", "BillingPeriodStartDate", "BillingCurrency", "Cost")}
CUR_ASSEMBLY = "aws-cur-assembly/koku-local"


def _month(text: str) -> str:
    """'2024-09-01 00:00:00' | '09/01/2023' | '202011' | '2021-02-02' -> 'YYYY-MM'."""
    t = text.strip()
    if "/" in t:
        m, _d, y = t.split()[0].split("/")
        return f"{y}-{int(m):02d}"
    if t.isdigit() and len(t) == 6:
        return f"{t[:4]}-{t[4:]}"
    return t[:7]


def expected(text: str, period: str, currency: str | None, billed: str) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in csv.DictReader(io.StringIO(text)):
        cost = num(r[billed])
        if billed == "cost" and r.get("credits"):            # GCP: net = cost + credits
            cost += sum(c["amount"] for c in ast.literal_eval(r["credits"]))
        out[(_month(r[period]), r[currency] if currency else "USD")].append(cost)
    return {k: math.fsum(v) for k, v in out.items()}


def got(results) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = defaultdict(float)
    for res in results:
        for p in res.as_json()["periods"]:
            out[(p["start"][:7], p["currency"])] += p["billed_cost"]
    return dict(out)


@pytest.mark.parametrize("rel", sorted(CSV_SAMPLES))
def test_sample_billed_totals(rel: str, shared_dir: Path, db_path: Path) -> None:
    fmt, period, currency, billed = CSV_SAMPLES[rel]
    path = shared_dir / "billing-samples" / rel
    conn = connect(db_path)
    results = import_paths(conn, [path])
    assert [r.format for r in results] == [fmt]
    exp = expected(path.read_text(encoding="utf-8-sig"), period, currency, billed)
    assert got(results) == {k: pytest.approx(v, abs=1e-6) for k, v in exp.items()}
    n_rows = sum(1 for _ in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    assert results[0].rows == n_rows
    assert conn.execute("SELECT COUNT(*) FROM charges").fetchone()[0] == n_rows


def test_focus_sample_effective_and_gpu_rows(shared_dir: Path, db_path: Path) -> None:
    path = shared_dir / "billing-samples" / "focus" / "focus_sample.csv"
    conn = connect(db_path)
    [res] = import_paths(conn, [path])
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert conn.execute("SELECT SUM(effective_cost) FROM charges").fetchone()[0] == pytest.approx(
        math.fsum(num(r["EffectiveCost"]) for r in rows))
    gpu_desc = [r for r in rows if "g5.4xlarge" in r["ChargeDescription"] or "g3.4xlarge" in r["ChargeDescription"]]
    assert res.gpu_rows == len(gpu_desc) == 10
    models = dict(conn.execute("SELECT gpu_model, COUNT(*) FROM charges WHERE is_gpu = 1 GROUP BY 1").fetchall())
    assert models == {"A10G": 8, "M60": 2}
    # The Oracle row billed in 2024-10 with a September charge period keeps both.
    assert conn.execute("SELECT COUNT(*) FROM charges WHERE charge_period_start < billing_period_start").fetchone()[0] >= 1


def test_azure_amortised_sample(shared_dir: Path, db_path: Path) -> None:
    rel = "azure/EA_AmortizedCost_Small.csv"
    path = shared_dir / "billing-samples" / rel
    conn = connect(db_path)
    [res] = import_paths(conn, [path])
    exp = expected(path.read_text(encoding="utf-8-sig"), *AMORTISED[rel][1:])
    effective = {(p["start"][:7], p["currency"]): p["effective_cost"] for p in res.as_json()["periods"]}
    assert effective == {k: pytest.approx(v, abs=1e-6) for k, v in exp.items()}
    assert conn.execute("SELECT COUNT(*) FROM charges WHERE billed_cost IS NOT NULL").fetchone()[0] == 0


def test_cur_assembly_via_manifest(shared_dir: Path, db_path: Path) -> None:
    root = shared_dir / "billing-samples" / CUR_ASSEMBLY
    conn = connect(db_path)
    results = import_paths(conn, [root])
    data = next(root.rglob("*.csv.gz"))
    assert [Path(r.path).name for r in results] == [data.name]
    text = gzip.decompress(data.read_bytes()).decode()
    exp = expected(text, "bill/BillingPeriodStartDate", "lineItem/CurrencyCode", "lineItem/UnblendedCost")
    assert got(results) == {k: pytest.approx(v, rel=1e-9) for k, v in exp.items()}
    assert conn.execute("SELECT DISTINCT version_id FROM imports").fetchall() == [
        ("16e57707-f9e3-49be-8be6-b84e684b5194",)]
    assert import_paths(conn, [root])[0].unchanged


def test_every_sample_file_is_covered(shared_dir: Path) -> None:
    base = shared_dir / "billing-samples"
    data = {str(p.relative_to(base)) for p in base.rglob("*") if p.suffix in (".csv", ".gz")
            and "gpu-cloud-apis" not in p.parts}
    covered = set(CSV_SAMPLES) | set(AMORTISED)
    assert {d for d in data if not d.startswith(CUR_ASSEMBLY)} == covered


@pytest.mark.parametrize("name", ["cur1_manifest.json", "cur2_manifest.json"])
def test_mock_manifests_without_their_data_say_so(name: str, shared_dir: Path, db_path: Path) -> None:
    from gpuspend.errors import DataError

    conn = connect(db_path)
    with pytest.raises(DataError, match="manifest lists .* but the file is not there"):
        import_paths(conn, [shared_dir / "billing-samples" / "aws-cur2-mock" / name])

"""An alert's money is in its own currency: a budget in EUR on a box whose money is otherwise in USD is
written in EUR in the report's JSON, as on the dashboard."""

from __future__ import annotations

import json
from pathlib import Path

HEADER = ("BillingAccountId,BillingPeriodStart,BillingPeriodEnd,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,"
          "BilledCost,EffectiveCost,BillingCurrency,ServiceName,ResourceId")


def test_a_eur_budget_alert_carries_its_currency(cli, db_path: Path, tmp_path: Path) -> None:
    # 3 days of 40 EUR: 120 EUR spent of a 100 EUR budget, past its 100% threshold
    rows = [f"111122223333,2026-12-01T00:00:00Z,2027-01-01T00:00:00Z,2026-12-0{d}T00:00:00Z,"
            f"2026-12-0{d + 1}T00:00:00Z,Usage,40,40,EUR,Virtual Machines,vm-1" for d in (1, 2, 3)]
    path = tmp_path / "eur.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text("budget: {monthly: 100, currency: EUR, thresholds: [100], basis: [actual]}\n")
    env = {"GPUSPEND_NOW": "2026-12-04T01:00:00Z"}
    assert cli("--db", str(db_path), "import", str(path), env=env).returncode == 0
    r = cli("--config", str(cfg), "--db", str(db_path), "--report", "--no-sample", "--format", "json", env=env)
    doc = json.loads(r.stdout)
    (budget,) = [a for a in doc["alerts"] if a["kind"] == "budget"]
    assert budget["dollars"] == 120.0 and budget["currency"] == "EUR"
    assert "120.00 EUR of 100.00 EUR" in budget["message"]

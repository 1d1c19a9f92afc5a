"""Two exports in one month, one a day behind the other (two accounts, or AWS and GCP): each is complete up to
its own end, so the day the late one has not billed yet is not a day without its spend.

Worked by hand, on 2026-12-07 with no local GPU: account 1's export runs to 12-07 00:00 (days of $100, $90
on 12-02), account 2's to 12-06 00:00 (days of $100); each has a $50 monthly fee and a $30 monthly tax.
  MTD = (590 + 80) + (500 + 80) = $1,250.00
  account 1: mean of its 6 complete days $98.33 x the 25 days after its end   = $2,458.33
  account 2: mean of its 5 complete days $100.00 x the 26 days after its end  = $2,600.00
  projection = $6,308.33 (one stream of both would read 12-06 as a $100 day and say $5,791.67)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

HEADER = ("BillingAccountId,BillingPeriodStart,BillingPeriodEnd,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,"
          "ChargeFrequency,BilledCost,EffectiveCost,BillingCurrency,ServiceName,ResourceId")
PERIOD = "2026-12-01T00:00:00Z,2027-01-01T00:00:00Z"


def _export(path: Path, account: str, days: dict[int, str]) -> Path:
    rows = [f"{account},{PERIOD},2026-12-{d:02d}T00:00:00Z,2026-12-{d + 1:02d}T00:00:00Z,Usage,Usage-Based,{c},{c},"
            f"USD,Amazon EC2,i-{account}" for d, c in days.items()]
    rows += [f"{account},{PERIOD},{PERIOD},Purchase,Recurring,50,50,USD,Support,",
             f"{account},{PERIOD},{PERIOD},Tax,Recurring,30,30,USD,Tax,"]
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def test_an_export_a_day_behind_is_projected_from_its_own_end(cli, db_path: Path, tmp_path: Path) -> None:
    one = _export(tmp_path / "acct1.csv", "111111111111", {1: "100", 2: "90", 3: "100", 4: "100", 5: "100", 6: "100"})
    two = _export(tmp_path / "acct2.csv", "222222222222", {d: "100" for d in range(1, 6)})
    env = {"GPUSPEND_NOW": "2026-12-07T02:00:00Z"}
    assert cli("--db", str(db_path), "import", str(one), str(two), env=env).returncode == 0
    doc = json.loads(cli("--db", str(db_path), "--report", "--no-sample", "--format", "json", env=env).stdout)
    (mv,) = doc["month"]
    assert mv["mtd"] == pytest.approx(1250.0)
    assert mv["projection"] == pytest.approx(1250 + 590 / 6 * 25 + 100 * 26, abs=0.01)
    text = cli("--db", str(db_path), "--report", "--no-sample", env=env).stdout
    assert "projected month: $6,308.33" in text


def test_freshness_is_the_export_that_reaches_least(cli, db_path: Path, tmp_path: Path) -> None:
    """Account 1's export is current, account 2's stopped at 12-06 00:00: the report and the `outdated` alert
    judge freshness by account 2's (as `doctor` does per source), naming it; one export alone is not named."""
    one = _export(tmp_path / "acct1.csv", "111111111111", {d: "100" for d in range(1, 10)})     # to 12-10
    two = _export(tmp_path / "acct2.csv", "222222222222", {d: "100" for d in range(1, 6)})      # to 12-06
    assert cli("--db", str(db_path), "import", str(one), env={"GPUSPEND_NOW": "2026-12-10T01:00:00Z"}).returncode == 0
    env = {"GPUSPEND_NOW": "2026-12-10T01:00:00Z"}
    alone = json.loads(cli("--db", str(db_path), "--report", "--no-sample", "--format", "json", env=env).stdout)
    assert alone["freshness"]["billing_coverage_end"] == "2026-12-10T00:00:00Z"
    assert alone["freshness"]["billing_coverage_export"] is None and alone["freshness"]["billing_stale"] is False
    assert cli("--db", str(db_path), "import", str(two), env=env).returncode == 0
    doc = json.loads(cli("--db", str(db_path), "--report", "--no-sample", "--format", "json", env=env).stdout)
    fr = doc["freshness"]
    assert fr["billing_coverage_end"] == "2026-12-06T00:00:00Z" and fr["billing_stale"] is True      # 4 days > 3
    assert "222222222222" in fr["billing_coverage_export"]
    (mv,) = doc["month"]
    assert mv["coverage_end"] == "2026-12-10T00:00:00Z"       # what the exports hold reaches 12-10
    r = cli("--db", str(db_path), "--report", "--no-sample", "--fail-on", "outdated", env=env)
    assert r.returncode == 1
    text = r.stdout.replace("\n    ", " ")                    # the report folds lines at 80 columns
    line = next(ln for ln in text.splitlines() if ln.startswith("billing coverage end:"))
    assert line.startswith("billing coverage end: 2026-12-06T00:00:00Z (the ") and line.endswith(" export) (stale)")
    assert "222222222222 export ends 2026-12-06 00:00 UTC" in r.stdout.replace("\n      ", " ")
    # the month's line says what the exports reach, and which one reaches less
    (month_line,) = [ln for ln in text.splitlines() if "billing exports cover up to" in ln]
    assert month_line.strip().startswith("billing exports cover up to 2026-12-10T00:00:00Z; the ")
    assert month_line.endswith("222222222222 export only to 2026-12-06T00:00:00Z")


def test_doctor_and_the_billing_screen_judge_each_export_as_the_alert_does(cli, db_path: Path, tmp_path: Path) -> None:
    """Each export's coverage as `doctor` and the billing screen's coverage table state it: its usage rows' end,
    per account, never the monthly fee's or tax's charge period (both run to 2027-01-01, which read as
    "covered up to 2027-01-01 (0s ago)" for both accounts in one line)."""
    from gpuspend import costing
    from gpuspend.config import load_config
    from gpuspend.store import connect

    one = _export(tmp_path / "acct1.csv", "111111111111", {d: "100" for d in range(1, 10)})     # to 12-10
    two = _export(tmp_path / "acct2.csv", "222222222222", {d: "100" for d in range(1, 6)})      # to 12-06
    fees = tmp_path / "fees.csv"                                                                # no usage row
    fees.write_text("\n".join([HEADER, f"333333333333,{PERIOD},{PERIOD},Purchase,Recurring,50,50,USD,Support,"]) + "\n")
    env = {"GPUSPEND_NOW": "2026-12-10T01:00:00Z"}
    assert cli("--db", str(db_path), "import", str(one), str(two), str(fees), env=env).returncode == 0
    doc = cli("--db", str(db_path), "doctor", env=env)
    assert doc.returncode == 0, doc.stdout       # an old export is a warning, not a failed check
    lines = [ln for ln in doc.stdout.splitlines() if " billing " in ln]
    assert len(lines) == 3
    (l1,) = [ln for ln in lines if "/111111111111 " in ln]
    (l2,) = [ln for ln in lines if "/222222222222 " in ln]
    (l3,) = [ln for ln in lines if "/333333333333 " in ln]
    assert l1.startswith("ok ") and "covered up to 2026-12-10 00:00 UTC (1h00m ago), 11 rows" in l1
    assert "covered up to 2026-12-06 00:00 UTC (4d01h ago), 7 rows: older than alerts.stale_billing" in l2
    assert l2.startswith("warn ")                # set apart from the facts doctor states as `info`
    assert l3.startswith("info ") and "1 row, no daily or hourly usage rows" in l3 and "2027" not in l3
    conn = connect(db_path)
    try:
        s = costing.billing_summary(conn, load_config(None), "2026-12", now_ms=1_796_864_400_000)
    finally:
        conn.close()
    assert [(c[1].rsplit("/", 1)[1], c[2], c[3]) for c in s.coverage] == [
        ("111111111111", 1_796_860_800_000, 11), ("222222222222", 1_796_515_200_000, 7), ("333333333333", None, 1)]

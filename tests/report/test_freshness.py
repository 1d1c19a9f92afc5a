"""How fresh the data is, as the report and `prices` say it.

How far the billing exports reach, when the month being reported has none of its own yet.

On the first days of every month the provider has not exported the new month: the freshness line must still
name the end of the newest export (last month's), and judge it stale or not by alerts.stale_billing (3 days),
as the `outdated` alert does, never say "no billing imported" about a store that holds billing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

HEADER = ("BillingAccountId,BillingPeriodStart,BillingPeriodEnd,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,"
          "BilledCost,EffectiveCost,BillingCurrency,ServiceName,ResourceId")
# November's last two hours of one VM: the export's usage reaches 2026-12-01T00:00:00Z.
ROWS = [f"111122223333,2026-11-01T00:00:00Z,2026-12-01T00:00:00Z,{a},{b},Usage,3.06,3.06,USD,Amazon EC2,i-0abc"
        for a, b in (("2026-11-30T22:00:00Z", "2026-11-30T23:00:00Z"),
                     ("2026-11-30T23:00:00Z", "2026-12-01T00:00:00Z"))]


@pytest.fixture
def november(cli, db_path: Path, tmp_path: Path) -> Path:
    path = tmp_path / "focus-2026-11.csv"
    path.write_text("\n".join([HEADER, *ROWS]) + "\n")
    r = cli("--db", str(db_path), "import", str(path))
    assert r.returncode == 0, r.stderr
    return db_path


@pytest.mark.parametrize(("now", "stale"), [
    ("2026-12-01T06:00:00Z", False),      # six hours after the export's end: fresh
    ("2026-12-20T00:00:00Z", True),       # 19 days after it: past alerts.stale_billing
])
def test_a_month_without_its_own_exports_reports_the_newest_exports_end(cli, november: Path, now: str,
                                                                       stale: bool) -> None:
    env = {"GPUSPEND_NOW": now}
    r = cli("--db", str(november), "--report", "--format", "json", env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["freshness"]["billing_coverage_end"] == "2026-12-01T00:00:00Z"
    assert doc["freshness"]["billing_stale"] is stale
    outdated = [a for a in doc["alerts"] if a["kind"] == "outdated" and a["subject"] == "billing"]
    assert bool(outdated) is stale
    text = cli("--db", str(november), "--report", env=env).stdout
    line = next(ln for ln in text.splitlines() if ln.startswith("billing coverage end:"))
    assert line == "billing coverage end: 2026-12-01T00:00:00Z" + (" (stale)" if stale else "")
    assert cli("--db", str(november), "--report", "--fail-on", "outdated", env=env).returncode == (1 if stale else 0)


def test_a_monthly_tax_row_does_not_make_last_months_exports_look_fresh(cli, db_path: Path) -> None:
    """November's exports (tests/fixtures/billing/focus_gpu.csv: AWS, Azure and Google Cloud in one file): their
    usage rows end 2026-11-11T00:00:00Z (AWS, Azure) and 2026-11-10T01:00:00Z (Google Cloud's last hour row);
    the Tax and Credit rows run 11-01 .. 12-01. The exports are as fresh as the one that reaches least, the
    Google Cloud one, on Nov 15 as on Dec 1: the tax rows' 12-01 never makes them look fresh."""
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "billing" / "focus_gpu.csv"
    assert cli("--db", str(db_path), "import", str(fixture)).returncode == 0
    ends = {}
    for now in ("2026-11-15T12:00:00Z", "2026-12-01T06:00:00Z"):
        r = cli("--db", str(db_path), "--report", "--format", "json", env={"GPUSPEND_NOW": now})
        ends[now] = json.loads(r.stdout)["freshness"]
    for fr in ends.values():
        assert fr["billing_coverage_end"] == "2026-11-10T01:00:00Z"
        assert fr["billing_coverage_export"] == "focus:Google Cloud/GCP-01"
    dec = ends["2026-12-01T06:00:00Z"]
    assert dec["billing_stale"] is True
    r = cli("--db", str(db_path), "--report", "--fail-on", "outdated", env={"GPUSPEND_NOW": "2026-12-01T06:00:00Z"})
    assert r.returncode == 1
    assert "the focus:Google Cloud/GCP-01 export ends 2026-11-10 01:00 UTC" in r.stdout.replace("\n      ", " ")


def test_a_store_without_billing_says_so(cli, db_path: Path) -> None:
    text = cli("--db", str(db_path), "--report").stdout
    assert "billing coverage end: no billing imported" in text


def test_a_one_day_old_catalog_says_1_day(cli, db_path: Path, tmp_path: Path) -> None:
    """The shipped catalog is dated; a day later the report says "(1 day)", and `prices` with a one-day
    alerts.stale_catalog says "stale after 1 day" (never "1 days")."""
    from gpuspend.pricing import load_catalog

    as_of = load_catalog().as_of
    env = {"GPUSPEND_NOW": f"{as_of}T12:00:00Z"}
    nxt = cli("--db", str(db_path), "--report", env={"GPUSPEND_NOW": _next_day(as_of)}).stdout
    assert f"price catalog as of {as_of} (1 day)" in nxt
    cfg = tmp_path / "config.yaml"
    cfg.write_text("alerts: {stale_catalog: 1d}\n")
    head = cli("--db", str(db_path), "--config", str(cfg), "prices", env=env).stdout.splitlines()[0]
    assert head.endswith("(on-demand $/GPU-hour; stale after 1 day)"), head


def _next_day(day: str) -> str:
    from datetime import date, timedelta

    return f"{date.fromisoformat(day) + timedelta(days=1)}T00:00:00Z"

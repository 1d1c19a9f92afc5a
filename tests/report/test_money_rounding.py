"""Money is rounded the way a person rounds it by hand, once, on every surface.

Half a cent goes up ($8.545 is $8.55), on the decimal number the export wrote, not on its nearest binary
float (which formats 8.545 as 8.54); and the report rounds to cents once, from the micro-dollar figure its
JSON carries, never from an already rounded one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuspend import fmt

HEADER = ("BillingAccountId,BillingPeriodStart,BillingPeriodEnd,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,"
          "BilledCost,EffectiveCost,BillingCurrency,ServiceName,ResourceId")


@pytest.mark.parametrize(("amount", "written"), [
    (8.545, "$8.55"), (0.125, "$0.13"), (2.675, "$2.68"), (1.005, "$1.01"),
    (8.544999999999998, "$8.55"),          # what a sum of floats leaves of 8.545
    (8.5449, "$8.54"), (0.004, "$0.00"), (-0.005, "-$0.01"), (1234.565, "$1,234.57"),
])
def test_half_a_cent_goes_up(amount: float, written: str) -> None:
    assert fmt.money(amount) == written


def test_the_dashboards_whole_dollars_round_half_up_too() -> None:
    assert fmt.money(12_345.5, compact=True) == "$12,346"
    assert fmt.money(12_344.5, compact=True) == "$12,345"      # binary formatting rounds this one to even


def test_any_finite_amount_and_share_is_written_not_a_traceback() -> None:
    """28 digits (decimal's default) could not quantize 1e26 to cents, nor cut the share of a tiny budget."""
    assert fmt.money(1e26) == "$100,000,000,000,000,000,000,000,000.00"
    assert fmt.money(-3e30, "JPY") == "-3,000,000,000,000,000,000,000,000,000,000 JPY"
    assert fmt.share_cut(100 * 12.5 / 1e-300) == 1.25e303


def _month(tmp_path: Path, name: str, month: str, costs: list[str]) -> Path:
    start, end = f"{month}-01T00:00:00Z", ("2026-12-01T00:00:00Z" if month == "2026-11" else "2026-11-01T00:00:00Z")
    rows = [f"111122223333,{start},{end},{month}-0{1 + i % 9}T00:00:00Z,{month}-0{1 + i % 9}T01:00:00Z,Usage,"
            f"{c},{c},USD,Virtual Machines,vm-{i}" for i, c in enumerate(costs)]
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def test_a_month_that_adds_up_to_half_a_cent_reads_the_same_in_import_report_and_json(cli, db_path: Path,
                                                                                    tmp_path: Path) -> None:
    # November (an Azure EA day's costs): 3.25 + 2.64 + 1.9584 + 0.4838709677419368 + 0.21268368 + 0.00004
    # + 0.000011139 + 0.000002 = 8.5450077867..., by hand $8.55.
    nov = _month(tmp_path, "nov.csv", "2026-11", ["3.25", "2.64", "1.9584", "0.4838709677419368", "0.21268368",
                                                  "0.00004", "0.000011139", "0.000002"])
    # October: 8.00 + 0.54496 = 8.54496, by hand $8.54 (at 4 places it would first become 8.545).
    octo = _month(tmp_path, "oct.csv", "2026-10", ["8.00", "0.54496"])
    env = {"GPUSPEND_NOW": "2026-12-07T00:00:00Z"}
    r = cli("--db", str(db_path), "import", str(nov), str(octo), env=env)
    assert r.returncode == 0, r.stderr
    assert "period 2026-11 USD: billed $8.55, effective $8.55" in r.stdout
    assert "period 2026-10 USD: billed $8.54, effective $8.54" in r.stdout
    for month, by_hand, exact in (("2026-11", "$8.55", 8.545008), ("2026-10", "$8.54", 8.54496)):
        text = cli("--db", str(db_path), "--report", "--month", month, env=env).stdout
        assert f"{month} USD: to date {by_hand} (billed {by_hand} + metered $0.00)" in text
        assert f"projected month: {by_hand}" in text
        md = cli("--db", str(db_path), "--report", "--month", month, "--format", "markdown", env=env).stdout
        assert f"to date {by_hand} (billed {by_hand}" in md
        doc = json.loads(cli("--db", str(db_path), "--report", "--month", month, "--format", "json",
                             env=env).stdout)
        (mv,) = doc["month"]
        assert mv["billed"] == pytest.approx(exact, abs=1e-6) and mv["mtd"] == pytest.approx(exact, abs=1e-6)


@pytest.mark.parametrize(("pct", "written"), [(79.6, "79%"), (79.996, "79%"), (80.0, "80%"), (99.7, "99%"),
                                              (100.0, "100%"), (57.3, "57%"), (-0.5, "0%"), (None, "unknown")])
def test_a_share_of_the_budget_is_cut_never_rounded_up_to_a_threshold(pct: float | None, written: str) -> None:
    assert fmt.share(pct) == written


@pytest.mark.parametrize(("spent", "pct", "crossed"), [
    ("7999.60", 79.99, False),      # 79.996% of $10,000: the 80% threshold is not reached, and nothing says 80%
    ("8000.00", 80.0, True),
])
def test_the_report_says_80_percent_only_when_80_percent_is_crossed(cli, db_path: Path, tmp_path: Path,
                                                                   spent: str, pct: float, crossed: bool) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("budget:\n  monthly: 10000\n  currency: USD\n  thresholds: [80]\n  basis: [actual]\n")
    env = {"GPUSPEND_NOW": "2026-12-07T00:00:00Z"}
    base = ("--db", str(db_path), "--config", str(cfg))
    assert cli(*base, "import", str(_month(tmp_path, "nov.csv", "2026-11", [spent])), env=env).returncode == 0
    doc = json.loads(cli(*base, "--report", "--month", "2026-11", "--format", "json", env=env).stdout)
    (mv,) = doc["month"]
    assert mv["budget_pct_actual"] == pct
    assert bool(mv["thresholds_crossed"]) is crossed
    text = cli(*base, "--report", "--month", "2026-11", env=env).stdout
    assert f"budget $10,000.00: actual {'80' if crossed else '79'}%" in text
    assert ("budget threshold 80% crossed (actual)" in text) is crossed
    r = cli(*base, "--report", "--month", "2026-11", "--fail-on", "budget", env=env)
    assert r.returncode == (1 if crossed else 0)


def test_every_amount_is_written_as_its_decimal_rounded_half_up() -> None:
    """money's fast path (binary formatting away from a tie) and its exact path agree with rounding the
    amount's decimal form half up, for amounts of every size and for ties of every size."""
    import random
    from decimal import ROUND_HALF_UP, Decimal

    rng = random.Random(7)
    amounts = [rng.uniform(0, 10 ** rng.randint(0, 9)) for _ in range(20_000)]
    amounts += [round(rng.uniform(0, 10 ** rng.randint(0, 9)), 2) + 0.005 for _ in range(5_000)]      # ties
    amounts += [n / 1000 for n in range(0, 20_000, 5)]                                                 # ties
    for a in amounts:
        exact = Decimal(repr(round(a, 9))).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        assert fmt.money(a) == f"${exact:,.2f}", a


def test_a_box_with_no_gpu_reports_no_gpu_never_zero_dollars(cli, db_path: Path) -> None:
    """A billing-only box (no GPU sampled): today's money and the window's waste are "no GPU", as on the
    dashboard, never "$0.00"."""
    from gpuspend.store import connect

    connect(db_path).close()
    for fmt_ in ("text", "markdown"):
        out = cli("--db", str(db_path), "--report", "--no-sample", "--format", fmt_).stdout
        assert "no GPU: no idle waste" in out and "$0.00" not in out, out
    text = cli("--db", str(db_path), "--report", "--no-sample").stdout
    assert "cost so far: no GPU   idle waste: no GPU" in text


@pytest.mark.parametrize(("amount", "currency", "written"), [
    (123456.5, "JPY", "123,457 JPY"), (0.4, "JPY", "0 JPY"), (1234.5678, "KWD", "1,234.568 KWD"),
    (12.345, "EUR", "12.35 EUR"), (99.5, "krw", "100 krw"),
])
def test_money_has_the_decimals_of_its_currency(amount: float, currency: str, written: str) -> None:
    """ISO 4217 minor units: a yen has no cents, a Kuwaiti dinar has fils (1/1000)."""
    assert fmt.money(amount, currency) == written


def test_a_month_billed_in_yen_is_written_in_whole_yen(cli, db_path: Path, tmp_path: Path) -> None:
    # An Azure account billed in JPY: 120,000.40 + 3,500.35 = 123,500.75 JPY, by hand 123,501 JPY.
    rows = [f"111122223333,2026-11-01T00:00:00Z,2026-12-01T00:00:00Z,2026-11-0{d}T00:00:00Z,"
            f"2026-11-0{d}T01:00:00Z,Usage,{c},{c},JPY,Virtual Machines,vm-{d}"
            for d, c in ((1, "120000.40"), (2, "3500.35"))]
    path = tmp_path / "jpy.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    env = {"GPUSPEND_NOW": "2026-12-07T00:00:00Z"}
    r = cli("--db", str(db_path), "import", str(path), env=env)
    assert r.returncode == 0, r.stderr
    assert "period 2026-11 JPY: billed 123,501 JPY, effective 123,501 JPY" in r.stdout
    text = cli("--db", str(db_path), "--report", "--month", "2026-11", env=env).stdout
    assert "2026-11 JPY: to date 123,501 JPY (billed 123,501 JPY + metered 0 JPY)" in text
    assert ".00 JPY" not in text and ".75 JPY" not in text

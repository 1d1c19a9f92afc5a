"""Importer cases real exports produce: empty period cells, short rows, non-finite amounts, deep tags,
manifests pointing outside their export, unreadable files, amortized-only and currency-less datasets."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
from pathlib import Path

import pytest

from gpuspend.collectors.billing.importer import import_paths
from gpuspend.errors import DataError
from gpuspend.store import connect
from tests.billing.helpers import FIXTURES, dump

GOOD = FIXTURES / "focus_gpu.csv"
NOV_1 = 1793491200          # 2026-11-01T00:00:00Z
DEC_1 = 1796083200          # 2026-12-01T00:00:00Z


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8-sig").splitlines()


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def seeded(cli, db_path: Path) -> str:
    r = cli("--db", str(db_path), "import", str(FIXTURES / "aws_cur2.csv"))
    assert r.returncode == 0, r.stderr
    return dump(db_path)


def _one_line_error(r, where: str, what: str) -> None:
    assert r.returncode == 3, (r.stdout, r.stderr)
    err = r.stderr.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("gpuspend: ") and where in err and what in err, err


# ---------------------------------------------------------------- Azure MCA: empty billing-period cells

def test_azure_mca_empty_period_cells_fall_back_to_the_usage_month(db_path: Path, tmp_path: Path) -> None:
    rows = list(csv.reader(_lines(FIXTURES / "azure_mca_actual.csv")))
    header = [h.lower() for h in rows[0]]
    s, e = header.index("billingperiodstartdate"), header.index("billingperiodenddate")
    for r in rows[1:]:
        r[s] = r[e] = ""
    path = tmp_path / "mca-no-period.csv"
    with open(path, "w", newline="", encoding="utf-8-sig") as fh:
        csv.writer(fh).writerows(rows)
    conn = connect(db_path)
    try:
        import_paths(conn, [path])
        periods = conn.execute("SELECT DISTINCT billing_period_start, billing_period_end FROM charges").fetchall()
        assert periods == [(NOV_1, DEC_1)]                     # every row dated in November: not NULL
        full = connect(tmp_path / "with-period.db")
        import_paths(full, [FIXTURES / "azure_mca_actual.csv"])
        want = full.execute("SELECT SUM(billed_cost) FROM charges WHERE billing_period_start = ?",
                            (NOV_1,)).fetchone()
        full.close()
        assert conn.execute("SELECT SUM(billed_cost) FROM charges WHERE billing_period_start = ?",
                            (NOV_1,)).fetchone() == want
    finally:
        conn.close()


def test_azure_mca_without_period_cells_is_in_the_reports_month(cli, db_path: Path, tmp_path: Path) -> None:
    rows = list(csv.reader(_lines(FIXTURES / "azure_mca_actual.csv")))
    header = [h.lower() for h in rows[0]]
    k = header.index("costinbillingcurrency")
    for i in (header.index("billingperiodstartdate"), header.index("billingperiodenddate")):
        for r in rows[1:]:
            r[i] = ""
    path = tmp_path / "mca-no-period.csv"
    with open(path, "w", newline="", encoding="utf-8-sig") as fh:
        csv.writer(fh).writerows(rows)
    assert cli("--db", str(db_path), "import", str(path)).returncode == 0
    rep = cli("--db", str(db_path), "--report", "--no-sample", "--format", "json")
    assert rep.returncode == 0, rep.stderr
    months = {(m["month"], m["currency"]): m["billed"] for m in json.loads(rep.stdout)["month"]}
    # every row of the fixture is a November USD row: the month's billed money is their sum
    assert months[("2026-11", "USD")] == pytest.approx(sum(float(r[k]) for r in rows[1:]))


# ---------------------------------------------------------------- --skip-bad-rows and wrong field counts

def test_skip_bad_rows_skips_rows_with_the_wrong_number_of_fields(cli, db_path: Path, tmp_path: Path) -> None:
    lines = _lines(GOOD)
    bad = [lines[0], lines[1], lines[2] + ",extra,fields", lines[3], "cut,short,row", *lines[4:]]
    path = _write(tmp_path / "ragged.csv", bad)
    r = cli("--db", str(db_path), "import", str(path))
    _one_line_error(r, "ragged.csv:3", "fields")                # without the flag: refused, says where
    r = cli("--db", str(db_path), "import", "--skip-bad-rows", "--json", str(path))
    assert r.returncode == 0, r.stderr
    [f] = json.loads(r.stdout)["files"]
    assert f["rows"] == len(lines) - 2 and f["skipped_rows"] == 2 and f["bad_lines"] == [3, 5]   # one row spoilt, one added
    conn = connect(db_path)
    try:
        # the good rows kept their own line numbers around the skipped ones
        assert conn.execute("SELECT line FROM charges ORDER BY line").fetchall()[:4] == [(2,), (4,), (6,), (7,)]
    finally:
        conn.close()


def test_every_row_bad_is_exit_3_not_zero_rows_imported(cli, db_path: Path, seeded: str, tmp_path: Path) -> None:
    lines = _lines(GOOD)
    path = _write(tmp_path / "all-bad.csv", [lines[0], "a,b", "c,d,e", lines[1].replace(",98.32,", ",x,", 1)])
    r = cli("--db", str(db_path), "import", "--skip-bad-rows", str(path))
    _one_line_error(r, "all-bad.csv:", "every data row is bad (3 skipped)")
    assert dump(db_path) == seeded


# ---------------------------------------------------------------- non-finite amounts

@pytest.mark.parametrize(("amount", "expected"), [
    ("1e400", "a finite amount (below 10^15)"), ("inf", "a finite amount (below 10^15)"),
    ("-Infinity", "a finite amount (below 10^15)"), ("NaN", "a finite amount (below 10^15)"),
    # past what any line item costs: stored, it made every total of the month unprintable
    ("1e26", "a finite amount (below 10^15)"), ("-2e15", "a finite amount (below 10^15)"),
    # spellings Python's float() reads but no export writes, and no user reads as 1000 / 123
    ("1_000", "a number"), ("\u0661\u0662\u0663", "a number"),
])
def test_non_finite_amounts_are_bad_numbers(amount: str, expected: str, cli, db_path: Path, seeded: str,
                                            tmp_path: Path) -> None:
    lines = _lines(GOOD)
    path = _write(tmp_path / "inf.csv", [*lines[:2], lines[2].replace(",98.32,", f",{amount},", 1), *lines[3:]])
    r = cli("--db", str(db_path), "import", str(path))
    _one_line_error(r, "inf.csv:3", f"BilledCost: cannot read '{amount}' as {expected}")
    assert dump(db_path) == seeded
    r = cli("--db", str(db_path), "import", "--skip-bad-rows", "--json", str(path))
    assert r.returncode == 0 and "Infinity" not in r.stdout and "NaN" not in r.stdout
    [f] = json.loads(r.stdout)["files"]
    assert f["skipped_rows"] == 1
    usd = [p for p in f["periods"] if p["currency"] == "USD"]
    # focus_gpu.csv's USD rows less the skipped 98.32: 98.32 + 32.77 + 1.25 - 5.5 - 20 + 12.34 + 88.49
    assert round(sum(p["billed_cost"] for p in usd), 2) == 207.67


# ---------------------------------------------------------------- deep nesting

def test_deeply_nested_tags_are_one_line_not_a_traceback(cli, db_path: Path, seeded: str, tmp_path: Path) -> None:
    lines = _lines(GOOD)
    deep = '"' + ('{""a"": ' * 5000) + "1" + ("}" * 5000) + '"'
    row = lines[3].replace(",,USW2-BoxUsage", f",{deep},USW2-BoxUsage", 1)
    assert row != lines[3]
    path = _write(tmp_path / "deep.csv", [*lines[:3], row, *lines[4:]])
    r = cli("--db", str(db_path), "import", str(path))
    _one_line_error(r, "deep.csv:4", "Tags: cannot read")
    assert dump(db_path) == seeded
    r = cli("--db", str(db_path), "import", "--skip-bad-rows", str(path))
    assert r.returncode == 0 and "skipped 1 bad row (line 4)" in r.stdout


def test_deeply_nested_jsonl_is_one_line(cli, db_path: Path, tmp_path: Path) -> None:
    first = _lines(FIXTURES / "gcp_export.jsonl")[0]
    path = _write(tmp_path / "deep.jsonl", [first, '{"x": ' * 3000 + "1" + "}" * 3000])
    _one_line_error(cli("--db", str(db_path), "import", str(path)), "deep.jsonl:2", "nested too deeply")


# ---------------------------------------------------------------- manifests and unreadable files

def test_manifest_entry_with_dotdot_is_refused(cli, db_path: Path, seeded: str, tmp_path: Path) -> None:
    outside = tmp_path / "secret.csv"
    outside.write_text(GOOD.read_text())
    export = tmp_path / "bucket" / "report" / "20261101-20261201"
    export.mkdir(parents=True)
    manifest = export / "report-Manifest.json"
    manifest.write_text(json.dumps({"assemblyId": "a1", "reportKeys": ["report/20261101-20261201/../../../secret.csv"]}))
    r = cli("--db", str(db_path), "import", str(tmp_path / "bucket"))
    _one_line_error(r, "report-Manifest.json:1", "leaves the export folder")
    assert dump(db_path) == seeded


def test_manifest_never_finds_its_files_above_the_imported_folder(cli, db_path: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.csv").write_text(GOOD.read_text())      # beside the export, not in it
    export = tmp_path / "bucket"
    export.mkdir()
    (export / "report-Manifest.json").write_text(json.dumps({"assemblyId": "a1", "reportKeys": ["/secret.csv"]}))
    r = cli("--db", str(db_path), "import", str(export))
    _one_line_error(r, "report-Manifest.json:1", "manifest lists /secret.csv but the file is not there")


def test_unreadable_file_is_a_data_error_naming_the_file(db_path: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Permission denied as the importer meets it (root reads everything, so the error is injected at open)."""
    import builtins

    path = tmp_path / "locked.csv"
    path.write_text(GOOD.read_text())
    real_open = builtins.open

    def denying_open(file, *a, **k):  # noqa: ANN001, ANN002, ANN003 - the builtin's signature
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", denying_open)
    conn = connect(db_path)
    try:
        with pytest.raises(DataError) as exc:
            import_paths(conn, [path])
    finally:
        conn.close()
    assert exc.value.exit_code == 3
    assert exc.value.line().startswith(f"{path}: cannot read the file (Permission denied)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a mode-000 file; the in-process test covers it")
def test_unreadable_file_through_the_cli(cli, db_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "locked.csv"
    path.write_text(GOOD.read_text())
    path.chmod(0)
    _one_line_error(cli("--db", str(db_path), "import", str(path)), "locked.csv", "cannot read the file")


def test_missing_path_is_still_a_usage_error(cli, db_path: Path, tmp_path: Path) -> None:
    r = cli("--db", str(db_path), "import", str(tmp_path / "nope.csv"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    # one line: what, where, what to do
    assert r.stderr.strip() == (f"gpuspend: {tmp_path / 'nope.csv'}: no such file or folder (pass a billing export: "
                                "a CSV, CSV.gz, Parquet or JSONL file, or its folder)")


# ---------------------------------------------------------------- amortized only, no currency

def test_amortized_only_azure_has_no_billed_cost_and_the_report_says_so(cli, db_path: Path) -> None:
    r = cli("--db", str(db_path), "import", str(FIXTURES / "azure_ea_amortizedcost.csv"))
    assert r.returncode == 0, r.stderr
    rep = cli("--db", str(db_path), "--report", "--no-sample", "--format", "json")
    assert rep.returncode == 0, rep.stderr                     # not 1 ("alerts active") from a crash
    assert "Traceback" not in rep.stderr
    doc = json.loads(rep.stdout)
    assert any("no billed cost (amortized only)" in n for n in doc["notes"]), doc["notes"]
    text = cli("--db", str(db_path), "--report", "--no-sample")
    assert text.returncode == 0 and "no billed cost (amortized only)" in text.stdout


def test_amortized_only_billing_summary_reads(db_path: Path) -> None:
    """The billing screen's data: reading it must not fail (the screen stayed at "loading..." for ever)."""
    from gpuspend.config import load_config
    from gpuspend.costing.month import billing_summary

    conn = connect(db_path)
    try:
        import_paths(conn, [FIXTURES / "azure_ea_amortizedcost.csv"])
        s = billing_summary(conn, load_config(None), "2026-11")
        assert s.services == () and s.gpu_skus == ()            # no billed money to rank
        assert [c[1] for c in s.coverage] == ["azure-amortized/8611537"]
    finally:
        conn.close()


def test_focus_without_currency_takes_the_configured_one_and_says_so(cli, db_path: Path, tmp_path: Path) -> None:
    rows = list(csv.reader(_lines(GOOD)))
    k = rows[0].index("BillingCurrency")
    path = tmp_path / "no-currency.csv"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([r[:k] + r[k + 1:] for r in rows])
    cfg = tmp_path / "gpuspend.yaml"
    cfg.write_text("currency: EUR\n")
    r = cli("--config", str(cfg), "--db", str(db_path), "import", "--json", str(path))
    assert r.returncode == 0, r.stderr
    [f] = json.loads(r.stdout)["files"]
    assert {p["currency"] for p in f["periods"]} == {"EUR"}
    assert f["notes"] == ["no BillingCurrency column: amounts read as EUR (the `currency` setting)"]
    text = cli("--config", str(cfg), "--db", str(tmp_path / "b.db"), "import", str(path)).stdout
    assert "note: no BillingCurrency column: amounts read as EUR" in text


# ---------------------------------------------------------------- what the command says

def test_a_one_row_export_says_1_row_and_its_money(cli, db_path: Path, tmp_path: Path) -> None:
    """A late-arriving correction is often one row: "1 row", not "1 rows", on both lines the command prints."""
    path = _write(tmp_path / "one.csv", _lines(GOOD)[:2])
    r = cli("--db", str(db_path), "import", str(path))
    assert r.returncode == 0, r.stderr
    head, period = r.stdout.splitlines()[:2]
    assert head.endswith("focus, 1 row (1 GPU) imported"), head
    assert period.strip() == "period 2026-11 USD: billed $98.32, effective $70.50, 1 row", period


def test_a_large_quantity_is_not_an_amount(cli, db_path: Path, tmp_path: Path) -> None:
    """Usage in byte-seconds runs past 10^15 (a TB stored for a month is 2.6e18): only amounts are bounded."""
    lines = _lines(GOOD)
    header = lines[0].split(",")
    q = header.index("ConsumedQuantity")
    row = lines[2].split(",")
    row[q] = "2.6e18"
    path = _write(tmp_path / "bytes.csv", [lines[0], ",".join(row)])
    r = cli("--db", str(db_path), "import", str(path))
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------- currency codes

def _imported_with_currency(cli, db_path: Path, tmp_path: Path, cell: str) -> dict:
    """focus_gpu.csv with its second row's BillingCurrency written as `cell`, imported: the file's summary."""
    lines = _lines(GOOD)
    path = _write(tmp_path / "cur.csv", [*lines[:2], lines[2].replace(",USD,", f",{cell},", 1), *lines[3:]])
    r = cli("--db", str(db_path), "import", "--json", str(path))
    assert r.returncode == 0, r.stderr
    [f] = json.loads(r.stdout)["files"]
    return f


def test_a_lower_case_currency_is_the_same_currency(cli, db_path: Path, tmp_path: Path) -> None:
    """One row writing `usd`: a second "usd" month beside USD put its $98.32 outside the USD budget."""
    f = _imported_with_currency(cli, db_path, tmp_path, "usd")
    assert {p["currency"] for p in f["periods"]} == {"USD", "EUR"}
    # every USD row of focus_gpu.csv: 98.32 + 98.32 + 32.77 + 1.25 - 5.5 - 20 + 12.34 + 88.49
    assert round(sum(p["billed_cost"] for p in f["periods"] if p["currency"] == "USD"), 2) == 305.99


def test_an_empty_currency_cell_is_a_bad_row(cli, db_path: Path, seeded: str, tmp_path: Path) -> None:
    """The import wrote its money as "98.32 ?" while the report counted it as USD."""
    lines = _lines(GOOD)
    path = _write(tmp_path / "cur.csv", [*lines[:2], lines[2].replace(",USD,", ",,", 1), *lines[3:]])
    r = cli("--db", str(db_path), "import", str(path))
    _one_line_error(r, "cur.csv:3", "BillingCurrency: missing a value (it is required)")
    assert dump(db_path) == seeded


def test_a_cell_that_is_no_currency_code_is_kept_apart_and_said(cli, db_path: Path, tmp_path: Path) -> None:
    f = _imported_with_currency(cli, db_path, tmp_path, "US$")
    assert "BillingCurrency 'US$' is not an ISO 4217 currency code" in " ".join(f["notes"])
    odd = [p for p in f["periods"] if p["currency"] == "US$"]
    assert [round(p["billed_cost"], 2) for p in odd] == [98.32]


@pytest.mark.parametrize(("old", "new", "what"), [
    # the billing period swapped: its $98.32 moved into a "period 2026-12"
    ("2026-11-01T00:00:00Z,2026-12-01T00:00:00Z,", "2026-12-01T00:00:00Z,2026-11-01T00:00:00Z,",
     "BillingPeriodStart: cannot read '2026-12-01T00:00:00Z to 2026-11-01T00:00:00Z' as a period that ends at or "
     "after it starts"),
    ("2026-11-10T01:00:00Z,2026-11-10T02:00:00Z,", "2026-11-10T02:00:00Z,2026-11-10T01:00:00Z,",
     "ChargePeriodStart: cannot read '2026-11-10T02:00:00Z to 2026-11-10T01:00:00Z' as a period that ends at or "
     "after it starts"),
])
def test_a_period_that_ends_before_it_starts_is_a_bad_row(old: str, new: str, what: str, cli, db_path: Path,
                                                          seeded: str, tmp_path: Path) -> None:
    lines = _lines(GOOD)
    assert old in lines[2]
    path = _write(tmp_path / "back.csv", [*lines[:2], lines[2].replace(old, new, 1), *lines[3:]])
    r = cli("--db", str(db_path), "import", str(path))
    _one_line_error(r, "back.csv:3", what)
    assert dump(db_path) == seeded


def test_a_month_exported_again_with_focus_1_2s_provider_column_replaces_it(cli, db_path: Path,
                                                                            tmp_path: Path) -> None:
    """FOCUS 1.2 names the provider in ServiceProviderName (ProviderName is deprecated): the same month in
    the newer layout is the same slice, so it replaces the first import instead of doubling the month."""
    lines = _lines(GOOD)
    newer = _write(tmp_path / "focus12.csv", [lines[0].replace(",ProviderName,", ",ServiceProviderName,"),
                                              *lines[1:]])
    for path in (GOOD, newer):
        r = cli("--db", str(db_path), "import", str(path))
        assert r.returncode == 0, r.stderr
    conn = sqlite3.connect(db_path)
    try:
        usd = conn.execute("SELECT ROUND(SUM(billed_cost), 2) FROM charges WHERE currency = 'USD'").fetchone()[0]
    finally:
        conn.close()
    assert usd == 305.99          # focus_gpu.csv's USD rows once, not 611.98

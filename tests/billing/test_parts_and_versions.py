"""Parts and versions of one billing period: decided by what the files carry, never by file names or the
order of import. Money is computed by hand from the rows each test writes."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from gpuspend.collectors.billing.importer import import_paths, summary_json
from gpuspend.store import connect
from tests.billing.helpers import dump

AZURE = ["billingAccountId", "billingPeriodStartDate", "billingPeriodEndDate", "date", "meterId", "meterName",
         "meterCategory", "SubscriptionId", "ResourceId", "quantity", "unitOfMeasure", "costInBillingCurrency",
         "billingCurrency", "chargeType"]
# (meter, resource, $ per day): a GPU VM and its disk
METERS = [("m-vm", "/subscriptions/s1/vm/gpu01", 100.0), ("m-disk", "/subscriptions/s1/disk/d1", 5.0)]


def azure_run(path: Path, days: int, *, period: tuple[str, str] = ("2026-11-01", "2026-11-30"),
              vm_cost: float = 100.0) -> Path:
    """A month-to-date Azure cost-details run: every day 1..days, both meters."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8-sig") as fh:
        w = csv.writer(fh)
        w.writerow(AZURE)
        for d in range(1, days + 1):
            for meter, res, cost in METERS:
                c = vm_cost if meter == "m-vm" else cost
                w.writerow(["MCA-1", *period, f"2026-11-{d:02d}", meter, meter, "Virtual Machines", "s1", res,
                            24, "1 Hour", c, "USD", "Usage"])
    return path


CUR2 = ["bill_billing_period_start_date", "bill_billing_period_end_date", "bill_payer_account_id",
        "line_item_usage_account_id", "line_item_line_item_type", "line_item_usage_start_date",
        "line_item_usage_end_date", "line_item_product_code", "line_item_usage_type", "line_item_resource_id",
        "line_item_usage_amount", "line_item_currency_code", "line_item_unblended_cost"]


def cur2_rows(hours: range, resource: str, cost: float) -> list[list[object]]:
    return [["2026-11-01T00:00:00.000Z", "2026-12-01T00:00:00.000Z", "5555", "5555", "Usage",
             f"2026-11-{1 + h // 24:02d}T{h % 24:02d}:00:00.000Z",
             f"2026-11-{1 + (h + 1) // 24:02d}T{(h + 1) % 24:02d}:00:00.000Z",
             "AmazonEC2", "BoxUsage:p5.48xlarge", resource, 1, "USD", cost] for h in hours]


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def conn(db_path: Path):
    c = connect(db_path)
    yield c
    c.close()


def billed(conn) -> tuple[int, float]:
    n, s = conn.execute("SELECT COUNT(*), SUM(billed_cost) FROM charges").fetchone()
    return n, round(s or 0.0, 6)


def test_cur2_data_folder_without_metadata_keeps_every_part(conn, tmp_path: Path) -> None:
    """One export run split in two parts (different line items over the same hours): both are kept."""
    data = tmp_path / "gpu-export" / "data" / "BILLING_PERIOD=2026-11"
    write_csv(data / "gpu-export-00001.csv", CUR2, cur2_rows(range(48), "i-aaa", 98.32))
    write_csv(data / "gpu-export-00002.csv", CUR2, cur2_rows(range(48), "i-bbb", 32.77))
    results = import_paths(conn, [tmp_path / "gpu-export"])
    assert [r.status for r in results] == ["imported", "imported"]
    assert billed(conn) == (96, round(48 * 98.32 + 48 * 32.77, 6))        # 6292.32, not one part's 4719.36
    out = summary_json(results)
    assert sorted(Path(p).name for p in out["kept"]) == ["gpu-export-00001.csv", "gpu-export-00002.csv"]
    assert out["superseded"] == []


def test_part_imported_later_is_added_not_a_replacement(conn, tmp_path: Path) -> None:
    a = write_csv(tmp_path / "a" / "part-1.csv", CUR2, cur2_rows(range(24), "i-aaa", 10.0))
    b = write_csv(tmp_path / "b" / "part-0.csv", CUR2, cur2_rows(range(24), "i-bbb", 1.0))
    import_paths(conn, [a])
    [r] = import_paths(conn, [b])
    assert r.status == "imported" and billed(conn) == (48, 264.0)          # 24 x 10 + 24 x 1


def test_daily_azure_runs_keep_only_the_newest_whatever_the_names(conn, tmp_path: Path) -> None:
    """A folder of daily month-to-date costreport_<guid>.csv runs: successive runs are versions."""
    folder = tmp_path / "costreport" / "20261101-20261130"
    # guid names sort opposite to the runs' age
    azure_run(folder / "costreport_ffff0000-run-day3.csv", 3)
    azure_run(folder / "costreport_aaaa1111-run-day5.csv", 5)
    azure_run(folder / "costreport_cccc2222-run-day4.csv", 4)
    results = import_paths(conn, [tmp_path / "costreport"])
    assert billed(conn) == (10, 525.0)                                       # days 1..5 x ($100 + $5), once
    status = {Path(r.path).name: r.status for r in results}
    assert status == {"costreport_aaaa1111-run-day5.csv": "imported",
                      "costreport_cccc2222-run-day4.csv": "superseded",
                      "costreport_ffff0000-run-day3.csv": "superseded"}
    out = summary_json(results)
    assert [Path(p).name for p in out["kept"]] == ["costreport_aaaa1111-run-day5.csv"]
    assert {Path(s["path"]).name: [Path(b).name for b in s["by"]] for s in out["superseded"]} == {
        "costreport_cccc2222-run-day4.csv": ["costreport_aaaa1111-run-day5.csv"],
        "costreport_ffff0000-run-day3.csv": ["costreport_aaaa1111-run-day5.csv"]}


def test_older_export_after_a_newer_one_changes_nothing_and_says_so(cli, db_path: Path, tmp_path: Path) -> None:
    new = azure_run(tmp_path / "mtd-newer.csv", 9)
    old = azure_run(tmp_path / "mtd-older.csv", 5, vm_cost=90.0)
    assert cli("--db", str(db_path), "import", str(new)).returncode == 0
    before = dump(db_path)
    r = cli("--db", str(db_path), "import", "--json", str(old))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["changed"] is False and out["kept"] == []
    assert out["superseded"] == [{"path": str(old), "by": [str(new.resolve())], "why": [
        "the newer one's usage reaches further (to 2026-11-10 00:00 UTC; the other to 2026-11-06 00:00 UTC)"]}]
    assert dump(db_path) == before                                           # byte for byte the same rows
    text = cli("--db", str(db_path), "import", str(old)).stdout
    assert "superseded by" in text and "nothing changed" in text
    conn = connect(db_path)
    try:
        assert billed(conn) == (18, 945.0)                                   # 9 x 105: the newer month stays
    finally:
        conn.close()


def test_newer_export_replaces_and_names_what_it_replaced(conn, tmp_path: Path) -> None:
    old = azure_run(tmp_path / "x" / "run.csv", 5)
    import_paths(conn, [old])
    [r] = import_paths(conn, [azure_run(tmp_path / "y" / "run.csv", 7)])
    assert r.status == "imported" and r.supersedes == [str(old.resolve())]
    assert billed(conn) == (14, 735.0)                                       # 7 x 105
    out = summary_json([r])
    assert out["superseded"] == [{"path": str(old.resolve()), "by": [r.path], "why": [
        "the newer one's usage reaches further (to 2026-11-08 00:00 UTC; the other to 2026-11-06 00:00 UTC)"],
        "previously_imported": True}]


FOCUS = ["BillingAccountId", "BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd",
         "ChargeCategory", "BilledCost", "EffectiveCost", "BillingCurrency", "ProviderName", "ServiceName",
         "ResourceId", "x_ExportDateTime"]


def focus_version(path: Path, exported: str, cost: float) -> Path:
    rows = [["A1", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", f"2026-11-{d:02d}T00:00:00Z",
             f"2026-11-{d + 1:02d}T00:00:00Z", "Usage", cost, cost, "USD", "AWS", "EC2", "i-1", exported]
            for d in range(1, 4)]
    return write_csv(path, FOCUS, rows)


@pytest.mark.parametrize("order", ["old-first", "new-first"])
def test_export_time_decides_between_restatements_of_the_same_days(conn, tmp_path: Path, order: str) -> None:
    """Same coverage, restated amounts: the later x_ExportDateTime wins in either order of import."""
    old = focus_version(tmp_path / "z-first.csv", "2026-11-04T06:00:00Z", 10.0)
    new = focus_version(tmp_path / "a-restated.csv", "2026-11-05T06:00:00Z", 12.0)
    os.utime(new, (1, 1))          # an old mtime: the file's own export time decides, not the file system
    for f in ([old, new] if order == "old-first" else [new, old]):
        import_paths(conn, [f])
    assert billed(conn) == (3, 36.0)
    assert conn.execute("SELECT path, export_time FROM imports").fetchall() == [(str(new.resolve()), 1793858400)]   # 2026-11-05T06:00:00Z


def azure_manifest_run(root: Path, run_id: str, submitted: str, vm_cost: float) -> Path:
    run = root / run_id
    azure_run(run / "part_1.csv", 3, vm_cost=vm_cost)
    (run / "manifest.json").write_text(json.dumps({
        "exportConfig": {"exportName": "gpu-export", "type": "ActualCost", "timeFrame": "MonthToDate"},
        "runInfo": {"runId": run_id, "submittedTime": submitted, "startDate": "2026-11-01T00:00:00"},
        "blobs": [{"blobName": f"{run_id}/part_1.csv"}]}))
    return run


def test_azure_manifest_runs_ordered_by_submitted_time_not_import_order(conn, db_path: Path, tmp_path: Path) -> None:
    """Two runs restating the same three days: the later-submitted run stays, imported first or last."""
    newer = azure_manifest_run(tmp_path, "run-b", "2026-11-04T08:00:00Z", 110.0)
    older = azure_manifest_run(tmp_path, "run-a", "2026-11-04T02:00:00Z", 100.0)
    import_paths(conn, [newer])
    before = dump(db_path)
    [r] = import_paths(conn, [older])
    assert r.status == "superseded" and dump(db_path) == before
    assert billed(conn) == (6, 345.0)                                        # 3 x ($110 + $5)


def test_run_split_by_day_next_to_an_older_run(conn, tmp_path: Path) -> None:
    """The newest run in two parts (days 1-3, days 4-5) beside the previous run (days 1-4): the two parts."""
    rows = list(csv.reader(azure_run(tmp_path / "whole.csv", 5).read_text(encoding="utf-8-sig").splitlines()))
    (tmp_path / "whole.csv").unlink()
    folder = tmp_path / "exports"
    folder.mkdir()
    for name, part in (("b-part.csv", rows[1:7]), ("c-part.csv", rows[7:])):
        with open(folder / name, "w", newline="") as fh:
            csv.writer(fh).writerows([rows[0], *part])
    azure_run(folder / "a-previous-run.csv", 4)
    results = import_paths(conn, [folder])
    assert {Path(r.path).name: r.status for r in results} == {
        "a-previous-run.csv": "superseded", "b-part.csv": "imported", "c-part.csv": "imported"}
    assert billed(conn) == (10, 525.0)                                       # 5 days x $105, no day twice


def test_reimporting_a_folder_with_a_new_run_reports_the_stored_run_as_superseded(conn, tmp_path: Path) -> None:
    folder = tmp_path / "costreport"
    azure_run(folder / "costreport_bbbb.csv", 3)
    import_paths(conn, [folder])
    azure_run(folder / "costreport_aaaa.csv", 4)                           # the next day's run lands beside it
    results = import_paths(conn, [folder])
    assert {Path(r.path).name: r.status for r in results} == {"costreport_aaaa.csv": "imported",
                                                              "costreport_bbbb.csv": "superseded"}
    out = summary_json(results)
    assert [Path(p).name for p in out["kept"]] == ["costreport_aaaa.csv"]
    assert [Path(s["path"]).name for s in out["superseded"]] == ["costreport_bbbb.csv"]
    assert billed(conn) == (8, 420.0)                                        # 4 x $105
    assert [r.status for r in import_paths(conn, [folder])] == ["unchanged", "superseded"]

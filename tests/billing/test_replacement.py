"""Replacement not append, idempotent re-import, and manifests deciding the current version."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from pathlib import Path

import pytest

from gpuspend.collectors.billing.importer import import_paths
from gpuspend.store import connect
from tests.billing.helpers import FIXTURES, dump

HEADER = ["BillingAccountId", "BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd",
          "ChargeCategory", "BilledCost", "EffectiveCost", "BillingCurrency", "ProviderName", "ServiceName"]


def focus_file(path: Path, days: int, cost: float = 10.0, account: str = "A1", month: str = "2026-11") -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for d in range(1, days + 1):
            w.writerow([account, f"{month}-01T00:00:00Z", "2026-12-01T00:00:00Z", f"{month}-{d:02d}T00:00:00Z",
                        f"{month}-{d:02d}T23:59:59Z", "Usage", cost, cost, "USD", "AWS", "EC2"])
    return path


@pytest.fixture
def conn(db_path: Path):
    c = connect(db_path)
    yield c
    c.close()


def totals(conn) -> tuple[int, float]:
    n, s = conn.execute("SELECT COUNT(*), SUM(billed_cost) FROM charges").fetchone()
    return n, s or 0.0


def test_newer_month_to_date_export_replaces_the_older(conn, tmp_path: Path) -> None:
    import_paths(conn, [focus_file(tmp_path / "mtd-day5.csv", 5)])
    assert totals(conn) == (5, 50.0)
    import_paths(conn, [focus_file(tmp_path / "mtd-day9.csv", 9)])
    assert totals(conn) == (9, 90.0)                         # not 14 rows / 140
    assert conn.execute("SELECT COUNT(*), MAX(coverage_end) FROM imports").fetchone() == (1, 1794268799)   # 2026-11-09T23:59:59Z


def test_other_accounts_and_periods_are_left_alone(conn, tmp_path: Path) -> None:
    import_paths(conn, [focus_file(tmp_path / "a.csv", 3, account="A1")])
    import_paths(conn, [focus_file(tmp_path / "b.csv", 2, account="B2")])
    import_paths(conn, [focus_file(tmp_path / "oct.csv", 4, account="A1", month="2026-10")])
    assert totals(conn) == (9, 90.0)
    import_paths(conn, [focus_file(tmp_path / "a2.csv", 4, cost=7.0, account="A1")])   # A1's next version
    assert totals(conn) == (10, 88.0)


def test_same_file_twice_changes_nothing(conn, db_path: Path, tmp_path: Path) -> None:
    f = focus_file(tmp_path / "mtd.csv", 5)
    import_paths(conn, [f])
    before = dump(db_path)
    [res] = import_paths(conn, [f])
    assert res.unchanged and res.rows == 5
    assert dump(db_path) == before


def _cur_assembly(root: Path, assembly: str, cost: str) -> None:
    """<report>/20261101-20261201/<assemblyId>/<report>-1.csv.gz plus the per-assembly manifest."""
    period = root / "cur" / "gpuspend-cur" / "20261101-20261201"
    folder = period / assembly
    folder.mkdir(parents=True)
    src = (FIXTURES / "aws_cur_legacy.csv").read_text()
    lines = src.splitlines()
    # Change the first line item's cost so each version has its own total.
    first = lines[1].split(",")
    first[14] = cost
    data = "\n".join([lines[0], ",".join(first), *lines[2:]]) + "\n"
    with gzip.open(folder / "gpuspend-cur-1.csv.gz", "wt") as fh:
        fh.write(data)
    manifest = {"assemblyId": assembly, "account": "999988887777", "compression": "GZIP",
                "billingPeriod": {"start": "20261101T000000.000Z", "end": "20261201T000000.000Z"},
                "reportKeys": [f"cur/gpuspend-cur/20261101-20261201/{assembly}/gpuspend-cur-1.csv.gz"]}
    (folder / "gpuspend-cur-Manifest.json").write_text(json.dumps(manifest))
    (period / "gpuspend-cur-Manifest.json").write_text(json.dumps(manifest))   # top level: the current one


def test_cur_manifest_decides_the_current_assembly(conn, tmp_path: Path) -> None:
    export = tmp_path / "bucket"
    _cur_assembly(export, "11111111-aaaa", "100")
    [r1] = import_paths(conn, [export])
    _cur_assembly(export, "22222222-bbbb", "200")            # a newer update; the old folder stays
    [r2] = import_paths(conn, [export])
    assert "22222222-bbbb" in r2.path
    assert r2.as_json()["periods"][0]["billed_cost"] == pytest.approx(r1.as_json()["periods"][0]["billed_cost"] + 100)
    assert conn.execute("SELECT version_id FROM imports").fetchall() == [("22222222-bbbb",)]
    assert totals(conn)[0] == 12                              # one version's rows, never both
    [r3] = import_paths(conn, [export])
    assert r3.unchanged


def test_cur2_manifest_lists_the_data_files(conn, tmp_path: Path) -> None:
    root = tmp_path / "exports" / "gpu-export"
    data = root / "data" / "BILLING_PERIOD=2026-11"
    data.mkdir(parents=True)
    shutil.copy(FIXTURES / "aws_cur2.csv", data / "gpu-export-00001.csv")
    shutil.copy(FIXTURES / "aws_cur2.csv", data / "stale-leftover-00001.csv")    # not in the manifest
    meta = root / "metadata" / "BILLING_PERIOD=2026-11"
    meta.mkdir(parents=True)
    (meta / "gpu-export-Manifest.json").write_text(json.dumps({
        "executionId": "exec-1", "exportArn": "arn:aws:bcm-data-exports:us-east-1:555566667777:export/gpu-export",
        "dataFiles": ["s3://bucket/exports/gpu-export/data/BILLING_PERIOD=2026-11/gpu-export-00001.csv"]}))
    results = import_paths(conn, [root])
    assert [Path(r.path).name for r in results] == ["gpu-export-00001.csv"]
    assert totals(conn)[0] == 3


def test_manifest_naming_a_missing_file_is_an_error(conn, db_path: Path, tmp_path: Path) -> None:
    from gpuspend.errors import DataError

    m = tmp_path / "x-Manifest.json"
    m.write_text(json.dumps({"assemblyId": "a", "reportKeys": ["x/gone-1.csv.gz"]}))
    before = dump(db_path)
    with pytest.raises(DataError, match="gone-1.csv.gz"):
        import_paths(conn, [tmp_path])
    assert dump(db_path) == before


def test_correction_in_a_later_export_does_not_touch_the_closed_month(conn, shared_dir: Path, tmp_path) -> None:
    corr = shared_dir / "billing-samples" / "focus-corrections"
    import_paths(conn, [corr / "scenario_2_late_arriving_usage_delta.csv"])
    import_paths(conn, [corr / "scenario_2_late_arriving_usage_replacement.csv"])
    rows = conn.execute("SELECT billing_period_start, charge_period_start, charge_class, billed_cost FROM charges "
                        "ORDER BY billing_period_start").fetchall()
    # June period holds the May correction; July its own intra-period row; (null) read as null.
    assert rows == [(1748736000, 1746057600, "Correction", 1500.0), (1751328000, 1751328000, None, 1500.0)]


def test_azure_manifest_names_the_dataset_and_run(conn, tmp_path: Path) -> None:
    """Azure exports: the manifest's run id is the version and its type says actual or amortised."""
    run = tmp_path / "costs" / "20261101-20261130" / "gpu-export" / "202611151200" / "guid-1"
    run.mkdir(parents=True)
    shutil.copy(FIXTURES / "azure_ea_amortizedcost.csv", run / "part_0_0001.csv")   # the name says nothing
    (run / "part_0_0001.csv").rename(run / "part_1.csv")
    (run / "manifest.json").write_text(json.dumps({
        "exportConfig": {"exportName": "gpu-export", "type": "AmortizedCost", "timeFrame": "MonthToDate"},
        "runInfo": {"runId": "run-42", "startDate": "2026-11-01T00:00:00"},
        "blobs": [{"blobName": "costs/20261101-20261130/gpu-export/202611151200/guid-1/part_1.csv", "byteCount": 1}]}))
    [res] = import_paths(conn, [tmp_path / "costs"])
    assert conn.execute("SELECT source, version_id FROM imports").fetchall() == [("azure-amortized", "run-42")]
    assert conn.execute("SELECT COUNT(*) FROM charges WHERE billed_cost IS NULL").fetchone()[0] == res.rows == 3
    assert import_paths(conn, [tmp_path / "costs"])[0].unchanged


def test_bulk_import_rebuilds_the_indexes(conn, db_path: Path, tmp_path: Path, monkeypatch) -> None:
    """Big first imports drop and rebuild the charges index; after success or failure it is there."""
    from gpuspend.collectors.billing import importer
    from gpuspend.errors import DataError

    monkeypatch.setattr(importer, "BULK_MIN_ROWS", 1)
    monkeypatch.setattr(importer, "BYTES_PER_ROW", 1)

    def indexes() -> list[tuple]:
        return conn.execute("SELECT name, sql FROM sqlite_master WHERE tbl_name = 'charge_lines' AND type = 'index' "
                            "ORDER BY name").fetchall()

    before = indexes()
    assert [name for name, _sql in before] == ["charges_import"]
    import_paths(conn, [focus_file(tmp_path / "a.csv", 9)])
    assert indexes() == before and totals(conn) == (9, 90.0)
    plan = " ".join(r[-1] for r in conn.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM charges WHERE import_id = 1").fetchall())
    assert "charges_import" in plan
    bad = tmp_path / "bad.csv"
    bad.write_text((tmp_path / "a.csv").read_text().replace("2026-11-03T00:00:00Z", "never"))
    with pytest.raises(DataError):
        import_paths(conn, [bad])
    assert indexes() == before and totals(conn) == (9, 90.0)

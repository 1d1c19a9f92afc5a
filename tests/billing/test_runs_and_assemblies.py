"""Which version of a billing period is kept, from what the files carry and never from names or the order of
import: AWS legacy CUR assemblies without an export time, export runs split in parts, and the export times
that CUR 2.0 manifests carry. Money is computed by hand from the rows each test writes."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest

from gpuspend.collectors.billing.importer import import_paths, summary_json
from gpuspend.store import connect
from tests.billing.helpers import dump

CUR = ["identity/LineItemId", "bill/PayerAccountId", "bill/BillingPeriodStartDate", "bill/BillingPeriodEndDate",
       "lineItem/UsageAccountId", "lineItem/LineItemType", "lineItem/UsageStartDate", "lineItem/UsageEndDate",
       "lineItem/ProductCode", "lineItem/UsageType", "lineItem/ResourceId", "lineItem/UsageAmount",
       "lineItem/CurrencyCode", "lineItem/UnblendedCost", "product/instanceType"]
PERIOD = "20261101-20261201"


def cur_rows(hours: range, resource: str, cost: float) -> list[list[object]]:
    """Hourly p5.48xlarge usage of one instance, `cost` an hour."""
    return [[f"{resource}-{h}", "999988887777", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", "111100001111",
             "Usage", f"2026-11-{1 + h // 24:02d}T{h % 24:02d}:00:00Z",
             f"2026-11-{1 + (h + 1) // 24:02d}T{(h + 1) % 24:02d}:00:00Z", "AmazonEC2",
             "USE1-BoxUsage:p5.48xlarge", resource, 1, "USD", cost, "p5.48xlarge"] for h in hours]


def assembly(report: Path, aid: str, rows: list[list[object]], *, current: bool) -> Path:
    """<report>/<period>/<assemblyId>/<name>-1.csv.gz + its manifest; `current`: also the period's top-level
    manifest (AWS rewrites it on every update to name the current assembly)."""
    folder = report / PERIOD / aid
    folder.mkdir(parents=True)
    with gzip.open(folder / "gpu-cur-1.csv.gz", "wt", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CUR)
        w.writerows(rows)
    manifest = json.dumps({"assemblyId": aid, "account": "999988887777", "reportName": "gpu-cur",
                           "billingPeriod": {"start": "20261101T000000.000Z", "end": "20261201T000000.000Z"},
                           "reportKeys": [f"gpu-cur/{PERIOD}/{aid}/gpu-cur-1.csv.gz"]})
    (folder / "gpu-cur-Manifest.json").write_text(manifest)
    if current:
        (report / PERIOD / "gpu-cur-Manifest.json").write_text(manifest)
    return folder


@pytest.fixture
def conn(db_path: Path):
    c = connect(db_path)
    yield c
    c.close()


def billed(conn) -> tuple[int, float]:
    n, s = conn.execute("SELECT COUNT(*), SUM(billed_cost) FROM charges").fetchone()
    return n, round(s or 0.0, 6)


def versions(conn) -> list[str]:
    return [v for (v,) in conn.execute("SELECT version_id FROM imports ORDER BY id")]


# --------------------------------------------------------------------------- legacy CUR assemblies

def two_assemblies(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The same 48 hours restated (a rate correction): nothing in the rows or the manifests says which is
    newer, except the export's layout: the top-level manifest names bbbb, and aaaa's folder lies beside it."""
    report = tmp_path / "bucket" / "gpu-cur"
    old = assembly(report, "aaaa1111-older", cur_rows(range(48), "i-p5", 98.32), current=False)
    new = assembly(report, "bbbb2222-newer", cur_rows(range(48), "i-p5", 90.00), current=True)
    return tmp_path / "bucket", old, new


def test_older_cur_assembly_imported_after_the_current_one_changes_nothing(cli, db_path: Path,
                                                                            tmp_path: Path) -> None:
    bucket, old, new = two_assemblies(tmp_path)
    assert cli("--db", str(db_path), "import", str(bucket)).returncode == 0
    before = dump(db_path)
    r = cli("--db", str(db_path), "import", "--json", str(old))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["changed"] is False and out["kept"] == []
    [s] = out["superseded"]
    assert Path(s["path"]).parent.name == "aaaa1111-older" and Path(s["by"][0]).parent.name == "bbbb2222-newer"
    assert "older assembly" in s["why"][0]
    assert dump(db_path) == before                                   # byte for byte as before
    text = cli("--db", str(db_path), "import", str(old)).stdout
    assert "superseded by" in text and "older assembly" in text and "nothing changed" in text
    c = connect(db_path)
    try:
        assert billed(c) == (48, 4320.0)                             # 48 h x $90.00: the current assembly
        assert versions(c) == ["bbbb2222-newer"]
    finally:
        c.close()


@pytest.mark.parametrize("order", ["old-then-new", "new-then-old", "folders-new-then-old"])
def test_current_cur_assembly_wins_whatever_the_order(conn, tmp_path: Path, order: str) -> None:
    bucket, old, new = two_assemblies(tmp_path)
    if order == "old-then-new":
        steps = [old, bucket]
    elif order == "new-then-old":
        steps = [bucket, old]
    else:                          # each assembly folder on its own: the manifest above each says which is current
        steps = [new, old]
    for p in steps:
        import_paths(conn, [p])
    assert versions(conn) == ["bbbb2222-newer"] and billed(conn) == (48, 4320.0)


def test_assemblies_without_layout_are_ordered_by_coverage_then_line_items(conn, tmp_path: Path) -> None:
    """Assembly folders copied alone (no top-level manifest): the one that reaches further wins, in both orders;
    at the same reach, the one with more line items (a late credit) wins."""
    a = assembly(tmp_path / "a" / "gpu-cur", "aaaa", cur_rows(range(24), "i-p5", 98.32), current=False)
    b = assembly(tmp_path / "b" / "gpu-cur", "bbbb", cur_rows(range(36), "i-p5", 98.32), current=False)
    import_paths(conn, [b])
    [r] = import_paths(conn, [a])
    assert r.status == "superseded" and "reaches further" in r.why[0]
    assert billed(conn) == (36, round(36 * 98.32, 6))                # 3539.52
    credit = cur_rows(range(36), "i-p5", 98.32) + [[
        "credit-1", "999988887777", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", "111100001111", "Credit",
        "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", "AmazonEC2", "USE1-BoxUsage:p5.48xlarge", "i-p5", 0, "USD",
        -100, "p5.48xlarge"]]
    c = assembly(tmp_path / "c" / "gpu-cur", "cccc", credit, current=False)
    import_paths(conn, [c])
    [r] = import_paths(conn, [b])                                    # b again, after c: older, nothing changes
    assert r.status == "superseded" and "more line items" in r.why[0]
    assert versions(conn) == ["cccc"] and billed(conn) == (37, round(36 * 98.32 - 100, 6))   # 3439.52


def test_restatement_nothing_tells_apart_replaces_the_stored_one_and_says_why(conn, tmp_path: Path) -> None:
    """Same hours, same line items, no export time, no layout: a re-issued period. The one imported last wins
    and the output says that nothing in the files told them apart."""
    a = assembly(tmp_path / "a" / "gpu-cur", "aaaa", cur_rows(range(24), "i-p5", 98.32), current=False)
    b = assembly(tmp_path / "b" / "gpu-cur", "bbbb", cur_rows(range(24), "i-p5", 90.0), current=False)
    import_paths(conn, [b])
    [r] = import_paths(conn, [a])
    assert r.status == "imported" and len(r.supersedes) == 1
    [s] = summary_json([r])["superseded"]
    assert "nothing in the files says which is newer" in s["why"][0]
    assert billed(conn) == (24, round(24 * 98.32, 6))                        # 2359.68


# --------------------------------------------------------------------------- parts of one run

CUR2 = ["bill_billing_period_start_date", "bill_billing_period_end_date", "bill_payer_account_id",
        "line_item_usage_account_id", "line_item_line_item_type", "line_item_usage_start_date",
        "line_item_usage_end_date", "line_item_product_code", "line_item_usage_type", "line_item_resource_id",
        "line_item_usage_amount", "line_item_currency_code", "line_item_unblended_cost"]


def cur2_part(path: Path, hours: range, resource: str, cost: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CUR2)
        w.writerows(["2026-11-01T00:00:00.000Z", "2026-12-01T00:00:00.000Z", "5555", "5555", "Usage",
                     f"2026-11-{1 + h // 24:02d}T{h % 24:02d}:00:00.000Z",
                     f"2026-11-{1 + (h + 1) // 24:02d}T{(h + 1) % 24:02d}:00:00.000Z",
                     "AmazonEC2", "BoxUsage:p5.48xlarge", resource, 1, "USD", cost] for h in hours)
    return path


def run(folder: Path, hours: int) -> tuple[Path, Path]:
    """One export run in two parts: i-aaa at $10/h and i-bbb at $1/h, hours 0..hours-1."""
    return (cur2_part(folder / "gpu-export-00001.csv", range(hours), "i-aaa", 10.0),
            cur2_part(folder / "gpu-export-00002.csv", range(hours), "i-bbb", 1.0))


def test_one_part_of_a_newer_run_does_not_replace_the_whole_older_run(cli, db_path: Path, tmp_path: Path) -> None:
    old1, old2 = run(tmp_path / "day2" / "data", 48)
    new1, _new2 = run(tmp_path / "day3" / "data", 72)
    assert cli("--db", str(db_path), "import", str(tmp_path / "day2")).returncode == 0
    before = dump(db_path)
    r = cli("--db", str(db_path), "import", "--json", str(new1))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["changed"] is False and out["kept"] == [] and out["superseded"] == []
    [held] = out["incomplete"]
    assert held["path"] == str(new1)
    assert held["kept_instead"] == sorted([str(old1.resolve()), str(old2.resolve())])
    assert "gpu-export-00002.csv" in held["why"][0] and "48 of the 96 line items" in held["why"][0]
    assert [f["status"] for f in out["files"]] == ["incomplete"]
    assert dump(db_path) == before                                   # i-bbb's money is still there
    text = cli("--db", str(db_path), "import", str(new1)).stdout
    assert "other parts are missing" in text and "nothing changed" in text
    c = connect(db_path)
    try:
        assert billed(c) == (96, 528.0)                              # 48 h x ($10 + $1), the older run whole
        import_paths(c, [tmp_path / "day3"])                         # the whole newer run: replaces it
        assert billed(c) == (144, 792.0)                             # 72 h x ($10 + $1)
    finally:
        c.close()


@pytest.mark.parametrize("order", ["together", "part-first", "run-first"])
def test_incomplete_newer_run_and_complete_older_run_in_any_order(conn, tmp_path: Path, order: str) -> None:
    run(tmp_path / "old", 48)
    new1, _ = run(tmp_path / "new", 72)
    (tmp_path / "new" / "gpu-export-00002.csv").unlink()            # only part 1 of the newer run is here
    paths = {"together": [[tmp_path / "old", new1]], "part-first": [[new1], [tmp_path / "old"]],
             "run-first": [[tmp_path / "old"], [new1]]}[order]
    for step in paths:
        import_paths(conn, step)
    assert billed(conn) == (96, 528.0)                               # the complete older run: 48 x $11


def test_newer_run_split_by_day_needs_both_parts(conn, tmp_path: Path) -> None:
    """The newest run as two parts by time (hours 0..47 and 48..71) beside the previous run (hours 0..59)."""
    prev = [cur2_part(tmp_path / "prev" / "p.csv", range(60), "i-aaa", 10.0)]
    late = cur2_part(tmp_path / "next" / "b.csv", range(48, 72), "i-aaa", 10.0)
    early = cur2_part(tmp_path / "next" / "a.csv", range(48), "i-aaa", 10.0)
    import_paths(conn, prev)
    [r] = import_paths(conn, [late])                                 # reaches further, but hours 0..47 are missing
    assert r.status == "incomplete" and billed(conn) == (60, 600.0)
    results = import_paths(conn, [early, late])
    assert [x.status for x in results] == ["imported", "imported"] and billed(conn) == (72, 720.0)


def test_a_manifest_run_replaces_the_older_run_as_a_whole(conn, tmp_path: Path) -> None:
    """A manifest lists every part: a run of one file supersedes a stored run of two (i-bbb really ended)."""
    run(tmp_path / "old", 48)
    import_paths(conn, [tmp_path / "old"])
    root = tmp_path / "export" / "gpu-export"
    cur2_part(root / "data" / "BILLING_PERIOD=2026-11" / "gpu-export-00001.csv", range(72), "i-aaa", 10.0)
    meta = root / "metadata" / "BILLING_PERIOD=2026-11"
    meta.mkdir(parents=True)
    (meta / "gpu-export-Manifest.json").write_text(json.dumps({
        "executionId": "exec-2", "dataFiles": ["s3://b/gpu-export/data/BILLING_PERIOD=2026-11/gpu-export-00001.csv"]}))
    [r] = import_paths(conn, [root])
    assert r.status == "imported" and len(r.supersedes) == 2
    assert billed(conn) == (72, 720.0)


# --------------------------------------------------------------------------- export times in manifests

def cur2_manifest_run(root: Path, execution: str, field: str, exported: str, cost: float) -> Path:
    """A CUR 2.0 export delivered with create-new: one folder per execution, the manifest with its time."""
    run_dir = root / execution
    cur2_part(run_dir / "data" / "BILLING_PERIOD=2026-11" / "part-00001.csv", range(24), "i-aaa", cost)
    meta = run_dir / "metadata" / "BILLING_PERIOD=2026-11"
    meta.mkdir(parents=True)
    (meta / "gpu-export-Manifest.json").write_text(json.dumps({
        "executionId": execution, field: exported,
        "dataFiles": [f"s3://b/{execution}/data/BILLING_PERIOD=2026-11/part-00001.csv"]}))
    return run_dir


@pytest.mark.parametrize("field", ["dataExportTime", "exportTime", "lastUpdated"])
@pytest.mark.parametrize("order", ["old-first", "new-first"])
def test_cur2_manifest_export_time_orders_restatements(conn, tmp_path: Path, field: str, order: str) -> None:
    """Same 24 hours restated: the later manifest time wins, whatever the order and the ids' sort order."""
    newer = cur2_manifest_run(tmp_path, "aaaa-exec", field, "2026-11-03T08:00:00Z", 12.0)
    older = cur2_manifest_run(tmp_path, "zzzz-exec", field, "2026-11-02T08:00:00Z", 10.0)
    for p in ([older, newer] if order == "old-first" else [newer, older]):
        results = import_paths(conn, [p])
    assert billed(conn) == (24, 288.0)                               # 24 x $12
    assert conn.execute("SELECT version_id, export_time FROM imports").fetchall() == [("aaaa-exec", 1793692800)]
    if order == "new-first":
        assert results[-1].status == "superseded" and "exported later" in results[-1].why[0]
    out = summary_json(results)                                      # of the second import
    assert [Path(s["path"]).parts[-4] for s in out["superseded"]] == ["zzzz-exec"]
    assert "exported later" in out["superseded"][0]["why"][0]


def test_legacy_cur_manifest_time_when_present(conn, tmp_path: Path) -> None:
    older = assembly(tmp_path / "a" / "gpu-cur", "aaaa", cur_rows(range(24), "i-p5", 98.32), current=False)
    newer = assembly(tmp_path / "b" / "gpu-cur", "bbbb", cur_rows(range(24), "i-p5", 90.0), current=False)
    for folder, t in ((older, "2026-11-02T00:00:00Z"), (newer, "2026-11-03T00:00:00Z")):
        m = folder / "gpu-cur-Manifest.json"
        m.write_text(json.dumps({**json.loads(m.read_text()), "lastUpdated": t}))
    import_paths(conn, [newer])
    [r] = import_paths(conn, [older])
    assert r.status == "superseded" and "exported later" in r.why[0]
    assert billed(conn) == (24, 2160.0)

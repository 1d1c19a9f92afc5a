"""A month's CUR 2.0 export repeats each line item every hour. The importer reads, checks and classifies what
describes an item once per distinct item (normalise.itemize) and binds it once per batch: the rows it stores, the
totals it reports and the bad lines it names are exactly those of reading every row on its own, in CSV and in
Parquet, with Savings Plan rows whose amortised cost differs from their cash cost."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from gpuspend.collectors.billing import normalise
from gpuspend.collectors.billing.importer import import_paths
from gpuspend.collectors.billing.normalise import FIELDS
from gpuspend.errors import DataError
from gpuspend.store import connect
from tests.billing.helpers import stored_charges

HOURS = 200
START = "2026-11-{d:02d}T{h:02d}:00:00.000Z"
HEADER = ["bill_billing_period_start_date", "bill_billing_period_end_date", "bill_payer_account_id",
          "line_item_usage_account_id", "line_item_line_item_type", "line_item_usage_start_date",
          "line_item_usage_end_date", "line_item_product_code", "line_item_usage_type", "line_item_resource_id",
          "line_item_usage_amount", "line_item_currency_code", "line_item_unblended_cost",
          "savings_plan_savings_plan_effective_cost", "line_item_line_item_description", "product_instance_type",
          "product_region_code", "product_sku", "pricing_unit", "resource_tags"]


def _at(hour: int) -> str:
    return START.format(d=1 + hour // 24, h=hour % 24)


def _month() -> tuple[list[list[str]], dict[str, float]]:
    """(rows, hand totals): per hour, a p5 box on demand (its cost climbing a cent an hour), a second p5 under a
    Savings Plan (cash $98.32, amortised $61.10), an S3 bucket; one tax row at the end."""
    rows: list[list[str]] = []
    billed = effective = 0.0
    for h in range(HOURS):
        s, e = _at(h), _at(h + 1)
        od = round(98.32 + h * 0.01, 2)
        rows.append(["2026-11-01T00:00:00.000Z", "2026-12-01T00:00:00.000Z", "555566667777", "555566667777",
                     "Usage", s, e, "AmazonEC2", "USE2-BoxUsage:p5.48xlarge", "i-0ondemand", "1", "USD", f"{od}",
                     "", "p5.48xlarge on demand", "p5.48xlarge", "us-east-2", "P5SKU", "Hrs",
                     '{"user_team": "llm"}'])
        rows.append(["2026-11-01T00:00:00.000Z", "2026-12-01T00:00:00.000Z", "555566667777", "111122223333",
                     "SavingsPlanCoveredUsage", s, e, "AmazonEC2", "USE2-BoxUsage:p5.48xlarge", "i-0planned", "1",
                     "USD", "98.32", "61.10", "p5.48xlarge covered by a Savings Plan", "p5.48xlarge", "us-east-2",
                     "P5SKU", "Hrs", '{"user_team": "vision"}'])
        rows.append(["2026-11-01T00:00:00.000Z", "2026-12-01T00:00:00.000Z", "555566667777", "555566667777",
                     "Usage", s, e, "AmazonS3", "TimedStorage-ByteHrs", "training-data", "1000", "USD", "0.032", "",
                     "$0.023 per GB-Mo", "", "us-east-2", "S3SKU", "GB-Mo", "{}"])
        billed += od + 98.32 + 0.032
        effective += od + 61.10 + 0.032
    rows.append(["2026-11-01T00:00:00.000Z", "2026-12-01T00:00:00.000Z", "555566667777", "555566667777", "Tax",
                 "2026-11-01T00:00:00.000Z", "2026-12-01T00:00:00.000Z", "AmazonEC2", "", "", "1", "USD", "9.83",
                 "", "Tax", "", "", "", "", ""])
    return rows, {"billed": billed + 9.83, "effective": effective + 9.83}


def _csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        w.writerows(rows)
    return path


def _parquet(csv_path: Path, path: Path) -> Path:
    """The same rows as AWS writes them: typed timestamps and amounts."""
    ts = pa.timestamp("ms", tz="UTC")
    types = {c: ts for c in HEADER if c.endswith("_date")}
    types.update({c: pa.float64() for c in ("line_item_usage_amount", "line_item_unblended_cost",
                                            "savings_plan_savings_plan_effective_cost")})
    types.update({c: pa.string() for c in HEADER if c not in types})
    table = pacsv.read_csv(csv_path, convert_options=pacsv.ConvertOptions(column_types=types))
    pq.write_table(table, path)
    return path


def _stored(db: Path) -> list[tuple]:
    return stored_charges(db, line=False)


def _import(db: Path, path: Path, **kw) -> list:
    conn = connect(db)
    try:
        return import_paths(conn, [path], **kw)
    finally:
        conn.close()


@pytest.mark.parametrize("container", ["csv", "parquet"])
def test_itemized_rows_are_the_rows_read_one_by_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    container: str) -> None:
    rows, hand = _month()
    src = _csv(tmp_path / "cur2.csv", rows)
    if container == "parquet":
        src = _parquet(src, tmp_path / "cur2.parquet")
    [fast] = _import(tmp_path / "fast.db", src)
    stored = _stored(tmp_path / "fast.db")
    assert len(stored) == 3 * HOURS + 1
    billed = sum(r[FIELDS.index("billed_cost")] for r in stored)
    effective = sum(r[FIELDS.index("effective_cost")] for r in stored)
    # by hand: on demand 200 x 98.32 + 0.01 x (0 + ... + 199) = 19,863.00; planned 200 x 98.32 = 19,664.00 cash,
    # 200 x 61.10 = 12,220.00 amortised; S3 200 x 0.032 = 6.40; tax 9.83
    assert billed == pytest.approx(39_543.23, abs=1e-6) == hand["billed"]
    assert effective == pytest.approx(32_099.23, abs=1e-6) == hand["effective"]
    assert fast.gpu_rows == 2 * HOURS
    monkeypatch.setattr(normalise, "ITEM_MAX_SHARE", -1)                 # every field read and bound per row
    [plain] = _import(tmp_path / "plain.db", src)
    assert fast.as_json() == plain.as_json()
    assert stored == _stored(tmp_path / "plain.db")


def test_the_same_rows_from_csv_and_parquet(tmp_path: Path) -> None:
    rows, _hand = _month()
    src = _csv(tmp_path / "cur2.csv", rows)
    _import(tmp_path / "csv.db", src)
    _import(tmp_path / "pq.db", _parquet(src, tmp_path / "cur2.parquet"))
    assert _stored(tmp_path / "csv.db") == _stored(tmp_path / "pq.db")


def test_a_bad_line_item_names_its_first_line_and_skips_every_row_of_it(tmp_path: Path) -> None:
    rows, _hand = _month()
    bad = [i for i, r in enumerate(rows) if r[9] == "i-0planned"][50:]      # from hour 50 on, broken tags
    for i in bad:
        rows[i][-1] = '{"user_team": '
    src = _csv(tmp_path / "cur2.csv", rows)
    db = tmp_path / "g.db"
    with pytest.raises(DataError) as exc:
        _import(db, src)
    assert exc.value.where == f"{src}:{bad[0] + 2}"                   # the first such line (line 1: header)
    assert "resource_tags" in exc.value.message
    assert _stored(db) == []
    [res] = _import(db, src, skip_bad_rows=True)
    assert res.skipped_rows == len(bad) == HOURS - 50
    assert res.bad_lines == [i + 2 for i in bad[:5]]
    assert len(_stored(db)) == 3 * HOURS + 1 - len(bad)


def test_a_bad_amount_names_its_own_line(tmp_path: Path) -> None:
    rows, _hand = _month()
    rows[301][12] = "12,50"                                             # a row of an item met 100 times already
    src = _csv(tmp_path / "cur2.csv", rows)
    with pytest.raises(DataError) as exc:
        _import(tmp_path / "g.db", src)
    assert exc.value.where == f"{src}:303"
    assert "line_item_unblended_cost" in exc.value.message


def _count(db: Path, sql: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


def test_each_line_item_is_stored_once_and_leaves_with_its_import(tmp_path: Path) -> None:
    """Store v18: 601 rows of 4 line items are 4 `charge_items` and 601 `charge_lines`. A newer run of the same
    month replaces the older one, its items with it: nothing is left that no line or import refers to."""
    rows, _hand = _month()
    db = tmp_path / "g.db"
    _import(db, _csv(tmp_path / "older.csv", rows[:3 * 100] + rows[-1:]))     # the first 100 hours
    assert _count(db, "SELECT COUNT(*) FROM charge_items") == 4
    assert _count(db, "SELECT COUNT(*) FROM charge_lines") == 301
    [newer] = _import(db, _csv(tmp_path / "newer.csv", rows))                # the same month, 200 hours
    assert newer.supersedes == [str(tmp_path / "older.csv")]
    assert _count(db, "SELECT COUNT(*) FROM charge_items") == 4
    assert _count(db, "SELECT COUNT(*) FROM charge_lines") == 3 * HOURS + 1
    assert _count(db, "SELECT COUNT(*) FROM charge_items WHERE import_id NOT IN (SELECT id FROM imports)") == 0
    assert _count(db, "SELECT COUNT(*) FROM charge_items WHERE id NOT IN (SELECT item_id FROM charge_lines)") == 0
    assert _count(db, "SELECT COUNT(*) FROM charge_lines WHERE item_id NOT IN (SELECT id FROM charge_items)") == 0


def test_rows_written_through_the_charges_view_read_back(tmp_path: Path) -> None:
    """Older tools and tests write `charges` rows directly: each becomes an item and a line, and reads back."""
    db = tmp_path / "g.db"
    conn = connect(db)
    try:
        conn.execute("INSERT INTO imports (id, path, sha256, format, source, rows, gpu_rows, skipped_rows, "
                     "imported_at) VALUES (1, 'x.csv', 'x', 'focus', 'focus:aws', 2, 1, 0, 0)")
        conn.execute("INSERT INTO charges (import_id, line, charge_period_start, charge_period_end, billed_cost, "
                     "currency, service, is_gpu, gpu_model) VALUES (1, 2, 10, 3610, 98.32, 'USD', 'EC2', 1, 'H100')")
        conn.execute("INSERT INTO charges (import_id, line, billed_cost, service) VALUES (1, 3, 0.5, 'S3')")
        got = conn.execute("SELECT line, charge_period_start, billed_cost, currency, service, is_gpu, gpu_model "
                           "FROM charges ORDER BY id").fetchall()
        assert got == [(2, 10, 98.32, "USD", "EC2", 1, "H100"), (3, None, 0.5, None, "S3", 0, None)]
        conn.execute("DELETE FROM charges WHERE line = 3")
        assert conn.execute("SELECT line FROM charges").fetchall() == [(2,)]
    finally:
        conn.close()


def test_an_item_met_again_in_a_later_batch_is_stored_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next hours of a resource (or the next day of a daily export) come in later batches: still one item."""
    from gpuspend.collectors.billing import reader

    monkeypatch.setattr(reader, "BLOCK_SIZE", 4096)         # ~25 rows a batch: 20-odd batches
    monkeypatch.setattr(reader, "BATCH_BYTES", 1)
    rows, _hand = _month()
    db = tmp_path / "g.db"
    [res] = _import(db, _csv(tmp_path / "cur2.csv", rows))
    assert res.rows == 3 * HOURS + 1
    assert _count(db, "SELECT COUNT(*) FROM charge_items") == 4
    assert _stored(db) == _stored_plain(tmp_path, rows, monkeypatch)


def _stored_plain(tmp_path: Path, rows: list[list[str]], monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    from gpuspend.collectors.billing import importer

    monkeypatch.setattr(importer, "ITEMS_CACHED", -1)          # every batch stores its items afresh
    db = tmp_path / "plain.db"
    _import(db, _csv(tmp_path / "plain.csv", rows))
    assert _count(db, "SELECT COUNT(*) FROM charge_items") > 4
    return _stored(db)

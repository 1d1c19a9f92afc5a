"""Store v14 (resource ids and billing accounts stored once): an import keeps each as an id into `charge_texts`,
`charges` reads back the file's values, and everything that finds this machine's rows by its resource id (the month's local
usage, the billing-derived rate) reads the same from rows stored either way. A v13 database (ids inline)
migrates without rewriting, and a newer export imported on top replaces its rows, never adds to them."""

from __future__ import annotations

import csv
import sqlite3
import time
from pathlib import Path

from gpuspend import pricing, store
from gpuspend.collectors.billing.importer import import_paths
from gpuspend.costing.month import month_billing
from gpuspend.store import connect
from tests.billing.helpers import store_copy_at
from tests.costing.builders import cfg_from

NOW_S = 1794744000          # 2026-11-15 12:00 UTC
MONTH = "2026-11"
MONTH_START_S = 1793491200    # 2026-11-01 00:00 UTC
V14_FIELDS = ("resource_id", "billing_account")      # inline in v13, text ids from v14 on
ARN = "arn:aws:ec2:us-east-1:111122223333:instance/i-0aaa111p5"
HEADER = ["BillingAccountId", "BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd",
          "ChargeCategory", "BilledCost", "EffectiveCost", "BillingCurrency", "ProviderName", "ServiceName",
          "ResourceId", "x_InstanceType", "ConsumedQuantity", "ConsumedUnit"]


def export(path: Path, days: int) -> Path:
    """A month-to-date export: per day of `days`, 24 hourly rows of this box (by ARN, $4/h, 8 GPUs) and of
    another instance ($1/h), and one storage row: each resource id repeats on every hour, as in a real CUR."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for d in range(1, days + 1):
            for h in range(24):
                a, b = _iso(d, h), _iso(d, h + 1)
                w.writerow(["A1", f"{MONTH}-01T00:00:00Z", "2026-12-01T00:00:00Z", a, b, "Usage", 4.0, 4.0, "USD",
                            "AWS", "EC2", ARN, "p5.48xlarge", 1, "Hrs"])
                w.writerow(["A1", f"{MONTH}-01T00:00:00Z", "2026-12-01T00:00:00Z", a, b, "Usage", 1.0, 1.0, "USD",
                            "AWS", "EC2", "i-0other", "m5.large", 1, "Hrs"])
            w.writerow(["A1", f"{MONTH}-01T00:00:00Z", "2026-12-01T00:00:00Z", _iso(d, 0), _iso(d, 24), "Usage", 0.5, 0.5, "USD", "AWS", "EBS", "vol-0ccc333", "",
                        100, "GB-Mo"])
    return path


def _iso(day: int, hour: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(MONTH_START_S + (day - 1) * 86400 + hour * 3600))


def _v13_copy_of(ref: sqlite3.Connection, path: Path) -> None:
    """A database as schema v13 left it (resource ids and accounts inline in `charge_rows`), holding the
    reference's rows."""
    store_copy_at(13, path, ref, ("imports", "charge_rows", "charge_texts", "meta"),
                  {c: f"COALESCE({c}, (SELECT text FROM charge_texts t WHERE t.id = {c}_tid))" for c in V14_FIELDS})


def _local(conn: sqlite3.Connection, cfg) -> tuple:
    """What the month and the rate read of this box's rows, found by its resource id."""
    mb = month_billing(conn, cfg, MONTH)
    rate = pricing._from_billing(cfg, conn, {"host": "box1"}, None)
    return mb.local, mb.other, mb.covered, rate


def test_an_import_stores_each_resource_id_once_and_charges_reads_it_back(tmp_path: Path) -> None:
    conn = connect(tmp_path / "g.db")
    try:
        import_paths(conn, [export(tmp_path / "mtd.csv", 3)], now_s=NOW_S)
        stored = conn.execute("SELECT resource_id, billing_account FROM charges ORDER BY id").fetchall()
        with open(tmp_path / "mtd.csv", newline="") as fh:
            assert stored == [(r["ResourceId"], r["BillingAccountId"]) for r in csv.DictReader(fh)]
        assert conn.execute("SELECT COUNT(resource_id), COUNT(resource_id_tid), COUNT(billing_account), "
                            "COUNT(billing_account_tid) FROM charge_rows").fetchone() == (0, 3 * 49, 0, 3 * 49)
        assert conn.execute("SELECT COUNT(*) FROM charge_texts WHERE text IN (?, ?, ?, ?)",
                            (ARN, "i-0other", "vol-0ccc333", "A1")).fetchone()[0] == 4
    finally:
        conn.close()


def test_this_machines_rows_read_the_same_whether_its_id_is_stored_inline_or_as_a_text_id(tmp_path: Path) -> None:
    """Matched by the bare instance id (the ARN ends in it), as the asset tag names it."""
    cfg = cfg_from(tmp_path, "billing:\n  resource_id: i-0aaa111p5\n")
    ref = connect(tmp_path / "ref.db")
    import_paths(ref, [export(tmp_path / "mtd-day3.csv", 3)], now_s=NOW_S)
    _v13_copy_of(ref, tmp_path / "old.db")
    old = connect(tmp_path / "old.db")
    try:
        assert old.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
        assert old.execute("SELECT COUNT(resource_id), COUNT(resource_id_tid), COUNT(billing_account), "
                           "COUNT(billing_account_tid) FROM charge_rows").fetchone() == (3 * 49, 0, 3 * 49, 0)
        assert old.execute("SELECT * FROM charges ORDER BY id").fetchall() == \
            ref.execute("SELECT * FROM charges ORDER BY id").fetchall()
        local, other, covered, rate = _local(ref, cfg)
        # by hand: this box $4 x 24 h a day; the other instance $24 and the volume $0.50 a day are not this box
        assert {d: round(v, 6) for d, v in local["USD"].items()} == {f"{MONTH}-0{d}": 96.0 for d in (1, 2, 3)}
        assert {d: round(v, 6) for d, v in other["USD"].items()} == {f"{MONTH}-0{d}": 24.5 for d in (1, 2, 3)}
        assert rate is not None and round(rate.per_gpu_hour, 6) == 0.5          # $4/h over 8 GPUs
        assert _local(old, cfg) == (local, other, covered, rate)
    finally:
        ref.close()
    try:
        # day 5 of the same month, ids stored as text ids: the same line items as the inline day-3 rows, a version
        [res] = import_paths(old, [export(tmp_path / "mtd-day5.csv", 5)], now_s=NOW_S)
        assert res.status == "imported"
        assert old.execute("SELECT COUNT(*), SUM(billed_cost) FROM charges").fetchone() == (5 * 49, 5 * 120.5)
        assert old.execute("SELECT COUNT(resource_id) FROM charge_rows").fetchone()[0] == 0
        assert {d: round(v, 6) for d, v in _local(old, cfg)[0]["USD"].items()} == \
            {f"{MONTH}-0{d}": 96.0 for d in range(1, 6)}
    finally:
        old.close()

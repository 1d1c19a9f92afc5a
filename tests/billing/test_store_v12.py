"""Store v12 (billing imports write less per row): a v11 database holding imported charges migrates to the same
rows and the same month figures, and the month and report queries still read `charges` through an index."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gpuspend import costing, store
from gpuspend.collectors.billing.importer import import_paths
from gpuspend.costing.month import billing_summary, month_billing
from gpuspend.store import connect
from tests.billing.helpers import FIXTURES, store_copy_at
from tests.costing.builders import cfg_from

NOW_MS = 1794744000000          # 2026-11-15 12:00 UTC, inside the fixtures' billing period
MONTH = "2026-11"
TABLES = ("imports", "charges", "meta")


def _v11_copy_of(ref: sqlite3.Connection, path: Path) -> None:
    """A database exactly as schema v11 left it, holding the reference's imports, charges and meta rows."""
    store_copy_at(11, path, ref, TABLES)
    conn = sqlite3.connect(path)
    assert "charges_charge_start" in _indexes(conn)
    conn.close()


def _indexes(conn: sqlite3.Connection) -> set[str]:
    """The charges table's indexes (`charge_rows` from v13 on, the rows behind the `charges` view; `charge_lines`
    from v18 on, the rows behind `charge_rows`)."""
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' "
                                       "AND tbl_name IN ('charges', 'charge_rows', 'charge_lines')")}


def _figures(conn: sqlite3.Connection, cfg) -> tuple:
    snap = costing.build_snapshot(conn, cfg, NOW_MS, month=MONTH)
    months = sorted((m.currency, m.billed, m.projection) for m in snap.months)
    mb = month_billing(conn, cfg, MONTH)
    summary = billing_summary(conn, cfg, MONTH, now_ms=NOW_MS)
    return months, mb, summary.days, summary.services, summary.gpu_skus, summary.coverage


def test_a_v11_database_with_charges_migrates_with_the_same_month_figures(tmp_path: Path) -> None:
    cfg = cfg_from(tmp_path, "provider: aws\n")
    ref = connect(tmp_path / "ref.db")
    for name in ("focus_gpu.csv", "aws_cur2.csv"):
        import_paths(ref, [FIXTURES / name], now_s=NOW_MS // 1000)
    assert ref.execute("SELECT COUNT(*) FROM charges").fetchone()[0] > 10
    _v11_copy_of(ref, tmp_path / "old.db")
    conn = connect(tmp_path / "old.db")
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
        assert _indexes(conn) == _indexes(ref) == {"charges_import"}          # charges_period: gone in v15
        assert conn.execute("SELECT * FROM charges ORDER BY id").fetchall() == \
            ref.execute("SELECT * FROM charges ORDER BY id").fetchall()
        assert _figures(conn, cfg) == _figures(ref, cfg)
        # and the migrated store imports on top like a fresh one: a re-import is unchanged, nothing rewritten
        [again] = import_paths(conn, [FIXTURES / "focus_gpu.csv"], now_s=NOW_MS // 1000)
        assert again.status == "unchanged"
    finally:
        conn.close()
        ref.close()


def test_month_and_report_queries_on_charges_use_an_index(tmp_path: Path) -> None:
    """What the month figures, the billing summary and the importer ask of `charges` goes by import id
    (charges_import: a month's periods through their imports, store v15), never a full scan."""
    conn = connect(tmp_path / "g.db")
    period, pargs = store.period_match(0, 1)
    queries = [
        (f"SELECT COALESCE(currency, 'USD'), SUM(billed_cost) FROM charges WHERE {period} GROUP BY 1", pargs),
        (f"SELECT service, service_tid, SUM(billed_cost) AS t, MAX(is_gpu) FROM charge_rows WHERE {period} "
         "AND currency = ? GROUP BY service, service_tid", (*pargs, "USD")),
        ("SELECT charge_period_start, charge_period_end FROM charges WHERE import_id = ?", (1,)),
        ("DELETE FROM charge_lines WHERE import_id = ?", (1,)),
        ("DELETE FROM charge_items WHERE import_id = ?", (1,)),
    ]
    try:
        for sql, args in queries:
            plan = " ".join(r[-1] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))
            assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, (sql, plan)
    finally:
        conn.close()

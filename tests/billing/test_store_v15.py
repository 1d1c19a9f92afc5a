"""Store v15: a month's billed rows are found through their imports (store.period_match), not by an index on each
row's own billing period. That holds because every import row is one billing period's slice: checked here on
every fixture and public sample, with rows of several periods and accounts in one file, replaced versions and
a month of two currencies, against the rows' own periods."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gpuspend import store
from gpuspend.collectors.billing.importer import import_paths
from gpuspend.costing.month import billing_summary
from gpuspend.store import connect
from tests.billing.helpers import FIXTURES
from tests.billing.test_conformance import CSV_SAMPLES
from tests.costing.builders import cfg_from

NOW_S = 1794744000              # 2026-11-15 12:00 UTC


def _by_import(conn: sqlite3.Connection, lo: int, hi: int) -> list[int]:
    period, args = store.period_match(lo, hi)
    return [r[0] for r in conn.execute(f"SELECT id FROM charge_rows WHERE {period} ORDER BY id", args)]


def _by_row(conn: sqlite3.Connection, lo: int, hi: int) -> list[int]:
    return [r[0] for r in conn.execute("SELECT id FROM charge_rows WHERE billing_period_start >= ? "
                                       "AND billing_period_start < ? ORDER BY id", (lo, hi))]


def _every_period_reads_the_same(conn: sqlite3.Connection) -> int:
    starts = [r[0] for r in conn.execute("SELECT DISTINCT billing_period_start FROM charge_rows ORDER BY 1")
              if r[0] is not None]
    for lo in starts:
        assert _by_import(conn, lo, lo + 1) == _by_row(conn, lo, lo + 1), lo
    assert _by_import(conn, 0, 2**40) == _by_row(conn, 0, 2**40)
    return len(starts)


def test_fixtures_rows_of_a_period_are_the_rows_of_its_imports(tmp_path: Path) -> None:
    conn = connect(tmp_path / "g.db")
    for f in sorted(FIXTURES.iterdir()):
        import_paths(conn, [f], now_s=NOW_S)
    assert conn.execute("SELECT COUNT(DISTINCT currency) FROM charge_rows").fetchone()[0] >= 2
    assert _every_period_reads_the_same(conn) >= 2


def test_public_samples_rows_of_a_period_are_the_rows_of_their_imports(tmp_path: Path, shared_dir: Path) -> None:
    conn = connect(tmp_path / "g.db")
    for rel in sorted(CSV_SAMPLES):
        import_paths(conn, [shared_dir / "billing-samples" / rel], now_s=NOW_S)
    assert _every_period_reads_the_same(conn) >= 5


def test_a_replaced_version_leaves_the_month(tmp_path: Path) -> None:
    """Two month-to-date runs of one period: the month reads the newer one only, by hand $10 x 2 days then
    $10 x 3 days (the older run's rows are deleted with its import, so its period no longer finds them)."""
    head = ("BillingAccountId,BillingPeriodStart,BillingPeriodEnd,ChargePeriodStart,ChargePeriodEnd,"
            "ChargeCategory,BilledCost,EffectiveCost,BillingCurrency,ServiceName,ResourceId\n")

    def run(path: Path, days: int) -> Path:
        rows = [f"acct,2026-11-01T00:00:00Z,2026-12-01T00:00:00Z,2026-11-{d:02d}T00:00:00Z,"
                f"2026-11-{d + 1:02d}T00:00:00Z,Usage,10,10,USD,Compute,i-1\n" for d in range(1, days + 1)]
        path.write_text(head + "".join(rows))
        return path

    conn = connect(tmp_path / "g.db")
    cfg = cfg_from(tmp_path, "provider: aws\n")
    import_paths(conn, [run(tmp_path / "a.csv", 2)], now_s=NOW_S)
    [newer] = import_paths(conn, [run(tmp_path / "b.csv", 3)], now_s=NOW_S)
    assert newer.status == "imported" and newer.supersedes
    summary = billing_summary(conn, cfg, "2026-11", now_ms=NOW_S * 1000)
    assert [(d.day, d.billed) for d in summary.days if d.billed] == [
        ("2026-11-01", 10.0), ("2026-11-02", 10.0), ("2026-11-03", 10.0)]
    assert [(s.name, s.amount) for s in summary.services] == [("Compute", pytest.approx(30.0))]
    assert _every_period_reads_the_same(conn) == 1

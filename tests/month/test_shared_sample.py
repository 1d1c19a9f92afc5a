"""The shared AWS CUR sample (monthly-granularity rows whose charge period is the whole month) imported next to a
box that is metered locally: the month-long rows are billed money, never the coverage of the local meter."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gpuspend import costing
from gpuspend.collectors.billing.importer import import_paths
from tests.costing.builders import add_gpus, add_minutes, cfg_from, new_store, set_watermark

JUNE15_NOON_MS = int(datetime(2018, 6, 15, 12, tzinfo=UTC).timestamp() * 1000)
JUNE15_MS = JUNE15_NOON_MS - 12 * 3_600_000


def test_the_month_long_rows_of_the_cur_sample_do_not_freeze_today(db_path, tmp_path, shared_dir):
    sample = shared_dir / "billing-samples" / "aws-cur" / "test_cur.csv"
    conn = new_store(db_path)
    (gid,) = add_gpus(conn, 1)
    add_minutes(conn, gid, JUNE15_MS, 12 * 60)                  # an H100 at $2/h since 06-15 00:00
    set_watermark(conn, JUNE15_NOON_MS)
    import_paths(conn, [sample], now_s=JUNE15_NOON_MS // 1000)
    billed = conn.execute("SELECT SUM(billed_cost) FROM charges").fetchone()[0]
    cfg = cfg_from(tmp_path, "rates: {per_model: {H100: 2.0}}\n")
    snap = costing.build_snapshot(conn, cfg, JUNE15_NOON_MS, month="2018-06")
    (usd,) = [m for m in snap.months if m.currency == "USD"]
    # the sample's rows run 06-01 .. 07-01: billed once; the box is metered for its 12 h ($24)
    assert usd.billed == pytest.approx(billed) and usd.metered == pytest.approx(24.0)
    assert snap.today_cost == pytest.approx(24.0)               # was $0.00: coverage "ended" 07-01
    # the rows are the month's, not a daily rate: the box's $48/day for the 15.5 days left, the rows once
    assert usd.projection == pytest.approx(billed + 24.0 + 48.0 * 15.5)

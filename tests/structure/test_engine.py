"""The cost engine's structure holds its promises: one read cache whose key is right across connections and
databases, and one GPU-cloud meter that the dashboard, `--report` and /metrics all show.

Real SQLite files, the real importer, the real exporter and the real CLI; no mocks."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gpuspend import costing, metrics
from gpuspend.collectors.billing.importer import import_paths
from gpuspend.config import load_config
from gpuspend.store import connect, transaction
from tests.conftest import FIXED_NOW_S

NOW_MS = FIXED_NOW_S * 1000                 # 2026-11-15 12:00 UTC
MONTH = "2026-11"
FOCUS_HEADER = ("BillingAccountId,BillingPeriodStart,BillingPeriodEnd,ChargePeriodStart,ChargePeriodEnd,"
                "ChargeCategory,BilledCost,EffectiveCost,BillingCurrency,ProviderName,ServiceName,ResourceId")


def focus_export(path: Path, costs: list[float]) -> Path:
    """A FOCUS export for November 2026: one hourly EC2 charge per cost, from 2026-11-10 00:00 on."""
    rows = [FOCUS_HEADER]
    for h, cost in enumerate(costs):
        rows.append(f"111122223333,2026-11-01T00:00:00Z,2026-12-01T00:00:00Z,2026-11-10T{h:02d}:00:00Z,"
                    f"2026-11-10T{h + 1:02d}:00:00Z,Usage,{cost},{cost},USD,AWS,Amazon EC2,i-0{h}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def imported(db: Path, export: Path) -> None:
    """What `gpuspend import` does, on a connection of its own (a writer separate from every reader)."""
    writer = connect(db)
    try:
        import_paths(writer, [export], now_s=FIXED_NOW_S)
    finally:
        writer.close()


def mtd(conn: sqlite3.Connection, cfg) -> float:
    snap = costing.build_snapshot(conn, cfg, NOW_MS, month=MONTH)
    (usd,) = [m for m in snap.months if m.currency == "USD"]
    return usd.mtd


def scrape(ex: metrics.Exporter) -> dict[str, float]:
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(httpx.get(ex.url, timeout=5).text):
        for s in fam.samples:
            if s.labels.get("currency") == "USD":
                out[s.name] = s.value
    return out


@pytest.fixture
def cfg(tmp_path):
    p = tmp_path / "config.yaml"
    p.write_text("currency: USD\n", encoding="utf-8")
    return load_config(p)


# -- the read cache ------------------------------------------------------------------------------------------
def test_a_fresh_connection_after_another_connection_doubled_the_charges_sees_the_new_month(tmp_path, cfg):
    db = tmp_path / "gpuspend.db"
    imported(db, focus_export(tmp_path / "nov.csv", [9000.00, 8964.50]))
    reader = connect(db)
    assert mtd(reader, cfg) == pytest.approx(17964.50)
    # The export is re-issued with every charge doubled; another connection's import replaces the period.
    imported(db, focus_export(tmp_path / "nov-v2.csv", [18000.00, 17929.00]))
    for _ in range(3):
        # The exporter's way: a new connection per refresh. The old one is freed first, so the new one often
        # gets its id(), and a fresh connection's data_version and total_changes start where the old one's did.
        old = id(reader)
        reader.close()
        del reader
        reader = connect(db)
        assert mtd(reader, cfg) == pytest.approx(35929.00), f"id reused: {id(reader) == old}"
    reader.close()


def test_the_cache_never_serves_one_database_for_another(tmp_path, cfg):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    imported(a, focus_export(tmp_path / "a.csv", [100.0, 100.0]))
    imported(b, focus_export(tmp_path / "b.csv", [250.0, 250.0]))
    for db, want in ((a, 200.0), (b, 500.0), (a, 200.0), (b, 500.0)):
        conn = connect(db)           # each freed before the next opens: id() reused, same coverage end
        assert mtd(conn, cfg) == pytest.approx(want), db.name
        conn.close()
        del conn


def test_a_long_lived_reader_sees_commits_of_another_connection(tmp_path, cfg):
    db = tmp_path / "gpuspend.db"
    imported(db, focus_export(tmp_path / "nov.csv", [9000.00, 8964.50]))
    reader = connect(db)
    assert mtd(reader, cfg) == pytest.approx(17964.50)
    imported(db, focus_export(tmp_path / "nov-v2.csv", [18000.00, 17929.00]))
    assert mtd(reader, cfg) == pytest.approx(35929.00)
    reader.close()


def test_the_exporter_serves_the_new_month_to_date_after_the_charges_doubled(tmp_path, cfg):
    db = tmp_path / "gpuspend.db"
    imported(db, focus_export(tmp_path / "nov.csv", [9000.00, 8964.50]))
    ex = metrics.serve("127.0.0.1", 0, db_path=db, cfg=cfg, refresh_s=3600)
    try:
        ex.refresh()
        assert scrape(ex)["gpuspend_month_to_date"] == pytest.approx(17964.50)
        imported(db, focus_export(tmp_path / "nov-v2.csv", [18000.00, 17929.00]))
        ex.refresh()
        assert scrape(ex)["gpuspend_month_to_date"] == pytest.approx(35929.00)
    finally:
        ex.close()


# -- the GPU-cloud meter -------------------------------------------------------------------------------------
H = 3_600_000
MIN = 60_000


def lambda_polls(db: Path) -> None:
    """A Lambda instance at $36/h polled every 5 min (clouds.interval default) from 09:00 to 09:30, then
    silent for 2 h, then polled again from 11:30 to 11:55; now is 12:00. Written as the poller writes them."""
    conn = connect(db)
    day0 = NOW_MS - 12 * H
    polls = [day0 + 9 * H + k * 5 * MIN for k in range(7)] + [day0 + 11 * H + 30 * MIN + k * 5 * MIN for k in range(6)]
    with transaction(conn):
        conn.execute("INSERT INTO cloud_instances (provider, instance_id, name, gpu_model, gpu_count, price_per_hour, "
                     "currency, status, first_seen, last_seen) VALUES ('lambda', 'i-1', 'train-1', 'H100', 1, 36.0, "
                     "'USD', 'active', ?, ?)", (polls[0], polls[-1]))
        conn.executemany("INSERT INTO cloud_spend (provider, instance_id, ts, price_per_hour, running) "
                         "VALUES ('lambda', 'i-1', ?, 36.0, 1)", [(ts,) for ts in polls])
    conn.close()


# Hand-computed: 09:00-09:25 six polls x 5 min = 30 min; the 09:30 poll before the 2 h gap covers one interval
# (5 min: "a gap longer than 3 intervals is a gap, not money"); 11:30-11:50 five polls x 5 min = 25 min; the
# 11:55 poll, the last, covers up to now (5 min). 65 min at $36/h = $39.00 (the deleted meter said $45.00: it
# let the poll before a gap run on for 3 intervals).
CLOUD_TODAY = 36.0 * 65 / 60


def test_one_two_hour_poll_gap_is_one_number_on_screen_in_the_report_and_in_metrics(tmp_path, cfg, cli):
    db = tmp_path / "gpuspend.db"
    lambda_polls(db)
    conn = connect(db)
    day = costing.cloud_daily(conn, cfg, NOW_MS - 12 * H, NOW_MS + 1, NOW_MS)
    assert day == {"USD": {"2026-11-15": pytest.approx(CLOUD_TODAY)}}
    snap = costing.build_snapshot(conn, cfg, NOW_MS, month=MONTH)      # what the dashboard shows
    conn.close()
    (usd,) = snap.months
    assert snap.today_cost == pytest.approx(CLOUD_TODAY)
    assert usd.cloud == pytest.approx(CLOUD_TODAY) and usd.mtd == pytest.approx(CLOUD_TODAY)

    res = cli("--report", "--format", "json", "--no-sample", "--db", str(db), "--config", str(tmp_path / "config.yaml"))
    assert res.returncode in (0, 1), res.stderr
    doc = json.loads(res.stdout)
    assert doc["today"]["cost"] == pytest.approx(CLOUD_TODAY, abs=1e-4)
    (month,) = [m for m in doc["month"] if m["currency"] == "USD"]
    assert month["cloud"] == pytest.approx(CLOUD_TODAY, abs=1e-4)
    assert month["mtd"] == pytest.approx(CLOUD_TODAY, abs=1e-4)

    ex = metrics.serve("127.0.0.1", 0, db_path=db, cfg=cfg, refresh_s=3600)
    try:
        ex.refresh()
        got = scrape(ex)
    finally:
        ex.close()
    assert got["gpuspend_today_cost"] == pytest.approx(CLOUD_TODAY)
    assert got["gpuspend_month_to_date"] == pytest.approx(CLOUD_TODAY)


def test_there_is_one_gpu_cloud_meter():
    from gpuspend.collectors.clouds import poll

    assert not hasattr(poll, "metered_cost")

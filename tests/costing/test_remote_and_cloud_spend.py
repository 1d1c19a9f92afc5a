"""GPU-cloud GPUs in the cost engine: sampled once per cloud poll (not per collector tick), priced by their
exact instance, and their spend (RunPod/Lambda poll log, Vast.ai charges) in month-to-date exactly once.

Clock: 2026-11-15 12:00 UTC (NOW). Local rate: config per_model H100 = $2.00/GPU-h. Cloud poll: 5 min.
"""

from __future__ import annotations

import json
import sqlite3

import jsonschema
import pytest

from gpuspend import costing, forecast, pricing, rollup
from gpuspend.store import transaction
from tests.conftest import ROOT, run_cli
from tests.costing.builders import (
    DAY0_MS,
    HOUR,
    MIN,
    NOW_MS,
    add_charge,
    add_gpus,
    add_import,
    add_minutes,
    cfg_from,
    new_store,
    set_watermark,
)

CFG = "rates: {per_model: {H100: 2.0}}\ninterval: 2\n"
POLL = 5 * MIN
NOV_S = forecast.month_bounds("2026-11")[0] // 1000


def add_instance(conn: sqlite3.Connection, provider: str, instance_id: str, price: float, gpus: int = 1,
                 currency: str = "USD", last_seen: int = NOW_MS) -> None:
    with transaction(conn):
        conn.execute("INSERT INTO cloud_instances (provider, instance_id, name, gpu_model, gpu_count, price_per_hour, "
                     "currency, status, first_seen, last_seen) VALUES (?,?,?,?,?,?,?,?,?,?)",
                     (provider, instance_id, f"{provider}-{instance_id}", "H100", gpus, price, currency, "running",
                      0, last_seen))


def add_remote_gpus(conn: sqlite3.Connection, provider: str, instance_id: str, n: int = 1) -> list[int]:
    """GPU rows as collectors.clouds.poll writes them: uuid '{provider}:{instance_id}:{i}'."""
    ids = add_gpus(conn, n, host=f"{provider}-{instance_id}", source=provider)
    with transaction(conn):
        for i, gid in enumerate(ids):
            conn.execute("UPDATE gpus SET uuid = ? WHERE id = ?", (f"{provider}:{instance_id}:{i}", gid))
    return ids


def add_polls(conn: sqlite3.Connection, provider: str, instance_id: str, start_ms: int, end_ms: int,
              price: float, gpu_ids: list[int] = (), util: float | None = None) -> None:
    """One poll every 5 min in [start, end): the spend log row, and a utilisation sample per GPU."""
    with transaction(conn):
        for ts in range(start_ms, end_ms, POLL):
            conn.execute("INSERT INTO cloud_spend (provider, instance_id, ts, price_per_hour, running) "
                         "VALUES (?,?,?,?,1)", (provider, instance_id, ts, price))
            for gid in gpu_ids:
                conn.execute("INSERT INTO gpu_samples (gpu_id, ts, util) VALUES (?,?,?)", (gid, ts, util))
            conn.executemany("UPDATE gpus SET last_seen = ? WHERE id = ?", [(ts, gid) for gid in gpu_ids])


# -- 1. staleness and the gap rule use the cloud poll interval --------------------------------------------
@pytest.fixture
def idle_pod(db_path, tmp_path):
    """RunPod pod 'pod1' (1 GPU, $3.00/h) polled every 5 min from NOW-40min, utilisation 0 each time; the
    last poll was 5 min ago. 40 min idle > idle.after (15 min): an open episode of 2400 s, $2.00 so far."""
    conn = new_store(db_path)
    add_instance(conn, "runpod", "pod1", 3.0)
    (gid,) = add_remote_gpus(conn, "runpod", "pod1")
    add_polls(conn, "runpod", "pod1", NOW_MS - 40 * MIN, NOW_MS, 3.0, [gid], util=0.0)
    yield conn, gid, cfg_from(tmp_path, "interval: 2\n")       # no config rate: the pod's own price
    conn.close()


def test_remote_gpu_between_polls_is_idle_not_stale_and_opens_an_episode(idle_pod):
    conn, gid, cfg = idle_pod
    snap = costing.build_snapshot(conn, cfg, NOW_MS)
    (g,) = snap.gpus
    assert g.state == "free-idle"                     # sampled 5 min ago: fresh for a 5-min poll
    assert g.episode_open and g.episode_waste == pytest.approx(2.0)
    assert g.idle_for_s == pytest.approx(2400)
    episodes, _tl = costing.idle_episodes(conn, cfg, NOW_MS - HOUR, NOW_MS + 1, NOW_MS)
    assert [(e.gpu_id, e.start_ms, e.open) for e in episodes] == [(gid, NOW_MS - 40 * MIN, True)]
    assert episodes[0].idle_s == pytest.approx(2400)


def test_remote_gpu_is_stale_after_three_missed_polls(idle_pod, tmp_path):
    conn, _gid, cfg = idle_pod
    later = NOW_MS + 16 * MIN                          # last poll 21 min ago > 3 x 5 min
    (g,) = costing.build_snapshot(conn, cfg, later).gpus
    assert g.state == "stale"
    # a local GPU still goes stale after 3 local intervals (6 s)
    local = add_gpus(conn, 1, host="box9")[0]
    with transaction(conn):
        conn.execute("INSERT INTO gpu_samples (gpu_id, ts, util) VALUES (?,?,?)", (local, NOW_MS - 10_000, 50.0))
        conn.execute("UPDATE gpus SET last_seen = ? WHERE id = ?", (NOW_MS - 10_000, local))
    states = {x.source: x.state for x in costing.build_snapshot(conn, cfg, NOW_MS).gpus}
    assert states == {"runpod": "free-idle", "nvml": "stale"}


def test_rolled_up_remote_polls_keep_their_five_minutes(idle_pod):
    """The collector's rollup task covers each poll up to the next one, so the episode reads the same
    from rollups as from raw samples."""
    conn, gid, cfg = idle_pod
    rollup.rollup_task(conn, cfg, NOW_MS)
    covered = conn.execute("SELECT SUM(covered_s), SUM(free_idle_s) FROM gpu_minutes WHERE gpu_id = ?",
                           (gid,)).fetchone()
    assert covered == (pytest.approx(2400), pytest.approx(2400))   # 8 polls x 5 min (2 s each before)
    episodes, _tl = costing.idle_episodes(conn, cfg, NOW_MS - HOUR, NOW_MS + 1, NOW_MS)
    assert len(episodes) == 1 and episodes[0].idle_s == pytest.approx(2400)
    assert episodes[0].waste == pytest.approx(2.0)


# -- 2. a remote GPU's price comes from exactly its instance ----------------------------------------------
def test_provider_price_matches_the_instance_id_exactly(db_path, tmp_path):
    conn = new_store(db_path)
    add_instance(conn, "vast", "1", 9.0, last_seen=NOW_MS)              # seen last: a LIKE match would win
    add_instance(conn, "vast", "1000", 0.4, last_seen=NOW_MS - MIN)
    add_remote_gpus(conn, "vast", "1000")
    add_remote_gpus(conn, "vast", "10")                                  # no such instance
    add_remote_gpus(conn, "vast", "1")
    cfg = cfg_from(tmp_path, "")
    by_uuid = {g["uuid"]: pricing.resolve_rate(cfg, conn, g) for g in costing.load_gpus(conn)}
    assert by_uuid["vast:1000:0"].per_gpu_hour == pytest.approx(0.4)
    assert by_uuid["vast:1:0"].per_gpu_hour == pytest.approx(9.0)
    assert by_uuid["vast:10:0"].source == "none"
    assert pricing.remote_instance_id("runpod", "runpod:abc:def:3") == "abc:def"
    assert pricing.remote_instance_id("runpod", "vast:1:0") is None
    assert pricing.remote_instance_id("runpod", "runpod:x") is None


# -- 4. GPU-cloud spend in month-to-date, once, currencies apart --------------------------------------------
@pytest.fixture
def mixed(db_path, tmp_path):
    """One local H100 busy all of today ($2/h); AWS exports cover up to today 00:00 with one $100 charge
    (Nov 14); GPU clouds:
    - RunPod pod1, 2 GPUs, $6/h, polled NOW-10h..NOW -> $60 (its GPUs also have rollups and a provider
      rate of $3/GPU-h: that money must not be counted a second time);
    - Vast 1000, $0.40/h, polled NOW-10h..NOW; its charges cover NOW-10h..NOW-4h with $3.00 (gpu $2.50 +
      disk $0.50) -> $3.00 + metered after NOW-4h 4 h x $0.40 = $1.60 -> $4.60;
    - RunPod pod2 billed in EUR, 5 EUR/h, polled NOW-2h..NOW -> 10 EUR, on its own.
    """
    conn = new_store(db_path)
    (local,) = add_gpus(conn, 1)
    add_minutes(conn, local, DAY0_MS, 720)
    imp = add_import(conn, period_start_s=NOV_S, period_end_s=NOV_S + 30 * 86400, coverage_end_s=DAY0_MS // 1000)
    add_charge(conn, imp, start_s=DAY0_MS // 1000 - 86400, hours=24, cost=100.0, period_start_s=NOV_S)
    add_instance(conn, "runpod", "pod1", 6.0, gpus=2)
    pod_gpus = add_remote_gpus(conn, "runpod", "pod1", 2)
    add_polls(conn, "runpod", "pod1", NOW_MS - 10 * HOUR, NOW_MS, 6.0)
    for gid in pod_gpus:
        add_minutes(conn, gid, NOW_MS - 10 * HOUR, 600)
    add_instance(conn, "vast", "1000", 0.4)
    add_polls(conn, "vast", "1000", NOW_MS - 10 * HOUR, NOW_MS, 0.4)
    with transaction(conn):
        for kind, amount in (("gpu", 2.5), ("disk", 0.5)):
            conn.execute("INSERT INTO cloud_charges (provider, period_start, source, kind, start, end, amount, "
                         "currency, fetched) VALUES ('vast', ?, 'instance-1000', ?, ?, ?, ?, 'USD', ?)",
                         (NOV_S, kind, (NOW_MS - 10 * HOUR) // 1000, (NOW_MS - 4 * HOUR) // 1000, amount, NOW_MS))
    add_instance(conn, "runpod", "pod2", 5.0, currency="EUR")
    add_polls(conn, "runpod", "pod2", NOW_MS - 2 * HOUR, NOW_MS, 5.0)
    set_watermark(conn, NOW_MS)
    yield conn, cfg_from(tmp_path, CFG)
    conn.close()


def test_cloud_spend_is_in_month_to_date_once(mixed):
    conn, cfg = mixed
    snap = costing.build_snapshot(conn, cfg, NOW_MS)
    views = {v.currency: v for v in snap.months}
    usd, eur = views["USD"], views["EUR"]
    assert usd.billed == pytest.approx(100.0)
    assert usd.cloud == pytest.approx(60.0 + 4.6)
    assert usd.metered == pytest.approx(24.0 + 60.0 + 4.6)          # local + RunPod + Vast, pod1's GPUs not again
    assert usd.mtd == pytest.approx(188.6)
    # no complete day of the box yet: its rate is what it spent since its data began (today 00:00, 12 h):
    # local $24 + clouds $64.60 -> $88.60 / 12 h for the 372 h left; the $100 daily charge (billing only, to
    # today 00:00) is carried at $100/day for the 16 days after its export ends
    assert usd.projection == pytest.approx(188.6 + 88.6 / 12 * 372 + 100 * 16)
    assert (eur.billed, eur.metered, eur.cloud, eur.mtd) == (0.0, pytest.approx(10.0), pytest.approx(10.0),
                                                             pytest.approx(10.0))
    assert snap.today_cost == pytest.approx(24.0 + 64.6)             # nothing billed today yet


def test_cloud_spend_by_day_and_in_the_billing_summary(mixed):
    conn, cfg = mixed
    assert costing.cloud_daily(conn, cfg, DAY0_MS, NOW_MS + 1, NOW_MS) == {
        "USD": {"2026-11-15": pytest.approx(64.6)}, "EUR": {"2026-11-15": pytest.approx(10.0)}}
    # a window inside the Vast charges' span takes their share, and no poll money for that time
    vast_mid = costing.cloud_daily(conn, cfg, NOW_MS - 8 * HOUR, NOW_MS - 5 * HOUR, NOW_MS)
    assert vast_mid["USD"]["2026-11-15"] == pytest.approx(3.0 * 3 / 6 + 6.0 * 3)
    summary = costing.billing_summary(conn, cfg, "2026-11", NOW_MS)
    days = {d.day: (d.billed, d.metered) for d in summary.days}
    assert days["2026-11-14"] == (pytest.approx(100.0), 0.0)
    assert days["2026-11-15"] == (0.0, pytest.approx(24.0 + 64.6))


def test_vast_charges_spanning_months_count_only_inside_the_month(db_path, tmp_path):
    """A contract Oct 31 12:00 .. Nov 1 12:00 ($24, i.e. $1/h) is listed whole in both months' fetches:
    November gets its 12 h once ($12), October's fetch adds nothing to November."""
    conn = new_store(db_path)
    cfg = cfg_from(tmp_path, CFG)
    oct_s = forecast.month_bounds("2026-10")[0] // 1000
    with transaction(conn):
        for period in (oct_s, NOV_S):
            conn.execute("INSERT INTO cloud_charges (provider, period_start, source, kind, start, end, amount, "
                         "currency, fetched) VALUES ('vast', ?, 'instance-7', 'gpu', ?, ?, 24.0, 'USD', 0)",
                         (period, NOV_S - 43200, NOV_S + 43200))
    nov = costing.cloud_daily(conn, cfg, *forecast.month_bounds("2026-11"), NOW_MS)
    assert nov == {"USD": {"2026-11-01": pytest.approx(12.0)}}
    octo = costing.cloud_daily(conn, cfg, *forecast.month_bounds("2026-10"), NOW_MS)
    assert octo == {"USD": {"2026-10-31": pytest.approx(12.0)}}


def test_report_shows_cloud_spend_per_currency(mixed, db_path, tmp_path):
    base = ("--db", str(db_path), "--config", str(tmp_path / "config.yaml"), "--report", "--no-sample")
    doc = json.loads(run_cli(*base, "--format", "json").stdout)
    jsonschema.validate(doc, json.loads((ROOT / "gpuspend/data/report.schema.json").read_text()))
    months = {m["currency"]: m for m in doc["month"]}
    assert (months["USD"]["cloud"], months["EUR"]["cloud"]) == (pytest.approx(64.6), pytest.approx(10.0))
    text = run_cli(*base).stdout
    assert "2026-11 USD: to date $188.60 (billed $100.00 + metered $88.60)" in text
    assert "GPU clouds (RunPod/Lambda/Vast): $64.60" in text
    assert "2026-11 EUR: to date 10.00 EUR" in text

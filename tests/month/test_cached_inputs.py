"""The dashboard builds a snapshot every second on one long-lived connection, and the slow parts of it are
remembered between snapshots (issue 16): the projection's fits of the complete days, the GPU rates. Each test
changes one input on that connection, as a user would (a new billing import, a day that completes, a config
rate edited, a catalog price growing old), and checks that what is shown moves with it and is exactly what a
cold computation on a fresh connection gives."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest

from gpuspend import costing, forecast, pricing
from tests.costing.builders import add_gpus, add_minutes, cfg_from, new_store, set_watermark
from tests.costing.test_incremental_snapshot import cold
from tests.month.store import NOV1_S, RID, charges, day_ms, hourly, new_import

MIN = 60_000


def busy_days(conn, gids: list[int], first_day: int, until_ms: int, per_day_minutes: dict[int, int] | None = None
              ) -> None:
    """Busy rollup minutes from November `first_day` to `until_ms`; day d gets per_day_minutes[d] minutes (from
    its midnight) instead of the whole day, so the days differ and the projection has a shape to fit."""
    for gid in gids:
        day = first_day
        while day_ms(day) < until_ms:
            n = min((per_day_minutes or {}).get(day, 1440), (until_ms - day_ms(day)) // MIN)
            if n > 0:
                add_minutes(conn, gid, day_ms(day), n)
            day += 1
    set_watermark(conn, until_ms // MIN * MIN)


# Uneven days (a level change on day 6): the step search has something to find, so a stale fit would show.
MINUTES = {1: 1440, 2: 1300, 3: 1440, 4: 1380, 5: 1440, 6: 600, 7: 650, 8: 580, 9: 620, 10: 640}
RATES = "rates: {per_gpu: {'0': 2.5, '1': 3.0}}\n"


def test_a_day_that_completes_moves_the_projection_on_the_same_connection(db_path, tmp_path):
    conn = new_store(db_path)
    cfg = cfg_from(tmp_path, RATES)
    gids = add_gpus(conn, 2)
    before = day_ms(10, 23.5)
    busy_days(conn, gids, 1, before, MINUTES)
    warm_before = costing.build_snapshot(conn, cfg, before)
    assert costing.build_snapshot(conn, cfg, before) == warm_before        # the second one from what was kept
    # day 10 completes, and day 11 starts: nine complete days become ten
    for gid in gids:
        add_minutes(conn, gid, before // MIN * MIN, (day_ms(11, 1.0) - before) // MIN)
    set_watermark(conn, day_ms(11, 1.0))
    after = day_ms(11, 1.0)
    warm_after = costing.build_snapshot(conn, cfg, after)
    (m_before,), (m_after,) = warm_before.months, warm_after.months
    assert "9 complete days" in m_before.interval_note and "10 complete days" in m_after.interval_note
    assert (m_after.projection, m_after.low, m_after.high) != (m_before.projection, m_before.low, m_before.high)
    assert warm_after == cold(db_path, cfg, after)


def test_a_new_billing_import_changes_month_to_date_projection_and_the_billing_rate(db_path, tmp_path):
    conn = new_store(db_path)
    cfg = cfg_from(tmp_path, f"billing: {{resource_id: {RID}}}\n")
    gids = add_gpus(conn, 2)
    now = day_ms(12, 6.0)
    busy_days(conn, gids, 1, now)
    imp = new_import(conn, NOV1_S + 10 * 86400)
    charges(conn, imp, hourly(NOV1_S + 3 * 86400, 7 * 24, 8.0, resource_id=RID, is_gpu=True, gpu_count=2)
            + hourly(NOV1_S, 10 * 24, 1.0, service="S3"))
    first = costing.build_snapshot(conn, cfg, now)
    assert first.gpus[0].rate.source == "billing" and first.gpus[0].cost_per_hour == pytest.approx(4.0)
    assert costing.build_snapshot(conn, cfg, now) == first
    # the next export: the instance got dearer ($12/h for the two GPUs) and another service appears
    imp2 = new_import(conn, NOV1_S + 11 * 86400)
    charges(conn, imp2, hourly(NOV1_S + 10 * 86400, 24, 12.0, resource_id=RID, is_gpu=True, gpu_count=2)
            + hourly(NOV1_S, 11 * 24, 2.0, service="EBS"))
    second = costing.build_snapshot(conn, cfg, now)
    assert second.gpus[0].cost_per_hour != first.gpus[0].cost_per_hour
    assert second.gpus[0].rate.label != first.gpus[0].rate.label
    (m1,), (m2,) = first.months, second.months
    assert m2.billed > m1.billed and m2.mtd != m1.mtd and m2.projection != m1.projection
    assert second == cold(db_path, cfg, now)


def test_an_edited_config_rate_is_shown_at_once(db_path, tmp_path):
    conn = new_store(db_path)
    gids = add_gpus(conn, 2)
    now = day_ms(8, 12.0)
    busy_days(conn, gids, 1, now)
    cfg = cfg_from(tmp_path, RATES)
    first = costing.build_snapshot(conn, cfg, now)
    assert first.cost_per_hour == pytest.approx(5.5)
    # the config file edited and read again: a new Config on the same connection
    cfg2 = cfg_from(tmp_path, "rates: {per_gpu: {'0': 2.5, '1': 4.5}}\n")
    second = costing.build_snapshot(conn, cfg2, now)
    assert second.cost_per_hour == pytest.approx(7.0)
    assert "4.50" in second.gpus[1].rate.label
    assert second.months[0].projection != first.months[0].projection
    # the same Config object changed in place (as a test or an embedding program may do)
    cfg2.rates.per_gpu = {"0": 1.0, "1": 1.0}
    third = costing.build_snapshot(conn, cfg2, now)
    assert third.cost_per_hour == pytest.approx(2.0)
    assert third == cold(db_path, cfg2, now)
    assert second == cold(db_path, cfg_from(tmp_path, "rates: {per_gpu: {'0': 2.5, '1': 4.5}}\n"), now)


def test_a_catalog_price_turns_stale_at_its_second_with_the_rates_remembered(db_path, tmp_path):
    conn = new_store(db_path)
    gids = add_gpus(conn, 1)
    cfg = cfg_from(tmp_path, "provider: aws\n")
    gpus = costing.load_gpus(conn)
    m = pricing.catalog_for(conn).match("aws", pricing.gpu_model_key(gpus[0]))
    assert m is not None
    # the second this price becomes older than alerts.stale_catalog (ages count from the as_of day's start)
    flip_s = round(-pricing.age_days(m.entry.as_of, 0) * 86400) + int(cfg.alerts.stale_catalog)
    fresh = costing.resolve_rates(conn, cfg, gpus, (flip_s - 5) * 1000)
    again = costing.resolve_rates(conn, cfg, gpus, (flip_s - 4) * 1000)      # remembered
    stale = costing.resolve_rates(conn, cfg, gpus, (flip_s + 5) * 1000)
    assert again == fresh and "STALE" not in fresh[gids[0]].label
    assert "STALE" in stale[gids[0]].label
    costing.reset_caches()
    fresh_conn = sqlite3.connect(db_path)
    try:
        assert stale == costing.resolve_rates(fresh_conn, cfg, gpus, (flip_s + 5) * 1000)
    finally:
        fresh_conn.close()


def test_the_projection_fits_follow_the_days_they_are_given():
    """The fits are remembered by the days themselves: other days, another answer; the same days, the same."""
    days = (100.0, 110.0, 90.0, 100.0, 100.0, 300.0, 310.0, 290.0, 305.0)
    one = forecast.project(2000.0, [forecast.Stream(days, 10.0, history=(100.0,) * 20)])
    same = forecast.project(2000.0, [forecast.Stream(days, 10.0, history=(100.0,) * 20)])
    assert one == same
    changed = forecast.project(2000.0, [forecast.Stream((*days[:-1], 100.0), 10.0, history=(100.0,) * 20)])
    assert changed != one
    # another month's days left and offset with the same days: recomputed from them, not reused
    later = forecast.project(2000.0, [replace(forecast.Stream(days, 4.0, history=(100.0,) * 20), offset=0.5)])
    assert later != one
    # level changes seen in the history count: the same days with a stop in the history widen the interval
    moved = forecast.project(2000.0, [forecast.Stream(days, 10.0, history=(100.0,) * 10 + (0.0,) * 10)])
    assert moved[2] - moved[1] > one[2] - one[1]
    assert forecast.change_rate([1.0, 2.0, 3.0]) == forecast.change_rate((1, 2, 3))

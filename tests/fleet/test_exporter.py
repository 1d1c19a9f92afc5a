"""The /metrics endpoint, scraped over real HTTP: names, labels, values, and counters that only go up."""

from __future__ import annotations

import dataclasses
import socket
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gpuspend import metrics
from gpuspend.errors import UsageError
from gpuspend.snapshot import ProcessNow

from .conftest import NOW_MS, make_gpu, make_snapshot


def scrape(exporter: metrics.Exporter) -> dict[str, list]:
    """metric family name -> [(sample name, labels, value)] as a Prometheus server would parse it."""
    resp = httpx.get(exporter.url, timeout=5)
    assert resp.status_code == 200
    out: dict[str, list] = {}
    for fam in text_string_to_metric_families(resp.text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def value(samples: dict[str, list], name: str, **labels: str) -> float:
    hits = [v for lab, v in samples.get(name, []) if all(lab.get(k) == x for k, x in labels.items())]
    assert len(hits) == 1, f"{name} {labels}: {hits}"
    return hits[0]


@pytest.fixture
def exporter():
    ex = metrics.serve("127.0.0.1", 0)
    yield ex
    ex.close()


def test_default_bind_is_loopback():
    ex = metrics.serve(port=0)
    try:
        assert ex.host == "127.0.0.1"
        assert httpx.get(ex.url, timeout=5).status_code == 200
    finally:
        ex.close()


def test_port_in_use_is_one_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(UsageError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            metrics.serve("127.0.0.1", port)


def test_per_gpu_series_with_labels_and_units(exporter):
    gpus = (make_gpu("node-a", 0, rate=6.88, util=87.5),
            make_gpu("node-a", 1, state="held-idle", util=0.0, rate=3.0, idle_for_s=1200, episode_waste=1.0),
            make_gpu("node-a", 2, rate=None, util=50.0))
    exporter.update(make_snapshot("node-a", gpus, mtd=1234.5, projection=4321.0, waste_today=7.25))
    s = scrape(exporter)
    ident = {"host": "node-a", "gpu": "0", "uuid": "GPU-node-a-0000", "model": "H100"}
    assert value(s, "gpuspend_gpu_cost_per_hour", currency="USD", **ident) == 6.88
    assert value(s, "gpuspend_gpu_utilization_ratio", **ident) == pytest.approx(0.875)
    assert value(s, "gpuspend_gpu_power_watts", **ident) == 500.0
    assert value(s, "gpuspend_gpu_state", state="busy", **ident) == 1.0
    assert value(s, "gpuspend_gpu_state", state="held-idle", gpu="1") == 1.0
    assert value(s, "gpuspend_gpu_state", state="busy", gpu="1") == 0.0
    assert value(s, "gpuspend_gpu_rate_info", gpu="0")  == 1.0
    assert {lab["source"] for lab, _ in s["gpuspend_gpu_rate_info"]} == {"catalog", "none"}
    # one status series per GPU: its current state, rate source and idle episode as labels
    assert sorted((lab["gpu"], lab["state"], lab["source"], lab["episode"], v)
                  for lab, v in s["gpuspend_gpu_status"]) == [
        ("0", "busy", "catalog", "closed", 1.0), ("1", "held-idle", "catalog", "open", 1.0),
        ("2", "busy", "none", "closed", 1.0)]
    # a GPU without a rate has no cost series at all (never $0), but still its state and utilisation
    assert [lab["gpu"] for lab, _ in s["gpuspend_gpu_cost_per_hour"]] == ["0", "1"]
    assert value(s, "gpuspend_gpu_utilization_ratio", gpu="2") == 0.5
    # node totals, month gauges per currency, catalog age
    assert value(s, "gpuspend_cost_per_hour", host="node-a", currency="USD") == pytest.approx(9.88)
    assert value(s, "gpuspend_idle_waste_today", currency="USD") == 7.25
    assert value(s, "gpuspend_month_to_date", currency="USD", month="2026-11") == 1234.5
    assert value(s, "gpuspend_month_projection", currency="USD", month="2026-11") == 4321.0
    age = value(s, "gpuspend_price_catalog_age_seconds", as_of="2026-01-21")
    assert age == pytest.approx(NOW_MS / 1000 - 1768953600)          # 2026-01-21T00:00Z
    assert value(s, "gpuspend_up", host="node-a") == 1.0
    assert value(s, "gpuspend_build_info", host="node-a") == 1.0
    assert value(s, "gpuspend_snapshot_timestamp_seconds") == NOW_MS / 1000


def test_counters_are_monotonic_across_updates_and_episodes(exporter):
    def snap(idle_for: float, waste: float, cost_today: float, t: int):
        gpu = make_gpu("node-a", 0, state="held-idle", util=0.0, idle_for_s=idle_for, episode_waste=waste)
        proc = ProcessNow(pid=4242, user="alice", command="python train.py", gpu_uuid=gpu.uuid, gpu_index=0,
                          used_memory=1 << 30, sm_util=None, cost_today=cost_today)
        return make_snapshot("node-a", (gpu,), processes=(proc,), now_ms=NOW_MS + t * 1000)

    seen = []
    # idle grows, then a busy spell resets the episode (idle_for 0), then a new episode; a new day resets cost_today
    steps = [(1000, 2.0, 5.0), (1600, 3.0, 6.0), (0, 0.0, 7.0), (300, 0.5, 8.0), (360, 0.6, 0.5)]
    for i, (idle_for, waste, cost) in enumerate(steps):
        exporter.update(snap(idle_for, waste, cost, i))
        s = scrape(exporter)
        seen.append((value(s, "gpuspend_gpu_idle_seconds_total", gpu="0"),
                     value(s, "gpuspend_gpu_idle_waste_total", gpu="0", currency="USD"),
                     value(s, "gpuspend_user_cost_total", user="alice", currency="USD")))
    for a, b in zip(seen, seen[1:], strict=False):
        assert all(y >= x for x, y in zip(a, b, strict=True)), seen
    assert seen[-1][0] == pytest.approx(1000 + 600 + 300 + 60)
    assert seen[-1][1] == pytest.approx(2.0 + 1.0 + 0.5 + 0.1)
    assert seen[-1][2] == pytest.approx(8.0 + 0.5)        # 5 -> 8 today, then 0.5 since midnight


def test_vanished_gpu_drops_its_series(exporter):
    exporter.update(make_snapshot("node-a", (make_gpu("node-a", 0), make_gpu("node-a", 1))))
    assert len(scrape(exporter)["gpuspend_gpu_cost_per_hour"]) == 2
    exporter.update(make_snapshot("node-a", (make_gpu("node-a", 0),)))
    s = scrape(exporter)
    for name in ("gpuspend_gpu_cost_per_hour", "gpuspend_gpu_state", "gpuspend_gpu_status",
                 "gpuspend_gpu_idle_seconds_total"):
        assert {lab["gpu"] for lab, _ in s[name]} == {"0"}, name


def test_outside_text_in_labels_is_escaped_not_interpreted(exporter):
    nasty = 'bob"} 1e9\n# TYPE x counter\x1b[31m'
    gpu = make_gpu("node-a", 0)
    proc = ProcessNow(pid=1, user=nasty, command="[bold]x[/]", gpu_uuid=gpu.uuid, gpu_index=0, used_memory=1,
                      sm_util=None, cost_today=1.5)
    exporter.update(make_snapshot("node-a", (gpu,), processes=(proc,)))
    s = scrape(exporter)
    assert value(s, "gpuspend_user_cost_total", user=nasty) == 1.5
    assert "x" not in s                                          # no injected family


def test_mark_down_keeps_values_but_says_so(exporter):
    exporter.update(make_snapshot("node-a"))
    exporter.mark_down()
    s = scrape(exporter)
    assert value(s, "gpuspend_up", host="node-a") == 0.0
    assert value(s, "gpuspend_cost_per_hour", host="node-a", currency="USD") == pytest.approx(13.76)


def test_alerts_and_state_costs(exporter):
    from gpuspend.snapshot import AlertView

    snap = dataclasses.replace(
        make_snapshot("node-a"),
        alerts=(AlertView("idle", "GPU 1", "open", NOW_MS, 3.0, "idle"),
                AlertView("idle", "GPU 2", "resolved", NOW_MS, 1.0, "idle"),
                AlertView("budget", "month", "open", NOW_MS, None, "80%")),
        cost_per_hour_by_state=(("busy", 6.88), ("held-idle", 6.88)))
    exporter.update(snap)
    s = scrape(exporter)
    assert value(s, "gpuspend_alerts_open", kind="idle") == 1.0
    assert value(s, "gpuspend_alerts_open", kind="budget") == 1.0
    assert value(s, "gpuspend_cost_per_hour_by_state", state="held-idle") == 6.88


def test_database_mode_serves_costing_snapshots_and_reports_failures(tmp_path, capfd):
    """With a database the exporter feeds itself; an unreadable database gives gpuspend_up 0 and one line."""
    from gpuspend.fleet import default_config

    bad = tmp_path / "not-a-db.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    cfg = default_config()
    cfg.host = "gpu-box"
    ex = metrics.serve("127.0.0.1", 0, db_path=bad, cfg=cfg, refresh_s=0.1)
    try:
        deadline = time.monotonic() + 10
        while "snapshot failed" not in capfd.readouterr().err and time.monotonic() < deadline:
            time.sleep(0.1)
        s = scrape(ex)
        assert value(s, "gpuspend_up", host="gpu-box") == 0.0
        assert "gpuspend_gpu_cost_per_hour" not in s
        time.sleep(0.3)
        assert "snapshot failed" not in capfd.readouterr().err        # said once, not every refresh
    finally:
        ex.close()


def test_underutilised_flag(exporter):
    snap = dataclasses.replace(make_snapshot("node-a"), underutilised=("GPU-node-a-0001",))
    exporter.update(snap)
    s = scrape(exporter)
    assert value(s, "gpuspend_gpu_underutilised", gpu="1") == 1.0
    assert value(s, "gpuspend_gpu_underutilised", gpu="0") == 0.0


def test_missing_prometheus_skips_locally_but_fails_in_ci(monkeypatch):
    """CI installs the binary; there a missing one must fail the run instead of quietly skipping."""
    import shutil

    from . import conftest

    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="prometheus binary not installed"):
        conftest.prometheus_binary()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must install"):
        conftest.prometheus_binary()

"""Unobserved time is not free: every total says how much of its window was observed; `--report` warns when no
collector runs; GPUs in the database that nobody samples are the `collector` alert (also when none ever ran);
no NVIDIA driver is "no GPU", never "$0.00/h", with the whole NVML reason."""

from __future__ import annotations

import json
import sys

import pynvml
import pytest

from gpuspend import cli
from gpuspend.rollup import COLLECTOR_SEEN_KEY
from gpuspend.store import connect, set_meta, transaction
from tests.conftest import run_cli
from tests.fake_pynvml import FakeGpu, FakeNvml
from tests.idle.timeline import MIN, NOW_MS, cfg_file, collect

CFG = "interval: 2\nrates:\n  per_gpu:\n    GPU-obs-0: 2.0\nalerts:\n  collector_stopped: 5m\n"


def _box() -> FakeNvml:
    return FakeNvml([FakeGpu(index=0, uuid="GPU-obs-0", util=90, memory_used=0)])


def _report(db_path, tmp_path, *args: str):
    cfg_file(tmp_path, CFG)
    return run_cli("--report", "--no-sample", "--db", str(db_path), "--config", str(tmp_path / "config.yaml"),
                   *args)


def test_a_total_says_how_much_of_its_window_was_observed(db_path, tmp_path):
    """The collector ran 80 s of the last 140 s: observed 57% of that window, and 80 s of today's 12 h.
    (No periodic rollup here: a window that starts inside a rolled-up minute is read at minute granularity.)"""
    collect(db_path, cfg_file(tmp_path, CFG), _box(), NOW_MS - 140_000, NOW_MS - 60_000, 2000, periodic=False)
    r = _report(db_path, tmp_path, "--since", "140s", "--format", "json")
    doc = json.loads(r.stdout)
    win = doc["window"]["observed"]
    assert (win["window_s"], win["seconds"], win["pct"]) == (140.0, 80.0, 57.14)
    assert win["per_gpu"] == [{"uuid": "GPU-obs-0", "seconds": 80.0}]
    today = doc["today"]["observed"]
    assert (today["window_s"], today["seconds"]) == (12 * 3600.0, 80.0)
    assert doc["today"]["cost"] == pytest.approx(2.0 * 80 / 3600, abs=1e-4)    # the 80 s seen, and says so
    text = _report(db_path, tmp_path, "--since", "140s").stdout
    assert "observed 57% of the window" in text
    assert "(observed <1% of today)" in text


def test_report_warns_and_fails_on_collector_when_no_collector_ever_ran(db_path, tmp_path):
    """Only one-shot samples (cron reports) for 6 min: GPUs seen, never collected."""
    collect(db_path, cfg_file(tmp_path, CFG), _box(), NOW_MS - 6 * MIN, NOW_MS - 6 * MIN + 1, 2000, periodic=False)
    r = _report(db_path, tmp_path, "--fail-on", "collector")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "failing: collector" in r.stdout
    assert "warning: no collector is running" in r.stdout
    doc = json.loads(_report(db_path, tmp_path, "--format", "json").stdout)
    assert doc["freshness"]["collector_running"] is False and "collector" in doc["active"]


def test_a_collector_alive_within_collector_stopped_is_not_an_alert(db_path, tmp_path):
    collect(db_path, cfg_file(tmp_path, CFG), _box(), NOW_MS - 60 * MIN, NOW_MS - 60 * MIN + 1, 2000,
            periodic=False)
    conn = connect(db_path)
    try:
        with transaction(conn):
            set_meta(conn, COLLECTOR_SEEN_KEY, str(NOW_MS - 1 * MIN))     # its periodic rollup ran a minute ago
        assert _report(db_path, tmp_path, "--fail-on", "collector").returncode == 0
        with transaction(conn):
            set_meta(conn, COLLECTOR_SEEN_KEY, str(NOW_MS - 10 * MIN))    # ... ten minutes ago: stopped
    finally:
        conn.close()
    assert _report(db_path, tmp_path, "--fail-on", "collector").returncode == 1


def _in_process_report(monkeypatch, capsys, fake: FakeNvml, *args: str) -> tuple[int, str]:
    monkeypatch.setitem(sys.modules, "pynvml", fake.module)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--report", *args])
    return exit_info.value.code or 0, capsys.readouterr().out


def test_no_driver_and_no_gpu_is_no_gpu_not_zero_dollars(db_path, tmp_path, monkeypatch, capsys):
    fake = FakeNvml([])
    fake.init_error = pynvml.NVMLError_LibraryNotFound
    cfg_file(tmp_path, CFG)
    rc, out = _in_process_report(monkeypatch, capsys, fake, "--db", str(db_path), "--config",
                                 str(tmp_path / "config.yaml"), "--fail-on", "idle,budget,stale")
    assert rc == 0
    assert "cost per hour: no GPU" in out and "$0.00/h" not in out
    assert "cost so far: no GPU" in out
    assert "NVML Shared Library Not Found" in out              # the reason, not cut at the line width
    assert "gpuspend --demo" in out                             # and what to do


def test_no_driver_on_a_host_whose_database_knows_gpus_is_a_collector_alert(db_path, tmp_path, monkeypatch,
                                                                             capsys):
    collect(db_path, cfg_file(tmp_path, CFG), _box(), NOW_MS - 2 * MIN, NOW_MS - 2 * MIN + 1, 2000, periodic=False)
    fake = FakeNvml([])
    fake.init_error = pynvml.NVMLError_DriverNotLoaded
    rc, out = _in_process_report(monkeypatch, capsys, fake, "--db", str(db_path), "--config",
                                 str(tmp_path / "config.yaml"), "--fail-on", "collector")
    assert rc == 1
    assert "failing: collector" in out
    assert "NVML is not available, but this database knows 1 GPU of this host" in out


def test_the_dashboard_header_and_metrics_say_how_much_of_today_was_observed(db_path, tmp_path):
    """The collector watched 3 h of today's 12 h (then stopped): today's $6.00 is over 25% of the day, and the
    dashboard's header and /metrics say so; the report says the same figure. (Sampled every 2 s, the config's
    interval: a sample covers up to the next one.)"""
    from gpuspend import costing
    from gpuspend.metrics import _snapshot_families
    from gpuspend.tui.widgets.summary import summary_text

    cfg = cfg_file(tmp_path, CFG)
    collect(db_path, cfg, _box(), NOW_MS - 12 * 3600_000, NOW_MS - 9 * 3600_000, 2000, periodic=False)
    conn = connect(db_path)
    try:
        snap = costing.build_snapshot(conn, cfg, NOW_MS)
    finally:
        conn.close()
    assert snap.today_cost == pytest.approx(2.0 * 3, abs=0.01)            # 3 h seen at $2/h
    assert snap.today_observed == pytest.approx(0.25, abs=1e-3)
    assert "today $6.00 (observed 25%)" in summary_text(snap).plain
    assert "(25% seen)" in summary_text(snap, compact=True).plain
    ratio = next(f for f in _snapshot_families(snap) if f.name == "gpuspend_today_observed_ratio")
    assert [s.value for s in ratio.samples] == [pytest.approx(0.25, abs=1e-3)]
    text = _report(db_path, tmp_path).stdout
    assert "(observed 25% of today)" in text

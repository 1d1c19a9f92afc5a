"""The Collector: ticks, periodic tasks that may fail, threads, and a lease lost while running."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gpuspend import daemon
from gpuspend.config import load_config
from gpuspend.daemon import Collector
from gpuspend.errors import LeaseHeld
from gpuspend.store import connect
from tests.conftest import ROOT

NOW = 1_794_744_000_000


def _count(db: Path, table: str) -> int:
    c = connect(db)
    try:
        what = "COALESCE(SUM(n), 0)" if table == "gpu_samples" else "COUNT(*)"    # a row is a run of n samples
        return c.execute(f"SELECT {what} FROM {table}").fetchone()[0]
    finally:
        c.close()


def test_tick_writes_samples_and_rolls_up(db_path: Path) -> None:
    with Collector(db_path, load_config(), demo=True, interval_s=2) as col:
        for k in range(33):
            assert col.tick(NOW + k * 2000) == 8
    assert _count(db_path, "gpus") == 8
    assert _count(db_path, "gpu_samples") == 8 * 33
    # the rollup task ran at the first tick and again once the next minute had turned (one interval and a
    # second in, at the tick of 64 s): the first minute is complete, the second holds what it has so far
    c = connect(db_path)
    rows = c.execute("SELECT minute, SUM(samples), SUM(covered_s) FROM gpu_minutes GROUP BY minute").fetchall()
    c.close()
    assert rows == [(NOW, 8 * 30, 8 * 60.0), (NOW + 60_000, 8 * 3, 8 * 4.0)]
    assert _count(db_path, "collector_lease") == 0      # released on close


@pytest.mark.parametrize("start_s", [0, 23, 37, 59])
def test_the_raw_tail_readers_walk_is_at_most_a_minute_and_the_lag(db_path: Path, start_s: int) -> None:
    """Whenever in its minute the collector starts, the rollup runs just after each minute turns, so what every
    snapshot reads sample by sample (the raw samples after the watermark) is never much over a minute long."""
    from gpuspend.costing.store_read import watermark

    tails = []
    with Collector(db_path, load_config(), demo=True, interval_s=1) as col:
        for k in range(200):
            now = NOW + start_s * 1000 + k * 1000
            col.tick(now)
            tails.append(now - watermark(col.conn))
    # the whole minute, then the lag (one interval and a second) less the tick the rollup runs in
    assert max(tails) == 61_000
    assert min(tails[70:]) == 2_000      # just after each rollup: the two seconds of the new minute


def test_failing_task_logs_one_line_and_sampling_goes_on(db_path: Path, monkeypatch, capsys) -> None:
    calls = []

    def broken(conn, cfg, now_ms):
        conn.execute("BEGIN IMMEDIATE")           # fail half-way through a transaction
        raise RuntimeError("exporter exploded\nsecond line")

    def counting(conn, cfg, now_ms):
        calls.append(now_ms)

    monkeypatch.setattr(daemon, "PERIODIC_TASKS", list(daemon.PERIODIC_TASKS))
    daemon.register_task("broken", 10, broken)
    daemon.register_task("counting", 10, counting)
    with Collector(db_path, load_config(), demo=True) as col:
        for k in range(6):
            col.tick(NOW + k * 2000)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["gpuspend: collect: task broken failed: RuntimeError: exporter exploded"] * 2
    assert calls == [NOW, NOW + 10_000]
    assert _count(db_path, "gpu_samples") == 48


def test_tasks_run_again_when_the_wall_clock_is_set_back(db_path: Path, monkeypatch) -> None:
    """A clock stepped back an hour (NTP, a restored VM) must not stall rollups and alerts for that hour."""
    calls = []
    monkeypatch.setattr(daemon, "PERIODIC_TASKS", [("counting", 10, lambda conn, cfg, now_ms: calls.append(now_ms))])
    with Collector(db_path, load_config(), demo=True) as col:
        col.tick(NOW)
        col.tick(NOW + 2000)                   # not due yet: ran at NOW, next at NOW + 10 s
        col.tick(NOW - 3_600_000)              # the clock went back an hour: due by the new clock
        col.tick(NOW - 3_600_000 + 2000)
        col.tick(NOW - 3_600_000 + 10_000)
    assert calls == [NOW, NOW - 3_600_000, NOW - 3_600_000 + 10_000]


def test_second_collector_is_refused_naming_the_holder(db_path: Path) -> None:
    # Same process but the lease row says another live pid holds it (pid 1 always exists).
    c = connect(db_path)
    c.execute("INSERT INTO collector_lease VALUES (1, 1, ?, 'daemon', ?, ?, 2.0)",
              (__import__("socket").gethostname(), NOW, NOW))
    c.close()
    with pytest.raises(LeaseHeld, match="daemon pid 1 on"):
        Collector(db_path, load_config(), demo=True).open()
    assert _count(db_path, "collector_lease") == 1      # the holder's row is untouched


def test_lease_taken_over_while_stalled_stops_the_tick(db_path: Path) -> None:
    col = Collector(db_path, load_config(), demo=True).open()
    col.tick(NOW)
    c = connect(db_path)
    c.execute("UPDATE collector_lease SET pid = 1, host = 'elsewhere'")
    c.close()
    with pytest.raises(LeaseHeld, match="lost the collector lease"):
        col.tick(NOW + 2000)
    col.close()
    assert _count(db_path, "gpu_samples") == 8          # the refused tick wrote nothing
    assert _count(db_path, "collector_lease") == 1      # and we did not delete the new holder's lease


def test_runs_in_a_worker_thread_with_its_own_connection(db_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("GPUSPEND_NOW")       # real time, so every tick has its own timestamp
    col = Collector(db_path, load_config(), demo=True, owner="tui", interval_s=0.05)
    stop = threading.Event()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            col.open()
            col.run(0.05, stop)
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)
        finally:
            col.close()

    t = threading.Thread(target=work)
    t.start()
    deadline = time.monotonic() + 20
    while col.ticks < 4 and time.monotonic() < deadline and t.is_alive():
        time.sleep(0.02)
    stop.set()
    t.join(10)
    assert not errors and not t.is_alive()
    assert col.ticks >= 4
    assert _count(db_path, "gpu_samples") == 8 * col.ticks
    assert _count(db_path, "collector_lease") == 0


def test_collector_on_a_plain_box_loads_no_billing_http_or_tui_libraries(tmp_path: Path) -> None:
    """No billing folders, GPU clouds or notify targets configured: the daemon never imports pyarrow, httpx
    or textual (on a real H200 node those imports cost seconds of CPU and ~70 MB of memory at start-up)."""
    code = (
        "import sys\n"
        "from gpuspend.config import load_config\n"
        "from gpuspend.daemon import Collector\n"
        f"with Collector({str(tmp_path / 'c.db')!r}, load_config(None), demo=True) as c:\n"
        "    for k in range(3):\n"
        "        now = 1794744000000 + k * 2000\n"
        "        c.tick(now)\n"
        "        c.run_due_tasks(now)\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'pyarrow', 'httpx', 'textual', 'tui'})\n"
        "print('HEAVY', heavy)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert "HEAVY []" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("age_ms, shared", [(1_000, True), (10_000, True), (10_001, False), (-1_000, False)])
def test_the_alerts_task_evaluates_the_dashboards_recent_snapshot(db_path: Path, monkeypatch, age_ms: int,
                                                                   shared: bool) -> None:
    """In-app, the alerts task evaluates the dashboard's newest full snapshot (as of that snapshot's time) instead
    of building one more; one too old (the dashboard paused, on another screen) or from the future is not used."""
    from tests.alerts.snapshots import gpu, snapshot

    # a GPU idle for 20 minutes in the handed snapshot only: the demo database's own GPUs have no idle episode yet
    handed = snapshot(NOW - age_ms, gpus=[gpu("GPU-shared", idle_for_s=1200, episode_open=True, waste=0.7)])
    asked = []
    monkeypatch.setattr(daemon, "PERIODIC_TASKS", [("alerts", 30.0, "gpuspend.alerts:alerts_task")])
    with Collector(db_path, load_config(), demo=True, interval_s=2) as col:
        col.recent_snapshot = lambda: asked.append(1) or handed
        col.tick(NOW)
    c = connect(db_path)
    try:
        idle = c.execute("SELECT subject, started FROM alerts WHERE kind = 'idle' AND state = 'open'").fetchall()
    finally:
        c.close()
    assert asked == [1]
    if shared:
        # evaluated as of the snapshot's own time: the episode began 20 minutes before it
        assert idle == [("GPU-shared", NOW - age_ms - 1_200_000)]
    else:
        assert idle == []                                    # built its own from the database instead

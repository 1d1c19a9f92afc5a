"""First start of the demo: the recent window is published first and the rest of the month backfilled a day
at a time, newest first, into the same file. What a user must never notice: a minute counted twice, a
different number once the backfill is done, or a backfill that never finishes after the app was quit."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from gpuspend import demo
from gpuspend.demo import (
    META_FROM,
    backfill_demo_db,
    build_demo_db,
    ensure_demo_db,
    history_progress,
)
from gpuspend.errors import UsageError
from gpuspend.store import connect, get_meta

NOW = 1_794_744_000_000 + 37_000          # Sunday 2026-11-15 12:00:37 UTC (fixed clock)
DAY = 86_400_000
DAYS = 4                                  # a short "month": the same code path, seconds not minutes

GPU_ROWS = ("SELECT g.uuid, m.minute, m.samples, m.covered_s, m.util_avg, m.util_max, m.mem_used_avg, "
            "m.power_avg, m.energy_j, m.busy_s, m.held_idle_s, m.free_idle_s "
            "FROM gpu_minutes m JOIN gpus g ON g.id = m.gpu_id ORDER BY 1, 2")
PROC_ROWS = ("SELECT g.uuid, m.minute, p.pid, p.started, m.share_s, m.idle_share_s FROM process_minutes m "
             "JOIN gpus g ON g.id = m.gpu_id JOIN processes p ON p.id = m.proc_id ORDER BY 1, 2, 3")


@pytest.fixture(autouse=True)
def short_month(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "HISTORY_DAYS", DAYS)


@pytest.fixture(scope="module")
def full_rows(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[tuple], list[tuple]]:
    """The month built in one go (what --report --demo gets), as the reference."""
    mp = pytest.MonkeyPatch()
    mp.setattr(demo, "HISTORY_DAYS", DAYS)
    try:
        path = build_demo_db(tmp_path_factory.mktemp("full") / "demo.db", NOW)
    finally:
        mp.undo()
    conn = sqlite3.connect(path)
    try:
        return conn.execute(GPU_ROWS).fetchall(), conn.execute(PROC_ROWS).fetchall()
    finally:
        conn.close()


def rows(path: Path) -> tuple[list[tuple], list[tuple]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(GPU_ROWS).fetchall(), conn.execute(PROC_ROWS).fetchall()
    finally:
        conn.close()


def test_recent_window_first_then_backfill_gives_the_same_month(tmp_path: Path, full_rows) -> None:
    seen: list[tuple[int, int]] = []
    path = build_demo_db(tmp_path / "demo.db", NOW, recent_only=True, progress=lambda d, t: seen.append((d, t)))
    conn = connect(path)
    first_minute = conn.execute("SELECT MIN(minute) FROM gpu_minutes").fetchone()[0]
    done, total = history_progress(conn)
    conn.close()
    # published with today and yesterday (UTC: a day and a half at noon) only, and says so
    assert first_minute == (NOW // DAY - 1) * DAY
    assert (done, total) == (1, DAYS) and seen == [(1, DAYS)]
    assert backfill_demo_db(path, progress=lambda d, t: seen.append((d, t))) is True
    assert seen == [(1, DAYS), (2, DAYS), (3, DAYS), (4, DAYS)]   # a day per step
    assert rows(path) == full_rows                    # minute for minute what the one-go build writes
    conn = connect(path)
    assert history_progress(conn) == (DAYS, DAYS)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_backfill_cut_short_resumes_without_counting_a_minute_twice(tmp_path: Path, full_rows) -> None:
    path = build_demo_db(tmp_path / "demo.db", NOW, recent_only=True)
    stop = threading.Event()
    # the app is quit after the first backfilled day
    assert backfill_demo_db(path, progress=lambda d, t: stop.set(), stop=stop) is False
    conn = connect(path)
    assert history_progress(conn) == (2, DAYS)
    assert int(get_meta(conn, META_FROM)) == (NOW // DAY - 2) * DAY
    conn.close()
    # the next start (no background) finishes it; replaying a day would REPLACE, never add
    ensure_demo_db(path, now_ms=NOW)
    assert rows(path) == full_rows
    conn = connect(path)
    busy = conn.execute("SELECT SUM(covered_s) FROM gpu_minutes").fetchone()[0]
    conn.close()
    assert busy == pytest.approx(sum(r[3] for r in full_rows[0]))


def test_background_start_returns_with_recent_data_and_completes_in_a_thread(tmp_path: Path, full_rows) -> None:
    seen: list[tuple[int, int]] = []
    path = ensure_demo_db(tmp_path / "demo.db", now_ms=NOW, background=True,
                          progress=lambda d, t: seen.append((d, t)))
    thread = demo._backfills[str(path.resolve())]
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert seen[0] == (1, DAYS) and seen[-1] == (DAYS, DAYS)
    assert rows(path) == full_rows


def test_first_start_on_a_fresh_machine_creates_the_data_folder_and_completes_the_month(
        tmp_path: Path, full_rows, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's first command on a fresh machine: no data folder yet. The backfill child once died
    creating its lock file there, the dashboard built the recent window itself, and the month was never
    completed: bob's 2.5-day idle episode read 1d06h, the idle table began where the window began.
    The child builds and backfills (the dashboard's process builds nothing)."""
    def not_here(*_a: object, **_k: object) -> None:
        raise AssertionError("built in the dashboard's process: the child failed")

    monkeypatch.setattr(demo, "build_demo_db", not_here)
    path = ensure_demo_db(tmp_path / "fresh" / "gpuspend" / "demo.db", now_ms=NOW, background=True)
    thread = demo._backfills[str(path.resolve())]
    thread.join(timeout=60)
    assert not thread.is_alive() and rows(path) == full_rows


def test_a_backfill_child_that_dies_still_leaves_a_complete_month(tmp_path: Path, full_rows,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever kills the child before it publishes (here: it cannot start at all), the dashboard's own
    build is completed in a thread: the month is whole, only slower to become so."""
    monkeypatch.setattr(demo.sys, "executable", "/bin/false")
    path = ensure_demo_db(tmp_path / "demo.db", now_ms=NOW, background=True)
    thread = demo._backfills[str(path.resolve())]
    thread.join(timeout=60)
    assert not thread.is_alive() and rows(path) == full_rows


def test_backfill_refuses_a_database_that_is_not_a_demo(tmp_path: Path) -> None:
    path = tmp_path / "real.db"
    conn = connect(path)
    conn.execute("INSERT INTO gpus (uuid, host, source, first_seen, last_seen) VALUES ('GPU-real', 'h', 'nvml', 0, 0)")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(UsageError, match="not the demo"):
        backfill_demo_db(path)
    assert path.read_bytes() == before


def test_a_dashboard_open_through_the_backfill_shows_the_whole_idle_episode(tmp_path: Path) -> None:
    """Snapshots read in one process (the dashboard's) before and after the backfill: once the older days
    are in, GPU 4's idle episode (idle since 2.5 days back in the demo's story) reads from its true start,
    as on a demo built in one go, not from where the recent window began."""
    from gpuspend import costing
    from gpuspend.config import load_config

    cfg = load_config(None)

    def idle(path: Path) -> dict[int | None, tuple[float, float | None]]:
        conn = connect(path)
        try:
            snap = costing.build_snapshot(conn, cfg, now_ms=NOW)
        finally:
            conn.close()
        return {g.index: (round(g.idle_for_s), g.episode_waste and round(g.episode_waste, 2)) for g in snap.gpus}

    full = idle(build_demo_db(tmp_path / "full.db", NOW))
    path = build_demo_db(tmp_path / "demo.db", NOW, recent_only=True)
    before = idle(path)
    assert before[4] != full[4] and before[4][0] < full[4][0]      # the window cuts the episode
    assert backfill_demo_db(path)
    assert idle(path) == full

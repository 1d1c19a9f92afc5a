"""The simulated 8x H100 box: deterministic, the advertised profile, history that joins the live samples."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gpuspend.collectors.simulated import SimulatedSource, generate_history
from gpuspend.demo import META_UNTIL, ensure_demo_db
from gpuspend.errors import UsageError
from gpuspend.store import connect

NOW = 1_794_744_000_000 + 37_000          # Sunday 2026-11-15 12:00:37 UTC
WED_NOON = NOW - 4 * 86_400_000           # Wednesday, office hours
WED_NIGHT = WED_NOON + 12 * 3600_000      # Wednesday midnight
GIB = 1024 ** 3


def test_same_seed_same_numbers_other_seed_differs() -> None:
    a = SimulatedSource(42).read(NOW)
    b = SimulatedSource(42).read(NOW)
    c = SimulatedSource(7).read(NOW)
    assert a == b
    assert [g.uuid for g in a.gpus] != [g.uuid for g in c.gpus]
    assert len(a.gpus) == 8 and all(g.name == "NVIDIA H100 80GB HBM3" for g in a.gpus)


def test_profile_of_the_box() -> None:
    src = SimulatedSource(42)
    # Average over a few minutes so a checkpoint dip or a burst does not decide the test.
    reads = [src.read(WED_NOON + k * 60_000) for k in range(3, 9)]
    night = [src.read(WED_NIGHT + k * 60_000) for k in range(6)]

    def avg(rs, i, attr):
        return sum(getattr(r.gpus[i], attr) for r in rs) / len(rs)

    for i in range(4):
        assert 80 <= avg(reads, i, "util") <= 100
        assert [p.user for p in reads[0].gpus[i].processes] == ["alice"]
        assert "train.py" in reads[0].gpus[i].processes[0].command
        assert 450 <= avg(reads, i, "power") <= 690
    nb = night[0].gpus[4]
    assert avg(night, 4, "util") <= 2.0
    assert [p.user for p in nb.processes] == ["bob"] and "ipykernel" in nb.processes[0].command
    assert 20 * GIB <= nb.processes[0].used_memory <= 21 * GIB
    sunday = src.read(NOW).gpus[4]            # the fixed test/screenshot clock: the notebook sits idle
    assert sunday.util <= 2.0 and [p.user for p in sunday.processes] == ["bob"]
    free = reads[0].gpus[5]
    assert free.util == 0 and free.processes == [] and 70 <= free.power <= 92
    for i in (6, 7):
        assert [p.user for p in night[0].gpus[i].processes] == ["carol"]
        assert avg(reads, i, "util") > avg(night, i, "util")        # traffic peaks in the afternoon
    for g in night[0].gpus:
        assert g.power <= g.power_limit


def test_energy_counter_only_grows() -> None:
    src = SimulatedSource(42)
    energies = [[g.energy_mj for g in src.read(NOW + k * 2000).gpus] for k in range(20)]
    for i in range(8):
        series = [e[i] for e in energies]
        assert all(b > a for a, b in zip(series, series[1:], strict=False))
    # ~640 W busy vs ~80 W idle over 2 s
    step = [energies[1][i] - energies[0][i] for i in range(8)]
    assert step[0] > 4 * step[5]


def test_two_days_of_history_show_idle_episodes(tmp_path: Path) -> None:
    conn = connect(tmp_path / "h.db")
    start = NOW - 2 * 86_400_000
    out = generate_history(conn, start, NOW, seed=42)
    raw_start = (NOW - 3600_000) // 60_000 * 60_000          # raw samples: the last hour, from a minute start
    expected_raw = (NOW - raw_start) // 2000 + 1
    assert out["raw_samples"] == expected_raw
    per_gpu = conn.execute("SELECT g.idx, COUNT(*), SUM(busy_s), SUM(held_idle_s), SUM(free_idle_s), "
                           "SUM(covered_s) FROM gpu_minutes m JOIN gpus g ON g.id = m.gpu_id "
                           "GROUP BY g.idx ORDER BY g.idx").fetchall()
    assert len(per_gpu) == 8
    for _idx, minutes, busy, held, free, covered in per_gpu:
        assert minutes == 2 * 1440 + 1
        assert covered == pytest.approx(2 * 86400, abs=60)
        assert busy + held + free == pytest.approx(covered)
    by = {row[0]: row for row in per_gpu}
    assert by[4][3] > 0.5 * by[4][5]          # the notebook held-idles more than half the time
    assert by[5][4] > 0.9 * by[5][5]          # the free GPU is mostly free-idle
    assert by[0][2] > 0.7 * by[0][5]          # training mostly busy
    # the live hour was written by the sampler and rolled up: raw samples agree with their minutes
    raw = conn.execute("SELECT SUM(n) FROM gpu_samples").fetchone()[0]
    rolled = conn.execute("SELECT SUM(samples) FROM gpu_minutes WHERE minute >= ?",
                          (NOW - 3600_000 - 60_000,)).fetchone()[0]
    assert raw == 8 * expected_raw and rolled == raw
    users = {r[0] for r in conn.execute("SELECT DISTINCT p.user FROM process_minutes m "
                                        "JOIN processes p ON p.id = m.proc_id")}
    assert {"alice", "bob", "carol"} <= users
    conn.close()


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_demo_db(tmp_path_factory.mktemp("demo") / "demo.db", now_ms=NOW, seed=42)


def test_demo_db_has_a_month_and_is_reused_while_fresh(demo_db: Path) -> None:
    conn = sqlite3.connect(demo_db)
    span = conn.execute("SELECT MIN(minute), MAX(minute) FROM gpu_minutes").fetchone()
    assert (span[1] - span[0]) / 86_400_000 == pytest.approx(30, abs=0.01)
    assert conn.execute("SELECT COUNT(*) FROM gpus").fetchone()[0] == 8
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    ino = demo_db.stat().st_ino
    assert ensure_demo_db(demo_db, now_ms=NOW + 600_000) == demo_db
    assert demo_db.stat().st_ino == ino                      # fresh: not rebuilt


def test_demo_db_refuses_to_overwrite_real_data(db_path: Path) -> None:
    conn = connect(db_path)
    conn.execute("INSERT INTO gpus (uuid, host, source, first_seen, last_seen) VALUES ('GPU-real', 'h', 'nvml', 0, 0)")
    conn.close()
    with pytest.raises(UsageError, match="holds other data, not the demo"):
        ensure_demo_db(db_path, now_ms=NOW)
    assert sqlite3.connect(db_path).execute("SELECT uuid FROM gpus").fetchall() == [("GPU-real",)]


def test_stale_demo_db_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gpuspend.demo.HISTORY_DAYS", 1)       # a day is enough to see the rebuild
    p = tmp_path / "demo.db"
    conn = connect(p)
    conn.execute("INSERT INTO meta VALUES (?, ?), ('demo.seed', '42')", (META_UNTIL, str(NOW - 3 * 86_400_000)))
    conn.close()
    ensure_demo_db(p, now_ms=NOW, seed=42)
    conn = sqlite3.connect(p)
    assert conn.execute("SELECT value FROM meta WHERE key = ?", (META_UNTIL,)).fetchone()[0] == str(NOW)
    assert conn.execute("SELECT COUNT(*) FROM gpus").fetchone()[0] == 8

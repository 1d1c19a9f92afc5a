"""The cost engine keeps incremental state on a long-lived connection (what the dashboard, the metrics
exporter and the collector's alert task hold): every number must be exactly what a cold computation on a
fresh connection gives, while samples keep arriving, the rollup watermark moves, idle episodes open and
close, a GPU drops out for a while, the day turns over and the clock is read out of order."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from gpuspend import costing
from gpuspend.collectors.reading import GpuReading, ProcReading, Reading
from gpuspend.daemon import Collector
from gpuspend.rollup import roll_up
from gpuspend.snapshot import Snapshot
from gpuspend.store import connect
from tests.costing.builders import DAY0_MS, cfg_from

GIB = 1024 ** 3
MIN = 60_000
STEP = 2000                           # the collector interval (ms)
START = DAY0_MS - 40 * MIN            # history from 23:20 the day before
LIVE = DAY0_MS - 8 * MIN              # dashboard open from 23:52, through midnight


@dataclass
class Schedule:
    """Three GPUs a test can reason about: 0 always busy; 1 idle 4 min then busy 2 min, over and over (free
    idle episodes that open after a minute and close); 2 held idle by a forgotten process, busy for 20 s at
    23:30, and silent (no samples) for 2 minutes from 23:56 (a gap ends its run)."""

    def read(self, now_ms: int | None = None) -> Reading:
        assert now_ms is not None
        gpus = []
        for i in range(3):
            if i == 2 and DAY0_MS - 4 * MIN <= now_ms < DAY0_MS - 2 * MIN:
                continue
            procs: list[ProcReading] = []
            if i == 0:
                util = 90.0
                procs = [ProcReading(pid=100, used_memory=30 * GIB, user="ana", command="python train.py")]
            elif i == 1:
                util = 0.0 if (now_ms - START) % (6 * MIN) < 4 * MIN else 75.0
            else:
                util = 60.0 if DAY0_MS - 30 * MIN <= now_ms < DAY0_MS - 30 * MIN + 20_000 else 1.0
                procs = [ProcReading(pid=200, used_memory=10 * GIB, user="bo", command="jupyter")]
            gpus.append(GpuReading(uuid=f"GPU-inc-{i}", index=i, name="NVIDIA H100 80GB HBM3", memory_total=80 * GIB,
                                   util=util, mem_used=sum(p.used_memory or 0 for p in procs), power=100 + 5 * util,
                                   temperature=40.0, processes=procs))
        return Reading(ts_ms=now_ms, host="incbox", source="nvml", gpus=gpus)

    def open(self) -> Schedule:
        return self

    def close(self) -> None:
        pass


CONFIG = """
interval: 2
rates:
  per_gpu: {"0": 2.5, "1": 3.0, "2": 4.0}
idle:
  after: 60s
  busy_for: 6s
"""


def cold(db: Path, cfg, now_ms: int) -> Snapshot:
    """A snapshot on a bare sqlite3 connection (no memo) with the module caches emptied."""
    costing.reset_caches()
    conn = sqlite3.connect(db)
    try:
        return costing.build_snapshot(conn, cfg, now_ms)
    finally:
        conn.close()


def assert_same(warm: Snapshot, ref: Snapshot, when: str) -> None:
    for f in fields(Snapshot):
        assert getattr(warm, f.name) == getattr(ref, f.name), f"{f.name} differs at {when}"


@pytest.fixture
def store(tmp_path):
    cfg = cfg_from(tmp_path, CONFIG)
    db = tmp_path / "inc.db"
    collector = Collector(db, cfg, demo=False, owner="daemon", interval_s=STEP / 1000, source=Schedule())
    collector.open()
    ts = START
    while ts < LIVE:                  # history: the collector's own rollup task moves the watermark
        collector.tick(ts)
        ts += STEP
    yield db, cfg, collector, ts
    collector.close()


def test_warm_snapshots_equal_cold_ones_while_samples_arrive(store):
    db, cfg, collector, ts = store
    warm = connect(db)
    seen_open = seen_closed = 0
    checks = 0
    stop = DAY0_MS + 8 * MIN
    while ts < stop:
        for _ in range(5):            # 10 s of samples, then a look, as the dashboard does
            collector.tick(ts)
            ts += STEP
        now = ts - STEP + 700         # between two samples: the newest one is still filling
        snap = costing.build_snapshot(warm, cfg, now)
        assert_same(snap, cold(db, cfg, now), f"{now}")
        checks += 1
        seen_open += sum(1 for g in snap.gpus if g.episode_open)
        if checks % 7 == 0:           # the clock read out of order (a slow worker handing in an old tick)
            back = now - 9_000
            assert_same(costing.build_snapshot(warm, cfg, back), cold(db, cfg, back), f"{back} (back)")
    episodes, _tl = costing.idle_episodes(warm, cfg, START, now + 1, now)
    seen_closed = sum(1 for e in episodes if not e.open)
    assert checks == 96
    assert seen_open > 0 and seen_closed >= 3        # the scenario did exercise episodes both ways
    assert snap.idle_waste_today > 0 and snap.today_cost > 0
    warm.close()


def test_warm_idle_episodes_equal_cold_for_other_windows(store):
    db, cfg, collector, ts = store
    warm = connect(db)
    bare = sqlite3.connect(db)
    for k in range(12):
        for _ in range(13):
            collector.tick(ts)
            ts += STEP
        if k % 4 == 3:                # a rollup between looks: minutes replace the raw samples they cover
            roll_up(collector.conn, interval_s=STEP / 1000, idle_util_pct=5.0, now_ms=ts)
        now = ts - 1000
        for since in (DAY0_MS, now - 30 * MIN, START - 60 * MIN):
            got = costing.idle_episodes(warm, cfg, since, now + 1, now)
            ref = costing.idle_episodes(bare, cfg, since, now + 1, now)
            assert got == ref, f"since {since} at {now}"
    warm.close()
    bare.close()


def test_warm_snapshot_reads_only_what_is_new(store):
    """Between two looks without a rollup, the GPUs' rollup minutes are not read again: only new samples."""
    db, cfg, collector, ts = store
    warm = connect(db)
    for _ in range(3):                # from the minute: the collector's rollup runs at the third tick, one
        collector.tick(ts)            # interval and a second after the minute turned, not in the next 3
        ts += STEP
    costing.build_snapshot(warm, cfg, ts)
    for _ in range(3):
        collector.tick(ts)
        ts += STEP
    statements: list[str] = []
    warm.set_trace_callback(statements.append)
    snap = costing.build_snapshot(warm, cfg, ts)
    warm.set_trace_callback(None)
    minute_reads = [s for s in statements if "FROM gpu_minutes" in s and "covered_s" in s]
    assert minute_reads == []
    assert_same(snap, cold(db, cfg, ts), "after three new samples")
    warm.close()

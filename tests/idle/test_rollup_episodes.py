"""Episodes read from per-minute rollups equal episodes read from the raw samples they were rolled from.

Before, a rollup minute put all its idle seconds before its busy ones: a 40 s busy stretch across a minute
boundary (20 s + 20 s, each after the minute's idle) never reached idle.busy_for, so an episode that raw samples
end there went on (a false episode), and a minute of alternating samples moved an episode's edges. The rollup
now keeps each minute's busy-run edges (gpuspend.rollup.minute_pieces).
"""

from __future__ import annotations

import random

import pytest

from gpuspend import costing
from gpuspend.collectors.reading import GpuReading, ProcReading, Reading
from gpuspend.collectors.sampler import Sampler
from gpuspend.rollup import roll_up
from gpuspend.store import connect
from tests.idle.timeline import MIN, NOW_MS, cfg_file

RATE = 2.0
CFG = "interval: {step}\nrates:\n  per_gpu:\n    GPU-p-0: 2.0\nidle:\n  after: 15m\n  busy_for: 30s\n"


def _reading(t: int, state: str) -> Reading:
    util = {"busy": 80.0, "held": 1.0, "free": 0.0, "unknown": None}[state]
    procs = [ProcReading(pid=77, used_memory=1 << 30, user="ann", command="train")] if state == "held" else []
    return Reading(ts_ms=t, host="node-1", source="nvml",
                   gpus=[GpuReading(uuid="GPU-p-0", index=0, name="NVIDIA H100 80GB HBM3", util=util,
                                    processes=procs)])


def _timeline(rng: random.Random, start: int, end: int, step: int) -> list[Reading]:
    """Random stretches: long idle (held or free), busy runs around busy_for, blips, unknown time, gaps."""
    out: list[Reading] = []
    t = start
    while t < end:
        kind = rng.choices(["idle", "busy", "blip", "unknown", "gap"], [5, 3, 3, 1, 1])[0]
        if kind == "gap":
            t += rng.randint(1, 20) * step * 3     # longer than 3 intervals: uncovered time
            continue
        if kind == "idle":
            state, secs = rng.choice(["held", "free"]), rng.choice([rng.randint(5, 120), rng.randint(300, 1500)])
        elif kind == "busy":
            state, secs = "busy", rng.randint(20, 90)
        elif kind == "blip":
            state, secs = "busy", rng.randint(1, 25)
        else:
            state, secs = "unknown", rng.randint(5, 200)
        for _ in range(max(1, secs * 1000 // step)):
            if t >= end:
                break
            out.append(_reading(t, state))
            t += step
    return out


def _episodes(conn, cfg, since: int, now: int) -> list[tuple]:
    costing.reset_caches()
    eps, _tl = costing.idle_episodes(conn, cfg, since, now + 1, now)
    return [(e.start_ms, e.end_ms, round(e.idle_s, 1), round(e.waste or 0.0, 4)) for e in eps]


def _compare(tmp_path, seed: int, step: int) -> tuple[list[tuple], list[tuple]]:
    rng = random.Random(seed)
    cfg = cfg_file(tmp_path, CFG.format(step=step / 1000))
    db = tmp_path / f"t{seed}-{step}.db"
    conn = connect(db)
    try:
        start = NOW_MS - 4 * 60 * MIN + rng.randint(0, 59_999)       # minute boundaries anywhere in a sample
        readings = _timeline(rng, start, NOW_MS - 5 * MIN, step)
        Sampler(conn).write_many(readings)
        now = readings[-1].ts_ms + step
        raw = _episodes(conn, cfg, start, now)                     # no rollup yet: every second from raw samples
        roll_up(conn, interval_s=step / 1000, idle_util_pct=5.0, now_ms=now)
        rolled = _episodes(conn, cfg, start, now)                  # all but the last minute from rollups
    finally:
        conn.close()
    return raw, rolled


@pytest.mark.parametrize("seed", range(24))
def test_episodes_from_rollups_equal_episodes_from_raw_samples_on_random_timelines(tmp_path, seed):
    raw, rolled = _compare(tmp_path, seed, step=2000 if seed % 2 else 5000)
    assert rolled == raw


def test_a_40s_busy_stretch_across_a_minute_boundary_ends_the_episode_after_rollup(tmp_path):
    """20 min idle, busy 12:00:40..12:01:20 (20 s each side of the boundary), 10 min idle: raw samples end the
    20-min episode at the busy stretch (>= busy_for 30 s); the 10 min after it are too short for an episode."""
    cfg = cfg_file(tmp_path, CFG.format(step=2))
    conn = connect(tmp_path / "boundary.db")
    t0 = NOW_MS - 60 * MIN
    busy_at = t0 + 20 * MIN + 40_000
    readings = [_reading(t, "busy" if busy_at <= t < busy_at + 40_000 else "free")
                for t in range(t0, busy_at + 40_000 + 10 * MIN, 2000)]
    try:
        Sampler(conn).write_many(readings)
        now = readings[-1].ts_ms + 2000
        raw = _episodes(conn, cfg, t0, now)
        roll_up(conn, interval_s=2, idle_util_pct=5.0, now_ms=now)
        rolled = _episodes(conn, cfg, t0, now)
    finally:
        conn.close()
    # 20 min 40 s idle x $2/h = $0.6889, ended where the busy stretch began
    assert raw == [(t0, busy_at, 1240.0, round(RATE * 1240 / 3600, 4))]
    assert rolled == raw


def test_minutes_rolled_before_the_edges_were_kept_read_as_before():
    """Rows from before migration 7 have no edges: read whole, idle first then busy (the old reading)."""
    from gpuspend.rollup import minute_pieces

    assert minute_pieces(60_000, 60.0, 20.0, 10.0, 30.0, None, None, None, None, None, None) == [
        (60_000, 60.0, 20.0, 10.0, 30.0)]
    # with edges: busy 10 s lead, 20 s idle, a 25 s inner run at 30 s, 5 s idle, no tail
    assert minute_pieces(60_000, 60.0, 35.0, 0.0, 25.0, 10.0, 0.0, 25.0, 30_000, 10_000, 20.0, 55_000) == [
        (60_000, 10.0, 10.0, 0.0, 0.0), (70_000, 20.0, 0.0, 0.0, 20.0), (90_000, 25.0, 25.0, 0.0, 0.0),
        (115_000, 5.0, 0.0, 0.0, 5.0)]

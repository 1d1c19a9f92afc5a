"""Raw samples stored as runs (gpuspend.samples): fewer rows, the same figures.

Every figure a user sees (rollup minutes, idle episodes, cost, energy, per-process money, the dashboard's
snapshot) is computed twice from the same readings: from the packed layout the sampler writes, and from a
row-per-sample reference (each reading written by a fresh sampler, so each is its own row: the layout before
schema v11). A real collector gap inside a constant stretch stays a gap; the energy counter gives each minute
its energy; an old-layout database migrates to the same figures; a failed write extends nothing.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from gpuspend import costing, rollup
from gpuspend.collectors.reading import GpuReading, ProcReading, Reading
from gpuspend.collectors.sampler import Sampler
from gpuspend.costing.attribution import process_seconds
from gpuspend.costing.metering import energy_by_day
from gpuspend.costing.store_read import current_procs, latest_samples
from gpuspend.samples import gpu_samples, proc_samples
from gpuspend.store import REPACK_KEY, SCHEMA_VERSION, connect, get_meta
from tests.idle.timeline import MIN, NOW_MS, cfg_file
from tests.old_schema import schema_at

GIB = 1 << 30
CFG = ("interval: {step}\nrates:\n  per_gpu:\n    GPU-r-0: 2.0\n    GPU-r-1: 3.0\nidle:\n  after: 5m\n"
       "  busy_for: 30s\n")
ONPREM = "interval: {step}\nonprem:\n  purchase_price: 30000\n  electricity_per_kwh: 0.2\n  pue: 1.0\n"


def _gpu(i: int, util: float | None, power: float, mem: int, procs: list[ProcReading], energy: int | None,
         temp: float = 40.0) -> GpuReading:
    return GpuReading(uuid=f"GPU-r-{i}", index=i, name="NVIDIA H100 80GB HBM3", util=util, mem_util=util,
                      mem_used=mem, power=power, energy_mj=energy, temperature=temp, sm_clock=1980,
                      memory_total=80 * GIB, power_limit=700.0, processes=procs)


def _timeline(rng: random.Random, start: int, end: int, step: int, energy_every: int = 1) -> list[Reading]:
    """Two GPUs: stretches of constant values (idle held or free, steady busy), noisy busy stretches, unknown
    utilisation, process changes, collector gaps (longer than 3 intervals) anywhere, the counter read every
    `energy_every` samples."""
    out: list[Reading] = []
    t = start
    energy = [7_000_000_000, 9_000_000_000]
    k = 0
    while t < end:
        kind = rng.choices(["held", "free", "steady", "noisy", "unknown", "gap"], [4, 2, 3, 3, 1, 1])[0]
        if kind == "gap":
            t += rng.randint(4, 40) * step
            continue
        secs = rng.choice([rng.randint(4, 90), rng.randint(120, 900)])
        for _ in range(max(1, secs * 1000 // step)):
            if t >= end:
                break
            gpus = []
            for i in range(2):
                procs: list[ProcReading] = []
                if kind in ("held", "steady", "noisy") and (i == 0 or kind != "held"):
                    sm = float(rng.randint(20, 99)) if kind == "noisy" else (80.0 if kind == "steady" else 0.0)
                    procs = [ProcReading(pid=100 + i, used_memory=(20 + i) * GIB, sm_util=sm, user="ann",
                                         command="train", started=1000 + i)]
                util = {"held": 1.0, "free": 0.0, "steady": 80.0, "unknown": None}.get(kind)
                power = {"held": 80.0, "free": 70.0, "steady": 600.0, "unknown": 90.0}.get(kind, 0.0)
                mem = sum(p.used_memory or 0 for p in procs) + 512 * (1 << 20)
                temp = 40.0
                if kind == "noisy":
                    util, power, temp = float(rng.randint(30, 100)), rng.uniform(300, 690), float(rng.randint(50, 80))
                    mem += rng.randint(-50, 50) * (1 << 20)
                watts = power + (i * 5)
                energy[i] += int(watts * step)
                read = energy[i] if k % energy_every == 0 else None
                gpus.append(_gpu(i, util, power, mem, procs, read, temp))
            out.append(Reading(ts_ms=t, host="node-1", source="nvml", gpus=gpus))
            t += step
            k += 1
    return out


def _write_packed(db: Path, readings: list[Reading], step: int) -> sqlite3.Connection:
    conn = connect(db)
    Sampler(conn, step / 1000).write_many(readings)
    return conn


def _write_reference(db: Path, readings: list[Reading], step: int) -> sqlite3.Connection:
    """Row per sample: a fresh sampler per reading never extends a row."""
    conn = connect(db)
    for r in readings:
        Sampler(conn, step / 1000).write(r)
    return conn


def _figures(conn: sqlite3.Connection, cfg, start: int, now: int) -> dict:
    costing.reset_caches()
    eps, _tl = costing.idle_episodes(conn, cfg, start, now + 1, now)
    gpus = costing.load_gpus(conn)
    rates = costing.resolve_rates(conn, cfg, gpus, now_ms=now)
    snap = costing.build_snapshot(conn, cfg, now)
    return {
        "episodes": [(e.gpu_id, e.start_ms, e.end_ms, round(e.idle_s, 3), round(e.waste or 0.0, 6)) for e in eps],
        "covered": {k: [round(x, 3) for x in v] for k, v in costing.covered_totals(conn, cfg, start, now + 1, now,
                                                                                      15 * MIN).items()},
        "metered": {k: round(v, 6) for k, v in costing.metered_total(conn, cfg, rates, start, now + 1, now).items()},
        "process": {k: [round(x, 3) for x in v] for k, v in process_seconds(conn, cfg, start, now + 1, now).items()},
        "attribution": [(s.pid, s.user, round(s.cost, 6), round(s.idle_cost, 6))
                        for s in costing.attribution(conn, cfg, rates, start, now + 1, now)],
        "energy": {k: round(v, 9) for k, v in energy_by_day(conn, cfg, start, now + 1, now).items()},
        "snapshot": (snap.cost_per_hour, snap.cost_per_hour_by_state, round(snap.today_cost, 6),
                     round(snap.idle_waste_today, 6), snap.hourly, snap.last_sample_ms,
                     [(g.uuid, g.state, g.util, g.power, g.mem_used) for g in snap.gpus],
                     [(p.pid, p.used_memory) for p in snap.processes]),
    }


def _minutes(conn: sqlite3.Connection) -> list[tuple]:
    """Rollup rows; energy_j apart (`_energy`): spread over a run or sample by sample, the counter's deltas
    add up to the same joules but not to the same last bits."""
    rows = conn.execute("SELECT * FROM gpu_minutes ORDER BY gpu_id, minute").fetchall()
    return [tuple(round(v, 6) if isinstance(v, float) else v for i, v in enumerate(r) if i != 9) for r in rows]


def _energy(conn: sqlite3.Connection) -> list:
    """Each minute's energy (J) from the counter, to its resolution (1 mJ)."""
    return [pytest.approx(e, abs=1e-3) if e is not None else None
            for (e,) in conn.execute("SELECT energy_j FROM gpu_minutes ORDER BY gpu_id, minute")]


def _pminutes(conn: sqlite3.Connection) -> list[tuple]:
    rows = conn.execute("SELECT * FROM process_minutes ORDER BY gpu_id, minute, proc_id").fetchall()
    return [tuple(round(v, 6) if isinstance(v, float) else v for v in r) for r in rows]


@pytest.mark.parametrize(("seed", "step", "energy_every"), [(1, 2000, 1), (2, 1000, 1), (3, 2000, 15), (4, 5000, 6)])
def test_packed_runs_give_every_figure_of_the_row_per_sample_layout(tmp_path, seed, step, energy_every):
    rng = random.Random(seed)
    cfg = cfg_file(tmp_path, CFG.format(step=step / 1000))
    start = NOW_MS - 3 * 60 * MIN + rng.randint(0, 59_999)
    readings = _timeline(rng, start, NOW_MS - 2 * MIN, step, energy_every)
    now = readings[-1].ts_ms + step
    packed = _write_packed(tmp_path / "packed.db", readings, step)
    ref = _write_reference(tmp_path / "ref.db", readings, step)
    try:
        rows = packed.execute("SELECT COUNT(*) FROM gpu_samples").fetchone()[0]
        ref_rows = ref.execute("SELECT COUNT(*) FROM gpu_samples").fetchone()[0]
        assert ref_rows == 2 * len(readings) and rows < ref_rows / 3      # far fewer rows...
        assert [r[:6] + r[7:] for r in gpu_samples(packed, 0, None)] == \
            [r[:6] + r[7:] for r in gpu_samples(ref, 0, None)]              # ...the same samples
        assert sorted(proc_samples(packed, 0, None)) == sorted(proc_samples(ref, 0, None))
        # raw samples only (nothing rolled up yet), then mostly rollups: the same figures both ways
        assert _figures(packed, cfg, start, now) == _figures(ref, cfg, start, now)
        for conn in (packed, ref):
            rollup.roll_up(conn, interval_s=step / 1000, idle_util_pct=5.0, now_ms=now)
        assert _minutes(packed) == _minutes(ref)
        assert _energy(ref) == _energy(packed)
        assert _pminutes(packed) == _pminutes(ref)
        assert _figures(packed, cfg, start, now) == _figures(ref, cfg, start, now)
    finally:
        packed.close()
        ref.close()


def test_a_constant_stretch_is_one_row_per_minute(tmp_path):
    """10 minutes of a held-idle GPU at 1 s: 600 samples, 10 rows, each standing for its minute's samples."""
    m0 = NOW_MS - 20 * MIN
    procs = [ProcReading(pid=5, used_memory=GIB, sm_util=0.0, user="bob", command="jupyter", started=1)]
    readings = [Reading(ts_ms=t, host="node-1", source="nvml",
                        gpus=[_gpu(0, 0.0, 75.0, GIB, procs, None)]) for t in range(m0, m0 + 10 * MIN, 1000)]
    conn = _write_packed(tmp_path / "c.db", readings, 1000)
    try:
        rows = conn.execute("SELECT ts, span_ms, n, dts, util, power FROM gpu_samples ORDER BY ts").fetchall()
        assert rows == [(m0 + k * MIN, 59_000, 60, None, 0.0, 75.0) for k in range(10)]
        assert conn.execute("SELECT COUNT(*), SUM(typeof(used_memory) = 'integer') FROM process_samples") \
            .fetchone() == (10, 10)                                       # plain numbers, not arrays
        rollup.roll_up(conn, interval_s=1, now_ms=m0 + 10 * MIN)
        got = conn.execute("SELECT samples, covered_s, held_idle_s FROM gpu_minutes ORDER BY minute").fetchall()
        assert got == [(60, 60.0, 60.0)] * 10
    finally:
        conn.close()


def test_a_real_gap_inside_a_constant_stretch_is_still_a_gap(tmp_path):
    """Identical samples every 2 s, with the collector silent from 12:00:20 to 12:00:40 (longer than 3
    intervals): two rows, and the minute covers 60 - 18 = 42 s (the sample before the gap covers one interval),
    in the rollup as in the raw tail; the costs are for 42 s."""
    cfg = cfg_file(tmp_path, CFG.format(step=2))
    m0 = NOW_MS - 10 * MIN
    ts = [t for t in range(m0, m0 + MIN, 2000) if not m0 + 20_000 < t < m0 + 40_000]
    readings = [Reading(ts_ms=t, host="node-1", source="nvml", gpus=[_gpu(0, 0.0, 70.0, 0, [], None)]) for t in ts]
    readings.append(Reading(ts_ms=m0 + MIN, host="node-1", source="nvml", gpus=[_gpu(0, 0.0, 70.0, 0, [], None)]))
    conn = _write_packed(tmp_path / "gap.db", readings, 2000)
    try:
        rows = conn.execute("SELECT ts, span_ms, n FROM gpu_samples ORDER BY ts").fetchall()
        assert rows == [(m0, 20_000, 11), (m0 + 40_000, 18_000, 10), (m0 + MIN, 0, 1)]
        now = m0 + MIN
        costing.reset_caches()
        raw = costing.covered_totals(conn, cfg, m0, m0 + MIN, now)
        assert raw[(1, 0)] == [pytest.approx(42.0), 0.0, pytest.approx(42.0)]
        gpus = costing.load_gpus(conn)
        rates = costing.resolve_rates(conn, cfg, gpus, now_ms=now)
        assert costing.metered_total(conn, cfg, rates, m0, m0 + MIN, now) == {"USD": pytest.approx(2.0 * 42 / 3600)}
        rollup.roll_up(conn, interval_s=2, now_ms=now)
        assert conn.execute("SELECT samples, covered_s, free_idle_s FROM gpu_minutes WHERE minute = ?",
                            (m0,)).fetchone() == (21, 42.0, 42.0)
    finally:
        conn.close()


def test_the_energy_counter_gives_each_minute_its_energy(tmp_path):
    """Constant readings (power shows 300 W) while the counter runs at 200 W for 30 s then 600 W, every 2 s for
    three minutes: one row per minute holds the counter at its first and last sample, and each minute's energy
    is the counter's: 200 x 30 + 600 x 30 = 24 kJ, not power x time (18 kJ)."""
    m0 = NOW_MS - 10 * MIN
    readings = []
    e = 1_000_000_000
    for t in range(m0, m0 + 3 * MIN + 1, 2000):
        readings.append(Reading(ts_ms=t, host="node-1", source="nvml", gpus=[_gpu(0, 90.0, 300.0, GIB, [], e)]))
        e += (200 if (t - m0) % MIN < 30_000 else 600) * 2000       # mJ over the next 2 s
    conn = _write_packed(tmp_path / "e.db", readings, 2000)
    try:
        assert conn.execute("SELECT COUNT(*) FROM gpu_samples").fetchone()[0] == 4     # 3 minutes + 1 sample
        rollup.roll_up(conn, interval_s=2, now_ms=m0 + 3 * MIN)
        energy = [r[0] for r in conn.execute("SELECT energy_j FROM gpu_minutes ORDER BY minute")]
        assert energy[:3] == [pytest.approx(24_000.0)] * 3
    finally:
        conn.close()


def _v10_db(path: Path) -> sqlite3.Connection:
    return schema_at(path, 10)


def test_an_old_row_per_sample_database_migrates_to_runs_with_the_same_figures(tmp_path):
    """A v10 database (one row per sample) opens at once (the v11 step only notes what to repack: old rows read
    the same), then the collector's rollup task repacks it an hour per transaction, resuming after a restart:
    far fewer rows, every sample kept, the same figures as the same rows read in the row-per-sample form. The
    newest hour is left as it was (a new collector may be extending runs there)."""
    rng = random.Random(9)
    cfg = cfg_file(tmp_path, CFG.format(step=2))
    start = NOW_MS - 200 * MIN
    readings = _timeline(rng, start, NOW_MS - 2 * MIN, 2000, 15)
    now = readings[-1].ts_ms + 2000
    ref = _write_reference(tmp_path / "ref.db", readings, 2000)
    old = _v10_db(tmp_path / "old.db")
    try:
        # the reference's rows, as the v10 sampler wrote them
        old.execute("BEGIN")
        for table in ("gpus", "processes"):
            cols = [c[1] for c in old.execute(f"PRAGMA table_info({table})")]
            old.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                            ref.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall())
        old.executemany("INSERT INTO gpu_samples VALUES (?,?,?,?,?,?,?,?,?)",
                        ref.execute("SELECT gpu_id, ts, util, mem_util, mem_used, power, energy_mj, temperature, "
                                    "sm_clock FROM gpu_samples").fetchall())
        old.executemany("INSERT INTO process_samples VALUES (?,?,?,?,?)",
                        ref.execute("SELECT gpu_id, ts, proc_id, used_memory, sm_util FROM process_samples").fetchall())
        old.execute("INSERT INTO collector_lease VALUES (1, 1, 'node-1', 'daemon', 0, 0, 2.0)")
        old.execute("COMMIT")
        ref.execute("INSERT INTO collector_lease VALUES (1, 1, 'node-1', 'daemon', 0, 0, 2.0)")
        n_old = old.execute("SELECT COUNT(*) FROM gpu_samples").fetchone()[0]
    finally:
        old.close()
    conn = connect(tmp_path / "old.db")           # migrates: nothing repacked yet, and already the same figures
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT COUNT(*) FROM gpu_samples").fetchone()[0] == n_old
        assert _figures(conn, cfg, start, now) == _figures(ref, cfg, start, now)
        assert rollup.repack_pending(conn, 2.0, max_chunks=1)      # one hour, then the collector stops
        conn.close()
        conn = connect(tmp_path / "old.db")
        passes = 0
        while rollup.repack_pending(conn, 2.0, max_chunks=1):
            passes += 1
        assert passes >= 1 and get_meta(conn, REPACK_KEY) is None
        assert not rollup.repack_pending(conn, 2.0)
        end = ref.execute("SELECT MAX(ts) FROM gpu_samples").fetchone()[0] // 3600_000 * 3600_000  # newest hour: left
        n_before = ref.execute("SELECT COUNT(*) FROM gpu_samples WHERE ts < ?", (end,)).fetchone()[0]
        assert conn.execute("SELECT COUNT(*) FROM gpu_samples WHERE ts < ?", (end,)).fetchone()[0] < n_before / 4
        assert (conn.execute("SELECT COUNT(*) FROM gpu_samples WHERE ts >= ?", (end,)).fetchone()[0]
                == ref.execute("SELECT COUNT(*) FROM gpu_samples WHERE ts >= ?", (end,)).fetchone()[0])
        assert conn.execute("SELECT SUM(n) FROM gpu_samples").fetchone()[0] == n_old
        assert [r[:6] + r[7:] for r in gpu_samples(conn, 0, None)] == [r[:6] + r[7:] for r in gpu_samples(ref, 0, None)]
        assert sorted(proc_samples(conn, 0, None)) == sorted(proc_samples(ref, 0, None))
        assert _figures(conn, cfg, start, now) == _figures(ref, cfg, start, now)
        for c in (conn, ref):
            rollup.roll_up(c, interval_s=2, idle_util_pct=5.0, now_ms=now)
        assert _minutes(conn) == _minutes(ref)
        assert _energy(ref) == _energy(conn)
        assert _pminutes(conn) == _pminutes(ref)
        (tmp_path / "onprem").mkdir()
        onprem = cfg_file(tmp_path / "onprem", ONPREM.format(step=2))      # money from measured energy
        assert _figures(conn, onprem, start, now) == _figures(ref, onprem, start, now)
    finally:
        conn.close()
        ref.close()


def test_a_failed_write_extends_nothing_and_the_next_tick_starts_a_new_row(tmp_path):
    """A tick whose transaction fails (here: a trigger aborts the in-place extension) leaves the row as the
    last committed tick wrote it; the sampler starts a new row for the next reading, nothing is counted twice."""
    m0 = NOW_MS - 10 * MIN
    conn = connect(tmp_path / "fail.db")
    s = Sampler(conn, 2.0)
    try:
        def tick(t: int) -> None:
            s.write(Reading(ts_ms=t, host="node-1", source="nvml", gpus=[_gpu(0, 0.0, 70.0, 0, [], None)]))

        for t in range(m0, m0 + 10_000, 2000):
            tick(t)
        conn.execute("CREATE TEMP TRIGGER boom BEFORE UPDATE ON main.gpu_samples BEGIN "
                     "SELECT RAISE(ABORT, 'disk full'); END")
        with pytest.raises(sqlite3.DatabaseError):
            tick(m0 + 10_000)
        conn.execute("DROP TRIGGER boom")
        for t in range(m0 + 12_000, m0 + 20_000, 2000):
            tick(t)
        assert conn.execute("SELECT ts, span_ms, n FROM gpu_samples ORDER BY ts").fetchall() == \
            [(m0, 8000, 5), (m0 + 12_000, 6000, 4)]
        assert [r[1] for r in gpu_samples(conn, 0, None)] == \
            [*range(m0, m0 + 10_000, 2000), *range(m0 + 12_000, m0 + 20_000, 2000)]
        # a new sampler (a restarted collector) never extends a row it did not write
        Sampler(conn, 2.0).write(Reading(ts_ms=m0 + 20_000, host="node-1", source="nvml",
                                         gpus=[_gpu(0, 0.0, 70.0, 0, [], None)]))
        assert conn.execute("SELECT COUNT(*), SUM(n) FROM gpu_samples").fetchone() == (3, 10)
    finally:
        conn.close()


def test_overlapping_runs_after_the_clock_went_back_count_each_instant_once(tmp_path):
    """A collector restarted with its clock set back 10 s writes samples its predecessor's row already stands
    for: each instant is one sample (the later reading), covered once."""
    m0 = NOW_MS - 10 * MIN
    conn = connect(tmp_path / "overlap.db")
    try:
        def reading(t: int, util: float) -> Reading:
            return Reading(ts_ms=t, host="node-1", source="nvml", gpus=[_gpu(0, util, 70.0, 0, [], None)])

        Sampler(conn, 2.0).write_many([reading(t, 0.0) for t in range(m0, m0 + 20_001, 2000)])
        Sampler(conn, 2.0).write_many([reading(t, 90.0) for t in range(m0 + 10_000, m0 + 30_001, 2000)])
        assert conn.execute("SELECT COUNT(*), SUM(n) FROM gpu_samples").fetchone() == (2, 22)
        got = [(r[1] - m0, r[2]) for r in gpu_samples(conn, 0, None)]
        assert got == [(t, 0.0) for t in range(0, 10_000, 2000)] + [(t, 90.0) for t in range(10_000, 30_001, 2000)]
        rollup.roll_up(conn, interval_s=2, now_ms=m0 + 32_000)
        assert conn.execute("SELECT samples, covered_s, busy_s FROM gpu_minutes").fetchone() == (16, 32.0, 22.0)
    finally:
        conn.close()


def test_every_gpus_newest_sample_and_its_processes_read_back_from_packed_runs(tmp_path):
    """What the dashboard reads every tick (every GPU's newest sample and the processes on it, in two reads):
    the last of five ticks, from inside a run that grew tick by tick, on GPUs with one, none and a changing
    set of processes."""
    t0 = NOW_MS - 10_000
    readings = []
    for k in range(5):
        a = ProcReading(pid=101, used_memory=(10 + k) * GIB, sm_util=50.0 + k, user="ann", command="train",
                        started=1000)
        b = ProcReading(pid=202, used_memory=4 * GIB, sm_util=20.0, user="bob", command="eval", started=2000)
        c = ProcReading(pid=303, used_memory=2 * GIB, sm_util=5.0, user="cy", command="notebook", started=3000)
        gpus = [_gpu(0, 60.0 + k, 300.0 + k, (11 + k) * GIB, [a], None),
                _gpu(1, 0.0, 70.0, GIB // 2, [], None),
                _gpu(2, 40.0, 250.0, 7 * GIB if k < 3 else 5 * GIB, [b, c] if k < 3 else [b], None)]
        readings.append(Reading(ts_ms=t0 + k * 1000, host="node-1", source="nvml", gpus=gpus))
    conn = _write_packed(tmp_path / "d.db", readings, 1000)
    ids = {uuid: gid for gid, uuid in conn.execute("SELECT id, uuid FROM gpus")}
    last = t0 + 4000
    latest = latest_samples(conn)
    assert latest == {ids["GPU-r-0"]: (last, 64.0, 15 * GIB, 304.0, 40.0),
                      ids["GPU-r-1"]: (last, 0.0, GIB // 2, 70.0, 40.0),
                      ids["GPU-r-2"]: (last, 40.0, 5 * GIB, 250.0, 40.0)}
    procs = current_procs(conn, latest)
    pid = {p: proc for proc, p in conn.execute("SELECT id, pid FROM processes")}
    assert procs == {ids["GPU-r-0"]: [(pid[101], 101, "ann", "train", 14 * GIB, 54.0)],
                     ids["GPU-r-1"]: [],
                     ids["GPU-r-2"]: [(pid[202], 202, "bob", "eval", 4 * GIB, 20.0)]}
    # an earlier sample inside GPU 0's run: its own values, not the run's last
    assert current_procs(conn, {ids["GPU-r-0"]: (t0 + 1000,)}) == {
        ids["GPU-r-0"]: [(pid[101], 101, "ann", "train", 11 * GIB, 51.0)]}
    conn.close()


def test_a_run_read_while_it_grows_gives_its_new_samples_every_time(tmp_path):
    """The dashboard reads the live tail every second while the collector extends each GPU's newest run:
    decoded runs are remembered by their whole stored row, so every read has exactly the samples stored,
    as a read with nothing remembered gives."""
    from gpuspend import samples

    rng = random.Random(7)
    step = 1000
    readings = _timeline(rng, NOW_MS - 5 * MIN, NOW_MS, step)
    conn = connect(tmp_path / "live.db")
    try:
        sampler = Sampler(conn, step / 1000)
        lo = NOW_MS - 3 * MIN
        for k, r in enumerate(readings):
            sampler.write(r)
            if k % 7 and k != len(readings) - 1:
                continue
            got = (gpu_samples(conn, lo, r.ts_ms + 1), sorted(proc_samples(conn, lo, r.ts_ms + 1)))
            samples._DECODED.clear()
            fresh = (gpu_samples(conn, lo, r.ts_ms + 1), sorted(proc_samples(conn, lo, r.ts_ms + 1)))
            assert got == fresh
            assert len([s for s in got[0] if s[0] == got[0][-1][0]]) == \
                len([x for x in readings[: k + 1] if x.ts_ms >= lo])           # every sample of one GPU, once
    finally:
        conn.close()

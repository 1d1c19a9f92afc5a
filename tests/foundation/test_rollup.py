"""Raw samples -> per-minute rows: states, gaps, attribution, idempotence, retention."""

from __future__ import annotations

import pytest

from gpuspend import rollup
from gpuspend.collectors.reading import GpuReading, ProcReading, Reading
from gpuspend.collectors.sampler import Sampler
from gpuspend.gpu_models import normalise_model
from gpuspend.samples import gpu_samples, proc_samples
from gpuspend.store import get_meta

M0 = 1_794_744_000_000          # a minute boundary (2026-11-15 12:00 UTC)
GIB = 1024 ** 3


def _reading(ts: int, gpus: list[tuple[str, float | None, list[ProcReading]]], power: float = 100.0) -> Reading:
    return Reading(ts_ms=ts, host="h", source="nvml", gpus=[
        GpuReading(uuid=u, index=i, name="NVIDIA L4", util=util, mem_util=1.0, mem_used=GIB, power=power,
                   processes=procs) for i, (u, util, procs) in enumerate(gpus)])


def _write(conn, times: range | list[int], gpus, **kw) -> Sampler:
    s = Sampler(conn)
    s.write_many(_reading(t, gpus, **kw) for t in times)
    return s


def _sample_counts(conn) -> tuple[int, int]:
    """(GPU samples, process samples) stored: a row is a run of samples (gpuspend.samples)."""
    return len(gpu_samples(conn, 0, None)), sum(1 for _ in proc_samples(conn, 0, None))


def _minutes(conn) -> list[tuple]:
    return conn.execute("SELECT g.uuid, m.minute, m.samples, m.covered_s, m.busy_s, m.held_idle_s, m.free_idle_s, "
                        "m.util_avg FROM gpu_minutes m JOIN gpus g ON g.id = m.gpu_id "
                        "ORDER BY g.uuid, m.minute").fetchall()


def test_states_busy_held_idle_free_idle(conn) -> None:
    nb = [ProcReading(pid=7, used_memory=20 * GIB, user="bob", command="jupyter", started=1)]
    _write(conn, range(M0, M0 + 60_001, 2000), [("busy", 50.0, []), ("held", 1.0, nb), ("free", 0.0, [])])
    rollup.roll_up(conn, interval_s=2, now_ms=M0 + 60_000)
    rows = {(u, m): r for u, m, *r in _minutes(conn)}
    assert rows[("busy", M0)][:5] == [30, 60.0, 60.0, 0.0, 0.0]
    assert rows[("held", M0)][:5] == [30, 60.0, 0.0, 60.0, 0.0]
    assert rows[("free", M0)][:5] == [30, 60.0, 0.0, 0.0, 60.0]
    assert rows[("busy", M0)][5] == pytest.approx(50.0)


def test_threshold_comes_from_config_value(conn) -> None:
    _write(conn, range(M0, M0 + 60_001, 2000), [("g", 8.0, [])])
    rollup.roll_up(conn, interval_s=2, idle_util_pct=10.0, now_ms=M0 + 60_000)
    assert _minutes(conn)[0][4:7] == (0.0, 0.0, 60.0)


def test_a_gap_longer_than_three_intervals_is_not_covered(conn) -> None:
    times = list(range(M0, M0 + 20_000, 2000)) + list(range(M0 + 600_000, M0 + 660_001, 2000))
    _write(conn, times, [("g", 90.0, [])])
    rollup.roll_up(conn, interval_s=2, now_ms=M0 + 660_000)
    rows = _minutes(conn)
    first = rows[0]
    # 10 samples: 9 cover 2 s to their successor, the last before the gap covers one interval only.
    assert (first[1], first[2], first[3]) == (M0, 10, 20.0)
    assert [r[1] for r in rows] == [M0, M0 + 600_000, M0 + 660_000]
    total = sum(r[3] for r in rows)
    assert total == pytest.approx(20.0 + 60.0 + 0.0)


def test_rerun_adds_nothing_and_partial_minute_is_rerolled(conn) -> None:
    s = Sampler(conn)
    gpus = [("g", 90.0, [ProcReading(pid=1, used_memory=GIB, sm_util=90.0, started=5)])]
    s.write_many(_reading(t, gpus) for t in range(M0, M0 + 30_000, 2000))      # half a minute
    rollup.roll_up(conn, interval_s=2, now_ms=M0 + 30_000)
    half = _minutes(conn)
    assert half[0][2:4] == (15, 30.0)
    rollup.roll_up(conn, interval_s=2, now_ms=M0 + 30_000)
    assert _minutes(conn) == half                                              # idempotent
    s.write_many(_reading(t, gpus) for t in range(M0 + 30_000, M0 + 120_001, 2000))
    rollup.roll_up(conn, interval_s=2, now_ms=M0 + 120_000)
    rollup.roll_up(conn, interval_s=2, now_ms=M0 + 120_000)
    rows = _minutes(conn)
    assert [(r[1], r[2], r[3]) for r in rows] == [(M0, 30, 60.0), (M0 + 60_000, 30, 60.0), (M0 + 120_000, 1, 0.0)]
    assert conn.execute("SELECT SUM(samples) FROM gpu_minutes").fetchone()[0] == \
        conn.execute("SELECT SUM(n) FROM gpu_samples").fetchone()[0]
    shares = conn.execute("SELECT minute, share_s FROM process_minutes ORDER BY minute").fetchall()
    assert shares[:2] == [(M0, 60.0), (M0 + 60_000, 60.0)]


def test_samples_spanning_a_minute_boundary_are_split(conn) -> None:
    _write(conn, range(M0 + 1000, M0 + 61_001, 4000), [("g", 90.0, [])])     # :01, :05 ... :57, 1:01
    rollup.roll_up(conn, interval_s=4, now_ms=M0 + 61_000)
    rows = _minutes(conn)
    assert rows[0][3] == pytest.approx(59.0)            # :01 -> 1:00
    assert rows[1][3] == pytest.approx(1.0)             # 1:00 -> 1:01 from the :57 sample


def test_attribution_by_sm_share_else_memory_share(conn) -> None:
    a = ProcReading(pid=1, used_memory=30 * GIB, sm_util=60.0, started=1)
    b = ProcReading(pid=2, used_memory=10 * GIB, sm_util=20.0, started=1)
    _write(conn, range(M0, M0 + 60_001, 2000), [("sm", 80.0, [a, b])])
    a2 = ProcReading(pid=3, used_memory=30 * GIB, sm_util=None, started=1)
    b2 = ProcReading(pid=4, used_memory=10 * GIB, sm_util=None, started=1)
    _write(conn, range(M0, M0 + 60_001, 2000), [("sm", 80.0, [a, b]), ("mem", 2.0, [a2, b2])])
    rollup.roll_up(conn, interval_s=2, now_ms=M0 + 60_000)
    rows = dict(((pid, minute), (share, idle)) for pid, minute, share, idle in conn.execute(
        "SELECT p.pid, m.minute, m.share_s, m.idle_share_s FROM process_minutes m "
        "JOIN processes p ON p.id = m.proc_id"))
    assert rows[(1, M0)] == (pytest.approx(45.0), 0.0)   # 60/80 of 60 s, GPU busy
    assert rows[(2, M0)] == (pytest.approx(15.0), 0.0)
    assert rows[(3, M0)] == (pytest.approx(45.0), pytest.approx(45.0))   # memory share, all idle (held)
    assert rows[(4, M0)] == (pytest.approx(15.0), pytest.approx(15.0))


def test_energy_from_counter_when_present(conn) -> None:
    s = Sampler(conn)
    readings = []
    for k, t in enumerate(range(M0, M0 + 60_001, 2000)):
        r = _reading(t, [("g", 90.0, [])], power=300.0)
        r.gpus[0].energy_mj = 5_000_000 + k * 2000 * 400     # 400 W by the counter
        readings.append(r)
    s.write_many(readings)
    rollup.roll_up(conn, interval_s=2, now_ms=M0 + 60_000)
    energy, power = conn.execute("SELECT energy_j, power_avg FROM gpu_minutes WHERE minute = ?", (M0,)).fetchone()
    assert energy == pytest.approx(400 * 60) and power == pytest.approx(300.0)


def test_energy_counter_read_every_30_s_is_spread_over_the_samples_between(conn) -> None:
    """The collector reads the (slow) energy counter every 30 s: rows in between have NULL. Rolled up a
    minute at a time as the daemon does, each minute still gets the counter's 400 W, not power x time."""
    s = Sampler(conn)
    for minute in range(3):
        readings = []
        for t in range(M0 + minute * 60_000, M0 + (minute + 1) * 60_000, 2000):
            r = _reading(t, [("g", 90.0, [])], power=300.0)
            if (t - M0) % 30_000 == 0:
                r.gpus[0].energy_mj = 5_000_000 + (t - M0) * 400
            readings.append(r)
        s.write_many(readings)
        rollup.roll_up(conn, interval_s=2, now_ms=M0 + (minute + 1) * 60_000)
    s.write(_reading(M0 + 180_000, [("g", 90.0, [])], power=300.0))
    conn.execute("UPDATE gpu_samples SET energy_mj = ? WHERE ts = ?", (5_000_000 + 180_000 * 400, M0 + 180_000))
    rollup.roll_up(conn, interval_s=2, now_ms=M0 + 182_000)
    energy = [e for (e,) in conn.execute("SELECT energy_j FROM gpu_minutes ORDER BY minute")]
    assert energy[:3] == [pytest.approx(400 * 60)] * 3


def test_retention_deletes_raw_rows_only_after_rollup(conn) -> None:
    day = 86_400_000
    old = range(M0 - 8 * day, M0 - 8 * day + 60_001, 2000)
    new = range(M0 - 60_000, M0 + 1, 2000)
    nb = [ProcReading(pid=7, used_memory=GIB, started=1)]
    _write(conn, list(old) + list(new), [("g", 1.0, nb)])
    raw = _sample_counts(conn)
    assert raw == (len(old) + len(new), len(old) + len(new))
    assert rollup.apply_retention(conn, raw_s=7 * 86400, interval_s=2, now_ms=M0) == 0   # not rolled yet
    assert _sample_counts(conn) == raw
    rollup.roll_up(conn, interval_s=2, now_ms=M0)
    before = _minutes(conn)
    assert rollup.apply_retention(conn, raw_s=7 * 86400, interval_s=2, now_ms=M0) > 0
    assert _sample_counts(conn) == (len(new), len(new))  # gpu + process samples of the old minute gone
    assert conn.execute("SELECT MIN(ts) FROM gpu_samples").fetchone()[0] == M0 - 60_000
    assert _minutes(conn) == before                     # rollups kept for good
    rollup.roll_up(conn, interval_s=2, now_ms=M0)
    assert _minutes(conn) == before


def test_periodic_task_uses_the_collector_interval(conn) -> None:
    from gpuspend.config import load_config

    _write(conn, range(M0, M0 + 60_001, 10_000), [("g", 90.0, [])])
    conn.execute("INSERT INTO collector_lease VALUES (1, 1, 'h', 'daemon', 0, 0, 10.0)")
    rollup.rollup_task(conn, load_config(), M0 + 60_000)
    assert _minutes(conn)[0][3] == 60.0                 # 10 s samples are not "gaps" at a 10 s interval
    assert get_meta(conn, rollup.WATERMARK_KEY) == str(M0 + 60_000)


@pytest.mark.parametrize(("name", "model"), [
    # keys carry the form factor where it changes the price (tests/prices/test_matching.py has the rest)
    ("NVIDIA H100 80GB HBM3", "H100-SXM"), ("NVIDIA H100 PCIe", "H100-PCIE"),
    ("NVIDIA A100-SXM4-80GB", "A100-80GB-SXM"), ("NVIDIA A100-PCIE-40GB", "A100-40GB-PCIE"), ("NVIDIA L4", "L4"),
    ("NVIDIA L40S", "L40S"), ("NVIDIA A10G", "A10G"),
    ("Tesla T4", "T4"), ("Tesla V100-SXM2-16GB", "V100"), ("NVIDIA H200", "H200-SXM"), ("NVIDIA B200", "B200"),
    ("NVIDIA GeForce RTX 4090", "GEFORCE-RTX-4090"), (None, None),
])
def test_model_normalisation(name: str | None, model: str | None) -> None:
    assert normalise_model(name) == model


def test_processes_without_start_time_are_not_duplicated(conn) -> None:
    p = [ProcReading(pid=4242, used_memory=GIB)]           # started unknown (other namespace)
    _write(conn, range(M0, M0 + 10_000, 2000), [("g", 50.0, p)])
    _write(conn, range(M0 + 10_000, M0 + 20_000, 2000), [("g", 50.0, p)])   # a fresh sampler (restart)
    assert conn.execute("SELECT COUNT(*) FROM processes").fetchone()[0] == 1


def test_energy_counter_reset_falls_back_to_power(conn) -> None:
    s = Sampler(conn)
    readings = []
    for k, t in enumerate(range(M0, M0 + 60_001, 2000)):
        r = _reading(t, [("g", 90.0, [])], power=300.0)
        # 300 W by the counter, but the driver reloads at 0:30 (counter restarts near zero)
        r.gpus[0].energy_mj = (9_000_000 + k * 600_000) if t < M0 + 30_000 else (k - 15) * 600_000
        readings.append(r)
    s.write_many(readings)
    rollup.roll_up(conn, interval_s=2, now_ms=M0 + 60_000)
    energy = conn.execute("SELECT energy_j FROM gpu_minutes WHERE minute = ?", (M0,)).fetchone()[0]
    assert energy == pytest.approx(300 * 60)            # no negative or absurd energy from the reset


def test_first_sample_of_a_minute_has_a_utilisation(conn) -> None:
    _write(conn, [M0], [("g", 42.0, [])])
    rollup.roll_up(conn, interval_s=2, now_ms=M0)
    assert _minutes(conn)[0][2:4] == (1, 0.0) and _minutes(conn)[0][7] == 42.0


def test_a_long_backlog_rolled_in_bounded_steps_gives_the_same_rows(tmp_path) -> None:
    from gpuspend.store import connect

    results = []
    for step in (None, 1):
        c = connect(tmp_path / f"b{step}.db")
        _write(c, range(M0, M0 + 3 * 3600_000 + 1, 10_000), [("g", 50.0, []), ("h", 0.0, [])])
        rounds = 0
        while True:
            rounds += 1
            rollup.roll_up(c, interval_s=10, now_ms=M0 + 3 * 3600_000, max_chunks=step)
            if get_meta(c, rollup.WATERMARK_KEY) == str(M0 + 3 * 3600_000):
                break
        results.append((_minutes(c), rounds))
        c.close()
    (full, one_round), (stepped, rounds) = results
    assert one_round == 1 and rounds == 3         # two one-hour chunks, then the rest to the open minute
    assert stepped == full and len(full) == 2 * (3 * 60 + 1)

"""`gpuspend idle`: exit 0 only when every selected GPU was seen idle for the whole window; 1 when any was
active or when the answer is not known (stale, missing samples, lost GPU, no database); 2 for usage errors.
Fixed clock (GPUSPEND_NOW), hand-built stores."""

from __future__ import annotations

import json
from pathlib import Path

from gpuspend.store import transaction
from tests.conftest import run_cli
from tests.costing.builders import NOW_MS, add_gpus, add_process, add_samples, new_store

MIN = 60_000


def _store(db: Path, *, until_ms: int = NOW_MS - 2000, since_ms: int = NOW_MS - 40 * MIN,
           busy_at: int | None = None) -> list[int]:
    conn = new_store(db)
    ids = add_gpus(conn, 2)
    for gid in ids:
        add_samples(conn, gid, since_ms, until_ms + 1, 2000, 0.0)
    if busy_at is not None:
        with transaction(conn):
            conn.execute("UPDATE gpu_samples SET util = 80 WHERE gpu_id = ? AND ts = ?", (ids[1], busy_at))
    with transaction(conn):
        conn.execute("UPDATE gpus SET last_seen = (SELECT MAX(ts) FROM gpu_samples WHERE gpu_id = gpus.id)")
    conn.close()
    return ids


def _idle(db: Path, *args: str):
    r = run_cli("idle", "--db", str(db), *args)
    assert "Traceback" not in r.stderr
    return r


def test_idle_for_the_whole_window_exits_0(db_path: Path) -> None:
    _store(db_path)
    r = _idle(db_path, "--for", "30m", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["verdict"] == "idle" and [g["verdict"] for g in doc["gpus"]] == ["idle", "idle"]
    g0 = doc["gpus"][0]
    assert g0["state"] == "free-idle" and g0["last_sample_age_s"] == 2.0
    assert g0["idle_for_s"] == 40 * 60          # 1200 samples x 2 s, back to the first one
    text = _idle(db_path, "--for", "30m")
    assert text.returncode == 0 and text.stdout.splitlines()[-1].startswith("idle: all 2 selected GPUs idle")


def test_a_busy_sample_in_the_window_exits_1_naming_the_gpu(db_path: Path) -> None:
    _store(db_path, busy_at=NOW_MS - 10 * MIN)
    r = _idle(db_path, "--for", "30m", "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 1 and doc["verdict"] == "active"
    assert [g["verdict"] for g in doc["gpus"]] == ["idle", "active"] and doc["reason"].startswith("GPU 1:")
    assert doc["gpus"][1]["idle_for_s"] == 10 * 60 - 2        # idle since the sample after the busy one
    assert _idle(db_path, "--for", "30m", "--gpu", "0").returncode == 0      # GPU 0 alone is idle
    assert _idle(db_path, "--for", "5m", "--gpu", "1").returncode == 0       # the busy blip is before 5 min


def test_stale_samples_are_never_idle(db_path: Path) -> None:
    _store(db_path, until_ms=NOW_MS - 10 * MIN)      # collector stopped 10 minutes ago
    r = _idle(db_path, "--for", "30m", "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 1 and doc["verdict"] == "unknown"
    assert doc["gpus"][0]["state"] == "stale" and "collector is not running" in doc["gpus"][0]["reason"]
    # durations as every surface writes them (fmt.duration), and no idle run claimed for a stale GPU
    lines = _idle(db_path, "--for", "30m").stdout.splitlines()
    assert lines[0] == "GPU 0: unknown stale     idle unknown: last sample 10m old: the collector is not running"
    assert lines[-1] == "unknown: GPU 0: last sample 10m old: the collector is not running (window 30m)"


def test_samples_that_do_not_cover_the_window_are_not_known(db_path: Path) -> None:
    _store(db_path, since_ms=NOW_MS - 10 * MIN)      # only 10 minutes of history
    r = _idle(db_path, "--for", "30m", "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 1 and doc["verdict"] == "unknown"
    assert doc["gpus"][0]["reason"] == "samples cover 10m of the 30m window"
    assert _idle(db_path, "--for", "5m").returncode == 0


def test_lost_gpu_and_missing_database_exit_1(db_path: Path, tmp_path: Path) -> None:
    ids = _store(db_path)
    conn = new_store(db_path)
    with transaction(conn):
        conn.execute("UPDATE gpus SET lost_at = ? WHERE id = ?", (NOW_MS - MIN, ids[0]))
    conn.close()
    doc = json.loads(_idle(db_path, "--json").stdout)
    assert doc["verdict"] == "unknown" and doc["gpus"][0]["reason"] == "NVML reports this GPU lost"
    missing = _idle(tmp_path / "none.db", "--json")
    assert missing.returncode == 1 and json.loads(missing.stdout)["verdict"] == "unknown"
    assert not (tmp_path / "none.db").exists()                # asking never creates a database


def test_usage_errors_exit_2(db_path: Path) -> None:
    _store(db_path)
    bad_gpu = _idle(db_path, "--gpu", "9")
    assert bad_gpu.returncode == 2 and "no such GPU" in bad_gpu.stderr and "indices: 0, 1" in bad_gpu.stderr
    both = _idle(db_path, "--gpu", "0", "--gpu", "GPU-box1-0", "--json")     # one GPU named twice
    assert both.returncode == 0 and len(json.loads(both.stdout)["gpus"]) == 1
    assert "--gpu 7:" in _idle(db_path, "--gpu", "0", "--gpu", "7").stderr
    assert _idle(db_path, "--for", "soon").returncode == 2
    assert _idle(db_path, "--for", "0").returncode == 2


def test_held_idle_gpu_names_its_workload(db_path: Path) -> None:
    conn = new_store(db_path)
    ids = add_gpus(conn, 1)
    proc = add_process(conn, 4242, "ann", "python -m ipykernel_launcher")
    with transaction(conn):
        wl = conn.execute("INSERT INTO workloads (host, kind, wid, name, first_seen, last_seen) VALUES "
                          "('box1', 'jupyter-kernel', 'k1', 'notebooks/explore.ipynb', 0, 0)").lastrowid
        conn.execute("UPDATE processes SET workload_id = ? WHERE id = ?", (wl, proc))
    add_samples(conn, ids[0], NOW_MS - 40 * MIN, NOW_MS - 1999, 2000, 0.0, [(proc, 8 * 2**30, 0.0)])
    with transaction(conn):
        conn.execute("UPDATE gpus SET last_seen = (SELECT MAX(ts) FROM gpu_samples)")
    conn.close()
    doc = json.loads(_idle(db_path, "--json").stdout)
    assert doc["verdict"] == "idle"
    assert doc["gpus"][0]["state"] == "held-idle" and doc["gpus"][0]["workload"] == ["notebook notebooks/explore.ipynb"]
    w = doc["gpus"][0]["workloads"][0]
    assert (w["kind"], w["id"], w["name"]) == ("jupyter-kernel", "k1", "notebooks/explore.ipynb")  # for a culler

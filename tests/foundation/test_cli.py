"""`gpuspend collect` and `gpuspend doctor` as a user runs them: real processes, real signals, real files."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from gpuspend import rollup
from gpuspend.collectors.nvml import nvml_available
from gpuspend.samples import gpu_samples
from gpuspend.store import connect
from tests.conftest import ROOT

no_driver = pytest.mark.skipif(nvml_available(), reason="this machine has an NVIDIA driver")


def _q(db: Path, sql: str) -> list[tuple]:
    c = sqlite3.connect(db, timeout=15)
    try:
        return c.execute(sql).fetchall()
    finally:
        c.close()


def _daemon(db: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("GPUSPEND_NOW", None)          # a daemon on the real clock: each tick its own timestamp
    return subprocess.Popen([sys.executable, "-m", "gpuspend", "collect", "--demo", "--db", str(db), *extra],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(db: Path, sql: str, at_least: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        if db.exists():
            try:
                n = _q(db, sql)[0][0] or 0
            except sqlite3.OperationalError:
                n = 0
            if n >= at_least:
                return n
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {sql} >= {at_least} (got {n})")


@no_driver
def test_collect_once_without_driver_exits_2_with_the_nvml_line(cli, db_path: Path) -> None:
    r = cli("collect", "--once", "--db", str(db_path))
    assert r.returncode == 2
    assert r.stderr.startswith("gpuspend: NVML is not available")
    assert "gpuspend collect --demo" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not db_path.exists()                       # nothing created


def test_collect_demo_once_writes_eight_gpu_rows(cli, db_path: Path) -> None:
    r = cli("collect", "--demo", "--once", "--db", str(db_path))
    assert r.returncode == 0, r.stderr
    assert _q(db_path, "SELECT COUNT(*), COUNT(DISTINCT uuid), MIN(source) FROM gpus") == [(8, 8, "demo")]
    assert _q(db_path, "SELECT COALESCE(SUM(n), 0) FROM gpu_samples") == [(8,)]
    assert _q(db_path, "SELECT COUNT(*) FROM collector_lease") == [(0,)]
    # the root --demo and --db work too
    r = cli("--demo", "--db", str(db_path), "collect", "--once", "--interval", "2")
    assert r.returncode == 0, r.stderr


def test_collect_rejects_a_bad_metrics_address(cli, db_path: Path) -> None:
    r = cli("collect", "--demo", "--db", str(db_path), "--metrics", "localhost")
    assert r.returncode == 2 and "expected HOST:PORT" in r.stderr and "Traceback" not in r.stderr
    assert not db_path.exists()


@no_driver
def test_doctor_without_gpu_says_nvml_unavailable_and_the_rest_ok(cli, db_path: Path) -> None:
    cli("collect", "--demo", "--once", "--db", str(db_path))
    r = cli("doctor", "--db", str(db_path))
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert any(ln.startswith("info") and "NVML is not available" in ln for ln in lines)
    assert any(ln.startswith("ok") and "database" in ln and str(db_path) in ln for ln in lines)
    assert any(ln.startswith("ok") and "config" in ln and "defaults" in ln for ln in lines)
    assert any(ln.startswith("ok") and "collector" in ln for ln in lines)
    gpu_lines = [ln for ln in lines if " gpu " in f" {ln.split(None, 1)[1]}"[:6]]
    assert len(gpu_lines) == 8 and all("rate:" in ln for ln in gpu_lines)
    assert not any(ln.startswith("FAIL") for ln in lines)


def test_doctor_reports_a_bad_config_and_exits_2(cli, db_path: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("idle:\n  util_pct: 5\n  aftr: 15m\n")
    r = cli("--config", str(cfg), "doctor", "--db", str(db_path))
    assert r.returncode == 2
    assert f"FAIL  config     {cfg}:3:3: unknown key 'idle.aftr'" in r.stdout
    assert "did you mean 'idle.after'?" in r.stdout


def test_second_collector_refused_then_sigterm_exits_cleanly(cli, db_path: Path) -> None:
    d = _daemon(db_path, "--interval", "0.2")
    try:
        _wait_for(db_path, "SELECT COALESCE(SUM(n), 0) FROM gpu_samples", 16)
        r = cli("collect", "--demo", "--once", "--db", str(db_path))
        assert r.returncode == 2
        assert f"daemon pid {d.pid} on" in r.stderr and "Traceback" not in r.stderr
        d.send_signal(signal.SIGTERM)
        out, err = d.communicate(timeout=30)
    finally:
        if d.poll() is None:
            d.kill()
            d.wait()
    assert d.returncode == 0, err
    assert err == ""
    assert _q(db_path, "SELECT COUNT(*) FROM collector_lease") == [(0,)]


def test_kill_9_mid_run_leaves_a_sound_database_and_counts_once(db_path: Path) -> None:
    for round_ in range(2):
        d = _daemon(db_path, "--interval", "0.1")
        try:
            # the second round starts at once: the dead holder's lease is taken over
            _wait_for(db_path, "SELECT COALESCE(SUM(n), 0) FROM gpu_samples", 8 * 12 * (round_ + 1))
            time.sleep(0.027 * (round_ + 1))          # land somewhere inside a tick
        finally:
            d.send_signal(signal.SIGKILL)
            d.wait()
        assert _q(db_path, "PRAGMA integrity_check") == [("ok",)]
    conn = connect(db_path)
    try:
        for _ in range(2):      # rolling up again after the crash adds nothing twice
            rollup.roll_up(conn, interval_s=0.1)
            raw = conn.execute("SELECT COALESCE(SUM(n), 0) FROM gpu_samples").fetchone()[0]
            rolled = conn.execute("SELECT SUM(samples) FROM gpu_minutes").fetchone()[0]
            assert rolled == raw
        per_ts = Counter(r[1] for r in gpu_samples(conn, 0, None))
        assert set(per_ts.values()) == {8}              # every tick landed whole or not at all
    finally:
        conn.close()


def test_a_database_that_refuses_writes_is_one_line_not_a_traceback(tmp_path: Path, monkeypatch, capsys) -> None:
    """A read-only file or folder, a full disk: SQLite's refusal reached the user as a traceback."""
    from gpuspend import cli, store

    def refused(*_a: object, **_k: object) -> None:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(store, "connect", refused)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--db", str(tmp_path / "ro.db"), "import", str(ROOT / "tests" / "fixtures" / "billing" /
                                                                 "focus_gpu.csv")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 3
    assert err.startswith("gpuspend: the database refused: attempt to write a readonly database (check the file's")
    assert "\n" not in err and "Traceback" not in err


@pytest.mark.parametrize("value", ["nan", "inf", "0", "5000"])
def test_an_interval_must_be_a_finite_number_of_seconds(cli, db_path: Path, value: str) -> None:
    """`-i nan` passed click's range check and failed writing the lease (a traceback); the dashboard span."""
    r = cli("--db", str(db_path), "collect", "--demo", "--once", "-i", value)
    assert r.returncode == 2
    err = r.stderr.strip()
    assert "\n" not in err and err.startswith("gpuspend: Invalid value for '-i' / '--interval'"), err
    assert err.endswith("(see 'gpuspend collect --help')")
    assert not db_path.exists()


def test_an_error_line_never_carries_a_terminal_escape_of_what_it_quotes(cli, db_path: Path) -> None:
    """A file name is outside text: its OSC sequence (retitle the terminal) and BEL went to the terminal raw."""
    r = cli("--db", str(db_path), "import", "names/missing\x1b]0;TITLE\x07\x1bP1;2q\x1b\\.csv")
    assert r.returncode == 2
    err = r.stderr.strip()
    assert "\n" not in err and "\x1b" not in err and "\x07" not in err, repr(err)
    assert err.startswith("gpuspend: names/missing"), err
    assert "no such file or folder" in err

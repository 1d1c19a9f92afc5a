"""The collector lease: one writer per database, stale leases taken over, atomic under real races."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpuspend import lease
from tests.conftest import ROOT

NOW = 1_794_744_000_000

RACER = """
import sys, time
from gpuspend.store import connect
from gpuspend import lease
conn = connect(sys.argv[1])
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
print(lease.try_acquire(conn, "daemon", 2.0), flush=True)
time.sleep(0.5)   # stay alive while the other racer decides, so our pid is not "gone"
"""


@pytest.fixture
def sleeper():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def _hold(conn, pid: int, heartbeat: int, interval: float = 2.0) -> None:
    conn.execute("INSERT OR REPLACE INTO collector_lease VALUES (1, ?, ?, 'daemon', ?, ?, ?)",
                 (pid, os.uname().nodename, heartbeat, heartbeat, interval))


def test_acquire_heartbeat_release(conn) -> None:
    assert lease.holder(conn, NOW) is None
    assert lease.try_acquire(conn, "tui", 1.0, NOW)
    info = lease.holder(conn, NOW + 1000)
    assert (info.pid, info.owner, info.stale) == (os.getpid(), "tui", False)
    assert lease.try_acquire(conn, "tui", 1.0, NOW + 500)          # ours already: fine
    assert lease.heartbeat(conn, NOW + 2000)
    assert lease.holder(conn, NOW + 2000).heartbeat == NOW + 2000
    lease.release(conn)
    assert lease.holder(conn, NOW) is None
    assert not lease.heartbeat(conn, NOW + 3000)                   # not ours any more


def test_live_holder_refuses_until_three_intervals_missed(conn, sleeper) -> None:
    _hold(conn, sleeper.pid, NOW)
    assert not lease.try_acquire(conn, "daemon", 2.0, NOW + 5_999)
    info = lease.holder(conn, NOW + 5_999)
    assert info.describe() == f"daemon pid {sleeper.pid} on {os.uname().nodename}" and not info.stale
    assert lease.try_acquire(conn, "daemon", 2.0, NOW + 6_001)     # no heartbeat for > 3 x 2 s: taken over
    assert lease.holder(conn, NOW + 6_001).pid == os.getpid()


def test_dead_holder_on_this_host_is_stale_at_once(conn, sleeper) -> None:
    _hold(conn, sleeper.pid, NOW)
    sleeper.kill()
    sleeper.wait()
    assert lease.holder(conn, NOW).stale
    assert lease.try_acquire(conn, "daemon", 2.0, NOW)


def test_holder_on_another_host_is_judged_by_heartbeat_only(conn) -> None:
    conn.execute("INSERT INTO collector_lease VALUES (1, 1, 'other-node', 'daemon', ?, ?, 2.0)", (NOW, NOW))
    assert not lease.try_acquire(conn, "daemon", 2.0, NOW + 1000)


def test_two_processes_racing_never_both_win(db_path: Path) -> None:
    from gpuspend.store import connect

    connect(db_path).close()
    for _ in range(3):
        start = time.time() + 1.0
        procs = [subprocess.Popen([sys.executable, "-c", RACER, str(db_path), str(start)], cwd=ROOT,
                                  stdout=subprocess.PIPE, text=True) for _ in range(2)]
        results = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
        assert results == ["False", "True"]

"""The collector daemon runs periodic tasks (billing re-imports, rollups, deliveries, cloud polls) in a worker
thread with its own connection: sampling goes on while a task holds SQLite's write lock, the readings taken
meanwhile are written afterwards, and the lease stays ours."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from gpuspend import daemon, lease
from gpuspend.config import load_config
from gpuspend.daemon import Collector
from gpuspend.store import connect


def _count(db: Path, table: str) -> int:
    c = connect(db)
    try:
        what = "COALESCE(SUM(n), 0)" if table == "gpu_samples" else "COUNT(*)"    # a row is a run of n samples
        return c.execute(f"SELECT {what} FROM {table}").fetchone()[0]
    finally:
        c.close()


def test_a_task_holding_the_write_lock_does_not_stop_sampling(db_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("GPUSPEND_NOW")               # real time: every tick its own timestamp
    holding, release = threading.Event(), threading.Event()
    seen_conn: list[object] = []

    def big_import(conn, cfg, now_ms):              # like a 1M-row billing re-import: one long transaction
        seen_conn.append(conn)
        conn.execute("BEGIN IMMEDIATE")
        holding.set()
        release.wait(30)
        conn.execute("COMMIT")

    monkeypatch.setattr(daemon, "PERIODIC_TASKS", [("import", 3600, big_import)])
    col = Collector(db_path, load_config(), demo=True, owner="daemon", interval_s=0.1)
    stop = threading.Event()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            col.open()
            col.run(0.1, stop)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            col.close()

    t = threading.Thread(target=work)
    t.start()
    try:
        assert holding.wait(30), "the task never ran"
        at_lock = col.ticks
        deadline = time.monotonic() + 30
        while col.ticks < at_lock + 5 and time.monotonic() < deadline and t.is_alive():
            time.sleep(0.02)
        during = col.ticks - at_lock
        assert during >= 5, "sampling waited for the task"           # inline tasks froze the sampler here
        assert seen_conn[0] is not col.conn                            # the task has its own connection
        c = connect(db_path)
        try:                                                           # the worker announced its task
            assert c.execute("SELECT pid FROM collector_task").fetchone() == (os.getpid(),)
        finally:
            c.close()
        release.set()
        deadline = time.monotonic() + 30
        while col._pending and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not col._pending                                        # held readings written after the task
        c = connect(db_path)
        try:
            info = lease.holder(c)
        finally:
            c.close()
        assert info is not None and info.owner == "daemon"             # still ours
    finally:
        release.set()
        stop.set()
        t.join(30)
    assert not errors and not t.is_alive()
    assert _count(db_path, "gpu_samples") == 8 * col.ticks            # no reading lost


def test_a_second_collector_cannot_take_the_lease_from_one_busy_in_a_long_task(db_path: Path, monkeypatch) -> None:
    """The race that made the daemon exit 2: its heartbeat is old because its worker holds the write lock in an
    import; a second collector judging the lease must see "busy", not "stalled"."""
    now = 1794744000000
    first = Collector(db_path, load_config(), demo=True, owner="daemon", interval_s=2.0).open()
    try:
        first.tick(now)
        lease.task_begin(first.conn, now + daemon.TASK_GRACE_MS)      # what the worker does before a task
        conn = connect(db_path)
        try:
            later = now + 60_000                                       # heartbeat 1 min old: 30 intervals
            assert not lease.holder(conn, later).stale
            assert lease.holder(conn, now + daemon.TASK_GRACE_MS + 1).stale     # the grace has an end
            # another collector (another pid on this host) asks for the lease 1 min after the last heartbeat
            me = lease._me
            monkeypatch.setattr(lease, "_me", lambda: (1, me()[1]))
            assert lease.try_acquire(conn, "daemon", 2.0, later) is False
            monkeypatch.setattr(lease, "_me", me)
        finally:
            conn.close()
        lease.task_end(first.conn, now + 61_000)
        c = connect(db_path)
        try:
            info = lease.holder(c, now + 61_000)
            assert info is not None and not info.stale and info.heartbeat == now + 61_000
            assert c.execute("SELECT COUNT(*) FROM collector_task").fetchone()[0] == 0
        finally:
            c.close()
    finally:
        first.close()

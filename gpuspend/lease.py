"""The collector lease: one row saying who writes samples (daemon or TUI), so two never double-write.

Acquire/heartbeat are single BEGIN IMMEDIATE transactions: SQLite's write lock makes the read-check-write
atomic, so two processes racing for the lease cannot both win. A lease whose holder has not beaten for
3 intervals (or whose pid on this host is gone) is stale and may be taken over.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from dataclasses import dataclass

from gpuspend import clock
from gpuspend.store import transaction

STALE_INTERVALS = 3


@dataclass(frozen=True)
class LeaseInfo:
    pid: int
    host: str
    owner: str
    started: int          # epoch ms
    heartbeat: int        # epoch ms
    interval_s: float
    stale: bool

    def describe(self) -> str:
        return f"{self.owner} pid {self.pid} on {self.host}"


def _me() -> tuple[int, str]:
    return os.getpid(), socket.gethostname()


def _pid_gone(pid: int, host: str) -> bool:
    """Only decidable on this host: a holder killed with -9 leaves its row behind."""
    if host != socket.gethostname():
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _info(row: tuple, now_ms: int, busy: bool = False) -> LeaseInfo:
    pid, host, owner, started, heartbeat, interval_s = row
    # busy: the holder announced a long task (its worker holds the write lock, so no heartbeat can be written)
    late = now_ms - heartbeat > STALE_INTERVALS * interval_s * 1000 and not busy
    stale = late or _pid_gone(pid, host)
    return LeaseInfo(pid, host, owner, started, heartbeat, interval_s, stale)


def holder(conn: sqlite3.Connection, now_ms: int | None = None) -> LeaseInfo | None:
    now = clock.now_ms() if now_ms is None else now_ms
    row = conn.execute("SELECT pid, host, owner, started, heartbeat, interval_s FROM collector_lease "
                       "WHERE id = 1").fetchone()
    if not row:
        return None
    busy = conn.execute("SELECT 1 FROM collector_task WHERE id = 1 AND pid = ? AND host = ? AND until > ?",
                        (row[0], row[1], now)).fetchone() is not None
    return _info(row, now, busy)


def task_begin(conn: sqlite3.Connection, until_ms: int) -> None:
    """The holder's worker starts a task that may hold the write lock for long (a billing re-import): until
    `until_ms` the lease is not stale for a missed heartbeat (a dead pid on this host still is)."""
    pid, host = _me()
    with transaction(conn):
        conn.execute("INSERT OR REPLACE INTO collector_task (id, pid, host, until) SELECT 1, ?, ?, ? "
                     "WHERE EXISTS (SELECT 1 FROM collector_lease WHERE id = 1 AND pid = ? AND host = ?)",
                     (pid, host, until_ms, pid, host))


def task_end(conn: sqlite3.Connection, now_ms: int | None = None) -> None:
    """The task is over: beat the heartbeat and drop the announcement, in one transaction."""
    pid, host = _me()
    with transaction(conn):
        heartbeat(conn, now_ms)
        conn.execute("DELETE FROM collector_task WHERE id = 1 AND pid = ? AND host = ?", (pid, host))


def try_acquire(conn: sqlite3.Connection, owner: str, interval_s: float, now_ms: int | None = None) -> bool:
    """Take the lease if free, stale, or already ours (same pid and host). Atomic."""
    now = clock.now_ms() if now_ms is None else now_ms
    pid, host = _me()
    with transaction(conn):
        cur = holder(conn, now)
        if cur is not None and not cur.stale and not (cur.pid == pid and cur.host == host):
            return False
        conn.execute("INSERT OR REPLACE INTO collector_lease (id, pid, host, owner, started, heartbeat, interval_s) "
                     "VALUES (1, ?, ?, ?, ?, ?, ?)", (pid, host, owner, now, now, float(interval_s)))
    return True


def heartbeat(conn: sqlite3.Connection, now_ms: int | None = None) -> bool:
    """Beat if we still hold the lease. False: someone took it over (we were stalled past 3 intervals).
    Runs inside the caller's transaction when there is one (the sampler's tick), else on its own."""
    now = clock.now_ms() if now_ms is None else now_ms
    pid, host = _me()
    cur = conn.execute("UPDATE collector_lease SET heartbeat = MAX(heartbeat, ?) WHERE id = 1 AND pid = ? "
                       "AND host = ?", (now, pid, host))
    return cur.rowcount == 1


def release(conn: sqlite3.Connection) -> None:
    pid, host = _me()
    with transaction(conn):
        conn.execute("DELETE FROM collector_lease WHERE id = 1 AND pid = ? AND host = ?", (pid, host))
        conn.execute("DELETE FROM collector_task WHERE id = 1 AND pid = ? AND host = ?", (pid, host))

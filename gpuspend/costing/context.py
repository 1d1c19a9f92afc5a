"""The read context: what one snapshot reads with (connection, now, config) and the one cache it reads through.

The cache key, and why it is correct across connections, processes and databases:
  key = (database identity, content version, what was computed)
  - database identity: (st_dev, st_ino) of the main database file, which this process's *watcher* on it holds
    open (so no other file can take that inode while it lives): one connection per file that never writes.
    The values live on the watcher's own record, so a watcher opened again (after eviction) starts empty.
  - content version: `PRAGMA data_version` read on the watcher. SQLite guarantees two reads on one connection
    differ whenever any *other* connection, in this process or another, committed in between; the watcher
    never writes, so that is every commit to the file. It is read when a context is made, before the context
    reads anything, so what is stored under a version is at least as new as the version.
  Neither `id(conn)` (reused once a connection is freed) nor a connection's own data_version/total_changes
  (counters that start again with each connection) can name a database state; this can. A connection inside
  its own transaction sees rows no one else does yet: it reads uncached.
Entries of two kinds: plain entries are valid for one content version (dropped when it moves); `durable` ones
carry their validity in their own key and outlive commits: sums of rollup rows behind the watermark, which never
change (rollup.py; all dropped should the watermark ever go back), or values keyed by a generation counter that
the writers of those rows bump in the same transaction (store.bump_generation: billing imports).
Cost per context: one stat and one PRAGMA (microseconds); a database without a file (`:memory:`) is uncached.
"""

from __future__ import annotations

import atexit
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
MAX_DATABASES = 8               # watchers kept open (a process reads one database, tests many)
_registry: dict[tuple[int, int], _Database] = {}
_registry_lock = threading.Lock()
_registry_pid = os.getpid()     # a forked child must not use its parent's SQLite connections
_local = threading.local()


class _Database:
    """One database file: its watcher and its cached values."""

    def __init__(self, path: str) -> None:
        # Not read-only: should it be the last connection to close, it can checkpoint the WAL like any other.
        self.watcher = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=15.0)
        self.lock = threading.Lock()
        self.version: int | None = None
        self.state: dict[str, dict[Any, Any]] = {}
        self.durable: dict[str, dict[Any, Any]] = {}
        self.watermark = 0
        self.generation: str | None = None     # the rollup generation the durable entries were read at
        self.rollup_seen = False

    def current(self) -> int:
        with self.lock:
            v = self.watcher.execute("PRAGMA data_version").fetchone()[0]
            if v != self.version:
                self.version = v
                self.state = {}
            return v


def _database(conn: sqlite3.Connection) -> _Database | None:
    global _registry_pid
    try:
        if conn.in_transaction:
            return None
        path = conn.execute("PRAGMA database_list").fetchone()[2]
        if not path:
            return None
        st = os.stat(path)
    except (sqlite3.Error, OSError):
        return None
    key = (st.st_dev, st.st_ino)
    with _registry_lock:
        if _registry_pid != os.getpid():
            _registry.clear()
            _registry_pid = os.getpid()
        db = _registry.get(key)
        if db is None:
            try:
                db = _Database(path)
            except sqlite3.Error:
                return None
            if len(_registry) >= MAX_DATABASES:
                oldest = next(iter(_registry))
                _registry.pop(oldest).watcher.close()
            _registry[key] = db
        return db


class Cache:
    """One database's cache as seen at one content version (see the module comment)."""

    __slots__ = ("_db", "_version")

    def __init__(self, db: _Database | None) -> None:
        self._db, self._version = db, None
        if db is not None:
            try:
                self._version = db.current()
            except sqlite3.Error:             # its watcher was closed meanwhile (evicted): read uncached
                self._db = None

    def get(self, name: str, key: Any, compute: Callable[[], T], *, durable: bool = False, size: int = 32) -> T:
        """The value stored under (name, key), else compute() (stored unless the database moved on meanwhile)."""
        db = self._db
        if db is None:
            return compute()
        # compute() runs outside the lock: it may read other cached values (the lock is not reentrant)
        with db.lock:
            if durable or db.version == self._version:
                table = (db.durable if durable else db.state).get(name, {})
                if key in table:
                    return table[key]
        value = compute()
        self.put(name, key, value, durable=durable, size=size)    # not stored if a newer version is current
        return value

    def put(self, name: str, key: Any, value: Any, *, durable: bool = False, size: int = 32) -> None:
        """Store `value` under (name, key) (unless the database moved on meanwhile, for a plain entry)."""
        db = self._db
        if db is None:
            return
        with db.lock:
            if durable or db.version == self._version:
                table = (db.durable if durable else db.state).setdefault(name, {})
                if key not in table and len(table) >= size:
                    table.pop(next(iter(table)))      # the oldest entry
                table[key] = value

    def peek(self, name: str, key: Any, *, durable: bool = False) -> Any:
        """The value stored under (name, key), else None."""
        db = self._db
        if db is None:
            return None
        with db.lock:
            if not durable and db.version != self._version:
                return None
            return (db.durable if durable else db.state).get(name, {}).get(key)

    def seen_rollup(self, wm: int, generation: str | None) -> None:
        """Rollup rows behind the watermark are final, until the rollup generation moves: a watermark that
        went back (a store rebuilt in place, `rollup --rebuild`) or minutes written behind it (the demo's
        backfill of older days) take the durable entries with them (an idle run's start, the episode scans:
        a dashboard open through a first start's backfill kept a 2.5-day idle episode at the 1d06h it
        could see before)."""
        db = self._db
        if db is None:
            return
        with db.lock:
            if wm < db.watermark or (db.rollup_seen and generation != db.generation):
                db.durable = {}
            db.watermark, db.generation, db.rollup_seen = wm, generation, True


class ReadContext:
    """What one snapshot reads with: built once per snapshot (see `reading`), shared by every function that
    snapshot calls on the same connection."""

    __slots__ = ("conn", "cfg", "now_ms", "cache")

    def __init__(self, conn: sqlite3.Connection, cfg: Any, now_ms: int, cache: Cache) -> None:
        self.conn, self.cfg, self.now_ms, self.cache = conn, cfg, now_ms, cache


def cache_for(conn: sqlite3.Connection) -> Cache:
    """The cache of the context open on `conn` in this thread, else one as of now."""
    ctx = getattr(_local, "ctx", None)
    if ctx is not None and ctx.conn is conn:
        return ctx.cache
    return Cache(_database(conn))


def memo(conn: sqlite3.Connection, name: str, key: Any, compute: Callable[[], T]) -> T:
    """compute() once per read context: through the cache of the context open on `conn` in this thread (one
    snapshot asks for the watermark some twenty times, a query each), else computed now (no context: no cache
    to keep it in, and making one costs more than most reads it would save)."""
    ctx = getattr(_local, "ctx", None)
    if ctx is None or ctx.conn is not conn:
        return compute()
    return ctx.cache.get(name, key, compute)


@contextmanager
def reading(conn: sqlite3.Connection, cfg: Any, now_ms: int) -> Iterator[ReadContext]:
    """The read context for one snapshot on `conn` (the one already open on it in this thread, if any)."""
    outer = getattr(_local, "ctx", None)
    if outer is not None and outer.conn is conn:
        yield outer
        return
    ctx = ReadContext(conn, cfg, now_ms, Cache(_database(conn)))
    _local.ctx = ctx
    try:
        yield ctx
    finally:
        _local.ctx = outer


@atexit.register
def _close_watchers() -> None:
    with _registry_lock:
        dbs = list(_registry.values()) if _registry_pid == os.getpid() else []
        _registry.clear()
    for db in dbs:
        with db.lock:
            db.watcher.close()


def reset() -> None:
    """Forget every cached value (tests and benchmarks that want a cold computation). Watchers stay open."""
    with _registry_lock:
        dbs = list(_registry.values())
    for db in dbs:
        with db.lock:
            db.state, db.durable, db.version, db.watermark = {}, {}, None, 0

"""The read cache while a collector writes: a value computed from other cached values never hangs the reader.

A snapshot built while the database moves on (the collector commits every second) computes uncached, and the
computation asks the cache for the rows it shares with other callers; a collector's metrics thread once hung
for good that way (the dashboard of a node stopped exporting: gpuspend_up 0)."""

from __future__ import annotations

import threading

from gpuspend.costing.context import Cache, _database
from gpuspend.store import connect, set_meta, transaction


def _nested(cache: Cache) -> int:
    return cache.get("outer", 1, lambda: cache.get("inner", 2, lambda: 40) + 2)


def test_a_nested_cached_read_on_a_database_that_moved_on_returns(tmp_path):
    conn = connect(tmp_path / "g.db")
    writer = connect(tmp_path / "g.db")
    try:
        cache = Cache(_database(conn))
        with transaction(writer):               # the collector commits after the cache was taken
            set_meta(writer, "probe", "1")
        conn.execute("SELECT 1").fetchone()
        Cache(_database(conn))                  # another reader sees the new version first
        got: list[int] = []
        t = threading.Thread(target=lambda: got.append(_nested(cache)), daemon=True)
        t.start()
        t.join(30)
        assert got == [42], "the cached read hung"
        assert _nested(Cache(_database(conn))) == 42       # and on the current version, stored and reused
        assert _nested(Cache(_database(conn))) == 42
    finally:
        conn.close()
        writer.close()

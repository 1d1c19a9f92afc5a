"""A database as an earlier schema version left it, for the migration tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gpuspend import store


def schema_at(path: Path, version: int) -> sqlite3.Connection:
    """A new database at `path` holding exactly what MIGRATIONS[:version] create (autocommit connection)."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("BEGIN")
    for script in store.MIGRATIONS[:version]:
        for stmt in store._statements(script):
            conn.execute(stmt)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.execute("COMMIT")
    return conn

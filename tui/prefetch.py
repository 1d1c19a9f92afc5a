"""The dashboard's first snapshot, read in a thread started before Textual is even imported, so SQLite work
overlaps the framework's import and start-up (first full frame sooner). Nothing here imports Textual."""

from __future__ import annotations

import sqlite3
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from gpuspend.snapshot import Snapshot

if TYPE_CHECKING:
    from gpuspend.config import Config
    from gpuspend.options import DashboardOptions


class Prefetch:
    """Builds the first snapshot in a thread. Errors surface in the app's first load, like any tick's."""

    def __init__(self, db_path: Path, cfg: Config, demo: bool) -> None:
        self._out: tuple[Snapshot, sqlite3.Connection, int] | BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(db_path, cfg, demo), daemon=True,
                                        name="gpuspend-prefetch")
        self._thread.start()

    def _run(self, db_path: Path, cfg: Config, demo: bool) -> None:
        from gpuspend.costing import build_snapshot
        from gpuspend.store import connect

        try:
            if demo:
                from gpuspend.demo import ensure_demo_db

                ensure_demo_db(db_path, background=True)   # recent window now, the month after
            conn = connect(db_path)
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            self._out = (build_snapshot(conn, cfg), conn, version)
        except BaseException as exc:  # handed to the UI thread by result()
            self._out = exc

    def result(self) -> tuple[Snapshot, sqlite3.Connection, int]:
        self._thread.join()
        if isinstance(self._out, BaseException):
            raise self._out
        assert self._out is not None
        return self._out


def start(opts: DashboardOptions, cfg: Config) -> Prefetch | None:
    """Start reading for the dashboard, unless it will refuse to open (no terminal): then nothing is read."""
    if not sys.stdout.isatty() or not sys.stdin.isatty():
        return None
    return Prefetch(opts.db_path(cfg), cfg, opts.demo)

"""The in-app collector: samples into SQLite while no `gpuspend collect` daemon holds the lease.

Runs in a thread and never touches widgets: it only writes SQLite and reports its state through
`report(text, nvml_error)`, which the app marshals onto the UI thread. The UI reads what it wrote on its
next tick, exactly as it would read a daemon's samples.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpuspend import lease
from gpuspend.errors import GpuspendError, LeaseHeld, NvmlUnavailable
from gpuspend.store import connect

if TYPE_CHECKING:
    from gpuspend.config import Config

Report = Callable[[str, "str | None"], None]


class InAppCollector:
    def __init__(self, db_path: str | Path, cfg: Config, *, demo: bool, report: Report,
                 ready: threading.Event | None = None, recent_snapshot: Callable[[], Any] | None = None) -> None:
        """`recent_snapshot`: the dashboard's newest full snapshot (or None), which the alerts task evaluates
        rather than building one more of its own every half a minute."""
        self.db_path = Path(db_path)
        self.cfg = cfg
        self.demo = demo
        self.report = report
        self.ready = ready or threading.Event()
        self.stop = threading.Event()
        self.done = threading.Event()
        self.interval_s = float(cfg.interval or 2.0)
        self.ticks = 0
        self.recent_snapshot = recent_snapshot
        self._lease_conn: sqlite3.Connection | None = None

    def _daemon(self) -> str | None:
        """Who else holds a live lease, if anyone (checked before touching NVML). While a daemon collects this
        runs every second: one connection for all the checks (opening one runs the schema check each time)."""
        if self._lease_conn is None:
            self._lease_conn = connect(self.db_path)
        try:
            info = lease.holder(self._lease_conn)
        except sqlite3.Error:
            self._drop_lease_conn()
            raise
        if info is None or info.stale:
            self._drop_lease_conn()          # we are about to collect ourselves: no second connection kept
            return None
        return info.describe()

    def _drop_lease_conn(self) -> None:
        if self._lease_conn is not None:
            self._lease_conn.close()
            self._lease_conn = None

    def run(self) -> None:
        from gpuspend.daemon import Collector

        try:
            while not self.ready.wait(0.1):
                if self.stop.is_set():
                    return
            retry = max(self.interval_s, 1.0)
            reported: str | None = None
            while not self.stop.is_set():
                other = self._daemon()
                if other is not None:
                    if other != reported:        # the dashboard redraws on a change, not every check
                        reported = other
                        self.report(f"{other}", None)
                    self.stop.wait(retry)
                    continue
                reported = None
                collector = Collector(self.db_path, self.cfg, demo=self.demo, owner="tui",
                                      interval_s=self.interval_s)
                collector.recent_snapshot = self.recent_snapshot
                try:
                    collector.open()
                except LeaseHeld:
                    continue            # lost a race with a daemon starting up: report it next loop
                except NvmlUnavailable as exc:
                    self.report("none (NVML unavailable)", exc.line())
                    return
                except GpuspendError as exc:
                    self.report(f"none ({exc.line()})", None)
                    return
                self.report("in-app", None)
                collector.start_worker()      # rollups, imports, deliveries never hold up a sample
                try:
                    self._loop(collector)
                finally:
                    collector.close()
        finally:
            self._drop_lease_conn()
            self.done.set()

    def _loop(self, collector: Any) -> None:
        while not self.stop.is_set():
            try:
                collector.tick()
                self.ticks += 1
            except LeaseHeld:
                return                  # a daemon took over our (stale) lease: hand off
            except sqlite3.OperationalError:
                if collector.conn is not None and collector.conn.in_transaction:
                    collector.conn.execute("ROLLBACK")
            self.stop.wait(self.interval_s)

    def close(self, timeout: float = 5.0) -> None:
        self.stop.set()
        self.done.wait(timeout)
